import Foundation
import MediaPipeline
import SQLiteJournal
import TestSupport
import Testing

struct SQLiteJournalTests {
    static let stamp = SourceStamp(bytes: 812_345, modified: 1_700_000_000.25)

    static func report(_ source: String, _ status: AssetStatus = .uploaded) -> AssetReport {
        AssetReport(source: source, sha256: "ab12", bytes: stamp.bytes, mime: "image/jpeg", kind: .image,
                    purpose: "thumbnail", status: status, sink: "cloudflare-images",
                    result: ["id": "img-1", "url": "https://imagedelivery.net/x/img-1/public"], milliseconds: 41.2)
    }

    /// A journal in a new temporary folder, closed and removed after `body`.
    static func withJournal<T>(_ body: (SQLiteJournal, URL) async throws -> T) async throws -> T {
        try await TestFiles.withTemporaryDirectory { dir in
            let file = dir.appendingPathComponent("journal.db")
            let journal = try SQLiteJournal(path: file.path)
            do {
                let value = try await body(journal, file)
                await journal.close()
                return value
            } catch {
                await journal.close()
                throw error
            }
        }
    }

    /// Runs Python's sqlite3 on `file`, to prepare files this journal did not write.
    static func sqlite(_ file: URL, _ sql: String) {
        let result = Shell.run("/usr/bin/python3", ["-c", "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.executescript(sys.argv[2])\nc.commit()",
                                                     file.path, sql])
        #expect(result.status == 0, "\(result.stderr)")
    }

    // MARK: Sources

    @Test("a finished source is done on the next claim with the same stamp, report and rendition kept")
    func claimFinishDone() async throws {
        try await Self.withJournal { journal, _ in
            #expect(try await journal.claim("course.zip!/img/cover.jpg", stamp: Self.stamp) == .claimed)
            let report = Self.report("course.zip!/img/cover.jpg")
            try await journal.finish("course.zip!/img/cover.jpg", stamp: Self.stamp, report: report, rendition: "r-1")
            let claim = try await journal.claim("course.zip!/img/cover.jpg", stamp: Self.stamp)
            guard case let .done(done) = claim else { Issue.record("expected done, got \(claim)"); return }
            #expect(done.stamp == Self.stamp)
            #expect(done.status == .uploaded)
            #expect(done.rendition == "r-1")
            // Stored as compact JSON; parsing sorts keys, so compare parsed with parsed.
            #expect(done.report == (try JSONValue.parse(Data(report.json.compactText.utf8))))
            #expect(done.report?["result"]?["id"] == "img-1")
        }
    }

    @Test("a source without a modification time is done when both stamps have none")
    func noModificationTime() async throws {
        try await Self.withJournal { journal, _ in
            let stamp = SourceStamp(bytes: 10, modified: nil)
            #expect(try await journal.claim("a.zip!/x.pdf", stamp: stamp) == .claimed)
            try await journal.finish("a.zip!/x.pdf", stamp: stamp, report: Self.report("a.zip!/x.pdf", .unchanged), rendition: nil)
            guard case let .done(done) = try await journal.claim("a.zip!/x.pdf", stamp: stamp) else {
                Issue.record("expected done"); return
            }
            #expect(done.status == .unchanged)
            #expect(done.rendition == nil)
        }
    }

    static let changedStamps: [SourceStamp] = [
        SourceStamp(bytes: stamp.bytes + 1, modified: stamp.modified),
        SourceStamp(bytes: stamp.bytes, modified: stamp.modified! + 0.001),
        SourceStamp(bytes: stamp.bytes, modified: nil),
    ]

    @Test("a changed size or modification time makes a done source claimable again", arguments: changedStamps)
    func changedStampIsClaimable(_ changed: SourceStamp) async throws {
        try await Self.withJournal { journal, _ in
            _ = try await journal.claim("a.jpg", stamp: Self.stamp)
            try await journal.finish("a.jpg", stamp: Self.stamp, report: Self.report("a.jpg"), rendition: "r-1")
            #expect(try await journal.claim("a.jpg", stamp: changed) == .claimed)
            // The claim recorded the new stamp and `pending`: the old stamp is no longer done either.
            #expect(try await journal.claim("a.jpg", stamp: Self.stamp) == .claimed)
        }
    }

    @Test("only uploaded and unchanged are done; other endings are claimed again",
          arguments: [AssetStatus.pending, .failed, .rejected, .skipped, .planned])
    func unfinishedStatusesAreClaimable(_ status: AssetStatus) async throws {
        try await Self.withJournal { journal, _ in
            _ = try await journal.claim("a.jpg", stamp: Self.stamp)
            try await journal.finish("a.jpg", stamp: Self.stamp, report: Self.report("a.jpg", status), rendition: nil)
            #expect(try await journal.claim("a.jpg", stamp: Self.stamp) == .claimed)
        }
    }

    // MARK: Renditions

    @Test("a rendition goes started → remote saved → done, and a later begin keeps it done")
    func renditionLifecycle() async throws {
        try await Self.withJournal { journal, _ in
            #expect(try await journal.rendition("sha|thumbnail|f1|r2") == nil)
            try await journal.begin("sha|thumbnail|f1|r2", sink: "r2")
            try await journal.begin("sha|thumbnail|f1|r2", sink: "r2")
            #expect(try await journal.rendition("sha|thumbnail|f1|r2") == Rendition(key: "sha|thumbnail|f1|r2", sink: "r2", state: .started))

            let remote: JSONValue = ["parts": [["etag": "\"e1\"", "number": 1]], "uploadId": "u-1"]
            try await journal.saveRemote("sha|thumbnail|f1|r2", remote)
            #expect(try await journal.rendition("sha|thumbnail|f1|r2")?.remote == remote)

            try await journal.complete("sha|thumbnail|f1|r2", result: ["key": "thumbnails/sha.jpg"])
            try await journal.begin("sha|thumbnail|f1|r2", sink: "r2")
            #expect(try await journal.rendition("sha|thumbnail|f1|r2")
                    == Rendition(key: "sha|thumbnail|f1|r2", sink: "r2", state: .done, remote: remote, result: ["key": "thumbnails/sha.jpg"]))
        }
    }

    @Test("saving progress for a rendition never begun is an error, not a silent no-op")
    func progressNeedsBegin() async throws {
        try await Self.withJournal { journal, file in
            let error = await #expect(throws: SQLiteJournalError.self) { try await journal.saveRemote("nope", ["uploadId": "u"]) }
            #expect(error?.kind == .failed)
            #expect(error?.path == file.path)
            #expect(error?.description.contains("rendition nope was never begun") == true)
            await #expect(throws: SQLiteJournalError.self) { try await journal.complete("nope", result: [:]) }
        }
    }

    // MARK: Durability and sharing

    @Test("everything survives closing and reopening the file; calls after close throw")
    func reopenKeepsEverything() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let file = dir.appendingPathComponent("nested/state/journal.db")
            let first = try SQLiteJournal(path: file.path)
            _ = try await first.claim("a.jpg", stamp: Self.stamp)
            try await first.begin("r-1", sink: "cloudflare-images")
            try await first.saveRemote("r-1", ["id": "reserved"])
            try await first.complete("r-1", result: ["id": "img-1"])
            try await first.finish("a.jpg", stamp: Self.stamp, report: Self.report("a.jpg"), rendition: "r-1")
            try await first.begin("r-2", sink: "stream")
            try await first.saveRemote("r-2", ["tus": "https://upload.example/tus/abc"])
            _ = try await first.claim("b.mp4", stamp: SourceStamp(bytes: 5, modified: nil))

            // WAL mode is recorded in the file header (bytes 18 and 19 are 2).
            let header = try Data(contentsOf: file).prefix(20)
            #expect(header[18] == 2 && header[19] == 2)
            await first.close()
            let closed = await #expect(throws: SQLiteJournalError.self) { try await first.claim("a.jpg", stamp: Self.stamp) }
            #expect(closed?.kind == .closed)

            let folder = try FileManager.default.attributesOfItem(atPath: file.deletingLastPathComponent().path)
            #expect((folder[.posixPermissions] as? NSNumber)?.intValue == 0o700)

            let second = try SQLiteJournal(path: file.path)
            guard case let .done(done) = try await second.claim("a.jpg", stamp: Self.stamp) else {
                Issue.record("expected done after reopening"); return
            }
            #expect(done.rendition == "r-1")
            #expect(try await second.rendition("r-1") == Rendition(key: "r-1", sink: "cloudflare-images", state: .done,
                                                                   remote: ["id": "reserved"], result: ["id": "img-1"]))
            #expect(try await second.rendition("r-2")?.remote == ["tus": "https://upload.example/tus/abc"])
            #expect(try await second.rendition("r-2")?.state == .started)
            // The same worker name takes its own pending source back at once (a rerun after a crash).
            #expect(try await second.claim("b.mp4", stamp: SourceStamp(bytes: 5, modified: nil)) == .claimed)
            #expect(try await second.integrityCheck() == "ok")
            await second.close()
        }
    }

    @Test("a second worker on the same file is told busy while the first holds the lease, and takes over when it lapses")
    func leases() async throws {
        try await Self.withJournal { _, file in
            let a = try SQLiteJournal(path: file.path, worker: "a")
            let b = try SQLiteJournal(path: file.path, worker: "b")
            #expect(try await a.claim("x.jpg", stamp: Self.stamp) == .claimed)
            #expect(try await b.claim("x.jpg", stamp: Self.stamp) == .busy)
            #expect(try await a.claim("x.jpg", stamp: Self.stamp) == .claimed)

            let later = try SQLiteJournal(path: file.path, worker: "b", leaseSeconds: 600,
                                          now: { Date().timeIntervalSince1970 + 601 })
            #expect(try await later.claim("x.jpg", stamp: Self.stamp) == .claimed)
            #expect(try await a.claim("x.jpg", stamp: Self.stamp) == .busy)

            try await later.finish("x.jpg", stamp: Self.stamp, report: Self.report("x.jpg"), rendition: nil)
            guard case .done = try await a.claim("x.jpg", stamp: Self.stamp) else { Issue.record("expected done"); return }
            for journal in [a, b, later] { await journal.close() }
        }
    }

    @Test("1,000 calls from 8 tasks at once leave a sound file with every row in place")
    func concurrentCalls() async throws {
        try await Self.withJournal { journal, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<8 {
                    group.addTask {
                        for n in 0..<25 {  // 5 calls each: 8 × 25 × 5 = 1,000
                            let source = "t\(task)/f\(n).jpg", key = "r-\(task)-\(n)"
                            #expect(try await journal.claim(source, stamp: Self.stamp) == .claimed)
                            try await journal.begin(key, sink: "r2")
                            try await journal.saveRemote(key, ["uploadId": .string(key)])
                            try await journal.complete(key, result: ["key": .string(source)])
                            try await journal.finish(source, stamp: Self.stamp, report: Self.report(source), rendition: key)
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await journal.integrityCheck() == "ok")
            for (task, n) in [(0, 0), (3, 12), (7, 24)] {
                guard case let .done(done) = try await journal.claim("t\(task)/f\(n).jpg", stamp: Self.stamp) else {
                    Issue.record("t\(task)/f\(n).jpg is not done"); continue
                }
                #expect(try await journal.rendition(done.rendition ?? "")?.state == .done)
            }
        }
    }

    // MARK: Files that are not journals

    @Test("a file that is not SQLite is refused with its path, and left untouched")
    func garbageFile() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let file = dir.appendingPathComponent("journal.db")
            let garbage = Data(String(repeating: "not a database at all\n", count: 200).utf8)
            try garbage.write(to: file)
            let error = #expect(throws: SQLiteJournalError.self) { try SQLiteJournal(path: file.path) }
            #expect(error?.kind == .notAJournal)
            #expect(error?.description.contains(file.path) == true)
            #expect(error?.message.contains("not a database") == true)
            #expect(try Data(contentsOf: file) == garbage)
        }
    }

    @Test("an SQLite file of some other program is refused")
    func otherDatabase() async throws {
        await TestFiles.withTemporaryDirectory { dir in
            let file = dir.appendingPathComponent("other.db")
            Self.sqlite(file, "CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT);")
            let error = #expect(throws: SQLiteJournalError.self) { try SQLiteJournal(path: file.path) }
            #expect(error?.kind == .notAJournal)
            #expect(error?.description.contains("photos") == true)
        }
    }

    @Test("a journal written by a newer version is refused, naming both versions")
    func newerSchema() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let file = dir.appendingPathComponent("journal.db")
            await (try SQLiteJournal(path: file.path)).close()
            Self.sqlite(file, "UPDATE meta SET value = '3' WHERE key = 'schema_version';")
            let error = #expect(throws: SQLiteJournalError.self) { try SQLiteJournal(path: file.path) }
            #expect(error?.kind == .newerSchema)
            #expect(error?.description.contains("schema version 3") == true)
            #expect(error?.description.contains(file.path) == true)
        }
    }

    // MARK: Outbox

    static func event(_ id: String, created: Double = 1_000, step: String = "notify") -> OutboxEvent {
        OutboxEvent(id: id, step: step, type: "asset.uploaded", source: "course.zip!/\(id).jpg", payload: #"{"type":"asset.uploaded"}"#,
                    created: created)
    }

    @Test("outbox events are kept once per id, taken oldest first and held while in flight, and their outcome recorded")
    func outboxRoundTrip() async throws {
        try await Self.withJournal { journal, file in
            for (i, id) in ["b", "a", "c"].enumerated() { try await journal.enqueue(Self.event(id, created: 1_000 + Double(i))) }
            // The same id again (a rerun announcing the same ending) changes nothing.
            try await journal.enqueue(OutboxEvent(id: "a", step: "notify", type: "other", source: "", payload: "{}", created: 5))
            try await journal.enqueue(Self.event("z", step: "other-step"))
            #expect(try await journal.counts(step: "notify") == OutboxCounts(byState: [.pending: 3], earliestPending: 1_000))

            let first = try await journal.takeDue(step: "notify", now: 2_000, hold: 30, limit: 2)
            #expect(first.map(\.id) == ["b", "a"])
            #expect(first[1].type == "asset.uploaded" && first[1].payload == #"{"type":"asset.uploaded"}"#)
            // Held: not due again until the hold ends.
            #expect(try await journal.takeDue(step: "notify", now: 2_001, hold: 30, limit: 10).map(\.id) == ["c"])
            #expect(try await journal.takeDue(step: "notify", now: 2_030.5, hold: 30, limit: 10).map(\.id) == ["b", "a"])

            var delivered = first[0]
            delivered.state = .delivered
            delivered.attempts = 2
            try await journal.update(delivered)
            var waiting = first[1]
            waiting.attempts = 1
            waiting.nextAttempt = 9_000
            waiting.lastError = "HTTP 503"
            try await journal.update(waiting)
            await journal.close()

            let reopened = try SQLiteJournal(path: file.path)
            let counts = try await reopened.counts(step: "notify")
            #expect(counts[.delivered] == 1 && counts[.pending] == 2)
            let due = try await reopened.takeDue(step: "notify", now: 9_000, hold: 1, limit: 10)
            #expect(due.map(\.id) == ["c", "a"] && due[1].attempts == 1 && due[1].lastError == "HTTP 503")
            #expect(try await reopened.integrityCheck() == "ok")
            await reopened.close()
        }
    }

    @Test("a journal of schema version 1 gains the outbox and keeps its rows")
    func upgradeFromVersionOne() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let file = dir.appendingPathComponent("journal.db")
            let old = try SQLiteJournal(path: file.path)
            #expect(try await old.claim("a.jpg", stamp: Self.stamp) == .claimed)
            try await old.finish("a.jpg", stamp: Self.stamp, report: Self.report("a.jpg"), rendition: nil)
            await old.close()
            Self.sqlite(file, "DROP TABLE outbox; UPDATE meta SET value = '1' WHERE key = 'schema_version';")

            let journal = try SQLiteJournal(path: file.path)
            guard case .done = try await journal.claim("a.jpg", stamp: Self.stamp) else {
                Issue.record("the finished source was lost in the upgrade")
                return
            }
            try await journal.enqueue(Self.event("e"))
            #expect(try await journal.counts(step: "notify")[.pending] == 1)
            await journal.close()
            let version = Shell.run("/usr/bin/python3", ["-c", "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT value FROM meta WHERE key = 'schema_version'\").fetchone()[0])", file.path])
            #expect(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "2")
        }
    }

    @Test("a path whose folder cannot be created is refused, naming the path")
    func folderIsAFile() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let blocker = dir.appendingPathComponent("plain-file")
            try Data("x".utf8).write(to: blocker)
            let file = blocker.appendingPathComponent("journal.db")
            let error = #expect(throws: SQLiteJournalError.self) { try SQLiteJournal(path: file.path) }
            #expect(error?.kind == .cannotOpen)
            #expect(error?.description.contains(file.path) == true)
        }
    }

    @Test("a folder given as the journal file is refused")
    func pathIsAFolder() async throws {
        await TestFiles.withTemporaryDirectory { dir in
            let error = #expect(throws: SQLiteJournalError.self) { try SQLiteJournal(path: dir.path) }
            #expect(error?.kind == .cannotOpen)
            #expect(error?.description.contains("\(dir.path): it is a folder") == true)
        }
    }

    // /proc takes no new files even from root, unlike a folder with its write bits off.
    @Test func aJournalWhereNothingCanBeWrittenIsRefused() async throws {
        let file = "/proc/media-pipeline-journal-test/journal.db"
        let error = #expect(throws: SQLiteJournalError.self) { try SQLiteJournal(path: file) }
        #expect(error?.kind == .cannotOpen)
        #expect(error?.description.contains(file) == true)
    }
}
