import Foundation
public import HTTPTransport
public import MediaPipeline
import Synchronization

/// What one response means to the retry loop.
public enum Verdict: Sendable {
    /// Hand the response to the caller (success, or an answer the caller interprets such as 404 or 409).
    case done
    /// Transient: try again after the backoff, or after `after` seconds when the server said so.
    case retry(ReasonCode, String, after: Double? = nil)
    /// Stop with this error.
    case fail(SinkError)
}

/// Counts the retries of one upload, for its report.
public final class RetryCount: Sendable {
    private let count = Mutex(0)
    public init() {}
    public var value: Int { count.withLock { $0 } }
    func add() { count.withLock { $0 += 1 } }
}

/// The one retry policy every sink shares: only transient failures are retried, with exponential
/// backoff and full jitter; a server's `Retry-After` pauses every request through the same gate.
public struct Retrier: Sendable {
    public let backoff: Backoff
    public let clock: any RetryClock
    /// Shared by every request to one API; nil for APIs without a shared budget.
    public let gate: RequestGate?

    public init(backoff: Backoff, clock: any RetryClock, gate: RequestGate?) {
        self.backoff = backoff
        self.clock = clock
        self.gate = gate
    }

    /// Sends `request` until `classify` says done or fails, or the attempts run out.
    public func send(_ request: HTTPRequest, with http: CurlClient, retries: RetryCount? = nil,
                     classify: (HTTPResponse) -> Verdict) async throws(SinkError) -> HTTPResponse {
        var failures = 0
        while true {
            let (response, verdict) = await attempt(request, with: http, classify: classify)
            switch verdict {
            case .done: return response!
            case let .fail(error): throw error
            case let .retry(code, detail, after):
                try await backOff(&failures, code, detail, after: after, retries: retries)
            }
        }
    }

    /// One try: the response (when one came) and what it means.
    public func attempt(_ request: HTTPRequest, with http: CurlClient,
                        classify: (HTTPResponse) -> Verdict) async -> (HTTPResponse?, Verdict) {
        if let gate {
            // A pause longer than the run waits for is not waited out here: the file is deferred.
            if let until = gate.pausedUntil, until.timeIntervalSince(clock.now()) > backoff.maxWait {
                return (nil, .fail(SinkError(.failed, .rateLimited,
                                             "the API is paused for \(Int(until.timeIntervalSince(clock.now()))) s, more than limits.retry.maxWait",
                                             deferrable: true)))
            }
            await gate.admit()
        }
        do {
            let response = try await http.send(request)
            return (response, classify(response))
        } catch let error as TransportError {
            return (nil, Self.verdict(for: error))
        } catch {
            return (nil, .fail(SinkError(.failed, .networkError, "\(error)")))
        }
    }

    /// After a transient failure: counts it, gives up when the tries are spent (an integrity
    /// mismatch is tried once more only), else waits the backoff or the server's `Retry-After`.
    public func backOff(_ failures: inout Int, _ code: ReasonCode, _ detail: String, after: Double? = nil,
                        retries: RetryCount? = nil) async throws(SinkError) {
        failures += 1
        let allowed = code == .integrityMismatch ? min(2, backoff.attempts) : backoff.attempts
        guard failures < allowed else {
            throw SinkError(.failed, code, "\(detail) (gave up after \(failures) tries)")
        }
        retries?.add()
        if let after {
            guard after <= backoff.maxWait else {
                gate?.pause(until: clock.now().addingTimeInterval(after))
                throw SinkError(.failed, .rateLimited,
                                "\(detail); the server asks to wait \(Int(after)) s, more than limits.retry.maxWait (\(Int(backoff.maxWait)) s)",
                                deferrable: true)
            }
            // Every worker on this API waits, not only the one that was told.
            if let gate {
                gate.pause(until: clock.now().addingTimeInterval(after))
            } else {
                await clock.sleep(seconds: after)
            }
        } else {
            await clock.sleep(seconds: backoff.delay(retry: failures - 1))
        }
    }

    /// Transport trouble: the network's is retried; a refused certificate or a bad request is not.
    public static func verdict(for error: TransportError) -> Verdict {
        switch error.kind {
        case .connect, .broken: .retry(.networkError, error.message)
        case .timeout: .retry(.timeout, error.message)
        case .tls: .fail(SinkError(.fatal, .tlsUntrusted, error.message))
        case .request: .fail(SinkError(.failed, .networkError, error.message))
        }
    }

    /// A 3xx is never followed: credentials must not travel to another host.
    public static func redirectVerdict(_ response: HTTPResponse) -> Verdict? {
        guard (300..<400).contains(response.status) else { return nil }
        let target = response.header("Location") ?? "nowhere"
        return .fail(SinkError(.fatal, .unexpectedRedirect,
                               "the endpoint answered \(response.status) redirecting to \(target); redirects are not followed with credentials"))
    }
}
