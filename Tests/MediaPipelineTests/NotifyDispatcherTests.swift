import Foundation
import MediaPipeline
import Synchronization
import TestSupport
import Testing

/// A notifier that answers each delivery from a script and counts them (the dispatcher is tested alone).
final class ScriptedNotifier: Notifier {
    let policy: NotifyPolicy
    private let answers: Mutex<[DeliveryOutcome]>
    private let seen = Mutex<[String]>([])

    init(_ answers: [DeliveryOutcome], policy: NotifyPolicy = NotifyPolicy(flushTimeout: 5, baseDelay: 0.05, maxDelay: 0.2)) {
        self.answers = Mutex(answers)
        self.policy = policy
    }

    var deliveries: [String] { seen.withLock { $0 } }

    func event(for report: AssetReport, stamp: SourceStamp?, step: String, run: RunIdentity, now: Double) -> OutboxEvent? {
        guard report.status != .pending, report.status != .unchanged else { return nil }
        return OutboxEvent(id: "\(step)/\(report.source)/\(report.status.rawValue)", step: step, type: "asset.\(report.status.rawValue)",
                           source: report.source, payload: report.json.compactText, created: now)
    }

    func batchEvent(_ summary: RunSummary, step: String, run: RunIdentity, now: Double) -> OutboxEvent? {
        OutboxEvent(id: "\(step)/batch/\(run.id)", step: step, type: "batch.completed", source: "", payload: summary.json.compactText, created: now)
    }

    func deliver(_ event: OutboxEvent, now: Double) async -> DeliveryOutcome {
        seen.withLock { $0.append(event.id) }
        return answers.withLock { $0.isEmpty ? .delivered : $0.removeFirst() }
    }
}

final class TickingClock: Sendable {
    private let time: Mutex<Double>
    let tick: Double

    init(start: Double = 1_000_000, tick: Double = 0.01) {
        time = Mutex(start)
        self.tick = tick
    }

    func read() -> Double { time.withLock { $0 += tick; return $0 } }
}

struct NotifyDispatcherTests {
    /// A dispatcher whose clock moves `tick` seconds each time it is read, so deadlines are
    /// reached after a set amount of work however slowly a busy machine runs the test.
    func dispatcher(_ notifier: ScriptedNotifier, outbox: MemoryOutbox = MemoryOutbox(), logger: MemoryLogger = MemoryLogger(),
                    clock: TickingClock = TickingClock()) -> NotifyDispatcher {
        NotifyDispatcher(steps: [.init(name: "hook", when: nil, notifier: notifier)], outbox: outbox,
                         run: RunIdentity(id: "run-1"), logger: logger, now: { clock.read() })
    }

    func event(_ id: String, created: Double = 1_000_000) -> OutboxEvent {
        OutboxEvent(id: id, step: "hook", type: "asset.uploaded", source: id, payload: "{}", created: created)
    }

    @Test func transientFailuresAreTriedAgainUntilDelivered() async {
        let notifier = ScriptedNotifier([.retry("HTTP 503", after: nil), .retry("timed out", after: nil)])
        let outbox = MemoryOutbox()
        outbox.enqueue(event("a"))
        let dispatcher = dispatcher(notifier, outbox: outbox)
        dispatcher.finish(within: 5)
        let tally = await dispatcher.deliver()
        #expect(tally.delivered == 1 && tally.pending == 0 && !tally.incomplete)
        #expect(notifier.deliveries == ["a", "a", "a"])
        #expect(outbox.counts(step: "hook") == OutboxCounts(byState: [.delivered: 1]))
    }

    @Test func aRefusedEventIsNeverTriedAgain() async {
        let notifier = ScriptedNotifier([.refused("HTTP 400")])
        let outbox = MemoryOutbox()
        outbox.enqueue(event("a"))
        let logger = MemoryLogger()
        let dispatcher = dispatcher(notifier, outbox: outbox, logger: logger)
        dispatcher.finish(within: 1)
        let tally = await dispatcher.deliver()
        #expect(tally.refused == 1 && tally.incomplete)
        #expect(notifier.deliveries == ["a"])
        #expect(logger.messages.contains { $0.contains("notify_refused") && $0.contains("HTTP 400") })
    }

    @Test func anEventPastMaxAgeExpiresWithoutASend() async {
        let notifier = ScriptedNotifier([], policy: NotifyPolicy(maxAge: 60, flushTimeout: 1))
        let outbox = MemoryOutbox()
        outbox.enqueue(event("old", created: 1_000_000 - 61))
        outbox.enqueue(event("new"))
        let logger = MemoryLogger()
        let dispatcher = dispatcher(notifier, outbox: outbox, logger: logger)
        dispatcher.finish(within: 1)
        let tally = await dispatcher.deliver()
        #expect(tally.expired == 1 && tally.delivered == 1)
        #expect(notifier.deliveries == ["new"])
        #expect(logger.messages.contains { $0.contains("notify_expired") && $0.contains("old") })
    }

    @Test func theRunStopsWaitingAtTheFlushDeadlineAndLeavesEventsPending() async {
        let notifier = ScriptedNotifier(Array(repeating: .retry("connection refused", after: nil), count: 1000))
        let outbox = MemoryOutbox()
        outbox.enqueue(event("a"))
        let clock = TickingClock(tick: 0.05)
        let dispatcher = dispatcher(notifier, outbox: outbox, clock: clock)
        dispatcher.finish(within: 2)
        let tally = await dispatcher.deliver()
        #expect(tally.pending == 1 && tally.delivered == 0 && tally.incomplete)
        // It stops once no retry can come before the deadline: at most maxDelay (0.2 s) early.
        let stoppedAt = clock.read() - 1_000_000
        #expect(stoppedAt >= 1.8 && stoppedAt < 2.5)
        #expect(notifier.deliveries.count >= 3)
    }

    @Test func aReceiversRetryAfterSetsTheNextAttempt() async {
        let notifier = ScriptedNotifier([.retry("HTTP 429", after: 30)])
        let outbox = MemoryOutbox()
        outbox.enqueue(event("a"))
        let dispatcher = dispatcher(notifier, outbox: outbox)
        dispatcher.finish(within: 3)
        let tally = await dispatcher.deliver()
        // 30 s is over the 0.2 s maxDelay of this policy: capped there, so it is sent again before the 3 s deadline.
        #expect(tally.delivered == 1 && notifier.deliveries.count == 2)
        #expect(outbox.counts(step: "hook")[.delivered] == 1)
    }

    @Test("backoff doubles from baseDelay up to maxDelay", arguments: [(1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0), (40, 300.0)])
    func backoffDoublesAndCaps(_ attempt: Int, _ ceiling: Double) {
        #expect(NotifyDispatcher.backoff(attempt: attempt, policy: NotifyPolicy(), random: 1) == ceiling)
        #expect(NotifyDispatcher.backoff(attempt: attempt, policy: NotifyPolicy(), random: 0.5) == ceiling / 2)
    }

    @Test func theRunnerAnnouncesEndedFilesOnceAndTheBatchAtTheEnd() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let notifier = ScriptedNotifier([])
            let tests = RunnerTests()
            let refuse = ScriptedStage(outcome: { $0.source == "f1.txt" ? .reject(Reason("bad_file", "no")) : .proceed })
            let p = try tests.pipeline([tests.step("check", .stage(refuse)), tests.step("route", .stage(RoutingStage())),
                                        tests.step("out", .sink(FixedSink())), tests.step("hook", .notifier(notifier))])
            let outbox = MemoryOutbox()
            let runner = Runner(pipeline: p, inspector: FixedInspector(), logger: MemoryLogger())
            let summary = await runner.run(try tests.inputs(3, in: dir),
                                           options: .init(dryRun: false, concurrency: 2, workDirectory: dir, outbox: outbox,
                                                          identity: RunIdentity(id: "r1"))) { _ in }
            #expect(summary.exitCode == 1)
            #expect(summary.notifications?.delivered == 4)
            #expect(Set(notifier.deliveries) == ["hook/f0.txt/uploaded", "hook/f1.txt/rejected", "hook/f2.txt/uploaded", "hook/batch/r1"])

            // A dry-run sends nothing.
            let dry = await runner.run(try tests.inputs(3, in: dir), options: .init(dryRun: true, concurrency: 2, workDirectory: dir,
                                                                                    outbox: outbox)) { _ in }
            #expect(dry.notifications == nil && notifier.deliveries.count == 4)
        }
    }
}
