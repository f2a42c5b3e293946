import Synchronization

/// One notification, kept in the outbox from the moment its file ends until a receiver takes it.
///
/// `payload` is the exact body that is signed and sent on every attempt; `id` stays the same
/// across attempts and reruns, so receivers can drop repeats.
public struct OutboxEvent: Sendable, Equatable {
    public enum State: String, Sendable, CaseIterable {
        /// Not delivered yet; tried again at `nextAttempt`.
        case pending
        /// The receiver answered 2xx.
        case delivered
        /// The receiver answered a 4xx that says trying again will not help.
        case refused
        /// Still undelivered after the notify step's `maxAge`: given up.
        case expired
    }

    public var id: String
    /// The notify step (its `name` in pipeline.json) that sends it.
    public var step: String
    /// `asset.uploaded`, `asset.rejected`, `asset.failed`, `batch.completed`.
    public var type: String
    /// The source the event is about; empty for `batch.completed`.
    public var source: String
    public var payload: String
    /// Seconds since 1970.
    public var created: Double
    public var attempts: Int
    public var nextAttempt: Double
    public var state: State
    /// What the last attempt met (status, timeout, refused connection).
    public var lastError: String?

    public init(id: String, step: String, type: String, source: String, payload: String, created: Double,
                attempts: Int = 0, nextAttempt: Double? = nil, state: State = .pending, lastError: String? = nil) {
        self.id = id
        self.step = step
        self.type = type
        self.source = source
        self.payload = payload
        self.created = created
        self.attempts = attempts
        self.nextAttempt = nextAttempt ?? created
        self.state = state
        self.lastError = lastError
    }
}

/// How many events of a notify step are in each state.
public struct OutboxCounts: Sendable, Equatable {
    public var byState: [OutboxEvent.State: Int]
    /// The soonest `nextAttempt` among pending events.
    public var earliestPending: Double?

    public init(byState: [OutboxEvent.State: Int] = [:], earliestPending: Double? = nil) {
        self.byState = byState
        self.earliestPending = earliestPending
    }

    public subscript(state: OutboxEvent.State) -> Int { byState[state, default: 0] }
}

/// Where notifications wait for delivery. The journals keep it durably, beside the sources and
/// renditions, so an event written when a file ends survives a crash or a receiver that is down.
public protocol Outbox: Sendable {
    /// Adds the event; one with the same id already there is kept as it is.
    func enqueue(_ event: OutboxEvent) async throws
    /// Takes up to `limit` pending events of `step` due at `now`, oldest first, and holds them
    /// (their next attempt moves to `now + hold`) so another worker does not send them meanwhile.
    func takeDue(step: String, now: Double, hold: Double, limit: Int) async throws -> [OutboxEvent]
    /// Writes the outcome of an attempt (state, attempts, next attempt, last error).
    func update(_ event: OutboxEvent) async throws
    /// The events of `step` per state.
    func counts(step: String) async throws -> OutboxCounts
}

/// An outbox in memory, for runs without a journal: what is not delivered by the end of the run
/// is lost, and the run says so.
public final class MemoryOutbox: Outbox {
    /// The events by id, and their ids in the order they were written.
    private let state = Mutex<(events: [String: OutboxEvent], order: [String])>(([:], []))

    public init() {}

    public func enqueue(_ event: OutboxEvent) {
        state.withLock { state in
            guard state.events[event.id] == nil else { return }
            state.events[event.id] = event
            state.order.append(event.id)
        }
    }

    public func takeDue(step: String, now: Double, hold: Double, limit: Int) -> [OutboxEvent] {
        state.withLock { state in
            var taken: [OutboxEvent] = []
            for id in state.order where taken.count < limit {
                guard var event = state.events[id], event.step == step, event.state == .pending, event.nextAttempt <= now else { continue }
                taken.append(event)
                event.nextAttempt = now + hold
                state.events[id] = event
            }
            return taken
        }
    }

    public func update(_ event: OutboxEvent) {
        state.withLock { $0.events[event.id] = event }
    }

    public func counts(step: String) -> OutboxCounts {
        state.withLock { state in
            var counts = OutboxCounts()
            for event in state.events.values where event.step == step {
                counts.byState[event.state, default: 0] += 1
                if event.state == .pending { counts.earliestPending = min(counts.earliestPending ?? event.nextAttempt, event.nextAttempt) }
            }
            return counts
        }
    }
}
