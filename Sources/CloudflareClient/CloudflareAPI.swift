import Foundation
public import HTTPTransport
public import MediaPipeline

/// A client of Cloudflare's API v4 (Images, Stream, token checks): Bearer auth, the JSON
/// envelope, and one request gate per run so every worker shares the budget and any 429 pause.
public final class CloudflareAPI: Sendable {
    public let environment: CloudflareEnvironment
    public let http: CurlClient
    public let retrier: Retrier

    /// Images error codes that are transient whatever the HTTP status.
    static let transientCodes: Set<Int> = [5408, 5433, 5450, 5500, 5503, 5540, 5541, 5542, 5543, 5544, 5550]

    public init(environment: CloudflareEnvironment, http: CurlClient, retrier: Retrier) {
        self.environment = environment
        self.http = http
        self.retrier = retrier
    }

    /// The one client of a pipeline, shared by the Images and Stream sinks.
    public static func shared(_ context: FactoryContext, environment: CloudflareEnvironment) -> CloudflareAPI {
        context.shared.object("cloudflare-api") {
            let clock = SystemClock()
            return CloudflareAPI(environment: environment, http: CurlClient.forUploads(context.limits),
                                 retrier: Retrier(backoff: Backoff(context.limits.retry), clock: clock,
                                                  gate: RequestGate(budget: context.limits.apiRequestsPer5Min, clock: clock)))
        }
    }

    /// What a sink needs to say when the token is refused.
    public static let tokenHelp = "\(CloudflareEnvironment.apiToken) needs Images Write and Stream Edit"

    /// A request to `url` (absolute) with the Bearer token.
    public func request(_ method: String, _ url: String, headers: [(name: String, value: String)] = [],
                        body: [BodyPiece] = [], authorized: Bool = true) -> HTTPRequest {
        var all = headers
        if authorized, let token = environment[CloudflareEnvironment.apiToken] { all.append(("Authorization", "Bearer \(token)")) }
        return HTTPRequest(method: method, url: url, headers: all, body: body)
    }

    /// Sends with the shared retry policy. Returns the final response for the caller to read:
    /// 2xx, or a 4xx other than 401/403 (404, 409, …). 401/403 are fatal for the API.
    public func send(_ request: HTTPRequest, retries: RetryCount? = nil) async throws(SinkError) -> APIResponse {
        let response = try await retrier.send(request, with: http, retries: retries, classify: Self.classify)
        return APIResponse(response)
    }

    /// The API v4 retry rules: envelope codes first, then the HTTP status.
    package static func classify(_ response: HTTPResponse) -> Verdict {
        if let redirect = Retrier.redirectVerdict(response) { return redirect }
        let answer = APIResponse(response)
        if let code = answer.errorCodes.first(where: transientCodes.contains) {
            return .retry(.providerUnavailable, "Cloudflare answered \(answer.summary) (code \(code) is transient)")
        }
        switch response.status {
        case 200..<300:
            return .done
        case 429:
            return .retry(.rateLimited, "Cloudflare answered 429 Too Many Requests",
                          after: Backoff.retryAfter(response.header("Retry-After"), now: Date()))
        case 408, 500, 502, 503, 504:
            return .retry(.providerUnavailable, "Cloudflare answered \(answer.summary)")
        case 401, 403:
            return .fail(SinkError(.fatal, .authFailed, "Cloudflare refused the credentials (\(answer.summary)): \(tokenHelp), and \(CloudflareEnvironment.accountID) must name its account"))
        default:
            return .done
        }
    }
}

/// A parsed API v4 answer.
public struct APIResponse: Sendable {
    public var http: HTTPResponse
    /// The whole JSON body, if it was JSON.
    public var json: JSONValue?

    package init(_ http: HTTPResponse) {
        self.http = http
        json = try? JSONValue.parse(http.body)
    }

    public var status: Int { http.status }
    public var success: Bool { (200..<300).contains(http.status) && json?["success"] != .bool(false) }
    public var result: JSONValue? { json?["result"] }

    public var errors: [(code: Int, message: String)] {
        guard case let .array(items)? = json?["errors"] else { return [] }
        return items.map { item in
            var code = 0
            if case let .number(n)? = item["code"] { code = Int(exactly: n) ?? 0 }  // a code out of Int's range is no code
            var message = ""
            if case let .string(s)? = item["message"] { message = s }
            return (code, message)
        }
    }

    public var errorCodes: [Int] { errors.map(\.code) }

    /// `HTTP 413, code 5413: Image too large`, messages cut short (servers can echo anything).
    public var summary: String {
        let detail = errors.map { "code \($0.code): \(ServerText.clean($0.message))" }.joined(separator: "; ")
        return detail.isEmpty ? "HTTP \(http.status)" : "HTTP \(http.status), \(detail)"
    }

    /// The error for a refusal that is about the file itself.
    public var rejection: SinkError {
        SinkError(.rejected, .providerRejected, "Cloudflare refused the file: \(summary)")
    }
}

extension ReasonCode {
    /// A request the client refused to send: an argument lies outside what the provider accepts
    /// (an expiry out of its window, a duration over its limit). The message names the range.
    public static let badRequest: ReasonCode = "bad_request"
}

extension Date {
    /// `2026-12-05T05:12:56Z`: RFC 3339 in UTC, whole seconds, as Cloudflare's `expiry` fields take it.
    var rfc3339: String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: self)
    }
}

extension Backoff {
    public init(_ limits: RetryLimits) {
        self.init(attempts: limits.attempts, baseDelay: limits.baseDelay, maxDelay: limits.maxDelay, maxWait: limits.maxWait)
    }
}

/// Text a server sent back, made safe to show: credentials it may echo are masked before the
/// text is cut short (so no piece of one survives the cut), and the length is bounded.
enum ServerText {
    static func clean(_ text: String, limit: Int = 160) -> String {
        let masked = text
            .replacingOccurrences(of: #"(?i)(bearer)\s+[^\s;,"']+"#, with: "$1 ****", options: .regularExpression)
            .replacingOccurrences(of: #"(?i)(authorization\s*[:=]\s*)[^;\n"']+"#, with: "$1****", options: .regularExpression)
            .replacingOccurrences(of: #"(?i)(credential=)[^/,\s]+"#, with: "$1****", options: .regularExpression)
        return String(masked.prefix(limit))
    }
}

extension CurlClient {
    /// The HTTP client of a pipeline's sinks, with its `limits.idleTimeout`.
    static func forUploads(_ limits: PipelineLimits) -> CurlClient {
        var options = Options()
        options.idleTimeout = .milliseconds(Int64((limits.idleTimeout * 1000).rounded()))
        return CurlClient(options: options)
    }
}
