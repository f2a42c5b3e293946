import Foundation
import MediaPipeline
import SQLiteJournal
import TestSupport
import Testing

/// The notify.webhook stage through the real binary: uploads to the local fakes, events to a
/// receiver that checks the Standard Webhooks signature with its own HMAC and dedupes by id.
@Suite(.serialized)
struct NotifyTests {
    let cli = CLITests()
    let uploads = UploadTests()

    /// The upload tests' pipeline with a notify step appended (stages[7]); `options` override its defaults here.
    func pipeline(in dir: URL, options: [String: String] = [:]) throws -> URL {
        let base = try uploads.pipeline(in: dir)
        var text = try String(contentsOf: base, encoding: .utf8)
        let last = #"{ "name": "stream",  "kind": "cloudflare.stream", "options": { "basicThreshold": "1KB" } }"#
        let settings = ["url": "${NOTIFY_URL}", "secret": "${NOTIFY_SECRET}", "timeout": "1s", "flushTimeout": "4s", "maxDelay": "500ms"]
            .merging(options) { _, new in new }
        let notify = JSONValue.object([("name", "notify"), ("kind", "notify.webhook"),
                                       ("options", .object(settings.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))])
        text = text.replacingOccurrences(of: last, with: last + ",\n    " + notify.compactText)
        #expect(text.contains("notify.webhook"))
        try text.write(to: base, atomically: true, encoding: .utf8)
        return base
    }

    struct Setup {
        let cloudflare: CloudflareFake
        let s3: S3Fake
        let input: URL
        let pipeline: URL
        let journal: URL

        func environment(url: String) -> [String: String] {
            cloudflare.environment.merging(s3.environment) { a, _ in a }
                .merging(["NOTIFY_URL": url, "NOTIFY_SECRET": WebhookReceiver.secret]) { a, _ in a }
        }

        /// Requests that uploaded something: Images POSTs and R2 PUTs.
        func uploadRequests() async throws -> Int {
            let images = try await cloudflare.server.log().filter { $0["method"] == "POST" }.count
            let r2 = try await s3.server.log().filter { $0["method"] == "PUT" }.count
            return images + r2
        }
    }

    func setup(_ dir: URL, files: [String] = ["photo.jpg", "doc.pdf", "lesson.png"], options: [String: String] = [:]) async throws -> Setup {
        Setup(cloudflare: try await CloudflareFake(), s3: try await S3Fake(), input: try cli.folder(files, in: dir),
              pipeline: try pipeline(in: dir, options: options), journal: dir.appendingPathComponent("journal.db"))
    }

    func run(_ setup: Setup, url: String, _ more: [String] = []) async -> Shell.Result {
        await cli.run(["run", setup.input.path, "--pipeline", setup.pipeline.path, "--journal", setup.journal.path] + more,
                environment: setup.environment(url: url))
    }

    func types(_ processed: [(key: String, value: JSONValue)]) -> [String] {
        processed.compactMap { $0.value["type"]?.stringValue }.sorted()
    }

    @Test func everyEndedFileIsAnnouncedOnceWithAValidSignature() async throws {
        let receiver = try await WebhookReceiver()
        try await TestFiles.withTemporaryDirectory { dir in
            let setup = try await setup(dir)
            let result = await run(setup, url: receiver.url, ["--json"])
            #expect(result.status == 1, "one file is rejected; stderr: \(result.stderr)")
            let deliveries = try await receiver.deliveries()
            #expect(deliveries.count == 4 && deliveries.allSatisfy { $0["verified"] == .bool(true) && $0["status"] == 200 })
            let processed = try await receiver.processed()
            #expect(types(processed) == ["asset.rejected", "asset.uploaded", "asset.uploaded", "batch.completed"])
            // Each event carries the manifest row, and no secret.
            let rejected = try #require(processed.first { $0.value["type"] == "asset.rejected" }?.value)
            #expect(rejected["data"]?["reason"] == "type_not_allowed")
            #expect(uploads.string(rejected["data"]?["source"])?.hasSuffix("/lesson.png") == true)
            let uploaded = processed.filter { $0.value["type"] == "asset.uploaded" }.map(\.value)
            #expect(Set(uploaded.compactMap { $0["data"]?["sink"]?.stringValue }) == ["cloudflare-images", "r2"])
            let bodies = processed.map(\.value.compactText).joined()
            #expect(!bodies.contains(CloudflareFake.token) && !bodies.contains(WebhookReceiver.secret))
            #expect(!bodies.contains(setup.s3.environment["CLOUDFLARE_R2_SECRET_ACCESS_KEY"]!))
            let summary = try #require(try uploads.rows(result.stdout).last)
            #expect(summary["notifications"]?["delivered"] == 4 && summary["notifications"]?["pending"] == 0)

            // A rerun finds every file done: no upload, no new asset event, one new batch event.
            let before = try await setup.uploadRequests()
            let again = await run(setup, url: receiver.url)
            #expect(again.status == 1, "stderr: \(again.stderr)")
            #expect(try await setup.uploadRequests() == before)
            #expect(types(try await receiver.processed()) == ["asset.rejected", "asset.uploaded", "asset.uploaded", "batch.completed", "batch.completed"])
        }
    }

    @Test("H1: the receiver is down for the whole run: uploads finish, exit 5, the next run delivers without re-uploading")
    func aReceiverThatIsDownGetsTheBacklogFromTheNextRun() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let setup = try await setup(dir, files: ["photo.jpg", "doc.pdf"])
            // Held by a socket that never listens: refused, and taken by no other test's server.
            let reserved = try ReservedPort()
            let port = reserved.port
            let url = "http://127.0.0.1:\(port)/hooks/media"
            let first = await run(setup, url: url)
            #expect(first.status == 5, "stderr: \(first.stderr)")
            #expect(first.stderr.contains("notify 'notify': cannot deliver"))
            #expect(first.stderr.contains("3 pending") && first.stderr.contains("notify flush"))
            #expect(first.stderr.contains("2 uploaded"))
            let uploaded = try await setup.uploadRequests()
            #expect(uploaded == 2)

            reserved.release()
            let receiver = try await WebhookReceiver(port: port)
            let second = await run(setup, url: url)
            #expect(second.status == 0, "stderr: \(second.stderr)")
            #expect(try await setup.uploadRequests() == uploaded)
            let processed = try await receiver.processed()
            // The backlog (two files and the first batch) and the second run's batch.
            #expect(types(processed) == ["asset.uploaded", "asset.uploaded", "batch.completed", "batch.completed"])
            #expect(try await receiver.deliveries().allSatisfy { $0["verified"] == .bool(true) })
        }
    }

    @Test func notifyFlushDeliversTheBacklogWithoutRunningAnything() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let setup = try await setup(dir, files: ["photo.jpg", "doc.pdf"])
            let reserved = try ReservedPort()
            let port = reserved.port
            let url = "http://127.0.0.1:\(port)/hooks/media"
            await #expect(run(setup, url: url).status == 5)
            let status = await cli.run(["notify", "status", "--pipeline", setup.pipeline.path, "--journal", setup.journal.path],
                                 environment: setup.environment(url: url))
            #expect(status.status == 0 && status.stdout.contains("notify: 3 pending, 0 delivered"), "\(status.stdout)\(status.stderr)")
            let uploaded = try await setup.uploadRequests()

            reserved.release()
            let receiver = try await WebhookReceiver(port: port)
            let flush = await cli.run(["notify", "flush", "--pipeline", setup.pipeline.path, "--journal", setup.journal.path],
                                environment: setup.environment(url: url))
            #expect(flush.status == 0, "stderr: \(flush.stderr)")
            #expect(flush.stderr.contains("notifications: 3 delivered, 0 pending"))
            #expect(types(try await receiver.processed()) == ["asset.uploaded", "asset.uploaded", "batch.completed"])
            #expect(try await setup.uploadRequests() == uploaded)
            let journal = try SQLiteJournal(path: setup.journal.path)
            #expect(try await journal.counts(step: "notify") == OutboxCounts(byState: [.delivered: 3]))
            #expect(try await journal.integrityCheck() == "ok")
            await journal.close()
        }
    }

    @Test("H3: a receiver slower than the timeout gets the event again with the same id and processes it once")
    func aSlowReceiverSeesARetryWithTheSameID() async throws {
        let receiver = try await WebhookReceiver()
        try await receiver.script(delayFirst: 2.5)
        try await TestFiles.withTemporaryDirectory { dir in
            let setup = try await setup(dir, files: ["doc.pdf"], options: ["flushTimeout": "20s"])
            let result = await run(setup, url: receiver.url)
            #expect(result.status == 0, "stderr: \(result.stderr)")
            // The receiver logs a slow delivery when it answers, after the run has moved on.
            var deliveries = try await receiver.deliveries()
            for _ in 0..<50 where deliveries.count < 4 {
                try await Task.sleep(for: .milliseconds(100))
                deliveries = try await receiver.deliveries()
            }
            let ids = deliveries.compactMap { $0["id"]?.stringValue }
            // Two events (the file, the batch), each delivered twice under one id, processed once.
            #expect(Set(ids).count == 2 && ids.count == 4)
            #expect(Dictionary(grouping: ids, by: { $0 }).values.allSatisfy { $0.count == 2 })
            #expect(try await receiver.processed().count == 2)
        }
    }

    @Test func aReceiverThat4xxsIsNotRetriedButA503Is() async throws {
        let receiver = try await WebhookReceiver()
        try await receiver.script(statuses: [400, 503])
        try await TestFiles.withTemporaryDirectory { dir in
            let setup = try await setup(dir, files: ["doc.pdf"])
            let result = await run(setup, url: receiver.url)
            // One event refused for good: the run says so with 5.
            #expect(result.status == 5, "stderr: \(result.stderr)")
            #expect(result.stderr.contains("notify_refused") && result.stderr.contains("HTTP 400"))
            let deliveries = try await receiver.deliveries()
            let byID = Dictionary(grouping: deliveries, by: { $0["id"]?.stringValue ?? "" })
            // The 400 was the only try of its event; the 503 was tried again and taken.
            #expect(deliveries.count == 3 && byID.count == 2)
            #expect(byID.values.contains { $0.map { $0["status"] } == [400] })
            #expect(byID.values.contains { $0.map { $0["status"] } == [503, 200] })
            #expect(result.stderr.contains("1 delivered, 0 pending, 1 refused"))
        }
    }

    @Test func anEventOlderThanMaxAgeIsGivenUp() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let setup = try await setup(dir, files: ["doc.pdf"], options: ["maxAge": "2s", "flushTimeout": "1s"])
            let reserved = try ReservedPort()
            let port = reserved.port
            let url = "http://127.0.0.1:\(port)/hooks/media"
            await #expect(run(setup, url: url).status == 5)
            try await Task.sleep(for: .seconds(2.5))
            reserved.release()
            let receiver = try await WebhookReceiver(port: port)
            let flush = await cli.run(["notify", "flush", "--pipeline", setup.pipeline.path, "--journal", setup.journal.path],
                                environment: setup.environment(url: url))
            #expect(flush.status == 5)
            #expect(flush.stderr.components(separatedBy: "notify_expired").count == 3, "stderr: \(flush.stderr)")
            #expect(flush.stderr.contains("0 delivered, 0 pending, 2 expired"))
            #expect(try await receiver.deliveries().isEmpty)
        }
    }

    @Test func withoutAJournalUndeliveredEventsAreReportedLost() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let setup = try await setup(dir, files: ["doc.pdf"], options: ["flushTimeout": "1s"])
            let reserved = try ReservedPort()
            let url = "http://127.0.0.1:\(reserved.port)/hooks/media"
            let result = await cli.run(["run", setup.input.path, "--pipeline", setup.pipeline.path, "--no-journal"],
                                 environment: setup.environment(url: url))
            #expect(result.status == 5)
            #expect(result.stderr.contains("this run has no journal, so they are lost"))
            reserved.release()
        }
    }

    @Test("bad notify settings are config errors that never show the secret", arguments: [
        ("NOTIFY_SECRET", "not-a-standard-secret-value", "stages[7].options.secret: must start with whsec_"),
        ("NOTIFY_SECRET", "whsec_%%%notbase64%%%", "the part after whsec_ is not base64"),
        ("NOTIFY_URL", "http://hooks.example.com/x", "plain http:// is allowed only to this machine"),
        ("NOTIFY_URL", "ftp://127.0.0.1/x", "the scheme 'ftp' is not http or https"),
    ])
    func badSettingsExitTwo(_ name: String, _ value: String, _ message: String) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let pipeline = try pipeline(in: dir)
            var env = ["NOTIFY_URL": "http://127.0.0.1:9/x", "NOTIFY_SECRET": WebhookReceiver.secret]
            env[name] = value
            let result = await cli.run(["validate", pipeline.path], environment: env)
            #expect(result.status == 2)
            #expect(result.stderr.contains(message), "stderr: \(result.stderr)")
            if name == "NOTIFY_SECRET" { #expect(!result.stderr.contains(value)) }
        }
    }
}
