import CMagic
#if canImport(Glibc)
import Glibc
#endif
public import Foundation
import Synchronization

/// Decides a file's MIME type from its content: libmagic first, then our own look inside
/// containers libmagic reports too coarsely (Office files are zips, SVG is XML, HEIC is ISO-BMFF).
public final class ContentSniffer: Sendable {
    /// How many leading bytes libmagic sees. Enough for every signature we rely on.
    static let headBytes = 64 * 1024

    /// A libmagic handle is not thread-safe, so handles are lent out one per caller from a pool.
    private let pool = Mutex<[MagicHandle]>([])
    /// The compiled database, mapped once and used in place by every handle (8 MB each otherwise).
    private let database = MagicDatabase()

    public init() {}

    /// A failure to read the file or to start libmagic.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public func mime(of file: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: file)
        defer { try? handle.close() }
        let head = try handle.read(upToCount: Self.headBytes) ?? Data()
        if head.isEmpty { return "application/x-empty" }
        let magic = try borrow()
        defer { giveBack(magic) }
        let coarse = magic.mime(of: head)
        return refine(coarse, head: head, handle: handle)
    }

    private func borrow() throws -> MagicHandle {
        if let handle = pool.withLock({ $0.popLast() }) { return handle }
        guard let handle = MagicHandle(database: database) else { throw Failure(description: "libmagic could not load its database (install libmagic-mgc)") }
        return handle
    }

    private func giveBack(_ handle: MagicHandle) {
        pool.withLock { $0.append(handle) }
    }

    func refine(_ mime: String, head: Data, handle: FileHandle) -> String {
        if let brand = Self.isoBrand(head) { return brand }
        switch mime {
        case "application/zip":
            return Self.zipFlavour(head: head, handle: handle) ?? "application/zip"
        case "application/octet-stream" where head.starts(with: [0x50, 0x4B, 0x03, 0x04]):
            return Self.zipFlavour(head: head, handle: handle) ?? "application/zip"
        case "text/xml", "application/xml", "text/plain", "image/svg+xml":
            if Self.isSVG(head) { return "image/svg+xml" }
            return mime == "image/svg+xml" ? "text/xml" : mime
        default:
            return mime
        }
    }

    /// HEIC/HEIF/AVIF from the `ftyp` box's brands; videos in the same container are left to libmagic.
    public static func isoBrand(_ head: Data) -> String? {
        let bytes = [UInt8](head.prefix(64))
        guard bytes.count >= 16, bytes[4...7].elementsEqual("ftyp".utf8) else { return nil }
        let size = min(Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3]), bytes.count)
        var brands: [String] = [String(decoding: bytes[8..<12], as: UTF8.self)]
        var i = 16
        while i + 4 <= size { brands.append(String(decoding: bytes[i..<i + 4], as: UTF8.self)); i += 4 }
        let major = brands[0]
        if ["avif", "avis"].contains(major) { return "image/avif" }
        if ["heic", "heix", "heim", "heis", "hevc", "hevx"].contains(major) { return "image/heic" }
        if ["mif1", "msf1"].contains(major) {
            if brands.contains("avif") { return "image/avif" }
            return brands.contains(where: { $0.hasPrefix("hei") || $0.hasPrefix("hev") }) ? "image/heic" : "image/heif"
        }
        return nil
    }

    /// The root element of an XML document is `<svg`: skip the declaration, comments, DOCTYPE.
    static func isSVG(_ head: Data) -> Bool {
        var text = Substring(String(decoding: head.prefix(8192), as: UTF8.self))
        while true {
            text = text.drop { $0.isWhitespace || $0 == "\u{FEFF}" }
            if text.hasPrefix("<?") || text.hasPrefix("<!--") || text.hasPrefix("<!") {
                let end = text.hasPrefix("<!--") ? "-->" : ">"
                guard let close = text.range(of: end) else { return false }
                // A DOCTYPE with an internal subset ends at "]>", not the first ">".
                if text.hasPrefix("<!DOCTYPE"), let open = text.firstIndex(of: "["), open < close.lowerBound,
                   let subsetEnd = text.range(of: "]>") {
                    text = text[subsetEnd.upperBound...]
                } else {
                    text = text[close.upperBound...]
                }
                continue
            }
            return text.hasPrefix("<svg") || text.range(of: #"^<[A-Za-z_][\w.-]*:svg[\s>]"#, options: .regularExpression) != nil
        }
    }

    /// Office Open XML, OpenDocument and EPUB are zips; which one is told by the names inside.
    static func zipFlavour(head: Data, handle: FileHandle) -> String? {
        // EPUB and OpenDocument start with an uncompressed `mimetype` entry holding their type.
        if let declared = ZipPeek.leadingMimetype(head) { return declared }
        guard let names = ZipPeek.centralDirectoryNames(handle: handle) else { return nil }
        if names.contains("word/document.xml") { return "application/vnd.openxmlformats-officedocument.wordprocessingml.document" }
        if names.contains("xl/workbook.xml") { return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" }
        if names.contains("ppt/presentation.xml") { return "application/vnd.openxmlformats-officedocument.presentationml.presentation" }
        if names.contains("META-INF/container.xml"), names.contains("mimetype") { return "application/epub+zip" }
        return nil
    }
}

/// libmagic's compiled database (`magic.mgc`), mapped copy-on-write for the process's lifetime.
final class MagicDatabase {
    private let base: UnsafeMutableRawPointer?
    let size: Int

    init() {
        // libmagic's own default search path, each entry with the compiled suffix.
        let defaults = String(cString: magic_getpath(nil, 0)).split(separator: ":").map { $0.hasSuffix(".mgc") ? String($0) : $0 + ".mgc" }
        for path in defaults + ["/usr/lib/file/magic.mgc", "/usr/share/misc/magic.mgc"] {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0, info.st_size > 0,
                  let map = mmap(nil, Int(info.st_size), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0), map != MAP_FAILED
            else { continue }
            base = map
            size = Int(info.st_size)
            return
        }
        base = nil
        size = 0
    }

    deinit { if let base { munmap(base, size) } }

    /// Loads this database into `cookie`; false when there is none, so the caller falls back.
    func load(into cookie: magic_t) -> Bool {
        guard var pointer = base else { return false }
        var length = size
        return withUnsafeMutablePointer(to: &pointer) { buffers in
            buffers.withMemoryRebound(to: UnsafeMutableRawPointer?.self, capacity: 1) {
                magic_load_buffers(cookie, $0, &length, 1) == 0
            }
        }
    }
}

/// One libmagic handle, freed with its owner. It keeps the database it reads alive.
final class MagicHandle {
    private let cookie: magic_t
    private let database: MagicDatabase

    init?(database: MagicDatabase) {
        guard let cookie = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR) else { return nil }
        guard database.load(into: cookie) || magic_load(cookie, nil) == 0 else {
            magic_close(cookie)
            return nil
        }
        self.cookie = cookie
        self.database = database
    }

    deinit { magic_close(cookie) }

    func mime(of bytes: Data) -> String {
        let result = bytes.withUnsafeBytes { magic_buffer(cookie, $0.baseAddress, $0.count) }
        guard let result else { return "application/octet-stream" }
        return String(cString: result)
    }
}

// libmagic handles move between threads only through the pool's lock, one user at a time.
extension MagicHandle: @unchecked Sendable {}
// The mapping is set once at start and only read afterwards (by libmagic, in place).
extension MagicDatabase: @unchecked Sendable {}
