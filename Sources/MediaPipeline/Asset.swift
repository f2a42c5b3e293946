public import Foundation
import Synchronization

/// What kind of media a file is, decided from its content.
public enum AssetKind: String, Sendable, CaseIterable {
    case image, video, document, archive, audio, other
}

/// What an image's header says, read without decoding pixels.
public struct ImageHeader: Sendable, Equatable, Codable {
    /// The image format as libvips names its loader: `jpeg`, `png`, `webp`, `gif`, `heif`, `tiff`, …
    public var format: String
    public var width: Int
    /// The height of one page (frame).
    public var height: Int
    public var pages: Int
    public var hasAlpha: Bool
    /// EXIF orientation 1…8.
    public var orientation: Int
    public var hasICC: Bool

    public init(format: String, width: Int, height: Int, pages: Int = 1, hasAlpha: Bool = false,
                orientation: Int = 1, hasICC: Bool = false) {
        self.format = format
        self.width = width
        self.height = height
        self.pages = pages
        self.hasAlpha = hasAlpha
        self.orientation = orientation
        self.hasICC = hasICC
    }

    /// Pixels of one frame.
    public var pixels: Int64 { Int64(width) * Int64(height) }
    /// Pixels of every frame together.
    public var totalPixels: Int64 { pixels * Int64(max(pages, 1)) }
    /// The longest side.
    public var longestSide: Int { max(width, height) }
}

/// Reads facts about files. The core knows it only as this protocol; the standard one uses
/// libmagic, libvips and libcrypto.
public protocol AssetInspector: Sendable {
    /// The MIME type from the file's content (never its name), container-aware.
    func sniffMIME(of file: URL) throws -> String
    /// The image header, or nil when the content is not an image libvips may open.
    func imageHeader(of file: URL, mime: String) throws -> ImageHeader?
    /// Hex SHA-256 of the whole file, read once as a stream.
    func sha256(of file: URL) throws -> String
}

/// The file a sink would upload once the transforms have run: the original or a prepared copy.
public struct PreparedFile: Sendable, Equatable {
    public var url: URL
    public var bytes: Int64
    public var mime: String
    /// Facts of the prepared image, when it is one.
    public var image: ImageHeader?

    public init(url: URL, bytes: Int64, mime: String, image: ImageHeader?) {
        self.url = url
        self.bytes = bytes
        self.mime = mime
        self.image = image
    }
}

/// One file in flight through the pipeline.
///
/// Facts (size, sniffed type, kind, image header, SHA-256) are computed the first time a stage
/// asks and cached, so the order of stages decides what is read: a size check before anything
/// else means a 40 GB file is refused from `stat` alone.
public final class Asset: Sendable {
    /// The name shown to people and written in the manifest, e.g. `lessons/01/intro.mp4`.
    public let source: String
    /// Where the original content is on disk.
    public let file: URL
    /// The path inside the input folder or archive, matched by purpose rules and `when.path`.
    public let relativePath: String
    private let inspector: any AssetInspector
    private let state: Mutex<State>

    struct State {
        var size: Int64?
        var mime: String?
        var header: ImageHeader??
        var sha256: String?
        var purpose: String?
        var variables: [String: String] = [:]
        var prepared: PreparedFile?
        var preparedSHA256: String?
        var sink: String?
        var notes: [String] = []
        var checkpoint = UploadCheckpoint.none
    }

    /// The archive named on the command line this file came out of, if any.
    public let container: String?
    /// True for a file only described (`init(declared:purpose:)`): there are no bytes to read.
    public let isDeclared: Bool

    public convenience init(source: String, file: URL, relativePath: String, purpose: String?, inspector: any AssetInspector,
                            container: String? = nil) {
        self.init(source: source, file: file, relativePath: relativePath, purpose: purpose, inspector: inspector,
                  container: container, declared: false)
    }

    private init(source: String, file: URL, relativePath: String, purpose: String?, inspector: any AssetInspector,
                 container: String?, declared: Bool) {
        self.isDeclared = declared
        self.source = source
        self.container = container
        self.file = file
        self.relativePath = relativePath
        self.inspector = inspector
        self.state = Mutex(State(purpose: purpose))
    }

    /// A file described but not handed over (a direct upload: the bytes go from the client
    /// straight to the provider). Its size and type are the declared ones, no image header is
    /// known, and nothing is ever read: a stage that needs the bytes cannot run on it.
    public convenience init(declared: DeclaredFile, purpose: String?) {
        self.init(source: declared.filename, file: URL(fileURLWithPath: "/nonexistent/declared"), relativePath: declared.filename,
                  purpose: purpose, inspector: DeclaredFile.NoBytes(), container: nil, declared: true)
        state.withLock {
            $0.size = declared.bytes
            $0.mime = declared.mime
            $0.header = .some(nil)
        }
    }

    private func cached<T: Sendable>(_ read: (State) -> T?, _ write: (inout State, T) -> Void, compute: () throws -> T) rethrows -> T {
        if let value = state.withLock({ read($0) }) { return value }
        let value = try compute()
        state.withLock { write(&$0, value) }
        return value
    }

    /// The original file's size in bytes, from `stat`.
    public func size() throws -> Int64 {
        try cached({ $0.size }, { $0.size = $1 }) {
            let attributes = try FileManager.default.attributesOfItem(atPath: file.path)
            return (attributes[.size] as? NSNumber)?.int64Value ?? 0
        }
    }

    /// The MIME type sniffed from the content.
    public func mime() throws -> String {
        try cached({ $0.mime }, { $0.mime = $1 }) { try inspector.sniffMIME(of: file) }
    }

    /// The kind, from the sniffed MIME type.
    public func kind() throws -> AssetKind { AssetKind(mime: try mime()) }

    /// The image header, or nil for anything that is not an image libvips may open.
    public func imageHeader() throws -> ImageHeader? {
        try cached({ $0.header }, { $0.header = .some($1) }) {
            let mime = try self.mime()
            guard AssetKind(mime: mime) == .image else { return nil }
            return try inspector.imageHeader(of: file, mime: mime)
        }
    }

    /// Hex SHA-256 of the original content.
    public func sha256() throws -> String {
        try cached({ $0.sha256 }, { $0.sha256 = $1 }) { try inspector.sha256(of: file) }
    }

    /// Hex SHA-256 of what goes up: the original's, unless a stage prepared another file.
    public func uploadSHA256() throws -> String {
        guard let prepared else { return try sha256() }
        return try cached({ $0.preparedSHA256 }, { $0.preparedSHA256 = $1 }) { try inspector.sha256(of: prepared.url) }
    }

    /// The SHA-256 if some stage has already computed it; never reads the file.
    public var knownSHA256: String? { state.withLock { $0.sha256 } }
    /// The size if already known; never touches the file.
    public var knownSize: Int64? { state.withLock { $0.size } }
    /// The MIME type if already sniffed.
    public var knownMIME: String? { state.withLock { $0.mime } }

    /// The upload purpose (`avatar`, `lesson-video`, …), from `--purpose` or the purpose rules.
    public var purpose: String? {
        get { state.withLock { $0.purpose } }
        set { state.withLock { $0.purpose = newValue } }
    }

    /// Free-form values stages pass to later stages.
    public var variables: [String: String] {
        get { state.withLock { $0.variables } }
        set { state.withLock { $0.variables = newValue } }
    }

    /// The prepared file a transform wrote, if any.
    public var prepared: PreparedFile? {
        get { state.withLock { $0.prepared } }
        set {
            state.withLock {
                $0.prepared = newValue
                $0.preparedSHA256 = nil
            }
        }
    }

    /// The name of the sink step chosen by routing.
    public var sink: String? {
        get { state.withLock { $0.sink } }
        set { state.withLock { $0.sink = newValue } }
    }

    /// Where the sink notes how to resume its upload, and what an interrupted run noted before.
    public var checkpoint: UploadCheckpoint {
        get { state.withLock { $0.checkpoint } }
        set { state.withLock { $0.checkpoint = newValue } }
    }

    /// Notes stages left for people, e.g. why a sink was passed over.
    public var notes: [String] { state.withLock { $0.notes } }

    public func note(_ text: String) { state.withLock { $0.notes.append(text) } }

    /// The facts of a file a stage wrote for this asset (size, sniffed type, image header), read
    /// the same way as the original's, for `prepared`.
    public func facts(of url: URL) throws -> PreparedFile {
        let bytes = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.int64Value ?? 0
        let mime = try inspector.sniffMIME(of: url)
        let header = AssetKind(mime: mime) == .image ? try inspector.imageHeader(of: url, mime: mime) : nil
        return PreparedFile(url: url, bytes: bytes, mime: mime, image: header)
    }

    /// What would be uploaded now: the prepared file, or the original with its facts.
    public func upload() throws -> PreparedFile {
        if let prepared { return prepared }
        return PreparedFile(url: file, bytes: try size(), mime: try mime(), image: try imageHeader())
    }

    /// The file's extension, lower-cased, without the dot ("" when none).
    public var declaredExtension: String {
        let name = (relativePath as NSString).lastPathComponent
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "" }
        return name[name.index(after: dot)...].lowercased()
    }
}

extension AssetKind {
    /// The kind a sniffed MIME type belongs to.
    public init(mime: String) {
        let type = mime.split(separator: ";").first.map(String.init) ?? mime
        switch type {
        case _ where type.hasPrefix("image/"): self = .image
        case _ where type.hasPrefix("video/"): self = .video
        case _ where type.hasPrefix("audio/"): self = .audio
        case "application/zip", "application/x-tar", "application/gzip", "application/x-gzip",
             "application/x-7z-compressed", "application/x-rar", "application/vnd.rar", "application/x-bzip2",
             "application/x-xz", "application/zstd":
            self = .archive
        case "application/pdf", "text/plain", "text/csv", "text/markdown", "application/rtf", "text/rtf",
             "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
             "application/epub+zip", "application/json":
            self = .document
        case _ where type.hasPrefix("application/vnd.openxmlformats-officedocument."),
             _ where type.hasPrefix("application/vnd.oasis.opendocument."):
            self = .document
        default: self = .other
        }
    }
}

/// What a client says about a file it will upload straight to the provider: its name, size and
/// content type. The same validation and routing rules decide from these facts.
public struct DeclaredFile: Sendable, Equatable {
    public var filename: String
    public var bytes: Int64
    public var mime: String

    public init(filename: String, bytes: Int64, mime: String) {
        self.filename = filename
        self.bytes = bytes
        self.mime = mime
    }

    /// The inspector of a declared file: every read is refused, since there are no bytes.
    struct NoBytes: AssetInspector {
        func sniffMIME(of file: URL) throws -> String { throw Self.refusal }
        func imageHeader(of file: URL, mime: String) throws -> ImageHeader? { nil }
        func sha256(of file: URL) throws -> String { throw Self.refusal }
        static let refusal = Reason(.stageFailed, "a declared file has no bytes to read")
    }
}
