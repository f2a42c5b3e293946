public import Foundation
import MediaPipeline

/// The kinds of archive the reader opens, told apart by the file name.
public enum ArchiveFormat: Sendable, Equatable {
    /// `.zip`.
    case zip
    /// `.tar`, `.tar.gz` and `.tgz`.
    case tar
}

/// Reads a zip or tar archive one entry at a time without trusting it.
///
/// Whole-archive refusals come from `init`, before anything is handed out: too many entries,
/// zip entries sharing bytes, an unreadable archive. Each entry then comes out of `next()` as a
/// regular file or as a rejection with its reason; `extract()` writes a file's data into the work
/// folder under a name the reader makes up, counting every byte against the limits. Nothing is
/// ever created from an entry's name: no folders, no links, no devices, no permissions. Nested
/// archives are plain files here.
///
/// Not `Sendable`: use one reader from one task.
public final class ArchiveReader {
    /// The archive's format, from its name.
    public let format: ArchiveFormat
    /// How many entries the archive has, directories included: from the zip central directory,
    /// or from a first, header-only reading of the tar.
    public let entryCount: Int

    private let workFolder: URL
    private let limits: ArchiveLimits
    private let library: LibArchive
    /// The archive file, which a zip entry's central record is read from again when it comes.
    private let file: ArchiveFile
    /// For zip, where each entry's central record is, in the order libarchive hands them out,
    /// and which entries lost their name to an earlier one in central-directory order.
    private let zip: ZipDirectory?
    /// Judges the entries: for tar as they come, for zip with what the pre-scan noted.
    private var screen = EntryScreen()
    /// How many entries libarchive has handed out so far.
    private var position = 0
    /// The file entry `next()` just returned, until it is extracted or passed by.
    private var pending: Pending?
    /// Bytes produced by every extraction so far, counted against `maxArchiveBytes`.
    private var produced: Int64 = 0
    /// The one buffer every entry's data goes through.
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)

    /// A file entry that may be extracted.
    private struct Pending {
        var number: Int
        var name: String
        var declaredBytes: Int64?
        /// Known for zip entries; for tar the bytes read from the file while extracting stand in.
        var compressedBytes: Int64?
        var header: LibArchive.Header
    }

    /// The format a path's name promises: `.zip`, or `.tar`, `.tar.gz`, `.tgz` (any case), else nil.
    public static func format(ofPath path: String) -> ArchiveFormat? {
        let name = URL(fileURLWithPath: path).lastPathComponent.lowercased()
        if name.hasSuffix(".zip") { return .zip }
        if name.hasSuffix(".tar") || name.hasSuffix(".tar.gz") || name.hasSuffix(".tgz") { return .tar }
        return nil
    }

    /// Opens the archive at `path` and decides what can be decided before extracting anything.
    /// For zip the central directory is read and checked first; for tar every header is read once.
    ///
    /// `workFolder` must exist and belong to this reader: extracted files are created there and
    /// nowhere else. Throws `Reason`: `entry_limit` (more than `limits.maxEntries` entries),
    /// `archive_overlap` (zip entries sharing bytes) or `archive_corrupt`.
    public init(path: String, workFolder: URL, limits: ArchiveLimits) throws {
        guard let format = Self.format(ofPath: path) else {
            throw Reason(.archiveCorrupt, "the name does not end in .zip, .tar, .tar.gz or .tgz")
        }
        let file = try ArchiveFile(path: path)
        switch format {
        case .zip:
            // Names are noted in central-directory order, so that of two equal names the one
            // listed first wins; a duplicate is marked. Names in conflict are not noted.
            var screen = EntryScreen()
            let directory = try ZipDirectory.read(file, maxEntries: limits.maxEntries) { entry in
                entry.nameConflict == nil && !screen.note(raw: entry.rawName, kind: entry.kind, order: entry.recordOffset)
            }
            screen.forgetNames()
            self.screen = screen
            zip = directory
            entryCount = directory.count
        case .tar:
            zip = nil
            entryCount = try Self.countTarEntries(file, maxEntries: limits.maxEntries)
        }
        library = try LibArchive(file: file, format: format)
        self.file = file
        self.format = format
        self.workFolder = workFolder
        self.limits = limits
    }

    deinit { buffer.deallocate() }

    /// The next entry, or nil at the end: a regular file's header facts, or a rejection
    /// (`unsafe_path`, `bad_name`, `link_entry`, `special_entry`, `duplicate_name`, `encrypted`).
    /// Directories are passed by. Throws `archive_corrupt` when the archive cannot be read on.
    public func next() throws -> ArchiveEntry? {
        pending = nil
        while let header = try library.nextHeader() {
            position += 1
            let verdict: EntryScreen.Verdict, declared: Int64?, compressed: Int64?
            switch format {
            case .zip:
                guard let zip, position <= zip.count else {
                    throw Reason(.archiveCorrupt, "libarchive found more entries than the central directory lists")
                }
                let (entry, duplicate) = try zip.entry(position - 1, in: file)
                verdict = try Self.confirm(judge(entry, duplicate: duplicate), rawName: entry.rawName, with: header, number: position)
                (declared, compressed) = (entry.uncompressedSize, entry.compressedSize)
            case .tar:
                guard position <= entryCount else {
                    throw Reason(.archiveCorrupt, "it has more entries than its first reading found: it changed while being read")
                }
                if let name = header.name {
                    verdict = screen.screen(raw: name, kind: header.kind, encrypted: header.encrypted, order: Int64(position))
                } else {
                    verdict = .rejected(name: "(no name)", reason: Reason(.badName, "libarchive could not read the name"))
                }
                (declared, compressed) = (header.size, nil)
            }
            switch verdict {
            case .passBy:
                continue
            case .rejected(let name, let reason):
                return .rejected(name: name, reason: reason)
            case .file(let name):
                pending = Pending(number: position, name: name, declaredBytes: declared, compressedBytes: compressed, header: header)
                return .file(name: name, bytes: declared ?? 0, modified: header.modified)
            }
        }
        if let zip, position != zip.count {
            throw Reason(.archiveCorrupt, "libarchive found \(position) entries where the central directory lists \(zip.count)")
        }
        return nil
    }

    /// Writes the data of the `.file` entry `next()` just returned into the work folder and
    /// returns the new file: mode 0600, named `entry-NNNNNN` plus the entry's extension when that
    /// is 1–10 letters or digits. Call it at most once per file entry; not calling it skips the data.
    ///
    /// Throws `Reason`, and then leaves no file behind: `archive_bomb` (the entry would pass
    /// `maxEntryBytes`, all entries together `maxArchiveBytes`, or an entry over `ratioFloor`
    /// would inflate more than `maxRatio` times), `size_mismatch` (the data is not the declared
    /// size; writing stops at the first byte too many), `encrypted`, `archive_corrupt`,
    /// `disk_full`.
    public func extract() throws -> URL {
        guard let entry = pending else { preconditionFailure("extract() is for the .file entry next() just returned, once") }
        pending = nil
        try checkDeclaredSize(of: entry)
        let url = workFolder.appendingPathComponent(Self.workFileName(number: entry.number, name: entry.name))
        let output = open(url.path, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw Self.writeFailure(errno, "create", url) }
        var failure: Reason?
        do throws(Reason) { try copyData(of: entry, to: output, at: url) } catch { failure = error }
        if close(output) != 0, failure == nil { failure = Self.writeFailure(errno, "close", url) }
        if let failure {
            unlink(url.path)
            throw failure
        }
        return url
    }

    // MARK: - Deciding

    /// What happens to a zip entry, from its central record and what the pre-scan noted in
    /// central-directory order (measured on libarchive 3.6.2, entries come in the order their
    /// bytes lie in the file, which may differ).
    private func judge(_ entry: ZipDirectory.Entry, duplicate: Bool) -> EntryScreen.Verdict {
        if let conflict = entry.nameConflict {
            return .rejected(name: EntryName.printable(raw: entry.rawName), reason: Reason(.badName, conflict.detail))
        }
        return screen.verdict(raw: entry.rawName, kind: entry.kind, encrypted: entry.isEncrypted, isFirst: !duplicate,
                              order: entry.recordOffset)
    }

    /// Checks that libarchive's entry is the one the pre-scan planned for, and lets libarchive's
    /// own view of its type and encryption refuse it too.
    private static func confirm(_ verdict: EntryScreen.Verdict, rawName: [UInt8], with header: LibArchive.Header,
                                number: Int) throws(Reason) -> EntryScreen.Verdict {
        guard case .file(let name) = verdict else { return verdict }
        if let seen = header.name, seen != rawName {
            throw Reason(.archiveCorrupt, "libarchive reads entry \(number) as \(EntryName.printable(raw: seen)), the central directory as \(EntryName.printable(raw: rawName))")
        }
        let shown = EntryName.printable(name)
        switch header.kind {
        case .directory: return .passBy
        case .link: return .rejected(name: shown, reason: Reason(.linkEntry, "it is a link; links are never created"))
        case .special: return .rejected(name: shown, reason: Reason(.specialEntry, "it is a FIFO, device or socket; those are never created"))
        case .file: break
        }
        if header.encrypted {
            return .rejected(name: shown, reason: Reason(.encrypted, "the entry is encrypted; no passphrase is ever asked for"))
        }
        return verdict
    }

    /// Counts a tar's headers without extracting anything, so that too many entries refuse the
    /// whole archive before any of it is handed out.
    private static func countTarEntries(_ file: ArchiveFile, maxEntries: Int) throws(Reason) -> Int {
        let library = try LibArchive(file: file, format: .tar)
        var count = 0
        while try library.nextHeader() != nil {
            count += 1
            guard count <= maxEntries else {
                throw Reason(.entryLimit, "it has more than \(maxEntries) entries (limits.maxEntriesPerArchive)")
            }
        }
        return count
    }

    // MARK: - Extracting

    /// Refuses an entry whose header alone already passes a limit, before writing anything.
    private func checkDeclaredSize(of entry: Pending) throws(Reason) {
        guard let declared = entry.declaredBytes else { return }
        if declared > limits.maxEntryBytes {
            throw Reason(.archiveBomb, "it declares \(declared) bytes; one entry may hold at most \(limits.maxEntryBytes)")
        }
        if declared > limits.maxArchiveBytes - produced {
            throw Reason(.archiveBomb, "it declares \(declared) bytes, which would take the archive past its \(limits.maxArchiveBytes)-byte total")
        }
        if let compressed = entry.compressedBytes, declared > limits.ratioFloor,
           Double(declared) > limits.maxRatio * Double(max(compressed, 1)) {
            throw Reason(.archiveBomb, "it declares \(declared) bytes from \(compressed) compressed, more than \(Int(limits.maxRatio)):1")
        }
    }

    /// Streams the entry's data into `output`, checking every chunk against the limits before
    /// writing it, so no more than the allowed bytes ever reach the disk.
    private func copyData(of entry: Pending, to output: Int32, at url: URL) throws(Reason) {
        let start = library.fileBytesRead
        var written: Int64 = 0
        while true {
            let count = library.readData(into: buffer)
            if count == 0 { break }
            guard count > 0 else {
                if entry.header.encrypted { throw Reason(.encrypted, "the entry is encrypted; no passphrase is ever asked for") }
                throw Reason(.archiveCorrupt, "its data cannot be read: \(library.errorText)")
            }
            let total = written + Int64(count)
            if total > limits.maxEntryBytes {
                throw Reason(.archiveBomb, "it inflates past \(limits.maxEntryBytes) bytes, the most one entry may hold")
            }
            if let declared = entry.declaredBytes, total > declared {
                throw Reason(.sizeMismatch, "it holds more than the \(declared) bytes its header declares")
            }
            if Int64(count) > limits.maxArchiveBytes - produced {
                throw Reason(.archiveBomb, "the archive's entries together inflate past \(limits.maxArchiveBytes) bytes")
            }
            if total > limits.ratioFloor {
                // For tar, what was read from the file meanwhile, plus the block read ahead: an upper bound.
                let compressed = entry.compressedBytes ?? (library.fileBytesRead - start + Int64(LibArchive.blockSize))
                if Double(total) > limits.maxRatio * Double(max(compressed, 1)) {
                    throw Reason(.archiveBomb, "it inflates more than \(Int(limits.maxRatio)):1 (\(total) bytes from \(compressed))")
                }
            }
            try writeBuffer(count, to: output, at: url)
            written = total
            produced += Int64(count)
        }
        if let declared = entry.declaredBytes, written != declared {
            throw Reason(.sizeMismatch, "it holds \(written) bytes where its header declares \(declared)")
        }
    }

    private func writeBuffer(_ count: Int, to output: Int32, at url: URL) throws(Reason) {
        var done = 0
        while done < count {
            let wrote = write(output, buffer.baseAddress! + done, count - done)
            if wrote < 0, errno == EINTR { continue }
            guard wrote > 0 else { throw Self.writeFailure(errno, "write", url) }
            done += wrote
        }
    }

    private static func writeFailure(_ code: Int32, _ action: String, _ url: URL) -> Reason {
        let text = "cannot \(action) \(url.path): \(String(cString: strerror(code)))"
        return code == ENOSPC || code == EDQUOT ? Reason(.diskFull, text) : Reason(.stageFailed, text)
    }

    /// `entry-000042.jpg`: the entry's number in the archive, and its extension only when it is
    /// 1 to 10 lowercase letters or digits. Nothing else of the entry's name reaches the disk.
    static func workFileName(number: Int, name: String) -> String {
        let digits = String(number)
        var fileName = "entry-" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
        let last = name.split(separator: "/").last ?? ""
        if let dot = last.lastIndex(of: "."), dot != last.startIndex {
            let ext = last[last.index(after: dot)...].lowercased()
            if (1...10).contains(ext.unicodeScalars.count),
               ext.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) }) {
                fileName += "." + ext
            }
        }
        return fileName
    }
}
