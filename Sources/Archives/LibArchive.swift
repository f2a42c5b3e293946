import CArchive
import Foundation
import MediaPipeline

/// libarchive converts names with the C library's character set, which is ASCII until a program
/// sets a locale: make it UTF-8, once per process (DESIGN.md, "Known traps"). Only LC_CTYPE changes.
private let utf8Names: Void = { _ = setlocale(LC_CTYPE, "C.UTF-8") }()

/// An archive file opened once for reading. The zip pre-scan and libarchive read the same open
/// file, so the bytes checked are the bytes extracted, whatever happens to the path meanwhile.
final class ArchiveFile: ZipSource {
    let descriptor: Int32
    let size: Int64

    init(path: String) throws(Reason) {
        // O_NONBLOCK: a FIFO named like an archive must not hang the open; it is refused below.
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else { throw Reason(.archiveCorrupt, "cannot open it: \(String(cString: strerror(errno)))") }
        var facts = stat()
        guard fstat(descriptor, &facts) == 0, facts.st_mode & 0o170000 == 0o100000 else {
            close(descriptor)
            throw Reason(.archiveCorrupt, "it is not a regular file")
        }
        self.descriptor = descriptor
        self.size = Int64(facts.st_size)
    }

    deinit { close(descriptor) }

    func read(at offset: Int64, count: Int) throws(Reason) -> [UInt8] {
        guard offset >= 0, count >= 0, offset <= size, Int64(count) <= size - offset else {
            throw ZipDirectory.corrupt("it ends before the \(count) bytes at offset \(offset)")
        }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if got < 0, errno == EINTR { continue }
            guard got > 0 else { throw ZipDirectory.corrupt("cannot read \(count) bytes at offset \(offset)") }
            done += got
        }
        return bytes
    }
}

/// One libarchive reader over an `ArchiveFile`, and the only owner of its `struct archive`.
final class LibArchive {
    private let handle: OpaquePointer
    /// Kept so the file stays open as long as libarchive reads it.
    private let file: ArchiveFile
    /// Set once libarchive reports an error it cannot continue after; every later call throws it.
    private(set) var failure: Reason?

    /// How much libarchive reads from the file at a time.
    static let blockSize = 64 << 10

    /// Opens a reader for exactly one format: zip, or tar with gzip only
    /// (`archive_read_support_filter_all` may run external programs). No passphrase is ever given,
    /// so encrypted data fails instead of prompting.
    ///
    /// Zip uses libarchive's streaming reader, which walks the local headers in file order. The
    /// seekable one keeps a record of every central-directory entry for the archive's whole life
    /// (about 150 bytes each: 15 MB for 100,000 entries), so memory would grow with the entry
    /// count. The pre-scan has already checked the central directory, each entry's local header
    /// and that no two entries overlap; `ArchiveReader` matches every header libarchive hands out
    /// with the next planned entry (same name), and any local header the central directory does
    /// not list ends the archive as `archive_corrupt`.
    init(file: ArchiveFile, format: ArchiveFormat) throws(Reason) {
        _ = utf8Names
        guard let handle = archive_read_new() else { throw Reason(.archiveCorrupt, "libarchive could not start a reader") }
        self.handle = handle
        self.file = file
        switch format {
        case .zip:
            archive_read_support_format_zip_streamable(handle)
            // Off by default except on macOS: folding `__MACOSX/` entries into others would change the entry list.
            archive_read_set_options(handle, "zip:!mac-ext")
        case .tar:
            archive_read_support_format_tar(handle)
            archive_read_set_options(handle, "tar:!mac-ext")
            guard archive_read_support_filter_gzip(handle) == ARCHIVE_OK else {
                throw Reason(.archiveCorrupt, "this libarchive has no built-in gzip: \(errorText)")
            }
        }
        guard lseek(file.descriptor, 0, SEEK_SET) == 0, archive_read_open_fd(handle, file.descriptor, Self.blockSize) == ARCHIVE_OK else {
            throw Reason(.archiveCorrupt, "libarchive cannot read it as a \(format) archive: \(errorText)")
        }
    }

    deinit { archive_read_free(handle) }

    /// libarchive's words for its last error.
    var errorText: String {
        archive_error_string(handle).map { String(cString: $0) } ?? "libarchive gave no detail"
    }

    /// The next entry's header, or nil at the end of the archive. The header stays valid until
    /// the next call.
    func nextHeader() throws(Reason) -> Header? {
        if let failure { throw failure }
        var entry: OpaquePointer?
        let result = archive_read_next_header(handle, &entry)
        if result == ARCHIVE_EOF { return nil }
        guard result == ARCHIVE_OK || result == ARCHIVE_WARN, let entry else {
            let failure = Reason(.archiveCorrupt, "cannot read the next entry's header: \(errorText)")
            self.failure = failure
            throw failure
        }
        return Header(entry)
    }

    /// Up to `buffer.count` bytes of the current entry's data: 0 at its end, or a libarchive
    /// status below 0 on error (after a fatal one the reader is done).
    func readData(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let result = archive_read_data(handle, buffer.baseAddress, buffer.count)
        if result == Int(ARCHIVE_FATAL) { failure = Reason(.archiveCorrupt, "libarchive stopped reading: \(errorText)") }
        return result
    }

    /// Bytes read from the file itself so far, before decompression. libarchive reads ahead, so
    /// the bytes an entry used are at most the growth of this over its data plus `blockSize`.
    var fileBytesRead: Int64 { archive_filter_bytes(handle, -1) }

    /// What libarchive says about one entry.
    struct Header {
        /// The name's bytes as libarchive gives them (cut at any NUL), or nil when it has none.
        var name: [UInt8]?
        var kind: EntryKind
        var encrypted: Bool
        /// The declared size, or nil when the header has none.
        var size: Int64?
        var modified: Date?

        init(_ entry: OpaquePointer) {
            let text = archive_entry_pathname(entry) ?? archive_entry_pathname_utf8(entry)
            name = text.map { [UInt8](UnsafeRawBufferPointer(start: $0, count: strlen($0))) }
            if archive_entry_hardlink(entry) != nil || archive_entry_symlink(entry) != nil {
                kind = .link
            } else {
                let type = UInt32(archive_entry_filetype(entry))
                kind = type == 0 ? .special : EntryKind(unixMode: type)  // no type at all is not a regular file here
            }
            encrypted = archive_entry_is_encrypted(entry) != 0
            size = archive_entry_size_is_set(entry) != 0 ? archive_entry_size(entry) : nil
            modified = archive_entry_mtime_is_set(entry) != 0 ? Date(timeIntervalSince1970: TimeInterval(archive_entry_mtime(entry))) : nil
        }
    }
}
