import Archives
import Digests
import Dispatch
import Foundation
import HTTPServer
import MediaPipeline
import MediaPipelineKit

/// The routes of `media-pipeline serve`. `admit` answers from the headers alone, before any body
/// byte is read (auth, health, metrics, malformed names, sizes over a limit); `handle` runs the
/// pipeline on an admitted request's body.
struct ServeAPI: Sendable {
    let media: MediaService
    let metrics: ServeMetrics
    let redactor: Redactor
    /// SHA-256 of the expected bearer token (compared in constant time); nil runs without auth.
    let tokenDigest: String?
    /// Largest body taken for `POST /v1/assets` whatever the rules say.
    let maxBody: Int64
    /// How long a direct-upload URL stays valid.
    let urlExpiry: Double
    let inFlight: @Sendable () -> Int

    static let jsonLimit: Int64 = 64 * 1024

    // MARK: Admission

    func admit(_ head: HTTPRequestHead) -> HTTPAdmission {
        let route = Self.route(head.path)
        guard authorized(head.headers["authorization"]) else {
            return .respond(problem(401, "unauthorized", "send Authorization: Bearer <the server's token>",
                                    headers: [("WWW-Authenticate", "Bearer")]))
        }
        switch (head.method, route) {
        case ("GET", "/healthz"):
            return .respond(json(200, .object([("status", .string("ok"))])))
        case ("GET", "/metrics"):
            return .respond(HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                                         body: Data(metrics.render(inFlight: inFlight()).utf8)))
        case ("POST", "/v1/assets"):
            return admitAsset(head)
        case ("POST", "/v1/direct-uploads"), ("POST", "/v1/live-inputs"):
            if let length = head.contentLength, length > Self.jsonLimit {
                return .respond(problem(413, "too_large", "a JSON body of at most \(Self.jsonLimit) bytes"))
            }
            return .handle(bodyLimit: Self.jsonLimit)
        case ("GET", "/v1/live-inputs"), ("DELETE", "/v1/live-inputs/*"), ("DELETE", "/v1/assets/*"):
            return .handle(bodyLimit: 0)
        default:
            let allowed = Self.methods[route]
            guard let allowed else { return .respond(problem(404, "not_found", "no such route: \(head.path)")) }
            return .respond(problem(405, "method_not_allowed", "\(head.path) takes \(allowed)", headers: [("Allow", allowed)]))
        }
    }

    static let methods = ["/healthz": "GET", "/metrics": "GET", "/v1/assets": "POST", "/v1/direct-uploads": "POST",
                          "/v1/live-inputs": "GET, POST", "/v1/live-inputs/*": "DELETE", "/v1/assets/*": "DELETE"]

    /// The route a path belongs to, with the trailing reference as `*`.
    static func route(_ path: String) -> String {
        for prefix in ["/v1/assets/", "/v1/live-inputs/"] where path.hasPrefix(prefix) && path.count > prefix.count {
            return prefix + "*"
        }
        return path
    }

    /// `POST /v1/assets`: the name is checked like an archive entry's, and a declared length over
    /// the limit the pipeline's rules set for this purpose and kind is refused before reading.
    private func admitAsset(_ head: HTTPRequestHead) -> HTTPAdmission {
        let filename: String
        switch Self.filename(head.query["filename"]) {
        case let .success(name): filename = name
        case let .failure(reason): return .respond(problem(reason.code == .badName && head.query["filename"] == nil ? 400 : 422, reason))
        }
        let purpose = head.query["purpose"]
        if let reason = media.problem(withPurpose: purpose) { return .respond(problem(422, reason)) }
        if let length = head.contentLength {
            if length > maxBody {
                return .respond(problem(413, Reason(.tooLarge, "\(Quantity.describe(bytes: length)) is over this server's \(Quantity.describe(bytes: maxBody)) limit; ask POST /v1/direct-uploads for a URL instead")))
            }
            let declared = DeclaredFile(filename: filename, bytes: length, mime: Self.mime(forName: filename))
            let verdict = Self.blocking { await media.check(declared, purpose: purpose) }
            if verdict.status == .rejected, let reason = verdict.reason, reason.code == .tooLarge {
                return .respond(problem(413, reason))
            }
        }
        return .handle(bodyLimit: min(maxBody, head.contentLength ?? maxBody))
    }

    /// A client's file name: one the archive rules would accept (no `..`, no absolute path, no
    /// controls or invisible marks), else the reason.
    static func filename(_ given: String?) -> Result<String, Reason> {
        guard let given, !given.isEmpty else { return .failure(Reason(.badName, "say the file's name: ?filename=…")) }
        return EntryName.normalise(raw: Array(given.utf8))
    }

    /// The content type a name suggests (the content decides once the bytes are here).
    static func mime(forName name: String) -> String {
        let ext = (name as NSString).pathExtension.lowercased()
        return MediaTypes.extensions.first { $0.value.contains(ext) }?.key ?? "application/octet-stream"
    }

    /// Constant-time: the digests of both tokens are compared byte by byte without stopping early.
    func authorized(_ header: String?) -> Bool {
        guard let tokenDigest else { return true }
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else { return false }
        let presented = Array(Digest.sha256Hex(String(header.dropFirst(7))).utf8), expected = Array(tokenDigest.utf8)
        var difference: UInt8 = 0
        for i in 0..<expected.count { difference |= presented[i] ^ expected[i] }
        return difference == 0
    }

    // MARK: Handling

    func handle(_ head: HTTPRequestHead, body: URL) async -> HTTPResponse {
        let started = ContinuousClock.now
        let route = Self.route(head.path)
        let response = await answer(head, route: route, body: body)
        let elapsed = ContinuousClock.now - started
        metrics.record(route: route, status: response.status,
                       seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        return response
    }

    private func answer(_ head: HTTPRequestHead, route: String, body: URL) async -> HTTPResponse {
        switch (head.method, route) {
        case ("POST", "/v1/assets"):
            guard case let .success(filename) = Self.filename(head.query["filename"]) else {
                return problem(422, Reason(.badName, "the file's name is not acceptable"))
            }
            let report = await media.process(file: body, filename: filename, purpose: head.query["purpose"])
            metrics.record(asset: report)
            return assetResponse(report)
        case ("POST", "/v1/direct-uploads"):
            return await directUpload(body)
        case ("GET", "/v1/live-inputs"):
            return await account { () async throws(SinkError) -> JSONValue in .array(try await media.liveInputs()) }
        case ("POST", "/v1/live-inputs"):
            guard let request = try? JSONValue.parse(Data(contentsOf: body)), case let .string(name)? = request["name"], !name.isEmpty else {
                return problem(400, "bad_request", "send {\"name\": \"…\", \"recording\": true|false}")
            }
            let recording = request["recording"] == .bool(true)
            return await account(status: 201) { () async throws(SinkError) -> JSONValue in try await media.createLiveInput(name: name, recording: recording) }
        case ("DELETE", "/v1/live-inputs/*"):
            let uid = String(head.path.dropFirst("/v1/live-inputs/".count))
            return await deletion { () async throws(SinkError) -> Bool in try await media.deleteLiveInput(uid: uid) }
        case ("DELETE", "/v1/assets/*"):
            let text = String(head.path.dropFirst("/v1/assets/".count))
            guard let ref = MediaRef(text) else {
                return problem(400, "bad_reference", "write images:<id>, r2:<key> or stream:<uid>")
            }
            return await deletion { () async throws(SinkError) -> Bool in try await media.delete(ref) }
        default:
            return problem(404, "not_found", "no such route: \(head.path)")
        }
    }

    /// `{purpose, filename, bytes, mime}` → a URL the client uploads to directly.
    private func directUpload(_ body: URL) async -> HTTPResponse {
        guard let request = try? JSONValue.parse(Data(contentsOf: body)),
              case let .string(given)? = request["filename"], case let .number(bytes)? = request["bytes"],
              let length = Int64(exactly: bytes), length >= 0 else {
            return problem(400, "bad_request", "send {\"purpose\": \"…\", \"filename\": \"…\", \"bytes\": N, \"mime\": \"…\"}")
        }
        let filename: String
        switch Self.filename(given) {
        case let .success(name): filename = name
        case let .failure(reason): return problem(422, reason)
        }
        let mime = request["mime"]?.stringValue ?? Self.mime(forName: filename)
        let report = await media.directUpload(DeclaredFile(filename: filename, bytes: length, mime: mime),
                                              purpose: request["purpose"]?.stringValue, expiresIn: urlExpiry)
        metrics.record(directUpload: report)
        guard report.status == .planned, let ticket = report.result else { return refusal(report) }
        var pairs: [(key: String, value: JSONValue)] = [("sink", report.sink.map(JSONValue.string) ?? .null),
                                                       ("purpose", report.purpose.map(JSONValue.string) ?? .null),
                                                       ("kind", report.kind.map { .string($0.rawValue) } ?? .null)]
        if case let .object(fields) = ticket { pairs += fields }
        // Not redacted: an R2 URL carries the access key id by design (SigV4 query signing),
        // never the secret, and the browser needs it whole.
        return json(201, .object(pairs))
    }

    /// The manifest row: 201 when stored, else a problem with the row's reason.
    private func assetResponse(_ report: AssetReport) -> HTTPResponse {
        guard report.status == .uploaded || report.status == .unchanged else { return refusal(report) }
        var row = redactor.redact(report.json)
        var headers: [(name: String, value: String)] = []
        if let ref = MediaRef(sink: report.sink, result: report.result), case let .object(pairs) = row {
            row = .object(pairs + [("ref", .string(ref.description))])
            headers.append(("Location", "/v1/assets/" + (ref.description.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? "")))
        }
        return json(201, row, headers: headers)
    }

    /// 422 for a file refused for good; 503 (rate limits, provider down) or 502 (any other
    /// provider trouble) with Retry-After when trying again later may work.
    private func refusal(_ report: AssetReport) -> HTTPResponse {
        let reason = report.reason ?? Reason(.stageFailed, "the file was not stored")
        var extra: [(key: String, value: JSONValue)] = []
        if report.source.isEmpty == false { extra.append(("asset", redactor.redact(report.json))) }
        switch report.status {
        case .failed, .pending:
            let unavailable = [ReasonCode.rateLimited, .providerUnavailable].contains(reason.code)
            return problem(unavailable ? 503 : 502, reason, extra: extra, headers: [("Retry-After", unavailable ? "30" : "10")])
        default:
            return problem(422, reason, extra: extra)
        }
    }

    private func account(status: Int = 200, _ call: () async throws(SinkError) -> JSONValue) async -> HTTPResponse {
        do { return json(status, try await call()) } catch { return providerProblem(error) }
    }

    private func deletion(_ call: () async throws(SinkError) -> Bool) async -> HTTPResponse {
        do {
            return try await call() ? HTTPResponse(status: 204) : problem(404, "not_found", "already gone or never there")
        } catch { return providerProblem(error) }
    }

    private func providerProblem(_ error: SinkError) -> HTTPResponse {
        switch error.severity {
        case .rejected: return problem(422, error.reason)
        case .failed, .fatal:
            let unavailable = [ReasonCode.rateLimited, .providerUnavailable].contains(error.reason.code)
            return problem(unavailable ? 503 : 502, error.reason, headers: [("Retry-After", unavailable ? "30" : "10")])
        }
    }

    // MARK: Answers

    func json(_ status: Int, _ value: JSONValue, headers: [(name: String, value: String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: Data((value.compactText + "\n").utf8))
    }

    func problem(_ status: Int, _ reason: Reason, extra: [(key: String, value: JSONValue)] = [],
                 headers: [(name: String, value: String)] = []) -> HTTPResponse {
        problem(status, reason.code.rawValue, reason.detail, extra: extra, headers: headers)
    }

    /// An RFC 9457 problem document; `reason` is the same code the manifest uses.
    func problem(_ status: Int, _ code: String, _ detail: String, extra: [(key: String, value: JSONValue)] = [],
                 headers: [(name: String, value: String)] = []) -> HTTPResponse {
        let body = JSONValue.object([("type", .string("urn:media-pipeline:problem:\(code)")), ("title", .string(Self.title(status))),
                                     ("status", .int(Int64(status))), ("detail", .string(redactor.redact(detail))),
                                     ("reason", .string(code))] + extra)
        return HTTPResponse(status: status, headers: [("Content-Type", "application/problem+json")] + headers,
                            body: Data((body.compactText + "\n").utf8))
    }

    static func title(_ status: Int) -> String {
        switch status {
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 413: "Content Too Large"
        case 422: "Unprocessable Content"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        default: "Error"
        }
    }

    /// Waits for async work on the calling thread: admission runs on a connection's own thread,
    /// never on the cooperative pool, so blocking it holds up that one connection only.
    static func blocking<T: Sendable>(_ work: @escaping @Sendable () async -> T) -> T {
        let box = ServeCommand.Box<T>(), done = DispatchSemaphore(value: 0)
        Task {
            box.value = await work()
            done.signal()
        }
        done.wait()
        return box.value!
    }

}
