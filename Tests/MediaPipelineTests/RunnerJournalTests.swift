import Foundation
import MediaPipeline
import Synchronization
import TestSupport
import Testing

/// The file's own text as its "digest", so files with the same text share a rendition.
struct ContentInspector: AssetInspector {
    func sniffMIME(of file: URL) throws -> String { "text/plain" }
    func imageHeader(of file: URL, mime: String) throws -> ImageHeader? { nil }
    func sha256(of file: URL) throws -> String { try String(contentsOf: file, encoding: .utf8) }
}

/// A journal in memory, to test the runner alone (the SQLite and PostgreSQL journals have their own suites).
final class MemoryJournal: Journal {
    struct State {
        var sources: [String: JournaledSource] = [:]
        var renditions: [String: Rendition] = [:]
        var busyOnce: Set<String> = []
        var claims: [String] = []
        var failClaims = false
    }
    let state = Mutex(State())
    struct Broken: Error {}

    func claim(_ source: String, stamp: SourceStamp) async throws -> SourceClaim {
        try state.withLock { s in
            if s.failClaims { throw Broken() }
            s.claims.append(source)
            if s.busyOnce.remove(source) != nil { return .busy }
            if let known = s.sources[source], known.stamp == stamp, [.uploaded, .unchanged].contains(known.status) { return .done(known) }
            return .claimed
        }
    }
    func rendition(_ key: String) async throws -> Rendition? { state.withLock { $0.renditions[key] } }
    func begin(_ key: String, sink: String) async throws {
        state.withLock { s in if s.renditions[key] == nil { s.renditions[key] = Rendition(key: key, sink: sink, state: .started) } }
    }
    func saveRemote(_ key: String, _ remote: JSONValue) async throws { state.withLock { $0.renditions[key]?.remote = remote } }
    func complete(_ key: String, result: JSONValue) async throws {
        state.withLock { s in
            s.renditions[key]?.state = .done
            s.renditions[key]?.result = result
        }
    }
    func finish(_ source: String, stamp: SourceStamp, report: AssetReport, rendition: String?) async throws {
        state.withLock { $0.sources[source] = JournaledSource(stamp: stamp, status: report.status, rendition: rendition, report: report.json) }
    }
    func close() async {}
}

/// Counts uploads and keeps what each one saw in its checkpoint.
final class UploadLog: Sendable {
    let items = Mutex<[(source: String, saved: JSONValue?)]>([])
    var count: Int { items.withLock { $0.count } }
}

struct RunnerJournalTests {
    let base = RunnerTests()

    func sink(_ log: UploadLog) -> FixedSink {
        FixedSink(onUpload: { asset in
            log.items.withLock { $0.append((asset.source, asset.checkpoint.saved)) }
            try await asset.checkpoint.save(.object([("uploadId", .string("u-\(asset.source)"))]))
            return .object([("id", .string(asset.source))])
        })
    }

    func files(_ texts: [String], in dir: URL) throws -> [InputFile] {
        try texts.enumerated().map { i, text in
            let url = dir.appendingPathComponent("f\(i).txt")
            try Data(text.utf8).write(to: url)
            return InputFile(source: "f\(i).txt", url: url, relativePath: "f\(i).txt", bytes: Int64(text.utf8.count), modified: 1_000)
        }
    }

    func run(_ files: [InputFile], journal: any Journal, log: UploadLog, dir: URL,
             stop: StopSwitch = StopSwitch()) async throws -> (RunSummary, [AssetReport]) {
        let pipeline = try base.pipeline([base.step("route", .stage(RoutingStage())), base.step("out", .sink(sink(log)))])
        let runner = Runner(pipeline: pipeline, inspector: ContentInspector(), logger: MemoryLogger())
        let reports = Mutex<[AssetReport]>([])
        let summary = await runner.run(files, options: .init(dryRun: false, concurrency: 2, uploads: 2, workDirectory: dir,
                                                             journal: journal, stop: stop)) { r in reports.withLock { $0.append(r) } }
        return (summary, reports.withLock { $0 }.sorted { $0.source < $1.source })
    }

    @Test func aRerunOfAFinishedImportUploadsNothingAndSaysUnchanged() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let journal = MemoryJournal(), log = UploadLog()
            let inputs = try files(["a", "b", "c"], in: dir)
            let (first, _) = try await run(inputs, journal: journal, log: log, dir: dir)
            #expect(first.byStatus[.uploaded] == 3)
            let (again, reports) = try await run(inputs, journal: journal, log: log, dir: dir)
            #expect(log.count == 3)
            #expect(again.byStatus[.unchanged] == 3)
            #expect(again.exitCode == 0)
            // The unchanged rows still carry where each file went.
            #expect(reports.map { $0.result?["id"] } == ["f0.txt", "f1.txt", "f2.txt"])
        }
    }

    @Test func theSameBytesWithTheSamePurposeAreUploadedOnce() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let journal = MemoryJournal(), log = UploadLog()
            let (summary, reports) = try await run(try files(["same", "same", "other"], in: dir), journal: journal, log: log, dir: dir)
            #expect(log.count == 2)
            #expect(summary.byStatus[.uploaded] == 2)
            #expect(summary.byStatus[.unchanged] == 1)
            let sharing = reports.filter { $0.sha256 == "same" }
            #expect(sharing.count == 2 && sharing[0].result == sharing[1].result)
            #expect(journal.state.withLock { $0.sources["f0.txt"]?.rendition } == journal.state.withLock { $0.sources["f1.txt"]?.rendition })
        }
    }

    @Test func aFileChangedSinceItWasJournaledIsImportedAgain() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let journal = MemoryJournal(), log = UploadLog()
            var inputs = try files(["a", "b"], in: dir)
            _ = try await run(inputs, journal: journal, log: log, dir: dir)
            try Data("a, edited".utf8).write(to: inputs[0].url)
            inputs[0].bytes = 9
            inputs[0].modified = 2_000
            let (again, _) = try await run(inputs, journal: journal, log: log, dir: dir)
            #expect(again.byStatus[.uploaded] == 1)
            #expect(again.byStatus[.unchanged] == 1)
            #expect(log.items.withLock { $0.last?.source } == "f0.txt")
        }
    }

    @Test func anInterruptedUploadHandsTheSinkWhatItSavedBefore() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let journal = MemoryJournal(), log = UploadLog()
            let inputs = try files(["a"], in: dir)
            let (first, _) = try await run(inputs, journal: journal, log: log, dir: dir)
            #expect(first.byStatus[.uploaded] == 1)
            // Make it look as if that run journaled the start and the upload id, then died before the end.
            let key = try #require(journal.state.withLock { $0.sources["f0.txt"]?.rendition })
            journal.state.withLock { s in
                s.renditions[key]?.state = .started
                s.renditions[key]?.result = nil
                s.sources["f0.txt"] = nil
            }
            _ = try await run(inputs, journal: journal, log: log, dir: dir)
            #expect(log.items.withLock { $0.last?.saved } == ["uploadId": "u-f0.txt"])
            #expect(journal.state.withLock { $0.renditions[key]?.state } == .done)
        }
    }

    @Test func aStoppedRunStartsNothingMoreAndLeavesEveryOtherFilePending() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let journal = MemoryJournal(), log = UploadLog(), stop = StopSwitch()
            stop.pull(signal: SIGINT)
            let (summary, reports) = try await run(try files(["a", "b", "c"], in: dir), journal: journal, log: log, dir: dir, stop: stop)
            #expect(log.count == 0)
            #expect(reports.map(\.status) == [.pending, .pending, .pending])
            #expect(reports.allSatisfy { $0.reason?.code == .interrupted })
            #expect(summary.exitCode == 130)
        }
    }

    @Test func aJournalThatFailsStopsTheRunWithExitThree() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let journal = MemoryJournal(), log = UploadLog()
            journal.state.withLock { $0.failClaims = true }
            let (summary, reports) = try await run(try files(["a", "b"], in: dir), journal: journal, log: log, dir: dir)
            #expect(log.count == 0)
            #expect(reports.allSatisfy { $0.status == .pending })
            #expect(summary.exitCode == 3)
        }
    }

    @Test func aFileAnotherWorkerHoldsIsTakenUpOnceTheRestIsDone() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let journal = MemoryJournal(), log = UploadLog()
            journal.state.withLock { $0.busyOnce = ["f0.txt"] }
            let (summary, _) = try await run(try files(["a", "b", "c"], in: dir), journal: journal, log: log, dir: dir)
            #expect(summary.byStatus[.uploaded] == 3)
            let claims = journal.state.withLock { $0.claims }
            #expect(claims.filter { $0 == "f0.txt" }.count == 2)
            #expect(claims.last == "f0.txt")
        }
    }
}
