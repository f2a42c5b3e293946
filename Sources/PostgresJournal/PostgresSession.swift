import Foundation
import MediaPipeline

/// The journal's one connection and every statement it sends, serialised on a thread of its own.
///
/// Each method is one blocking sequence with no suspension inside, so a transaction is never
/// interleaved with another call and commits before the method returns.
actor PostgresSession {
    private let executor: DedicatedThreadExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private let target: ConnectionTarget
    private let worker: String
    /// The lease in seconds, as the text parameter the statements multiply by one second.
    private let leaseSeconds: String
    private var connection: PostgresConnection?
    private var closed = false

    /// Statuses that end a source for good (with the same stamp).
    private static let doneStatuses: Set<String> = [AssetStatus.uploaded.rawValue, AssetStatus.unchanged.rawValue]

    init(target: ConnectionTarget, worker: String, leaseSeconds: Double) {
        executor = DedicatedThreadExecutor(name: "postgres-journal")
        self.target = target
        self.worker = worker
        self.leaseSeconds = String(leaseSeconds)
    }

    /// Connects and creates the tables if absent. Workers starting together queue on an advisory
    /// lock, so only one of them creates the tables and none sees a half-made schema.
    func open() throws(PostgresJournalError) {
        do {
            connection = try PostgresConnection(conninfo: target.conninfo, applicationName: "media-pipeline/\(worker)")
        } catch {
            throw PostgresJournalError(.connect, "cannot connect to the PostgreSQL journal \(target.display): "
                + "\(target.redact(error.message)) (check the journal URL and that the server accepts connections from this worker)")
        }
        try perform("create its tables") { db throws(ServerError) in
            try db.transaction { () throws(ServerError) in
                try db.exec("SELECT pg_advisory_xact_lock($1::bigint)", [String(Self.schemaLock)])
                try db.exec("""
                    CREATE TABLE IF NOT EXISTS mp_sources (
                        source text PRIMARY KEY, bytes bigint, modified double precision NULL, status text,
                        rendition text NULL, report text NULL, worker text NULL, lease_until timestamptz NULL,
                        updated timestamptz)
                    """)
                try db.exec("""
                    CREATE TABLE IF NOT EXISTS mp_renditions (
                        key text PRIMARY KEY, sink text, state text, remote text NULL, result text NULL,
                        updated timestamptz)
                    """)
                try db.exec("""
                    CREATE TABLE IF NOT EXISTS mp_outbox (
                        id text PRIMARY KEY, step text NOT NULL, type text NOT NULL, source text NOT NULL, payload text NOT NULL,
                        created double precision NOT NULL, attempts integer NOT NULL, next_attempt double precision NOT NULL,
                        state text NOT NULL, last_error text NULL)
                    """)
                try db.exec("CREATE INDEX IF NOT EXISTS mp_outbox_due ON mp_outbox (step, next_attempt) WHERE state = 'pending'")
                // The renewal touches only held rows; keep it cheap when the table holds a whole course.
                try db.exec("CREATE INDEX IF NOT EXISTS mp_sources_held ON mp_sources (worker) WHERE lease_until IS NOT NULL")
            }
        }
    }

    /// The advisory lock key for schema creation: "mp_journ" in ASCII.
    private static let schemaLock: Int64 = 0x6D70_5F6A_6F75_726E

    func claim(_ source: String, stamp: SourceStamp) throws(PostgresJournalError) -> SourceClaim {
        let bytes = String(stamp.bytes), modified = stamp.modified.map { String($0) }
        return try perform("claim \(source)") { db throws(ServerError) in
            try db.transaction { () throws(ServerError) -> SourceClaim in
                try db.exec("""
                    INSERT INTO mp_sources (source, bytes, modified, status, updated) VALUES ($1, $2, $3, 'pending', now())
                    ON CONFLICT (source) DO NOTHING
                    """, [source, bytes, modified])
                // SKIP LOCKED: a row another worker is claiming or finishing right now is busy, not waited for.
                let rows = try db.exec("""
                    SELECT bytes, modified, status, rendition, report, worker, lease_until > now()
                    FROM mp_sources WHERE source = $1 FOR UPDATE SKIP LOCKED
                    """, [source]).rows
                guard let row = rows.first else { return .busy }
                let seen = SourceStamp(bytes: row[0].flatMap { Int64($0) } ?? -1, modified: row[1].flatMap { Double($0) })
                if let status = row[2], Self.doneStatuses.contains(status), seen == stamp {
                    let report = row[4].flatMap { try? JSONValue.parse(Data($0.utf8)) }
                    return .done(JournaledSource(stamp: seen, status: AssetStatus(rawValue: status) ?? .uploaded,
                                                 rendition: row[3], report: report))
                }
                if let holder = row[5], holder != worker, row[6] == "t" { return .busy }
                try db.exec("""
                    UPDATE mp_sources SET bytes = $2, modified = $3, status = 'pending', worker = $4,
                        lease_until = now() + $5::double precision * interval '1 second', updated = now()
                    WHERE source = $1
                    """, [source, bytes, modified, worker, leaseSeconds])
                return .claimed
            }
        }
    }

    /// Writes the source's state and lets go of it. A worker whose lease lapsed and was taken over
    /// leaves the new holder's row alone: the holder writes its own result.
    func finish(_ source: String, stamp: SourceStamp, report: AssetReport, rendition: String?) throws(PostgresJournalError) {
        let parameters = [source, String(stamp.bytes), stamp.modified.map { String($0) }, report.status.rawValue, rendition,
                          report.json.compactText, worker]
        try perform("record the result of \(source)") { db throws(ServerError) in
            try db.exec("""
                INSERT INTO mp_sources (source, bytes, modified, status, rendition, report, worker, lease_until, updated)
                VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, now())
                ON CONFLICT (source) DO UPDATE SET bytes = excluded.bytes, modified = excluded.modified,
                    status = excluded.status, rendition = excluded.rendition, report = excluded.report,
                    worker = NULL, lease_until = NULL, updated = now()
                WHERE mp_sources.worker IS NULL OR mp_sources.worker = $7
                    OR mp_sources.lease_until IS NULL OR mp_sources.lease_until <= now()
                """, parameters)
        }
    }

    func rendition(_ key: String) throws(PostgresJournalError) -> Rendition? {
        let rows = try perform("read rendition \(key)") { db throws(ServerError) in
            try db.exec("SELECT sink, state, remote, result FROM mp_renditions WHERE key = $1", [key]).rows
        }
        guard let row = rows.first else { return nil }
        return Rendition(key: key, sink: row[0] ?? "", state: row[1].flatMap(Rendition.State.init(rawValue:)) ?? .started,
                         remote: row[2].flatMap { try? JSONValue.parse(Data($0.utf8)) },
                         result: row[3].flatMap { try? JSONValue.parse(Data($0.utf8)) })
    }

    func begin(_ key: String, sink: String) throws(PostgresJournalError) {
        try perform("begin rendition \(key)") { db throws(ServerError) in
            try db.exec("""
                INSERT INTO mp_renditions (key, sink, state, updated) VALUES ($1, $2, 'started', now())
                ON CONFLICT (key) DO NOTHING
                """, [key, sink])
        }
    }

    /// Saves resume state; a rendition already done keeps what it has.
    func saveRemote(_ key: String, _ remote: JSONValue) throws(PostgresJournalError) {
        let known = try perform("save the upload state of rendition \(key)") { db throws(ServerError) -> Bool in
            let changed = try db.exec("UPDATE mp_renditions SET remote = $2, updated = now() WHERE key = $1 AND state <> 'done'",
                                      [key, remote.compactText]).affected
            if changed > 0 { return true }
            return try !db.exec("SELECT 1 FROM mp_renditions WHERE key = $1", [key]).rows.isEmpty
        }
        if !known { throw unknownRendition(key, "saveRemote") }
    }

    func complete(_ key: String, result: JSONValue) throws(PostgresJournalError) {
        let changed = try perform("complete rendition \(key)") { db throws(ServerError) in
            try db.exec("UPDATE mp_renditions SET state = 'done', result = $2, updated = now() WHERE key = $1",
                        [key, result.compactText]).affected
        }
        if changed == 0 { throw unknownRendition(key, "complete") }
    }

    // MARK: - Outbox

    func enqueue(_ event: OutboxEvent) throws(PostgresJournalError) {
        try perform("queue notification \(event.id)") { db throws(ServerError) in
            try db.exec("""
                INSERT INTO mp_outbox (id, step, type, source, payload, created, attempts, next_attempt, state, last_error)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING
                """, [event.id, event.step, event.type, event.source, event.payload, String(event.created), String(event.attempts),
                      String(event.nextAttempt), event.state.rawValue, event.lastError])
        }
    }

    /// Takes due events with SKIP LOCKED and moves their next attempt past the hold in the same
    /// statement, so two workers never send one event at the same time.
    func takeDue(step: String, now: Double, hold: Double, limit: Int) throws(PostgresJournalError) -> [OutboxEvent] {
        let rows = try perform("take due notifications") { db throws(ServerError) in
            try db.exec("""
                UPDATE mp_outbox SET next_attempt = $3::double precision + $4::double precision WHERE id IN (
                    SELECT id FROM mp_outbox WHERE step = $1 AND state = 'pending' AND next_attempt <= $3::double precision
                    ORDER BY next_attempt, created LIMIT $2::integer FOR UPDATE SKIP LOCKED)
                RETURNING id, type, source, payload, created, attempts, last_error, next_attempt - $4::double precision
                """, [step, String(limit), String(now), String(hold)]).rows
        }
        return rows.compactMap { row in
            guard let id = row[0], let type = row[1], let payload = row[3] else { return nil }
            return OutboxEvent(id: id, step: step, type: type, source: row[2] ?? "", payload: payload,
                               created: row[4].flatMap { Double($0) } ?? now, attempts: row[5].flatMap { Int($0) } ?? 0,
                               nextAttempt: row[7].flatMap { Double($0) } ?? now, lastError: row[6])
        }.sorted { ($0.nextAttempt, $0.created) < ($1.nextAttempt, $1.created) }
    }

    func update(_ event: OutboxEvent) throws(PostgresJournalError) {
        try perform("record notification \(event.id)") { db throws(ServerError) in
            try db.exec("UPDATE mp_outbox SET attempts = $2, next_attempt = $3, state = $4, last_error = $5 WHERE id = $1",
                        [event.id, String(event.attempts), String(event.nextAttempt), event.state.rawValue, event.lastError])
        }
    }

    func counts(step: String) throws(PostgresJournalError) -> OutboxCounts {
        let rows = try perform("count notifications") { db throws(ServerError) in
            try db.exec("SELECT state, count(*), min(next_attempt) FROM mp_outbox WHERE step = $1 GROUP BY state", [step]).rows
        }
        var counts = OutboxCounts()
        for row in rows {
            guard let state = row[0].flatMap(OutboxEvent.State.init(rawValue:)) else { continue }
            counts.byState[state] = row[1].flatMap { Int($0) } ?? 0
            if state == .pending { counts.earliestPending = row[2].flatMap { Double($0) } }
        }
        return counts
    }

    /// Closes the connection; later calls fail. Leases stay until they lapse, as after a crash.
    func close() {
        closed = true
        connection = nil
    }

    // MARK: - Calls, failures and the one reconnect

    /// Runs `body` on the connection. When the connection is broken (before or during the call) it
    /// reconnects once and runs `body` again: every body is safe to repeat (a claim this worker
    /// already holds is claimed again; the rest are upserts).
    @discardableResult
    private func perform<T>(_ operation: String, _ body: (PostgresConnection) throws(ServerError) -> T) throws(PostgresJournalError) -> T {
        guard !closed, let connection else {
            throw PostgresJournalError(.closed, "the PostgreSQL journal \(target.display) is closed; cannot \(operation)")
        }
        var reconnected = false
        if connection.isBroken {
            try reconnect(connection, operation, after: nil)
            reconnected = true
        }
        do {
            return try body(connection)
        } catch {
            guard !reconnected, connection.isBroken else { throw failure(operation, error) }
            try reconnect(connection, operation, after: error)
            do { return try body(connection) } catch { throw failure(operation, error) }
        }
    }

    private func reconnect(_ connection: PostgresConnection, _ operation: String, after cause: ServerError?) throws(PostgresJournalError) {
        do { try connection.reset() } catch {
            let lost = cause.map { " (\(target.redact($0.message)))" } ?? ""
            throw PostgresJournalError(.connectionLost, "lost the connection to the PostgreSQL journal \(target.display) while trying to "
                + "\(operation)\(lost); reconnecting failed: \(target.redact(error.message)) (check that the server is up and reachable from this worker)")
        }
    }

    private func failure(_ operation: String, _ error: ServerError) -> PostgresJournalError {
        PostgresJournalError(.query, "the PostgreSQL journal \(target.display) could not \(operation): \(target.redact(error.message))")
    }

    private func unknownRendition(_ key: String, _ call: String) -> PostgresJournalError {
        PostgresJournalError(.unknownRendition, "the PostgreSQL journal \(target.display) has no rendition \(key): "
            + "\(call) came before begin (a sink must call begin first)")
    }
}
