import Digests
import Foundation
import HTTPTransport
public import MediaPipeline

/// Tells a web service when files end: `asset.uploaded`, `asset.rejected`, `asset.failed` and one
/// `batch.completed` per run, POSTed as JSON and signed the Standard Webhooks way, so a receiver
/// can check them with any library for that scheme.
///
/// Events go through the outbox (in the journal): written when the file ends, sent beside the run,
/// tried again with backoff on 5xx, 408, 429 and network trouble, never on other 4xx, and given up
/// after `maxAge`. The `webhook-id` of an event never changes, so a receiver drops repeats.
public struct NotifyWebhookStage: Notifier {
    public static let eventTypes = ["asset.uploaded", "asset.rejected", "asset.failed", "batch.completed"]

    let url: String
    let signer: WebhookSigner?
    let events: Set<String>
    public let policy: NotifyPolicy
    let redactor: Redactor
    let client: CurlClient

    public static let factory = StageFactory(kind: "notify.webhook",
                                             summary: "POST signed events (Standard Webhooks) when files end, through a durable outbox") { options, context in
        let url = options.string("url", default: "", help: "where events are POSTed (https://…; http:// only to this machine)")
        let secret = options.string("secret", default: "", help: "the signing secret, whsec_<base64>; write \"${NOTIFY_SECRET}\"")
        let timeout = options.seconds("timeout", default: 10, help: "the longest one delivery attempt may take")
        let maxAge = options.seconds("maxAge", default: 72 * 3600, help: "give an event up (notify_expired) when still undelivered this long after it was written")
        let flushTimeout = options.seconds("flushTimeout", default: 30, help: "how long a run waits at its end for undelivered events before exiting 5")
        let maxDelay = options.seconds("maxDelay", default: 300, help: "the longest pause between attempts")
        var wanted = Set(eventTypes)
        if let raw = options.raw("events", type: "[" + eventTypes.joined(separator: " | ") + "]", help: "which events to send (default: all)") {
            wanted = readEvents(raw, path: JSONPath.child(options.path, "events"), options: &options)
        }
        if timeout <= 0 { options.error("timeout", "must be longer than zero") }
        if maxAge <= 0 { options.error("maxAge", "must be longer than zero") }

        var signer: WebhookSigner?
        if !secret.isEmpty {
            do throws(WebhookSigner.SecretProblem) { signer = try WebhookSigner(secret: secret) } catch {
                options.error("secret", error.message, hint: "use the secret your receiver gave, e.g. \"${NOTIFY_SECRET}\" with NOTIFY_SECRET=whsec_…")
            }
        } else if !context.assumeConfigured {
            options.error("secret", "missing", hint: "write \"secret\": \"${NOTIFY_SECRET}\" and export NOTIFY_SECRET=whsec_…")
        }
        if url.isEmpty {
            if !context.assumeConfigured {
                options.error("url", "missing", hint: "write \"url\": \"${NOTIFY_URL}\" and export NOTIFY_URL=https://…")
            }
        } else if let problem = checkURL(url) {
            options.error("url", problem, hint: "use https://, or http:// to localhost or 127.0.0.1 for a receiver on this machine")
        }
        var clientOptions = CurlClient.Options()
        clientOptions.connectTimeout = .seconds(min(timeout, 10))
        clientOptions.idleTimeout = .seconds(timeout)
        return .notifier(NotifyWebhookStage(
            url: url, signer: signer, events: wanted,
            policy: NotifyPolicy(maxAge: maxAge, flushTimeout: flushTimeout, baseDelay: 1, maxDelay: max(1, maxDelay), attemptTimeout: timeout),
            redactor: Redactor(environment: context.environment), client: CurlClient(options: clientOptions)))
    }

    private static func readEvents(_ raw: JSONValue, path: String, options: inout OptionsReader) -> Set<String> {
        guard case let .array(items) = raw, !items.isEmpty else {
            options.error("events", "expected a non-empty array of event types", hint: "e.g. [\"asset.uploaded\", \"batch.completed\"]")
            return Set(eventTypes)
        }
        var out: Set<String> = []
        var problems = Diagnostics()
        for (i, item) in items.enumerated() {
            guard let name = item.stringValue, eventTypes.contains(name) else {
                let given = item.stringValue ?? item.compactText
                problems.error(JSONPath.index(path, i), "'\(given)' is not an event type", hint: DidYouMean.hint(for: given, among: eventTypes))
                continue
            }
            out.insert(name)
        }
        options.append(problems)
        return out
    }

    /// Plain http is allowed only to this machine: events carry file names and URLs.
    static func checkURL(_ text: String) -> String? {
        guard let url = URLComponents(string: text), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            return "'\(text)' is not a URL"
        }
        switch scheme {
        case "https": return nil
        case "http": return ["localhost", "127.0.0.1", "::1", "[::1]"].contains(host.lowercased()) ? nil : "plain http:// is allowed only to this machine"
        default: return "the scheme '\(scheme)' is not http or https"
        }
    }

    // MARK: Events

    /// Event type per final status; `unchanged` here means the same bytes were uploaded for another source in this run.
    static func eventType(_ status: AssetStatus) -> String? {
        switch status {
        case .uploaded, .unchanged: "asset.uploaded"
        case .rejected: "asset.rejected"
        case .failed: "asset.failed"
        case .planned, .skipped, .pending: nil
        }
    }

    public func event(for report: AssetReport, stamp: SourceStamp?, step: String, run: RunIdentity, now: Double) -> OutboxEvent? {
        guard let type = Self.eventType(report.status), events.contains(type) else { return nil }
        // The same source in the same state with the same outcome is the same event, in this run or
        // a rerun after a crash: its id is derived, not drawn.
        let outcome = report.status == .rejected || report.status == .failed ? report.reason?.code.rawValue ?? "" : report.rendition ?? report.sha256 ?? ""
        let identity = [step, report.source, stamp.map { "\($0.bytes)/\($0.modified ?? -1)" } ?? "-", type, outcome].joined(separator: "\u{0}")
        return OutboxEvent(id: Self.eventID(identity), step: step, type: type, source: report.source,
                           payload: payload(type: type, at: now, run: run, data: redactor.redact(report.json)), created: now)
    }

    public func batchEvent(_ summary: RunSummary, step: String, run: RunIdentity, now: Double) -> OutboxEvent? {
        guard events.contains("batch.completed") else { return nil }
        var data = summary.json
        if case let .object(pairs) = data { data = .object(pairs.filter { $0.key != "event" && $0.key != "notifications" }) }
        return OutboxEvent(id: Self.eventID([step, run.id, "batch.completed"].joined(separator: "\u{0}")), step: step,
                           type: "batch.completed", source: "", payload: payload(type: "batch.completed", at: now, run: run, data: data),
                           created: now)
    }

    /// `msg_` and 32 hex digits of a SHA-256: unique, stable and safe in a header.
    static func eventID(_ identity: String) -> String {
        "msg_" + Digest.sha256Hex(identity).prefix(32)
    }

    /// The body: `type`, `timestamp` (when the event happened), the run, and `data` (the manifest row or the summary).
    func payload(type: String, at time: Double, run: RunIdentity, data: JSONValue) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return JSONValue.object([("type", .string(type)), ("timestamp", .string(formatter.string(from: Date(timeIntervalSince1970: time)))),
                                 ("run", .string(run.id)), ("data", data)]).compactText
    }

    // MARK: Delivery

    public func deliver(_ event: OutboxEvent, now: Double) async -> DeliveryOutcome {
        guard let signer, !url.isEmpty else { return .retry("the step has no url or secret", after: nil) }
        let timestamp = String(Int64(now.rounded(.down)))
        let request = HTTPRequest(
            method: "POST", url: url,
            headers: [("Content-Type", "application/json"), ("webhook-id", event.id), ("webhook-timestamp", timestamp),
                      ("webhook-signature", signer.signature(id: event.id, timestamp: timestamp, body: event.payload))],
            body: [.bytes(Data(event.payload.utf8))], timeout: .seconds(policy.attemptTimeout))
        let response: HTTPResponse
        do { response = try await client.send(request) } catch let error as TransportError {
            return .retry(redactor.redact(error.message), after: nil)
        } catch {
            return .retry(redactor.redact("\(error)"), after: nil)
        }
        return Self.outcome(status: response.status, retryAfter: response.header("Retry-After"), now: Date(timeIntervalSince1970: now))
    }

    /// 2xx delivered; 408, 429 and 5xx tried again (after `Retry-After` when given); a redirect or
    /// any other 4xx refused for good.
    static func outcome(status: Int, retryAfter: String?, now: Date) -> DeliveryOutcome {
        switch status {
        case 200..<300: .delivered
        case 408, 429: .retry("HTTP \(status)", after: Backoff.retryAfter(retryAfter, now: now))
        case 500..<600: .retry("HTTP \(status)", after: Backoff.retryAfter(retryAfter, now: now))
        case 300..<400: .refused("HTTP \(status): redirects are not followed; point the url at the final address")
        default: .refused("HTTP \(status)")
        }
    }
}

/// Signs events as Standard Webhooks does: HMAC-SHA256 over `id.timestamp.body` with the
/// base64-decoded part of a `whsec_` secret, sent as `v1,<base64>`.
struct WebhookSigner: Sendable {
    /// What is wrong with a secret, said without showing it.
    struct SecretProblem: Error {
        var message: String
    }

    let key: [UInt8]

    /// Reads a `whsec_…` secret.
    init(secret: String) throws(SecretProblem) {
        guard secret.hasPrefix("whsec_") else { throw SecretProblem(message: "must start with whsec_ (the secret is not shown)") }
        guard let key = Data(base64Encoded: String(secret.dropFirst(6))), !key.isEmpty else {
            throw SecretProblem(message: "the part after whsec_ is not base64 (the secret is not shown)")
        }
        guard key.count >= 24 else { throw SecretProblem(message: "the key is \(key.count) bytes; use at least 24 (32 is usual)") }
        self.key = Array(key)
    }

    func signature(id: String, timestamp: String, body: String) -> String {
        "v1," + Data(Digest.hmacSHA256(key: key, data: Array("\(id).\(timestamp).\(body)".utf8))).base64EncodedString()
    }
}
