public import Foundation
public import MediaPipeline

/// How much an archive may expand to. Tests lower these; the runner takes `maxEntries` from
/// `limits.maxEntriesPerArchive` in pipeline.json.
public struct ArchiveLimits: Sendable, Equatable {
    /// More entries than this refuses the whole archive (`entry_limit`).
    public var maxEntries: Int = 50_000
    /// The most bytes one entry may write (`archive_bomb` past it).
    public var maxEntryBytes: Int64 = 10 << 30
    /// The most bytes all entries of one archive may produce together (`archive_bomb` past it).
    public var maxArchiveBytes: Int64 = 50 << 30
    /// The largest output-to-compressed ratio, checked for entries over `ratioFloor` bytes.
    public var maxRatio: Double = 200
    /// Entries up to this size may have any ratio: small files of zeros are not bombs.
    public var ratioFloor: Int64 = 10 << 20

    /// The defaults above; set the fields to change them.
    public init() {}
}

/// One entry of an archive, as `ArchiveReader.next()` hands it out.
public enum ArchiveEntry: Sendable, Equatable {
    /// A regular file that may be extracted. `name` is relative, `/`-separated, free of `.` and
    /// empty parts, and in NFC; `bytes` is the size its header declares.
    case file(name: String, bytes: Int64, modified: Date?)
    /// An entry refused on its header alone. `name` is printable, with escapes for anything that
    /// could split or disguise a log line.
    case rejected(name: String, reason: Reason)
}
