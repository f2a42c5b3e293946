import CPostgres
import Foundation

/// What the server or libpq said when a statement failed.
struct ServerError: Error {
    /// libpq's text on one line (not yet redacted).
    var message: String
}

/// The rows of a statement as text (NULL as nil) and how many rows it changed.
struct QueryResult {
    var rows: [[String?]]
    var affected: Int
}

/// One libpq connection, the only owner of its `PGconn`. Not thread-safe: its actor serialises it.
final class PostgresConnection {
    private let handle: OpaquePointer

    /// Connects (blocking). Settings the URL may override come first: libpq keeps the last value.
    init(conninfo: String, applicationName: String) throws(ServerError) {
        let settings = [("connect_timeout", "10"), ("keepalives_idle", "30"), ("keepalives_interval", "10"),
                        ("keepalives_count", "3"), ("fallback_application_name", applicationName), ("dbname", conninfo)]
        let keywords = settings.map { strdup($0.0) }, values = settings.map { strdup($0.1) }
        defer { (keywords + values).forEach { free($0) } }
        let connection = (keywords.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { keys in
            (values.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { vals in
                PQconnectdbParams(keys.baseAddress, vals.baseAddress, 1)
            }
        }
        guard let connection else { throw ServerError(message: "libpq could not allocate a connection") }
        if PQstatus(connection) != CONNECTION_OK {
            let message = Self.oneLine(PQerrorMessage(connection))
            PQfinish(connection)
            throw ServerError(message: message)
        }
        handle = connection
        // libpq prints notices ("relation already exists, skipping") on stderr; library code prints nothing.
        _ = PQsetNoticeProcessor(handle, { _, _ in }, nil)
    }

    deinit { PQfinish(handle) }

    /// The connection is gone (server restart, network cut, backend terminated).
    var isBroken: Bool { PQstatus(handle) == CONNECTION_BAD }

    /// Reconnects with the same settings (blocking).
    func reset() throws(ServerError) {
        PQreset(handle)
        if PQstatus(handle) != CONNECTION_OK { throw ServerError(message: Self.oneLine(PQerrorMessage(handle))) }
    }

    /// Runs one statement with text parameters `$1…` (nil is NULL); values never enter the SQL text.
    @discardableResult
    func exec(_ sql: String, _ parameters: [String?] = []) throws(ServerError) -> QueryResult {
        let copies = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { copies.forEach { free($0) } }
        let result = copies.map { UnsafePointer($0) }.withUnsafeBufferPointer { values in
            PQexecParams(handle, sql, Int32(parameters.count), nil, values.baseAddress, nil, nil, 0)
        }
        guard let result else { throw ServerError(message: Self.oneLine(PQerrorMessage(handle))) }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            let text = Self.oneLine(PQresultErrorMessage(result))
            throw ServerError(message: text.isEmpty ? Self.oneLine(PQerrorMessage(handle)) : text)
        }
        var rows: [[String?]] = []
        for row in 0..<PQntuples(result) {
            rows.append((0..<PQnfields(result)).map { column in
                PQgetisnull(result, row, column) == 1 ? nil : String(cString: PQgetvalue(result, row, column))
            })
        }
        return QueryResult(rows: rows, affected: Int(String(cString: PQcmdTuples(result))) ?? 0)
    }

    /// Runs `body` between BEGIN and COMMIT; rolls back when it throws.
    func transaction<T>(_ body: () throws(ServerError) -> T) throws(ServerError) -> T {
        try exec("BEGIN")
        do {
            let value = try body()
            try exec("COMMIT")
            return value
        } catch {
            if !isBroken { _ = try? exec("ROLLBACK") }
            throw error
        }
    }

    /// libpq's multi-line message (with tabs and a trailing newline) as one line of sentences.
    private static func oneLine(_ text: UnsafePointer<CChar>?) -> String {
        guard let text else { return "" }
        let lines = String(cString: text).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return lines.enumerated().map { index, line in
            index < lines.count - 1 && !".?!:;".contains(line.last!) ? line + "." : line
        }.joined(separator: " ")
    }
}
