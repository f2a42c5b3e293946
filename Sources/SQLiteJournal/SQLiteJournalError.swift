/// Why the SQLite journal could not be opened, read or written, with SQLite's own words and the file.
public struct SQLiteJournalError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The file or its folder cannot be created, opened or written.
        case cannotOpen
        /// The file is not SQLite, or is SQLite without a journal's tables.
        case notAJournal
        /// A newer media-pipeline wrote the file.
        case newerSchema
        /// `close()` was called before.
        case closed
        /// A statement failed (SQLITE_BUSY after the timeout, disk full, I/O error, …).
        case failed
    }

    public var kind: Kind
    /// The journal file.
    public var path: String
    /// SQLite's message, or ours when SQLite had none.
    public var message: String
    /// SQLite's extended result code; 0 when the error is not SQLite's.
    public var code: Int32
    /// What the journal was doing, e.g. `claim course.zip!/a.jpg`.
    public var operation: String?

    init(_ kind: Kind, path: String, message: String, code: Int32 = 0, operation: String? = nil) {
        self.kind = kind
        self.path = path
        self.message = message
        self.code = code
        self.operation = operation
    }

    public var description: String {
        let doing = operation.map { " (\($0))" } ?? ""
        // Foundation's messages end with a full stop; the fix follows after a semicolon.
        let message = message.hasSuffix(".") ? String(message.dropLast()) : message
        let sqliteCode = code == 0 ? "" : " (SQLite code \(code))"
        return switch kind {
        case .cannotOpen:
            "cannot open the journal \(path): \(message); check that its folder exists and is writable, or choose another file with --journal"
        case .notAJournal:
            "\(path) is not a media-pipeline journal: \(message); choose another file with --journal, or move this one away"
        case .newerSchema:
            "the journal \(path) \(message); upgrade media-pipeline, or choose another file with --journal"
        case .closed:
            "the journal \(path) is closed\(doing)"
        case .failed:
            "the journal \(path) could not be written or read\(doing): \(message)\(sqliteCode)"
        }
    }
}
