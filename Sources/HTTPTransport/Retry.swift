public import Foundation
import Synchronization

/// Time as retries see it. The real one sleeps; tests pass one that records and returns at once.
public protocol RetryClock: Sendable {
    func now() -> Date
    func sleep(seconds: Double) async
}

/// The wall clock.
public struct SystemClock: RetryClock {
    public init() {}
    public func now() -> Date { Date() }
    public func sleep(seconds: Double) async {
        guard seconds > 0 else { return }
        try? await Task.sleep(for: .milliseconds(Int((seconds * 1000).rounded(.up))))
    }
}

/// Exponential backoff with full jitter: the n-th retry waits a random time in
/// [0, min(maxDelay, baseDelay · 2ⁿ)].
public struct Backoff: Sendable, Equatable {
    public var attempts: Int
    public var baseDelay: Double
    public var maxDelay: Double
    /// The longest server-requested wait (`Retry-After`) honoured.
    public var maxWait: Double

    public init(attempts: Int = 6, baseDelay: Double = 1, maxDelay: Double = 30, maxWait: Double = 360) {
        self.attempts = max(1, attempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxWait = maxWait
    }

    /// The ceiling for the wait before retry number `retry` (0 for the first retry).
    public func ceiling(retry: Int) -> Double {
        min(maxDelay, baseDelay * pow(2, Double(min(retry, 62))))
    }

    /// A wait for retry number `retry`, drawn uniformly below the ceiling.
    public func delay(retry: Int, random: Double = Double.random(in: 0...1)) -> Double {
        ceiling(retry: retry) * min(max(random, 0), 1)
    }

    /// The longest wait `retryAfter` gives: no run waits longer, and a wait is shown in whole
    /// seconds, which must fit an `Int`.
    public static let longestRetryAfter: Double = 365 * 86_400

    /// Seconds to wait from a `Retry-After` value: delta seconds or an HTTP date, at most
    /// `longestRetryAfter`.
    public static func retryAfter(_ value: String?, now: Date) -> Double? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Double(value) { return min(max(0, seconds), longestRetryAfter) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return min(max(0, date.timeIntervalSince(now)), longestRetryAfter)
    }
}

/// The gate every request to one API passes: a 429 seen by one worker pauses all of them until
/// the server's deadline, and a client-side budget keeps the run under the API's request limit
/// (a sliding window, e.g. 600 requests per 300 s).
public final class RequestGate: Sendable {
    private struct State {
        var pausedUntil: Date?
        var sent: [Date] = []
        var head = 0
    }

    public let budget: Int
    public let window: Double
    private let clock: any RetryClock
    private let state = Mutex(State())

    public init(budget: Int, window: Double = 300, clock: any RetryClock) {
        self.budget = max(1, budget)
        self.window = window
        self.clock = clock
    }

    /// Waits until a request may go: past any pause and within the budget. Counts the request.
    public func admit() async {
        while true {
            let now = clock.now()
            let wait: Double = state.withLock { s in
                if let until = s.pausedUntil, until > now { return until.timeIntervalSince(now) }
                while s.head < s.sent.count, now.timeIntervalSince(s.sent[s.head]) >= window { s.head += 1 }
                if s.head > 4096, s.head * 2 > s.sent.count {
                    s.sent.removeFirst(s.head)
                    s.head = 0
                }
                if s.sent.count - s.head >= budget { return window - now.timeIntervalSince(s.sent[s.head]) }
                s.sent.append(now)
                return 0
            }
            if wait <= 0 { return }
            await clock.sleep(seconds: wait)
        }
    }

    /// Stops every request through this gate until `date` (later pauses win).
    public func pause(until date: Date) {
        state.withLock { s in
            if s.pausedUntil.map({ $0 < date }) ?? true { s.pausedUntil = date }
        }
    }

    /// The current pause's end, if any.
    public var pausedUntil: Date? { state.withLock { $0.pausedUntil } }
}
