import Foundation
import MediaPipeline
import Synchronization
import TestSupport
import Testing

/// Facts from fixed answers, so the runner is tested alone.
struct FixedInspector: AssetInspector {
    var mime = "text/plain"
    func sniffMIME(of file: URL) throws -> String { mime }
    func imageHeader(of file: URL, mime: String) throws -> ImageHeader? { nil }
    func sha256(of file: URL) throws -> String { "abc" }
}

/// Counts how many files are inside it at once.
final class Gauge: Sendable {
    /// How many files the runner should let in at once.
    let bound: Int
    private let state = Mutex((now: 0, peak: 0))
    init(bound: Int) { self.bound = bound }
    func enter() { state.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) } }
    func leave() { state.withLock { $0.now -= 1 } }
    var peak: Int { state.withLock { $0.peak } }

    /// Holds a file until the runner has had `bound` files in at once (or 2 s passed), so a busy
    /// test process cannot hide the bound by finishing each file before the next one starts.
    func holdUntilTheBoundWasReached() async throws {
        let deadline = ContinuousClock.now + .seconds(2)
        while peak < bound, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
    }
}

struct ScriptedStage: Stage {
    var outcome: @Sendable (Asset) throws -> StageOutcome
    var gauge: Gauge?
    func run(_ asset: Asset, context: StageContext) async throws -> StageOutcome {
        gauge?.enter()
        defer { gauge?.leave() }
        try await Task.sleep(for: .milliseconds(5))
        try await gauge?.holdUntilTheBoundWasReached()
        return try outcome(asset)
    }
}

struct RoutingStage: Stage {
    func run(_ asset: Asset, context: StageContext) async throws -> StageOutcome {
        asset.sink = "out"
        return .proceed
    }
}

struct RunnerTests {
    func pipeline(_ steps: [PipelineStep]) throws -> Pipeline {
        var p = try Pipeline.load(Data(#"{"version": 1, "stages": [{"kind": "noop"}]}"#.utf8), registry: testRegistry, environment: [:])
        p.steps = steps
        return p
    }

    func step(_ name: String, _ body: StepBody, when: Condition? = nil, onError: OnError = .reject) -> PipelineStep {
        PipelineStep(name: name, kind: name, when: when, onError: onError, body: body)
    }

    func inputs(_ n: Int, in dir: URL) throws -> [InputFile] {
        try (0..<n).map { i in
            let url = dir.appendingPathComponent("f\(i).txt")
            try Data("file \(i)".utf8).write(to: url)
            return InputFile(source: "f\(i).txt", url: url, relativePath: "f\(i).txt")
        }
    }

    func run(_ pipeline: Pipeline, _ files: [InputFile], dir: URL, concurrency: Int = 2, uploads: Int = 8,
             dryRun: Bool = true) async -> (RunSummary, [AssetReport]) {
        let reports = Mutex<[AssetReport]>([])
        let runner = Runner(pipeline: pipeline, inspector: FixedInspector(), logger: MemoryLogger())
        let summary = await runner.run(files, options: .init(dryRun: dryRun, concurrency: concurrency, uploads: uploads,
                                                             workDirectory: dir)) { r in
            reports.withLock { $0.append(r) }
        }
        return (summary, reports.withLock { $0 }.sorted { $0.source < $1.source })
    }

    @Test func concurrencyIsBoundedAndEveryFileIsReported() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let gauge = Gauge(bound: 3)
            let p = try pipeline([step("slow", .stage(ScriptedStage(outcome: { _ in .proceed }, gauge: gauge))),
                                  step("route", .stage(RoutingStage())), step("out", .sink(FixedSink()))])
            let (summary, reports) = await run(p, try inputs(12, in: dir), dir: dir, concurrency: 3)
            #expect(reports.count == 12)
            #expect(summary.byStatus[.planned] == 12)
            #expect(gauge.peak == 3)
            #expect(summary.exitCode == 0)
            #expect(reports.allSatisfy { $0.sink == "fixed" && $0.result?["method"] == "PUT" })
        }
    }

    @Test("on_error: reject ends rejected, skip ends skipped, continue goes on", arguments: [
        (OnError.reject, AssetStatus.rejected), (.skip, .skipped), (.continue, .planned),
    ])
    func onErrorDecidesTheEnding(_ policy: OnError, _ expected: AssetStatus) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let failing = ScriptedStage(outcome: { _ in throw Reason("custom_code", "it broke") })
            let p = try pipeline([step("bad", .stage(failing), onError: policy), step("route", .stage(RoutingStage())),
                                  step("out", .sink(FixedSink()))])
            let (summary, reports) = await run(p, try inputs(1, in: dir), dir: dir)
            #expect(reports.first?.status == expected)
            if expected != .planned { #expect(reports.first?.reason?.code == "custom_code") }
            #expect(summary.exitCode == (expected == .rejected ? 1 : 0))
        }
    }

    @Test func anUnexpectedErrorBecomesStageFailedNamingTheStage() async throws {
        struct Broken: Error {}
        try await TestFiles.withTemporaryDirectory { dir in
            let p = try pipeline([step("exploder", .stage(ScriptedStage(outcome: { _ in throw Broken() })))])
            let (_, reports) = await run(p, try inputs(1, in: dir), dir: dir)
            #expect(reports.first?.reason?.code == .stageFailed)
            #expect(reports.first?.reason?.detail.contains("exploder") == true)
        }
    }

    @Test func aStageWhoseWhenIsFalseIsPassedOver() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let rejectAll = ScriptedStage(outcome: { _ in .reject(Reason(.typeNotAllowed, "no")) })
            let p = try pipeline([step("images-only", .stage(rejectAll), when: Condition(kinds: [.image])),
                                  step("route", .stage(RoutingStage())), step("out", .sink(FixedSink()))])
            let (_, reports) = await run(p, try inputs(2, in: dir), dir: dir)
            #expect(reports.map(\.status) == [.planned, .planned])
        }
    }

    @Test func withoutARouteAFileIsRejectedNoSink() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let p = try pipeline([step("noop", .stage(NoopStage())), step("out", .sink(FixedSink()))])
            let (_, reports) = await run(p, try inputs(1, in: dir), dir: dir)
            #expect(reports.first?.status == .rejected)
            #expect(reports.first?.reason?.code == .noSink)
        }
    }

    @Test func theManifestRowHasTheContractShape() {
        let row = AssetReport(source: "course.zip!/img/cover.jpg", sha256: "ab", bytes: 812_345, mime: "image/jpeg", kind: .image,
                              purpose: "thumbnail", status: .planned, sink: "cloudflare-images", result: ["id": "x"],
                              reason: nil, milliseconds: 41.23)
        #expect(row.json.compactText == #"{"source":"course.zip!/img/cover.jpg","sha256":"ab","bytes":812345,"mime":"image/jpeg","kind":"image","purpose":"thumbnail","status":"planned","sink":"cloudflare-images","result":{"id":"x"},"reason":null,"ms":41.2}"#)
    }

    @Test func aRealRunExecutesThePlanAndReportsTheSinksResult() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let p = try pipeline([step("route", .stage(RoutingStage())), step("out", .sink(FixedSink()))])
            let (summary, reports) = await run(p, try inputs(3, in: dir), dir: dir, dryRun: false)
            #expect(reports.map(\.status) == [.uploaded, .uploaded, .uploaded])
            #expect(reports.allSatisfy { $0.result?["id"] == .string($0.source) })
            #expect(summary.exitCode == 0)
        }
    }

    @Test("a sink's error decides the status and the exit code", arguments: [
        (SinkError.Severity.rejected, AssetStatus.rejected, Int32(1)), (.failed, .failed, 4),
    ])
    func sinkErrorsMapToStatuses(_ severity: SinkError.Severity, _ status: AssetStatus, _ exit: Int32) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let sink = FixedSink(failure: SinkError(severity, .providerRejected, "no"))
            let p = try pipeline([step("route", .stage(RoutingStage())), step("out", .sink(sink))])
            let (summary, reports) = await run(p, try inputs(2, in: dir), dir: dir, dryRun: false)
            #expect(reports.map(\.status) == [status, status])
            #expect(reports.allSatisfy { $0.reason?.code == .providerRejected })
            #expect(summary.exitCode == exit)
        }
    }

    @Test func aFatalSinkErrorStopsThatSinkLeavesTheRestPendingAndExitsThree() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let sink = FixedSink(failure: SinkError(.fatal, .authFailed, "credentials refused"))
            let p = try pipeline([step("route", .stage(RoutingStage())), step("out", .sink(sink))])
            let (summary, reports) = await run(p, try inputs(6, in: dir), dir: dir, concurrency: 1, uploads: 1, dryRun: false)
            #expect(reports.filter { $0.status == .failed }.count == 1)
            #expect(reports.filter { $0.status == .pending }.count == 5)
            #expect(reports.allSatisfy { $0.reason?.code == .authFailed })
            #expect(summary.fatal.count == 1)
            #expect(summary.exitCode == 3)
        }
    }

    @Test func filesWaitingForAnUploadSlotSendNothingOnceTheSinkIsStopped() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            // The refusal takes a moment to arrive, so the other files are through their stages
            // and waiting for the one upload slot when it does.
            let tries = Tries()
            let sink = FixedSink(onUpload: { asset in
                _ = tries.add(asset.source)
                try await Task.sleep(for: .milliseconds(300))
                throw SinkError(.fatal, .authFailed, "credentials refused")
            })
            let p = try pipeline([step("route", .stage(RoutingStage())), step("out", .sink(sink))])
            let (summary, reports) = await run(p, try inputs(6, in: dir), dir: dir, concurrency: 4, uploads: 1, dryRun: false)
            #expect(tries.counts == [1], "uploads tried: \(tries.counts)")
            #expect(reports.filter { $0.status == .failed }.count == 1)
            #expect(reports.filter { $0.status == .pending }.count == 5)
            #expect(summary.exitCode == 3)
        }
    }

    /// Counts uploads per file.
    final class Tries: Sendable {
        private let seen = Mutex<[String: Int]>([:])
        func add(_ source: String) -> Int { seen.withLock { $0[source, default: 0] += 1; return $0[source]! } }
        var counts: [Int] { seen.withLock { Array($0.values) } }
    }

    /// A sink whose API is "paused": it defers each file until it has seen it `succeedAfter` times.
    func deferringSink(succeedAfter: Int, tries: Tries) -> FixedSink {
        FixedSink(onUpload: { asset in
            guard tries.add(asset.source) >= succeedAfter else {
                throw SinkError(.failed, .rateLimited, "paused for 300 s", deferrable: true)
            }
            return .object([("id", .string(asset.source))])
        })
    }

    @Test("F3: a file whose API is paused longer than the run waits goes once more to the end of the queue")
    func deferredFilesAreTriedOnceMoreAtTheEnd() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let recovering = Tries()
            let p = try pipeline([step("route", .stage(RoutingStage())),
                                  step("out", .sink(deferringSink(succeedAfter: 2, tries: recovering)))])
            let (summary, reports) = await run(p, try inputs(3, in: dir), dir: dir, concurrency: 1, dryRun: false)
            #expect(reports.map(\.status) == [.uploaded, .uploaded, .uploaded])
            #expect(recovering.counts.allSatisfy { $0 == 2 })
            #expect(summary.exitCode == 0)

            let stuck = Tries()
            let q = try pipeline([step("route", .stage(RoutingStage())),
                                  step("out", .sink(deferringSink(succeedAfter: 99, tries: stuck)))])
            let (stuckSummary, stuckReports) = await run(q, try inputs(3, in: dir), dir: dir, concurrency: 2, dryRun: false)
            #expect(stuckReports.count == 3)
            #expect(stuckReports.allSatisfy { $0.status == .failed && $0.reason?.code == .rateLimited })
            #expect(stuck.counts.allSatisfy { $0 == 2 })
            #expect(stuckSummary.exitCode == 4)
        }
    }

    /// What happened, in order, across tasks.
    final class EventLog: Sendable {
        private let items = Mutex<[String]>([])
        func add(_ event: String) { items.withLock { $0.append(event) } }
        var all: [String] { items.withLock { $0 } }
    }

    @Test("CPU work and uploads run in separate pools, so the next files are prepared while others upload")
    func cpuAndUploadPoolsOverlap() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let events = EventLog()
            let cpuGauge = Gauge(bound: 1)
            let prepare = ScriptedStage(outcome: { _ in events.add("cpu"); return .proceed }, gauge: cpuGauge)
            let uploadGauge = Gauge(bound: 3)
            // Each upload is held until four files have been prepared: that can only happen if CPU
            // work goes on while uploads are in flight. It gives up after 10 s rather than hang.
            let sink = FixedSink(onUpload: { _ in
                uploadGauge.enter()
                defer { uploadGauge.leave() }
                for _ in 0..<1000 where events.all.filter({ $0 == "cpu" }).count < 4 {
                    try await Task.sleep(for: .milliseconds(10))
                }
                events.add("upload-end")
                return .object([])
            })
            let p = try pipeline([step("prepare", .stage(prepare)), step("route", .stage(RoutingStage())), step("out", .sink(sink))])
            let (summary, reports) = await run(p, try inputs(8, in: dir), dir: dir, concurrency: 1, uploads: 3, dryRun: false)
            #expect(reports.allSatisfy { $0.status == .uploaded })
            #expect(summary.exitCode == 0)
            #expect(cpuGauge.peak == 1)
            #expect(uploadGauge.peak == 3)
            // Four files were prepared before the first upload ended: one CPU worker kept going.
            let log = events.all
            let firstEnd = try #require(log.firstIndex(of: "upload-end"))
            #expect(log[..<firstEnd].filter { $0 == "cpu" }.count >= 4)
        }
    }

    @Test func bigFilesStartFirstAndTheRestKeepTheirOrder() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            var files: [InputFile] = []
            for (name, size) in [("a", 10), ("big", 3000), ("b", 20), ("bigger", 5000), ("c", 30)] {
                let url = dir.appendingPathComponent(name)
                try Data(count: size).write(to: url)
                files.append(InputFile(source: name, url: url, relativePath: name, bytes: Int64(size)))
            }
            #expect(Runner.bigFilesFirst(files, threshold: 1000).map(\.source) == ["bigger", "big", "a", "b", "c"])
            // The sizes come from listing the inputs.
            #expect(try InputFile.expand([dir.path]).map(\.bytes).sorted() == [10, 20, 30, 3000, 5000])
        }
    }
}
