/// Why the server could not start.
public struct HTTPServerError: Error, Sendable, CustomStringConvertible {
    private enum Code: Sendable {
        case invalidAddress
        case listen
        case alreadyStarted
    }

    private let code: Code
    /// What went wrong and how to fix it.
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The host is not an IP literal or the port is out of range.
    public var isInvalidAddress: Bool { code == .invalidAddress }
    /// The address could not be listened on (taken, not local, no permission).
    public var isListenFailure: Bool { code == .listen }

    static func invalidAddress(_ message: String) -> HTTPServerError { HTTPServerError(.invalidAddress, message) }
    static func listen(_ message: String) -> HTTPServerError { HTTPServerError(.listen, message) }
    static func alreadyStarted() -> HTTPServerError { HTTPServerError(.alreadyStarted, "the HTTP server was already started; make a new HTTPServer to listen again") }

    /// The message.
    public var description: String { message }
}
