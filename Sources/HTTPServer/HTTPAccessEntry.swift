public import Foundation

/// One line of the access log: what was asked, what was answered, never a request header.
public struct HTTPAccessEntry: Sendable {
    /// When the request (or the connection, if no request line arrived) ended.
    public var time: Date
    /// The request method, or "-" when the connection closed before a request line.
    public var method: String
    /// The request target as sent, or "-".
    public var rawPath: String
    /// The status sent, 408 for a connection the server closed for slowness, 0 when nothing was sent.
    public var status: Int
    /// Body bytes received.
    public var bytesIn: Int64
    /// Response body bytes queued.
    public var bytesOut: Int
    /// Time from the request line to the end of the request.
    public var milliseconds: Double
    /// The client's IP address.
    public var remoteAddress: String
    /// Why the request ended abnormally ("header deadline", "body too slow", "client went away", …).
    public var note: String?

    /// An entry with every field given.
    public init(time: Date, method: String, rawPath: String, status: Int, bytesIn: Int64, bytesOut: Int,
                milliseconds: Double, remoteAddress: String, note: String? = nil) {
        self.time = time
        self.method = method
        self.rawPath = rawPath
        self.status = status
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.milliseconds = milliseconds
        self.remoteAddress = remoteAddress
        self.note = note
    }
}
