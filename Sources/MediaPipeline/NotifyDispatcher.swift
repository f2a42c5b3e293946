public import Foundation
import Synchronization

/// What became of notifications during one run (or one `notify flush`).
public struct NotifyTally: Sendable, Equatable {
    public var delivered = 0
    public var refused = 0
    public var expired = 0
    /// Events of the run's notify steps still waiting when it ended (older ones included).
    public var pending = 0
    /// True when the outbox dies with the process (a run without a journal).
    public var volatile = false

    public init() {}

    /// Some event was not delivered: the run exits 5.
    public var incomplete: Bool { pending > 0 || refused > 0 || expired > 0 }

    public var json: JSONValue {
        .object([("delivered", .int(Int64(delivered))), ("pending", .int(Int64(pending))),
                 ("refused", .int(Int64(refused))), ("expired", .int(Int64(expired)))])
    }
}

/// Writes notify events into the outbox as files end, and sends them from there beside the run:
/// retries with backoff, holds events while they are in flight, gives them up after `maxAge`.
public final class NotifyDispatcher: Sendable {
    public struct Step: Sendable {
        public var name: String
        public var when: Condition?
        public var notifier: any Notifier

        public init(name: String, when: Condition?, notifier: any Notifier) {
            self.name = name
            self.when = when
            self.notifier = notifier
        }
    }

    public let steps: [Step]
    public let outbox: any Outbox
    public let run: RunIdentity
    private let logger: any Logger
    private let now: @Sendable () -> Double
    private let state = Mutex(State())

    private struct State {
        var tally = NotifyTally()
        /// Set when the batch is over: deliver what is due until then, then stop.
        var deadline: Double?
        /// Steps whose receiver is failing, told once each until one delivery works again.
        var troubled: Set<String> = []
    }

    /// Events delivered at once per step.
    static let parallel = 4
    /// How often the loop looks for due events.
    static let poll: Duration = .milliseconds(200)

    public init(steps: [Step], outbox: any Outbox, run: RunIdentity, logger: any Logger,
                now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.steps = steps
        self.outbox = outbox
        self.run = run
        self.logger = logger
        self.now = now
        state.withLock { $0.tally.volatile = outbox is MemoryOutbox }
    }

    /// The notify steps of a pipeline, in order.
    public static func steps(of pipeline: Pipeline) -> [Step] {
        pipeline.steps.compactMap { step in
            if case let .notifier(notifier) = step.body { Step(name: step.name, when: step.when, notifier: notifier) } else { nil }
        }
    }

    /// Writes the event of every notify step for a source that ended. Throws when the outbox
    /// cannot be written (the journal failed).
    public func announce(_ report: AssetReport, stamp: SourceStamp?) async throws {
        for step in steps where step.when?.matches(report) ?? true {
            if let event = step.notifier.event(for: report, stamp: stamp, step: step.name, run: run, now: now()) {
                try await outbox.enqueue(event)
            }
        }
    }

    /// Writes the `batch.completed` event of every notify step.
    public func announceBatch(_ summary: RunSummary) async throws {
        for step in steps {
            if let event = step.notifier.batchEvent(summary, step: step.name, run: run, now: now()) {
                try await outbox.enqueue(event)
            }
        }
    }

    /// Ends `deliver()`: it goes on until every event is delivered or the steps' `flushTimeout`
    /// (or `within`, when given) has passed.
    public func finish(within seconds: Double? = nil) {
        let wait = seconds ?? steps.map(\.notifier.policy.flushTimeout).max() ?? 0
        let end = now() + wait
        state.withLock { $0.deadline = end }
    }

    /// Sends due events until `finish` was called and nothing more can be delivered before its
    /// deadline. Returns what happened, with the events still pending counted at the end.
    public func deliver() async -> NotifyTally {
        while true {
            var sent = 0
            for step in steps { sent += await deliverDue(step) }
            let deadline = state.withLock { $0.deadline }
            if let deadline {
                let time = now()
                if time >= deadline { break }
                // Stop early once nothing is due before the deadline.
                if sent == 0, await !anyDue(before: deadline) { break }
            }
            if sent == 0 { try? await Task.sleep(for: Self.poll) }
        }
        var tally = state.withLock { $0.tally }
        for step in steps {
            tally.pending += (try? await outbox.counts(step: step.name))?[.pending] ?? 0
        }
        return tally
    }

    private func anyDue(before deadline: Double) async -> Bool {
        for step in steps {
            guard let counts = try? await outbox.counts(step: step.name) else { return false }
            if counts[.pending] > 0, let next = counts.earliestPending, next <= deadline { return true }
        }
        return false
    }

    /// Takes a handful of due events of one step and tries each once. Returns how many it took.
    private func deliverDue(_ step: Step) async -> Int {
        let policy = step.notifier.policy
        let due: [OutboxEvent]
        do {
            due = try await outbox.takeDue(step: step.name, now: now(), hold: policy.attemptTimeout + 5, limit: Self.parallel)
        } catch {
            logger.log(.error, "notify '\(step.name)': cannot read the outbox: \(error)")
            return 0
        }
        guard !due.isEmpty else { return 0 }
        await withTaskGroup(of: Void.self) { group in
            for event in due {
                group.addTask { await self.attempt(event, step: step) }
            }
        }
        return due.count
    }

    private func attempt(_ event: OutboxEvent, step: Step) async {
        var event = event
        let policy = step.notifier.policy
        let about = event.source.isEmpty ? event.type : "\(event.type) of \(event.source)"
        if now() - event.created > policy.maxAge {
            event.state = .expired
            logger.log(.error, "notify '\(step.name)': \(ReasonCode.notifyExpired): event \(event.id) (\(about)) was not delivered within "
                + "\(Quantity.describe(seconds: policy.maxAge)) after \(event.attempts) attempt\(event.attempts == 1 ? "" : "s")"
                + (event.lastError.map { "; last: \($0)" } ?? ""))
            state.withLock { $0.tally.expired += 1 }
            await save(event, step: step)
            return
        }
        let outcome = await step.notifier.deliver(event, now: now())
        event.attempts += 1
        switch outcome {
        case .delivered:
            event.state = .delivered
            event.lastError = nil
            let recovered = state.withLock { state in
                state.tally.delivered += 1
                return state.troubled.remove(step.name) != nil
            }
            if recovered { logger.log(.info, "notify '\(step.name)': the receiver takes events again") }
        case let .refused(detail):
            event.state = .refused
            event.lastError = detail
            state.withLock { $0.tally.refused += 1 }
            logger.log(.error, "notify '\(step.name)': \(ReasonCode.notifyRefused): event \(event.id) (\(about)) was refused: \(detail); it is not sent again")
        case let .retry(detail, after):
            event.lastError = detail
            let pause = after.map { min($0, policy.maxDelay) } ?? Self.backoff(attempt: event.attempts, policy: policy)
            event.nextAttempt = now() + pause
            let first = state.withLock { $0.troubled.insert(step.name).inserted }
            if first {
                logger.log(.warning, "notify '\(step.name)': cannot deliver (\(detail)); events wait in the outbox and are tried again")
            } else {
                logger.log(.debug, "notify '\(step.name)': event \(event.id) attempt \(event.attempts): \(detail); next in \(Quantity.describe(seconds: pause))")
            }
        }
        await save(event, step: step)
    }

    private func save(_ event: OutboxEvent, step: Step) async {
        do { try await outbox.update(event) } catch {
            // The event stays as it was taken (pending, held a little while): it is sent again later.
            logger.log(.error, "notify '\(step.name)': cannot record the outcome of event \(event.id): \(error)")
        }
    }

    /// Full jitter over a doubling ceiling: attempt 1 waits up to `baseDelay`, then 2×, 4×, … up to `maxDelay`.
    public static func backoff(attempt: Int, policy: NotifyPolicy, random: Double = Double.random(in: 0.5...1)) -> Double {
        let ceiling = min(policy.maxDelay, policy.baseDelay * pow(2, Double(max(0, attempt - 1))))
        return ceiling * random
    }
}
