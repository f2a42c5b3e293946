/// A PostgreSQL journal call that did not succeed. The message names the server (password redacted),
/// the operation and PostgreSQL's own words; the runner treats it as fatal (exit 3).
public struct PostgresJournalError: Error, Sendable, CustomStringConvertible {
    enum Code: Sendable {
        /// The arguments cannot work (empty worker name, lease not positive).
        case invalidArgument
        /// The first connection failed.
        case connect
        /// The connection broke and the one reconnect attempt failed.
        case connectionLost
        /// The server refused a statement.
        case query
        /// A rendition was updated before `begin` recorded it.
        case unknownRendition
        /// The journal was closed.
        case closed
    }

    let code: Code
    public let description: String

    init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}
