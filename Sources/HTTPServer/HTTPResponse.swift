public import Foundation
import CMicroHTTPD

/// A complete answer: status, headers and a small body held in memory.
public struct HTTPResponse: Sendable {
    /// The status code (200, 404, …).
    public var status: Int
    /// Headers in the order they are sent. Content-Length is set by the server and ignored here.
    public var headers: [(name: String, value: String)]
    /// The body bytes.
    public var body: Data

    /// A response with the given status, headers and body.
    public init(status: Int, headers: [(name: String, value: String)] = [], body: Data = Data()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// An RFC 9457 problem document (`application/problem+json`) with the status's reason phrase as title.
    public static func problem(status: Int, detail: String, headers: [(name: String, value: String)] = []) -> HTTPResponse {
        let reason = String(cString: MHD_get_reason_phrase_for(UInt32(clamping: status)))
        let document = Problem(type: "about:blank", title: reason.isEmpty ? "Error" : reason, status: status, detail: detail)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let body = (try? encoder.encode(document)) ?? Data()
        return HTTPResponse(status: status, headers: [("Content-Type", "application/problem+json")] + headers, body: body)
    }

    private struct Problem: Encodable {
        var type: String
        var title: String
        var status: Int
        var detail: String
    }
}

/// What to do with a request once its head is known: read its body and handle it, or answer at once.
public enum HTTPAdmission: Sendable {
    /// Read the body (streamed to a temporary file, never whole in memory; at most `bodyLimit` bytes,
    /// larger → 413 without storing more) and call `handle`. Counts toward the concurrency bound.
    case handle(bodyLimit: Int64)
    /// Answer now, before any body byte is read (401, 404, 413, metrics, health…). Does not count toward the bound.
    case respond(HTTPResponse)
}
