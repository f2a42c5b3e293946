import Foundation
import MediaPipeline
import TestSupport
import Testing

/// Many workers on one PostgreSQL journal, each a real `media-pipeline run`.
struct WorkersTests {
    let cli = CLITests()
    let upload = UploadTests()
    let resume = ResumeTests()

    @Test("three workers import one course while one is killed mid-way: every file is uploaded exactly once")
    func threeWorkersOneKilled() async throws {
        let cluster = try await PostgresCluster.start()
        let cloudflare = try await CloudflareFake()
        let s3 = try await S3Fake()
        do {
            // Slow enough that each worker is still busy when the test, on a loaded machine, gets round to killing one.
            try await resume.slowUploads(cloudflare, s3, seconds: 2)
            try await TestFiles.withTemporaryDirectory { dir in
                let course = try resume.cleanCourse(in: dir)
                // Short leases, so the killed worker's files are taken over within the test.
                var text = try String(contentsOf: try upload.pipeline(in: dir), encoding: .utf8)
                text = text.replacingOccurrences(of: #""uploads": 8"#, with: #""uploads": 8, "lease": "4s""#)
                let pipeline = dir.appendingPathComponent("workers.json")
                try text.write(to: pipeline, atomically: true, encoding: .utf8)
                #expect(text.contains(#""lease": "4s""#))
                let journal = try await cluster.makeSchema()
                var env = cloudflare.environment.merging(s3.environment) { a, _ in a }
                env["MEDIA_PIPELINE_JOURNAL"] = journal
                let args = ["run", course.path, "--pipeline", pipeline.path, "--json", "--uploads", "1", "--concurrency", "1"]
                var workers: [Spawned] = []
                for n in 1...3 {
                    var own = env
                    own["MEDIA_PIPELINE_WORKER"] = "worker-\(n)"
                    workers.append(try Spawned(args, environment: own, in: dir))
                }
                // Kill worker 2 mid-way: once it has finished one file (so it holds claims and has
                // journaled work), while it still has more to do.
                let stopped = await workers[1].signal(SIGKILL, onceOutputContains: #""event":"asset""#, within: 60)
                try #require(stopped, "worker 2 ended before it could be killed mid-way: \(workers[1].errors)")
                #expect(await workers[1].wait(timeout: 60) == SIGKILL)
                for n in [0, 2] {
                    #expect(await workers[n].wait(timeout: 240) == 0, "worker \(n + 1): \(workers[n].errors)")
                }
                // Every source ended once among the two survivors (the killed worker's rows are lost with it).
                let rows = try (workers[0].output + workers[2].output).split(separator: "\n")
                    .map { try JSONValue.parse(Data($0.utf8)) }.filter { $0["event"] == "asset" }
                let uploaded = rows.filter { $0["status"] == "uploaded" }
                let sources = Set(rows.compactMap { upload.string($0["source"]) })
                #expect(sources.count == 11, "sources reported: \(sources.count)")
                // The journal holds one finished row per source.
                let done = try await cluster.psql("SELECT count(*) FROM mp_sources WHERE status IN ('uploaded', 'unchanged')", url: journal)
                #expect(done == "11")
                // The remote side holds exactly one copy of each: what the survivors uploaded plus
                // what the killed worker finished before it died.
                let finalRows = try await cluster.psql("SELECT report FROM mp_sources ORDER BY source", url: journal)
                let reports = try finalRows.split(separator: "\n").map { try JSONValue.parse(Data($0.utf8)) }
                #expect(reports.count == 11)
                try await resume.expectExactlyOnce(reports, cloudflare, s3)
                // And none was accepted twice: at most one accepted upload request per file in the
                // fakes' logs (a file the killed worker sent whose answer it never saw is found by
                // the worker that takes it over, not sent again).
                let sent = try await cloudflare.server.log().filter { ($0["status"] == 200 || $0["status"] == 201) && $0["method"] == "POST" }
                let imagePosts = sent.filter { upload.string($0["path"])?.hasSuffix("/images/v1") == true }.count
                let streamPosts = sent.filter { upload.string($0["path"])?.hasSuffix("/stream") == true }.count
                let objectPuts = try await s3.server.log().filter {
                    $0["method"] == "PUT" && $0["status"] == 200 && upload.string($0["query"])?.contains("partNumber") != true
                }.count
                #expect(imagePosts <= reports.filter { $0["sink"] == "cloudflare-images" }.count)
                #expect(streamPosts <= reports.filter { $0["sink"] == "stream" }.count)
                #expect(objectPuts <= reports.filter { $0["sink"] == "r2" }.count)
                #expect(uploaded.count <= 11)
            }
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }
}
