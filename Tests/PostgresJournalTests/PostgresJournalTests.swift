import Foundation
import MediaPipeline
import PostgresJournal
import Testing
import TestSupport

/// One real PostgreSQL server for the whole suite, started before its first test and stopped after
/// its last; each test works in a schema of its own. A server that cannot start fails the suite.
struct SharedPostgresCluster: SuiteTrait, TestScoping {
    @TaskLocal static var current: PostgresCluster?

    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let cluster = try await PostgresCluster.start()
        do {
            try await Self.$current.withValue(cluster) { try await function() }
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    /// A fresh schema on the shared server, as a journal URL.
    static func freshURL() async throws -> String {
        let cluster = try #require(current, "the suite's PostgreSQL server is not running")
        return try await cluster.makeSchema()
    }

    /// Runs SQL on the shared server in the schema of `url`.
    @discardableResult
    static func psql(_ sql: String, url: String) async throws -> String {
        let cluster = try #require(current, "the suite's PostgreSQL server is not running")
        return try await cluster.psql(sql, url: url)
    }
}

extension Trait where Self == SharedPostgresCluster {
    static var sharedPostgresCluster: Self { Self() }
}

@Suite(.sharedPostgresCluster)
struct PostgresJournalTests {
    static let stamp = SourceStamp(bytes: 812_345, modified: 1_700_000_000.25)

    static func report(_ source: String, _ status: AssetStatus = .uploaded) -> AssetReport {
        AssetReport(source: source, sha256: "ab12", bytes: 812_345, mime: "image/jpeg", kind: .image, purpose: "thumbnail",
                    status: status, sink: "r2", result: ["key": "thumbnails/ab12.jpg"])
    }

    @Test func aFinishedSourceIsDoneForEveryWorkerWithTheSameStamp() async throws {
        let url = try await SharedPostgresCluster.freshURL()
        let journal = try await PostgresJournal(url: url, worker: "w1")
        let other = try await PostgresJournal(url: url, worker: "w2")

        #expect(try await journal.claim("course.zip!/img/cover.jpg", stamp: Self.stamp) == .claimed)
        try await journal.finish("course.zip!/img/cover.jpg", stamp: Self.stamp, report: Self.report("course.zip!/img/cover.jpg"),
                                 rendition: "r-cover")

        for worker in [journal, other] {
            guard case let .done(done) = try await worker.claim("course.zip!/img/cover.jpg", stamp: Self.stamp) else {
                Issue.record("a finished source was not done")
                continue
            }
            #expect(done.stamp == Self.stamp)
            #expect(done.status == .uploaded)
            #expect(done.rendition == "r-cover")
            #expect(done.report?["status"] == "uploaded")
            #expect(done.report?["result"] == ["key": "thumbnails/ab12.jpg"])
        }
        let row = try await SharedPostgresCluster.psql(
            "SELECT status, rendition, coalesce(worker, '-'), lease_until IS NULL FROM mp_sources", url: url)
        #expect(row == "uploaded|r-cover|-|t")
        await journal.close()
        await other.close()
    }

    struct Reclaim: Sendable, CustomTestStringConvertible {
        var finished: AssetStatus
        var stamp: SourceStamp
        var claimable: Bool
        var testDescription: String { "\(finished) then \(stamp.bytes) bytes, modified \(stamp.modified.map { "\($0)" } ?? "unknown")" }
    }

    @Test(arguments: [
        Reclaim(finished: .uploaded, stamp: PostgresJournalTests.stamp, claimable: false),
        Reclaim(finished: .unchanged, stamp: PostgresJournalTests.stamp, claimable: false),
        Reclaim(finished: .uploaded, stamp: SourceStamp(bytes: 812_346, modified: 1_700_000_000.25), claimable: true),
        Reclaim(finished: .uploaded, stamp: SourceStamp(bytes: 812_345, modified: 1_700_000_000.5), claimable: true),
        Reclaim(finished: .uploaded, stamp: SourceStamp(bytes: 812_345, modified: nil), claimable: true),
        Reclaim(finished: .failed, stamp: PostgresJournalTests.stamp, claimable: true),
        Reclaim(finished: .rejected, stamp: PostgresJournalTests.stamp, claimable: true),
        Reclaim(finished: .pending, stamp: PostgresJournalTests.stamp, claimable: true),
    ])
    func onlyADoneSourceWithTheSameStampIsPassedOver(_ reclaim: Reclaim) async throws {
        let url = try await SharedPostgresCluster.freshURL()
        let first = try await PostgresJournal(url: url, worker: "first")
        let second = try await PostgresJournal(url: url, worker: "second")
        #expect(try await first.claim("a.pdf", stamp: Self.stamp) == .claimed)
        try await first.finish("a.pdf", stamp: Self.stamp, report: Self.report("a.pdf", reclaim.finished), rendition: nil)

        let answer = try await second.claim("a.pdf", stamp: reclaim.stamp)
        if reclaim.claimable {
            #expect(answer == .claimed)
            let row = try await SharedPostgresCluster.psql("SELECT status, worker, bytes FROM mp_sources", url: url)
            #expect(row == "pending|second|\(reclaim.stamp.bytes)")
        } else {
            guard case .done = answer else { Issue.record("expected done, got \(answer)"); return }
        }
        await first.close()
        await second.close()
    }

    @Test func aLiveLeaseKeepsOtherWorkersOutButNotItsOwner() async throws {
        let url = try await SharedPostgresCluster.freshURL()
        let a = try await PostgresJournal(url: url, worker: "a")
        let b = try await PostgresJournal(url: url, worker: "b")
        #expect(try await a.claim("v.mp4", stamp: Self.stamp) == .claimed)
        #expect(try await b.claim("v.mp4", stamp: Self.stamp) == .busy)
        // A worker restarted under the same name takes its own claim back at once.
        #expect(try await a.claim("v.mp4", stamp: Self.stamp) == .claimed)
        #expect(try await b.claim("v.mp4", stamp: Self.stamp) == .busy)
        await a.close()
        await b.close()
    }

    @Test func aDeadWorkersClaimIsTakenOverWhenItsLeaseLapses() async throws {
        let url = try await SharedPostgresCluster.freshURL()
        let a = try await PostgresJournal(url: url, worker: "a", lease: .seconds(2))
        let b = try await PostgresJournal(url: url, worker: "b")
        #expect(try await a.claim("lesson.mp4", stamp: Self.stamp) == .claimed)
        let claimedAt = ContinuousClock.now
        await a.close()  // dies: no finish, no renewal

        // Within the lease the claim is busy; a test process slowed past the lease may see it lapse already.
        let early = try await b.claim("lesson.mp4", stamp: Self.stamp)
        if ContinuousClock.now - claimedAt < .milliseconds(1900) {
            #expect(early == .busy)
        } else {
            #expect(early == .busy || early == .claimed)
        }
        try await Task.sleep(until: claimedAt + .milliseconds(2300))
        #expect(try await b.claim("lesson.mp4", stamp: Self.stamp) == .claimed)
        try await b.finish("lesson.mp4", stamp: Self.stamp, report: Self.report("lesson.mp4"), rendition: "r1")
        #expect(try await SharedPostgresCluster.psql("SELECT status, worker IS NULL FROM mp_sources", url: url) == "uploaded|t")
        await b.close()
    }

    @Test func renewalKeepsALeaseAlivePastItsLengthWhileTheOwnerIsOpen() async throws {
        let url = try await SharedPostgresCluster.freshURL()
        // A 6 s lease renewed every 2 s, from a thread and a connection of the journal's own.
        let a = try await PostgresJournal(url: url, worker: "a", lease: .seconds(6))
        let b = try await PostgresJournal(url: url, worker: "b")
        #expect(try await a.claim("big.zip", stamp: Self.stamp) == .claimed)
        try await Task.sleep(for: .seconds(16))  // two and a half leases
        #expect(try await b.claim("big.zip", stamp: Self.stamp) == .busy)
        // Still a's: b's claim found the lease renewed past its first length (a lease never renewed would have lapsed 10 s ago).
        #expect(try await SharedPostgresCluster.psql("SELECT worker FROM mp_sources", url: url) == "a")
        let renewing = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'media-pipeline/a/lease'"
        #expect(try await SharedPostgresCluster.psql(renewing, url: url) == "1")

        // Closing ends the renewals and their connection.
        await a.close()
        #expect(try await eventually(timeout: 20, every: .milliseconds(200)) {
            try await SharedPostgresCluster.psql(renewing, url: url) == "0"
        })
        await b.close()
    }

    @Test func aWorkerWhoseLeaseWasTakenOverLeavesTheNewHoldersRowAlone() async throws {
        let url = try await SharedPostgresCluster.freshURL()
        // a's renewals are an hour apart, so none can run between the lapse below and b's claim
        // however slowly this test goes; the lapse itself is written straight into the table.
        let a = try await PostgresJournal(url: url, worker: "a", lease: .seconds(3 * 3600))
        let b = try await PostgresJournal(url: url, worker: "b")
        #expect(try await a.claim("slow.mov", stamp: Self.stamp) == .claimed)
        // a stalls past its lease (a long GC pause, a frozen VM): its claim lapses.
        try await SharedPostgresCluster.psql("UPDATE mp_sources SET lease_until = now() - interval '1 second'", url: url)
        #expect(try await b.claim("slow.mov", stamp: Self.stamp) == .claimed)

        try await a.finish("slow.mov", stamp: Self.stamp, report: Self.report("slow.mov", .failed), rendition: nil)
        #expect(try await SharedPostgresCluster.psql("SELECT status, worker FROM mp_sources", url: url) == "pending|b")
        try await b.finish("slow.mov", stamp: Self.stamp, report: Self.report("slow.mov"), rendition: "r1")
        #expect(try await SharedPostgresCluster.psql("SELECT status, worker IS NULL FROM mp_sources", url: url) == "uploaded|t")
        await a.close()
        await b.close()
    }

    @Test func threeWorkersClaimEverySourceExactlyOnce() async throws {
        let url = try await SharedPostgresCluster.freshURL()
        let sources = (0..<200).map { "course/lesson-\($0 / 10)/file-\($0).jpg" }
        // Started together, as an Indexed Job's pods are: the schema is made once, under the advisory lock.
        let journals = try await withThrowingTaskGroup(of: PostgresJournal.self) { group in
            for worker in ["pod-0", "pod-1", "pod-2"] {
                group.addTask { try await PostgresJournal(url: url, worker: worker) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let claimed = try await withThrowingTaskGroup(of: [String].self) { group in
            for journal in journals {
                group.addTask {
                    var mine: [String] = []
                    for source in sources.shuffled() where try await journal.claim(source, stamp: Self.stamp) == .claimed {
                        mine.append(source)
                        try await journal.finish(source, stamp: Self.stamp, report: Self.report(source), rendition: "r-\(source)")
                    }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(claimed.map(\.count).reduce(0, +) == 200)
        #expect(Set(claimed.joined()) == Set(sources))
        #expect(try await SharedPostgresCluster.psql("SELECT status, count(*) FROM mp_sources GROUP BY 1", url: url) == "uploaded|200")
        for journal in journals { await journal.close() }
    }

    @Test func threeWorkersTakeEachDueNotificationExactlyOnce() async throws {
        let url = try await SharedPostgresCluster.freshURL()
        let journals = try await withThrowingTaskGroup(of: PostgresJournal.self) { group in
            for worker in ["pod-0", "pod-1", "pod-2"] { group.addTask { try await PostgresJournal(url: url, worker: worker) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for i in 0..<60 {
            let event = OutboxEvent(id: "msg_\(i)", step: "notify", type: "asset.uploaded", source: "f\(i)", payload: "{}", created: 1_000 + Double(i))
            // Every worker announces it (as after a takeover): one row per id.
            for journal in journals { try await journal.enqueue(event) }
        }
        let taken = try await withThrowingTaskGroup(of: [String].self) { group in
            for journal in journals {
                group.addTask {
                    var mine: [String] = []
                    while true {
                        let due = try await journal.takeDue(step: "notify", now: 5_000, hold: 600, limit: 4)
                        if due.isEmpty { return mine }
                        for var event in due {
                            mine.append(event.id)
                            event.state = .delivered
                            event.attempts += 1
                            try await journal.update(event)
                        }
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(taken.map(\.count).reduce(0, +) == 60)
        #expect(Set(taken.joined()).count == 60)
        #expect(try await journals[0].counts(step: "notify") == OutboxCounts(byState: [.delivered: 60]))
        for journal in journals { await journal.close() }
    }

    @Test func renditionsMoveFromStartedToDoneAndNeverBack() async throws {
        let url = try await SharedPostgresCluster.freshURL()
        let journal = try await PostgresJournal(url: url, worker: "w")
        let key = "sha256:ab12/thumbnail/f00d/r2"
        #expect(try await journal.rendition(key) == nil)

        try await journal.begin(key, sink: "r2")
        #expect(try await journal.rendition(key) == Rendition(key: key, sink: "r2", state: .started))
        let remote: JSONValue = ["parts": [1, 2], "uploadId": "u-1"]
        try await journal.saveRemote(key, remote)
        try await journal.begin(key, sink: "r2")  // idempotent: keeps what was saved
        #expect(try await journal.rendition(key) == Rendition(key: key, sink: "r2", state: .started, remote: remote))

        let result: JSONValue = ["key": "thumbnails/ab12.jpg"]
        try await journal.complete(key, result: result)
        let done = Rendition(key: key, sink: "r2", state: .done, remote: remote, result: result)
        #expect(try await journal.rendition(key) == done)
        try await journal.begin(key, sink: "r2")
        try await journal.saveRemote(key, ["uploadId": "u-2"])
        #expect(try await journal.rendition(key) == done)

        await #expect { try await journal.saveRemote("never-begun", ["uploadId": "x"]) } throws: { error in
            "\(error)".contains("no rendition never-begun") && "\(error)".contains("before begin")
        }
        await #expect { try await journal.complete("never-begun", result: result) } throws: { error in
            "\(error)".contains("no rendition never-begun")
        }
        await journal.close()
    }

    @Test func aKilledConnectionIsReopenedOnTheNextCall() async throws {
        let url = try await SharedPostgresCluster.freshURL()
        let worker = "w-\(UUID().uuidString.prefix(8))"
        let journal = try await PostgresJournal(url: url, worker: worker)
        #expect(try await journal.claim("one.jpg", stamp: Self.stamp) == .claimed)
        let killed = try await SharedPostgresCluster.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'media-pipeline/\(worker)'", url: url)
        #expect(killed == "1")
        #expect(try await journal.claim("two.jpg", stamp: Self.stamp) == .claimed)
        #expect(try await journal.claim("one.jpg", stamp: Self.stamp) == .claimed)
        await journal.close()
    }

    @Test func callsAfterCloseFail() async throws {
        let url = try await SharedPostgresCluster.freshURL()
        let journal = try await PostgresJournal(url: url, worker: "w")
        await journal.close()
        await #expect { try await journal.claim("x", stamp: Self.stamp) } throws: { "\($0)".contains("is closed") }
    }

    @Test func theQueriesInTheScaleOutGuideRunOnARealJournal() async throws {
        let url = try await SharedPostgresCluster.freshURL()
        let journal = try await PostgresJournal(url: url, worker: "pod-0")
        #expect(try await journal.claim("held.jpg", stamp: Self.stamp) == .claimed)
        #expect(try await journal.claim("bad.png", stamp: Self.stamp) == .claimed)
        var rejected = Self.report("bad.png", .rejected)
        rejected.reason = Reason(.typeNotAllowed, "content is text/html")
        try await journal.finish("bad.png", stamp: Self.stamp, report: rejected, rendition: nil)
        try await journal.begin("r-1", sink: "stream")

        let guide = try String(contentsOf: TestFiles.repoRoot.appendingPathComponent("docs/scale-out.md"), encoding: .utf8)
        let block = try #require(guide.components(separatedBy: "```sql\n").last?.components(separatedBy: "```").first)
        let statements = block.split(separator: "\n").filter { !$0.hasPrefix("--") }.joined(separator: "\n")
            .split(separator: ";").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        #expect(statements.count == 6)
        var outputs: [String] = []
        for statement in statements { outputs.append(try await SharedPostgresCluster.psql(statement, url: url)) }
        #expect(outputs.first == "pending|1\nrejected|1")
        #expect(outputs.contains { $0.hasPrefix("pod-0|1|") })
        #expect(outputs.contains("rejected|bad.png|type_not_allowed"))
        #expect(outputs.contains { $0.hasPrefix("r-1|stream|") })
        await journal.close()
    }

    static let canary = "s3cret-canary"

    @Test(arguments: [
        "postgres://mp:\(canary)@127.0.0.1:1/postgres",
        "postgresql://mp:\(canary)@127.0.0.1:1/postgres?connect_timeout=2",
        "postgres://mp@127.0.0.1:1/postgres?password=\(canary)",
        "postgres://mp:\(canary)@127.0.0.1:1/post gres",
        "postgres://mp:\(canary)@127.0.0.1:notaport/postgres",
        "mysql://mp:\(canary)@127.0.0.1:1/postgres",
        "host=127.0.0.1 port=1 user=mp password=\(canary) dbname=postgres",
        "host=127.0.0.1 port=1 user=mp password='\(canary)' dbname=postgres",
    ])
    func aBadURLOrRefusedConnectionNamesTheServerButNeverThePassword(_ url: String) async throws {
        let error = await #expect(throws: (any Error).self) { try await PostgresJournal(url: url, worker: "w") }
        let text = "\(error.map { "\($0)" } ?? "")"
        #expect(!text.contains(Self.canary), "\(text)")
        #expect(text.contains("PostgreSQL journal"), "\(text)")
        #expect(text.contains("***"), "\(text)")
    }

    @Test func aServerThatIsGoneFailsTheCallAfterOneReconnectWithoutThePassword() async throws {
        let cluster = try await PostgresCluster.start()
        // Trust authentication never asks for the password, so the canary only travels in the URL.
        let url = cluster.url.replacingOccurrences(of: "mp@", with: "mp:\(Self.canary)@")
        let journal = try await PostgresJournal(url: url, worker: "w")
        #expect(try await journal.claim("a.jpg", stamp: Self.stamp) == .claimed)
        await cluster.stop()
        let error = await #expect(throws: (any Error).self) { try await journal.claim("b.jpg", stamp: Self.stamp) }
        let text = "\(error.map { "\($0)" } ?? "")"
        #expect(text.contains("reconnecting failed"), "\(text)")
        #expect(text.contains("mp:***@127.0.0.1:\(cluster.port)"), "\(text)")
        #expect(!text.contains(Self.canary), "\(text)")
        await journal.close()
    }
}
