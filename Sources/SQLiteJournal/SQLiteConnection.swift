import CSQLite

/// SQLite's "copy the bytes now" destructor: `SQLITE_TRANSIENT` is a macro cast Swift cannot import.
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One value bound to a statement or read from a row.
enum SQLValue: Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)

    var text: String? { if case let .text(s) = self { s } else { nil } }

    var integer: Int64? {
        switch self {
        case let .integer(n): n
        case let .real(n): Int64(exactly: n)
        default: nil
        }
    }

    /// REAL columns hand back whole numbers as integers when SQLite stored them compactly.
    var real: Double? {
        switch self {
        case let .real(n): n
        case let .integer(n): Double(n)
        default: nil
        }
    }

    static func optional(_ s: String?) -> SQLValue { s.map(SQLValue.text) ?? .null }
    static func optional(_ n: Double?) -> SQLValue { n.map(SQLValue.real) ?? .null }
}

/// The one owner of a `sqlite3` connection and its prepared statements.
///
/// Not thread-safe on purpose: `SQLiteJournal` (an actor) is its only user, so every call is
/// serialised and the connection is opened without SQLite's own mutexes.
final class SQLiteConnection {
    let path: String
    private var db: OpaquePointer?
    /// Prepared once per SQL text and reused; finalised by `close()`.
    private var statements: [String: OpaquePointer] = [:]

    /// Opens or creates the file. SQLite reads nothing yet: a file that is not a database is
    /// found by the first statement.
    init(path: String) throws(SQLiteJournalError) {
        self.path = path
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_close_v2(handle)
            throw SQLiteJournalError(.cannotOpen, path: path, message: message, code: rc)
        }
        db = handle
        // SQLite falls back to read-only when the file is not writable; a journal that cannot be
        // written is no journal.
        if sqlite3_db_readonly(handle, "main") == 1 {
            close()
            throw SQLiteJournalError(.cannotOpen, path: path, message: "the file is read-only", code: SQLITE_READONLY)
        }
    }

    deinit { close() }

    /// Waits up to `milliseconds` for another connection's lock before a statement gives up with SQLITE_BUSY.
    func setBusyTimeout(milliseconds: Int32) {
        sqlite3_busy_timeout(db, milliseconds)
    }

    /// Runs one statement with bound values and returns its rows.
    @discardableResult
    func run(_ sql: String, _ values: [SQLValue] = []) throws(SQLiteJournalError) -> [[SQLValue]] {
        let statement = try prepared(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (index, value) in values.enumerated() {
            let position = Int32(index + 1)
            let rc = switch value {
            case .null: sqlite3_bind_null(statement, position)
            case let .integer(n): sqlite3_bind_int64(statement, position, n)
            case let .real(n): sqlite3_bind_double(statement, position, n)
            case let .text(s): sqlite3_bind_text(statement, position, s, Int32(s.utf8.count), transient)
            }
            guard rc == SQLITE_OK else { throw failure(rc) }
        }
        var rows: [[SQLValue]] = []
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { return rows }
            guard rc == SQLITE_ROW else { throw failure(rc) }
            rows.append((0..<sqlite3_column_count(statement)).map { column(statement, $0) })
        }
    }

    /// Rows the last INSERT, UPDATE or DELETE changed.
    var changes: Int { db.map { Int(sqlite3_changes64($0)) } ?? 0 }

    /// Runs `body` in one write transaction, taken at the start so that a read-then-write never
    /// meets another writer halfway; rolled back when `body` throws.
    func transaction<T>(_ body: () throws(SQLiteJournalError) -> T) throws(SQLiteJournalError) -> T {
        try run("BEGIN IMMEDIATE")
        do {
            let value = try body()
            try run("COMMIT")
            return value
        } catch {
            // After IOERR or FULL SQLite may have rolled back already; the first error is the one to report.
            if sqlite3_get_autocommit(db) == 0 { _ = try? run("ROLLBACK") }
            throw error
        }
    }

    /// Finalises every statement and closes the file (SQLite checkpoints the WAL on the last close).
    func close() {
        for statement in statements.values { sqlite3_finalize(statement) }
        statements = [:]
        if let db { sqlite3_close_v2(db) }
        db = nil
    }

    private func prepared(_ sql: String) throws(SQLiteJournalError) -> OpaquePointer {
        if let statement = statements[sql] { return statement }
        guard let db else { throw SQLiteJournalError(.closed, path: path, message: "the journal is closed", code: SQLITE_MISUSE) }
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw failure(rc) }
        statements[sql] = statement
        return statement
    }

    private func column(_ statement: OpaquePointer, _ index: Int32) -> SQLValue {
        switch sqlite3_column_type(statement, index) {
        case SQLITE_NULL: return .null
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, index))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(statement, index))
        default:
            guard let bytes = sqlite3_column_text(statement, index) else { return .null }
            let count = Int(sqlite3_column_bytes(statement, index))
            return .text(String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self))
        }
    }

    /// The error SQLite reports for `rc`, in its own words.
    private func failure(_ rc: Int32) -> SQLiteJournalError {
        let code = db.map { sqlite3_extended_errcode($0) } ?? rc
        let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
        let kind: SQLiteJournalError.Kind = code & 0xff == SQLITE_NOTADB ? .notAJournal : .failed
        return SQLiteJournalError(kind, path: path, message: message, code: code)
    }
}
