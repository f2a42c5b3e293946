public import Foundation

/// One piece of a request body: bytes in memory, or a byte range of a file read as it is sent.
public enum BodyPiece: Sendable {
    case bytes(Data)
    case file(path: String, offset: Int64, length: Int64)

    public var length: Int64 {
        switch self {
        case let .bytes(data): Int64(data.count)
        case let .file(_, _, length): length
        }
    }
}

/// Sees a request's body bytes as they are sent (e.g. to hash them in the same read).
/// `begin` is called at the start of every try, so a retried request starts afresh.
public protocol BodyObserver: AnyObject, Sendable {
    func begin()
    func consume(_ bytes: UnsafeRawBufferPointer)
}

/// An HTTP request. The body is a list of pieces sent one after another with one exact
/// `Content-Length`: never chunked, never the whole file in memory.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The full URL exactly as it goes on the wire (path already percent-encoded).
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [BodyPiece]
    /// Gives up when the whole exchange takes longer. By default 120 s for a request whose body
    /// is all in memory, and none for one that sends a file (it has the idle timeout).
    public var timeout: Duration?
    /// Sees the body as it is read for sending.
    public var observer: (any BodyObserver)?

    public init(method: String, url: String, headers: [(name: String, value: String)] = [], body: [BodyPiece] = [],
                timeout: Duration? = nil, observer: (any BodyObserver)? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        let sendsFile = body.contains { if case .file = $0 { true } else { false } }
        self.timeout = timeout ?? (sendsFile ? nil : .seconds(120))
        self.observer = observer
    }

    public var bodyLength: Int64 { body.reduce(0) { $0 + $1.length } }

    /// Whether the method carries a body (so `Content-Length` is always sent, 0 included).
    var sendsBody: Bool { !["GET", "HEAD", "DELETE"].contains(method) || !body.isEmpty }
}

/// What came back.
public struct HTTPResponse: Sendable {
    public var status: Int
    /// Header lines of the final response, in order, names as sent.
    public var headers: [(name: String, value: String)]
    public var body: Data
    /// Connections libcurl had to open for this exchange: 0 when an idle one was reused.
    public var newConnections: Int

    public init(status: Int, headers: [(name: String, value: String)] = [], body: Data = Data(), newConnections: Int = 0) {
        self.status = status
        self.headers = headers
        self.body = body
        self.newConnections = newConnections
    }

    /// The first header with this name, compared without case.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// One header line as libcurl hands it over, read without trusting it.
    package enum HeaderLine: Equatable {
        /// `HTTP/…`: a response starts (again, after a 100 or a redirect).
        case statusLine
        /// `Name: value`, the value without surrounding blanks.
        case field(name: String, value: String)
        /// Anything else (the blank line that ends the headers).
        case other

        package init(_ line: String) {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.hasPrefix("HTTP/") {
                self = .statusLine
            } else if let colon = trimmed.firstIndex(of: ":") {
                self = .field(name: String(trimmed[..<colon]),
                              value: trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            } else {
                self = .other
            }
        }
    }
}

/// A request that got no HTTP answer: the connection failed, timed out, was reset, or TLS refused it.
public struct TransportError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Nothing listening, name not found, connection refused.
        case connect
        /// Connect or idle timeout.
        case timeout
        /// The connection broke while sending or receiving.
        case broken
        /// The server's certificate was not trusted, or TLS failed: never retried, never bypassed.
        case tls
        /// The request itself is wrong (bad URL, scheme not allowed, unreadable body file).
        case request
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// Worth trying again: the network hiccuped, not the request or the trust.
    public var isTransient: Bool { kind == .connect || kind == .timeout || kind == .broken }

    public var description: String { message }
}
