/// The run a notification belongs to.
public struct RunIdentity: Sendable, Equatable {
    /// Unique per run; events carry it as `run`.
    public var id: String

    public init(id: String) {
        self.id = id
    }
}

/// How a notify step wants its events delivered.
public struct NotifyPolicy: Sendable, Equatable {
    /// After this many seconds undelivered, an event is given up (`notify_expired`).
    public var maxAge: Double
    /// How long a run waits at its end for events still undelivered before it exits 5.
    public var flushTimeout: Double
    /// The first pause between attempts (doubled each time, with jitter) and the longest one.
    public var baseDelay: Double
    public var maxDelay: Double
    /// The longest one attempt may take.
    public var attemptTimeout: Double

    public init(maxAge: Double = 72 * 3600, flushTimeout: Double = 30, baseDelay: Double = 1, maxDelay: Double = 300,
                attemptTimeout: Double = 10) {
        self.attemptTimeout = attemptTimeout
        self.maxAge = maxAge
        self.flushTimeout = flushTimeout
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }
}

/// What one delivery attempt came to.
public enum DeliveryOutcome: Sendable, Equatable {
    case delivered
    /// Transient (5xx, 408, 429, timeout, no connection): try again, after `after` seconds when the receiver said so.
    case retry(String, after: Double?)
    /// The receiver refused it (a 4xx other than 408 and 429): never tried again.
    case refused(String)
}

/// A step that tells someone when files end: it writes an event for each file that ends, and
/// sends events from the outbox. Events wait in the outbox, so uploads never wait for the receiver.
public protocol Notifier: Sendable {
    var policy: NotifyPolicy { get }
    /// The event for a source that ended with `report`, or nil when nothing is said about it.
    /// The same source, stamp and outcome must give the same id, so a rerun after a crash does not
    /// announce it twice.
    func event(for report: AssetReport, stamp: SourceStamp?, step: String, run: RunIdentity, now: Double) -> OutboxEvent?
    /// The event that closes a batch.
    func batchEvent(_ summary: RunSummary, step: String, run: RunIdentity, now: Double) -> OutboxEvent?
    /// One attempt to send `event`. Never throws: every problem is an outcome.
    func deliver(_ event: OutboxEvent, now: Double) async -> DeliveryOutcome
}

extension ReasonCode {
    /// A notification was still undelivered after its step's `maxAge` and was given up.
    public static let notifyExpired: ReasonCode = "notify_expired"
    /// The receiver refused a notification (a 4xx other than 408 and 429).
    public static let notifyRefused: ReasonCode = "notify_refused"
}
