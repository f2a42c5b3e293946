/// What the server knows of a request once its headers are complete, before any body byte is read.
public struct HTTPRequestHead: Sendable {
    /// The request method as sent ("GET", "POST", …).
    public var method: String
    /// The path, percent-decoded, without the query.
    public var path: String
    /// The request target exactly as sent, query included (for logs).
    public var rawPath: String
    /// The query arguments, decoded; a name given twice keeps its last value.
    public var query: [String: String]
    /// The request headers with lower-cased names; a name given twice keeps its values joined by ", ".
    public var headers: [String: String]
    /// The declared body length, parsed strictly (digits only); nil when there is no Content-Length.
    public var contentLength: Int64?
    /// The client's IP address.
    public var remoteAddress: String

    /// A head as the server builds it; tests and other front ends may build their own.
    public init(method: String, path: String, rawPath: String, query: [String: String] = [:],
                headers: [String: String] = [:], contentLength: Int64? = nil, remoteAddress: String = "") {
        self.method = method
        self.path = path
        self.rawPath = rawPath
        self.query = query
        self.headers = headers
        self.contentLength = contentLength
        self.remoteAddress = remoteAddress
    }

    /// A Content-Length value as a byte count: ASCII digits only, no sign or spaces, fitting Int64.
    static func parseContentLength(_ text: String) -> Int64? {
        guard !text.isEmpty, text.utf8.count <= 19, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int64(text)
    }
}
