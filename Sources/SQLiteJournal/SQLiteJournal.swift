import Foundation
public import MediaPipeline

/// The journal on one machine: one SQLite file (WAL, `synchronous=FULL`), written through one
/// connection that this actor serialises.
///
/// Every write is committed and synced before its call returns, so a remote effect started right
/// after it is found by a rerun even if the machine loses power.
public actor SQLiteJournal: Journal, Outbox {
    /// The schema this code reads and writes; a file with a newer one is refused.
    static let schemaVersion = 2
    /// How long a claim keeps other workers off a source.
    static let defaultLeaseSeconds: Double = 600

    /// The journal file.
    public nonisolated let path: String
    /// The name this journal claims sources under.
    public nonisolated let worker: String
    private let leaseSeconds: Double
    private let now: @Sendable () -> Double
    /// Nil once closed.
    private var connection: SQLiteConnection?

    /// Opens or creates the journal at `path`, creating its folder (0700) when missing. Throws
    /// `SQLiteJournalError` naming the path when the file cannot be opened or written, is not a
    /// journal, or was written by a newer version.
    public init(path: String, worker: String = "local") throws {
        try self.init(path: path, worker: worker, leaseSeconds: Self.defaultLeaseSeconds, now: { Date().timeIntervalSince1970 })
    }

    /// The same, with the lease length and the clock (seconds since 1970) chosen by a test.
    package init(path: String, worker: String, leaseSeconds: Double, now: @escaping @Sendable () -> Double) throws {
        self.path = path
        self.worker = worker
        self.leaseSeconds = leaseSeconds
        self.now = now
        try Self.prepareFolder(for: path)
        let connection = try SQLiteConnection(path: path)
        connection.setBusyTimeout(milliseconds: 5_000)
        // WAL lets readers run beside the writer; FULL syncs the WAL on every commit, which is
        // what "journaled before the remote effect" needs (NORMAL may lose the last commits).
        try connection.run("PRAGMA journal_mode = WAL")
        try connection.run("PRAGMA synchronous = FULL")
        try connection.run("PRAGMA foreign_keys = ON")
        try Self.prepareSchema(connection)
        self.connection = connection
    }

    /// Runs SQLite's own consistency check: `"ok"` when the file is sound, else its findings, one per line.
    public func integrityCheck() throws -> String {
        try using("integrity check") { db throws(SQLiteJournalError) in
            try db.run("PRAGMA integrity_check").compactMap(\.first?.text).joined(separator: "\n")
        }
    }

    // MARK: Journal

    /// Done when the row ended uploaded or unchanged with an equal stamp; busy while another
    /// worker's lease runs; otherwise `pending` under this worker for ten minutes.
    public func claim(_ source: String, stamp: SourceStamp) throws -> SourceClaim {
        try using("claim \(source)") { db throws(SQLiteJournalError) in
            try db.transaction { () throws(SQLiteJournalError) -> SourceClaim in
                let time = now()
                let rows = try db.run("""
                    SELECT bytes, modified, status, rendition, report, worker, lease_until
                    FROM sources WHERE source = ?
                    """, [.text(source)])
                if let row = rows.first {
                    let recorded = SourceStamp(bytes: row[0].integer ?? -1, modified: row[1].real)
                    let status = row[2].text.flatMap(AssetStatus.init(rawValue:))
                    if let status, status == .uploaded || status == .unchanged, recorded == stamp {
                        let report = try json(row[4], what: "the report of \(source)")
                        return .done(JournaledSource(stamp: recorded, status: status, rendition: row[3].text, report: report))
                    }
                    if let holder = row[5].text, holder != worker, let until = row[6].real, until > time {
                        return .busy
                    }
                }
                try db.run("""
                    INSERT INTO sources (source, bytes, modified, status, worker, lease_until, updated)
                    VALUES (?, ?, ?, 'pending', ?, ?, ?)
                    ON CONFLICT (source) DO UPDATE SET
                        bytes = excluded.bytes, modified = excluded.modified, status = 'pending',
                        worker = excluded.worker, lease_until = excluded.lease_until, updated = excluded.updated
                    """, [.text(source), .integer(stamp.bytes), .optional(stamp.modified), .text(worker),
                          .real(time + leaseSeconds), .real(time)])
                return .claimed
            }
        }
    }

    /// Writes the stamp, status, rendition and report (compact JSON), and drops the lease.
    public func finish(_ source: String, stamp: SourceStamp, report: AssetReport, rendition: String?) throws {
        try using("finish \(source)") { db throws(SQLiteJournalError) in
            try db.run("""
                INSERT INTO sources (source, bytes, modified, status, rendition, report, worker, lease_until, updated)
                VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?)
                ON CONFLICT (source) DO UPDATE SET
                    bytes = excluded.bytes, modified = excluded.modified, status = excluded.status,
                    rendition = excluded.rendition, report = excluded.report,
                    worker = NULL, lease_until = NULL, updated = excluded.updated
                """, [.text(source), .integer(stamp.bytes), .optional(stamp.modified), .text(report.status.rawValue),
                      .optional(rendition), .text(report.json.compactText), .real(now())])
        }
    }

    public func rendition(_ key: String) throws -> Rendition? {
        try using("read rendition \(key)") { db throws(SQLiteJournalError) in
            guard let row = try db.run("SELECT sink, state, remote, result FROM renditions WHERE key = ?", [.text(key)]).first else {
                return nil
            }
            guard let sink = row[0].text, let state = row[1].text.flatMap(Rendition.State.init(rawValue:)) else {
                throw SQLiteJournalError(.failed, path: path, message: "the row of rendition \(key) has no sink or an unknown state")
            }
            return Rendition(key: key, sink: sink, state: state,
                             remote: try json(row[2], what: "the remote state of \(key)"),
                             result: try json(row[3], what: "the result of \(key)"))
        }
    }

    public func begin(_ key: String, sink: String) throws {
        try using("begin rendition \(key)") { db throws(SQLiteJournalError) in
            // An existing row stays as it is: a `done` rendition is never started again.
            try db.run("""
                INSERT INTO renditions (key, sink, state, updated) VALUES (?, ?, 'started', ?)
                ON CONFLICT (key) DO NOTHING
                """, [.text(key), .text(sink), .real(now())])
        }
    }

    public func saveRemote(_ key: String, _ remote: JSONValue) throws {
        try using("save remote state of \(key)") { db throws(SQLiteJournalError) in
            try db.run("UPDATE renditions SET remote = ?, updated = ? WHERE key = ?",
                       [.text(remote.compactText), .real(now()), .text(key)])
            try expectRow(db, key)
        }
    }

    public func complete(_ key: String, result: JSONValue) throws {
        try using("complete rendition \(key)") { db throws(SQLiteJournalError) in
            try db.run("UPDATE renditions SET state = 'done', result = ?, updated = ? WHERE key = ?",
                       [.text(result.compactText), .real(now()), .text(key)])
            try expectRow(db, key)
        }
    }

    // MARK: Outbox

    public func enqueue(_ event: OutboxEvent) throws {
        try using("queue notification \(event.id)") { db throws(SQLiteJournalError) in
            try db.run("""
                INSERT INTO outbox (id, step, type, source, payload, created, attempts, next_attempt, state, last_error)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO NOTHING
                """, [.text(event.id), .text(event.step), .text(event.type), .text(event.source), .text(event.payload),
                      .real(event.created), .integer(Int64(event.attempts)), .real(event.nextAttempt),
                      .text(event.state.rawValue), .optional(event.lastError)])
        }
    }

    public func takeDue(step: String, now: Double, hold: Double, limit: Int) throws -> [OutboxEvent] {
        try using("take due notifications") { db throws(SQLiteJournalError) in
            try db.transaction { () throws(SQLiteJournalError) -> [OutboxEvent] in
                let rows = try db.run("""
                    SELECT id, type, source, payload, created, attempts, next_attempt, last_error FROM outbox
                    WHERE step = ? AND state = 'pending' AND next_attempt <= ?
                    ORDER BY next_attempt, created LIMIT ?
                    """, [.text(step), .real(now), .integer(Int64(limit))])
                var events: [OutboxEvent] = []
                for row in rows {
                    guard let id = row[0].text, let type = row[1].text, let payload = row[3].text else { continue }
                    events.append(OutboxEvent(id: id, step: step, type: type, source: row[2].text ?? "", payload: payload,
                                              created: row[4].real ?? now, attempts: Int(row[5].integer ?? 0),
                                              nextAttempt: row[6].real ?? now, lastError: row[7].text))
                    try db.run("UPDATE outbox SET next_attempt = ? WHERE id = ?", [.real(now + hold), .text(id)])
                }
                return events
            }
        }
    }

    public func update(_ event: OutboxEvent) throws {
        try using("record notification \(event.id)") { db throws(SQLiteJournalError) in
            try db.run("UPDATE outbox SET attempts = ?, next_attempt = ?, state = ?, last_error = ? WHERE id = ?",
                       [.integer(Int64(event.attempts)), .real(event.nextAttempt), .text(event.state.rawValue),
                        .optional(event.lastError), .text(event.id)])
        }
    }

    public func counts(step: String) throws -> OutboxCounts {
        try using("count notifications") { db throws(SQLiteJournalError) in
            var counts = OutboxCounts()
            for row in try db.run("SELECT state, count(*), min(next_attempt) FROM outbox WHERE step = ? GROUP BY state", [.text(step)]) {
                guard let state = row[0].text.flatMap(OutboxEvent.State.init(rawValue:)) else { continue }
                counts.byState[state] = Int(row[1].integer ?? 0)
                if state == .pending { counts.earliestPending = row[2].real }
            }
            return counts
        }
    }

    /// Finalises the statements and closes the file; later calls throw `SQLiteJournalError` (`.closed`).
    public func close() {
        connection?.close()
        connection = nil
    }

    // MARK: Helpers

    /// Runs `body` on the open connection, naming `operation` in any error it throws.
    @discardableResult
    private func using<T>(_ operation: String, _ body: (SQLiteConnection) throws(SQLiteJournalError) -> T) throws(SQLiteJournalError) -> T {
        do throws(SQLiteJournalError) {
            guard let connection else { throw SQLiteJournalError(.closed, path: path, message: "the journal is closed") }
            return try body(connection)
        } catch {
            var error = error
            error.operation = operation
            throw error
        }
    }

    /// Throws unless the last UPDATE found the rendition: a sink must `begin` before it records progress.
    private func expectRow(_ db: SQLiteConnection, _ key: String) throws(SQLiteJournalError) {
        guard db.changes == 0 else { return }
        throw SQLiteJournalError(.failed, path: path, message: "rendition \(key) was never begun")
    }

    /// Parses a JSON column; NULL is nil.
    private func json(_ value: SQLValue, what: String) throws(SQLiteJournalError) -> JSONValue? {
        guard let text = value.text else { return nil }
        do { return try JSONValue.parse(Data(text.utf8)) } catch {
            throw SQLiteJournalError(.failed, path: path, message: "\(what) is not JSON: \(text.prefix(80))")
        }
    }

    /// Refuses a folder as the file, and creates the file's folder (0700) when it is missing.
    private static func prepareFolder(for path: String) throws(SQLiteJournalError) {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
            throw SQLiteJournalError(.cannotOpen, path: path, message: "it is a folder, not a file")
        }
        if FileManager.default.fileExists(atPath: folder.path, isDirectory: &isFolder), isFolder.boolValue { return }
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw SQLiteJournalError(.cannotOpen, path: path,
                                     message: "cannot create the folder \(folder.path): \(error.localizedDescription)")
        }
    }

    private static func createOutbox(_ db: SQLiteConnection) throws(SQLiteJournalError) {
        try db.run("""
            CREATE TABLE outbox (
                id TEXT PRIMARY KEY,
                step TEXT NOT NULL,
                type TEXT NOT NULL,
                source TEXT NOT NULL,
                payload TEXT NOT NULL,
                created REAL NOT NULL,
                attempts INTEGER NOT NULL,
                next_attempt REAL NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'refused', 'expired')),
                last_error TEXT
            )
            """)
        try db.run("CREATE INDEX outbox_due ON outbox (step, next_attempt) WHERE state = 'pending'")
    }

    /// Creates the tables in an empty file; otherwise checks that the file is a journal this code can read.
    private static func prepareSchema(_ db: SQLiteConnection) throws(SQLiteJournalError) {
        try db.transaction { () throws(SQLiteJournalError) in
            let tables = Set(try db.run("SELECT name FROM sqlite_schema WHERE type = 'table'").compactMap(\.first?.text))
            if tables.isEmpty {
                try db.run("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                try db.run("""
                    CREATE TABLE sources (
                        source TEXT PRIMARY KEY,
                        bytes INTEGER NOT NULL,
                        modified REAL,
                        status TEXT NOT NULL,
                        rendition TEXT,
                        report TEXT,
                        worker TEXT,
                        lease_until REAL,
                        updated REAL NOT NULL
                    )
                    """)
                try db.run("""
                    CREATE TABLE renditions (
                        key TEXT PRIMARY KEY,
                        sink TEXT NOT NULL,
                        state TEXT NOT NULL CHECK (state IN ('started', 'done')),
                        remote TEXT,
                        result TEXT,
                        updated REAL NOT NULL
                    )
                    """)
                try createOutbox(db)
                try db.run("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", [.text(String(schemaVersion))])
                return
            }
            let found = tables.contains("meta")
                ? try db.run("SELECT value FROM meta WHERE key = 'schema_version'").first?.first
                : nil
            guard let version = found?.text.flatMap({ Int($0) }) ?? found?.integer.map({ Int($0) }), version >= 1 else {
                throw SQLiteJournalError(.notAJournal, path: db.path,
                                         message: "it is an SQLite file without a schema_version in a meta table (tables: \(tables.sorted().joined(separator: ", ")))")
            }
            if version > schemaVersion {
                throw SQLiteJournalError(.newerSchema, path: db.path,
                                         message: "has schema version \(version); this media-pipeline reads version \(schemaVersion)")
            }
            if version < 2 {
                // Version 2 added the notification outbox.
                try createOutbox(db)
                try db.run("UPDATE meta SET value = ? WHERE key = 'schema_version'", [.text(String(schemaVersion))])
            }
        }
    }
}
