public import Foundation

/// Where the server listens and the limits that keep slow or greedy clients from holding it.
public struct HTTPServerConfiguration: Sendable {
    /// An IPv4 or IPv6 address literal to listen on.
    public var host: String = "127.0.0.1"
    /// The port to listen on; 0 picks a free one, read back from `HTTPServer.port`.
    public var port: Int = 8787
    /// Requests admitted with `.handle` at once; the next ones get 503 with Retry-After.
    public var maxInFlight: Int = 16
    /// The Retry-After value sent with a 503.
    public var retryAfterSeconds: Int = 1
    /// Seconds from accepting a connection (or finishing its previous request) to complete headers,
    /// however steadily the client trickles bytes.
    public var headerDeadline: Double = 10
    /// Bytes per second a body must average once `bodyGrace` has passed; slower → connection closed.
    public var minBodyRate: Double = 10_000
    /// Seconds after the headers during which a body may be slower than `minBodyRate`.
    public var bodyGrace: Double = 5
    /// Seconds a connection may stay silent (libmicrohttpd's connection timeout).
    public var idleTimeout: Int = 30
    /// Connections open at once; more are refused by libmicrohttpd.
    public var maxConnections: Int = 512
    /// The folder request bodies are streamed into (files 0600, removed when their request ends).
    public var temporaryDirectory: URL

    /// The defaults above, with bodies stored in `temporaryDirectory`.
    public init(temporaryDirectory: URL) {
        self.temporaryDirectory = temporaryDirectory
    }
}
