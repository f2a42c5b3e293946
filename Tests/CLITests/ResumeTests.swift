import Foundation
import MediaPipeline
import TestSupport
import Testing

/// The journal end to end: reruns, crashes at named points and at random moments, and stops by
/// signal, against the local Cloudflare fake and the moto S3 server.
@Suite(.serialized)
struct ResumeTests {
    let cli = CLITests()
    let upload = UploadTests()

    /// The example course without its deliberately bad file, so a clean import exits 0.
    func cleanCourse(in dir: URL) throws -> URL {
        let copy = dir.appendingPathComponent("course")
        try FileManager.default.copyItem(at: try UploadTests.course(), to: copy)
        try FileManager.default.removeItem(at: copy.appendingPathComponent("bad"))
        return copy
    }

    /// A file of `bytes` that libmagic takes for a PDF (it goes to R2), with varied content.
    /// A folder with one PDF of `bytes`, a pipeline sending it to R2 in 5 MiB parts, and the
    /// arguments of a run with a journal in `dir`.
    func multipartImport(in dir: URL, bytes: Int) throws -> (arguments: [String], journal: URL) {
        let folder = dir.appendingPathComponent("in")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try bigPDF(folder.appendingPathComponent("big.pdf"), bytes: bytes)
        var text = try String(contentsOf: try upload.pipeline(in: dir), encoding: .utf8)
        text = text.replacingOccurrences(of: #""keyTemplate": "{purposePrefix}{sha256}{ext}""#,
                                         with: #""keyTemplate": "{purposePrefix}{sha256}{ext}", "multipartThreshold": "6MB", "partSize": "5MiB""#)
        let pipeline = dir.appendingPathComponent("multipart.json")
        try text.write(to: pipeline, atomically: true, encoding: .utf8)
        let journal = dir.appendingPathComponent("j.db")
        return (["run", folder.path, "--pipeline", pipeline.path, "--journal", journal.path, "--json", "--uploads", "1"], journal)
    }

    func bigPDF(_ url: URL, bytes: Int) throws {
        var data = Data("%PDF-1.4\n".utf8)
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        data.reserveCapacity(bytes)
        while data.count < bytes - 6 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            withUnsafeBytes(of: seed) { data.append(contentsOf: $0) }
        }
        data.append(contentsOf: Array("\n%%EOF".utf8))
        try data.write(to: url)
    }

    func integrity(_ journal: URL) -> String {
        let check = Shell.run("/usr/bin/python3", ["-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])",
                                                    journal.path])
        return check.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func assets(_ result: Shell.Result) throws -> [JSONValue] {
        try upload.rows(result.stdout).filter { $0["event"] == "asset" }
    }

    func string(_ value: JSONValue?) -> String? { upload.string(value) }

    @Test("G5: a rerun with the journal uploads nothing and says unchanged; without it, R2 and Images find their copies")
    func rerunOfAFinishedImport() async throws {
        let cloudflare = try await CloudflareFake()
        let s3 = try await S3Fake()
        try await TestFiles.withTemporaryDirectory { dir in
            let env = cloudflare.environment.merging(s3.environment) { a, _ in a }
            let course = try cleanCourse(in: dir), pipeline = try upload.pipeline(in: dir)
            let journal = dir.appendingPathComponent("state/journal.db")
            let first = await cli.run(["run", course.path, "--pipeline", pipeline.path, "--journal", journal.path, "--json"], environment: env)
            #expect(first.status == 0, "stderr: \(first.stderr)")
            #expect(try assets(first).allSatisfy { $0["status"] == "uploaded" })
            let requests = try await cloudflare.server.log().count + s3.server.log().count

            let again = await cli.run(["run", course.path, "--pipeline", pipeline.path, "--journal", journal.path, "--json"], environment: env)
            #expect(again.status == 0)
            let rows = try assets(again)
            let firstRows = try assets(first)
            #expect(rows.count == firstRows.count)
            #expect(rows.allSatisfy { $0["status"] == "unchanged" && $0["result"] != .null })
            #expect(again.stderr.contains("\(rows.count) unchanged"))
            #expect(try await cloudflare.server.log().count + s3.server.log().count == requests, "a finished import sent requests again")
            #expect(integrity(journal) == "ok")

            // Without the journal: R2 objects are found by their sha256, images by their content-derived id.
            let bare = await cli.run(["run", course.path, "--pipeline", pipeline.path, "--no-journal", "--json"], environment: env)
            #expect(bare.status == 0)
            let r2AndImages = try assets(bare).filter { $0["sink"] == "r2" || $0["sink"] == "cloudflare-images" }
            #expect(!r2AndImages.isEmpty && r2AndImages.allSatisfy { $0["result"]?["existing"] == true })
        }
    }

    @Test("a file changed since it was journaled is imported again")
    func changedFileIsImportedAgain() async throws {
        let s3 = try await S3Fake()
        try await TestFiles.withTemporaryDirectory { dir in
            let folder = dir.appendingPathComponent("in")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try Data("first text\n".utf8).write(to: folder.appendingPathComponent("notes.txt"))
            try Data("other\n".utf8).write(to: folder.appendingPathComponent("more.txt"))
            let journal = dir.appendingPathComponent("j.db"), pipeline = try upload.pipeline(in: dir)
            let args = ["run", folder.path, "--pipeline", pipeline.path, "--journal", journal.path, "--json"]
            #expect(await cli.run(args, environment: s3.environment).status == 0)
            try Data("second, longer text\n".utf8).write(to: folder.appendingPathComponent("notes.txt"))
            let again = await cli.run(args, environment: s3.environment)
            let rows = try assets(again)
            #expect(rows.first { string($0["source"])?.hasSuffix("notes.txt") == true }?["status"] == "uploaded")
            #expect(rows.first { string($0["source"])?.hasSuffix("more.txt") == true }?["status"] == "unchanged")
        }
    }

    @Test("G1: killed after part 2 of 4 of a multipart upload, the rerun sends only the missing parts")
    func multipartResumesFromItsParts() async throws {
        let s3 = try await S3Fake()
        try await TestFiles.withTemporaryDirectory { dir in
            let (args, journal) = try multipartImport(in: dir, bytes: 16 * 1024 * 1024 + 12_345)
            var env = s3.environment
            env["MEDIA_PIPELINE_CRASH_AT"] = "after_part_uploaded:2"
            let crashed = await cli.run(args, environment: env)
            #expect(crashed.status == SIGKILL, "expected the crash point to kill the run: \(crashed.stderr)")
            let before = try await s3.server.log()
            let partsBefore = before.filter { $0["method"] == "PUT" && string($0["query"])?.contains("partNumber") == true }.count
            #expect(partsBefore >= 2)
            #expect(integrity(journal) == "ok")

            let resumed = await cli.run(args, environment: s3.environment)
            #expect(resumed.status == 0, "stderr: \(resumed.stderr)")
            let after = try await s3.server.log().dropFirst(before.count)
            let partsAfter = after.filter { $0["method"] == "PUT" && string($0["query"])?.contains("partNumber") == true }
            // Four parts in all; the two confirmed before the crash are not sent again.
            #expect(partsAfter.count <= 2, "re-sent \(partsAfter.count) parts")
            #expect(!partsAfter.contains { string($0["query"])?.contains("partNumber=1&") == true || string($0["query"])?.contains("partNumber=2&") == true })
            #expect(after.contains { $0["method"] == "GET" && string($0["query"])?.contains("uploadId") == true }, "no ListParts")
            let row = try #require(try assets(resumed).first)
            #expect(row["status"] == "uploaded")
            let key = try #require(string(row["result"]?["key"]))
            #expect(string(try await s3.objects()[key]?["sha256"]) == string(row["sha256"]))
            #expect(try await s3.server.control("/__fake/multipart") == .array([]), "a multipart upload was left open")
            #expect(integrity(journal) == "ok")
        }
    }

    @Test("killed after R2 created a multipart upload but before its id was journaled, the rerun finds that upload and leaves none open")
    func multipartCreatedButNotJournaledIsAdopted() async throws {
        let s3 = try await S3Fake()
        try await TestFiles.withTemporaryDirectory { dir in
            let (args, journal) = try multipartImport(in: dir, bytes: 11 * 1024 * 1024)
            var env = s3.environment
            env["MEDIA_PIPELINE_CRASH_AT"] = "after_multipart_created"
            let crashed = await cli.run(args, environment: env)
            #expect(crashed.status == SIGKILL, "expected the crash point to kill the run: \(crashed.stderr)")
            guard case let .array(open) = try await s3.server.control("/__fake/multipart") else { Issue.record("no listing"); return }
            #expect(open.count == 1, "the crashed run should have left its new upload open: \(open)")

            let resumed = await cli.run(args, environment: s3.environment)
            #expect(resumed.status == 0, "stderr: \(resumed.stderr)")
            let log = try await s3.server.log()
            let creates = log.filter { $0["method"] == "POST" && string($0["query"]) == "uploads" }
            #expect(creates.count == 1, "the rerun created a second upload instead of finding the first")
            #expect(log.contains { $0["method"] == "GET" && string($0["query"])?.contains("uploads") == true }, "no ListMultipartUploads")
            #expect(try await s3.server.control("/__fake/multipart") == .array([]), "a multipart upload was left open")
            let row = try #require(try assets(resumed).first)
            let key = try #require(string(row["result"]?["key"]))
            #expect(string(try await s3.objects()[key]?["sha256"]) == string(row["sha256"]))
            #expect(integrity(journal) == "ok")
        }
    }

    @Test("G3: killed after the provider committed but before the journal recorded it, the rerun reconciles without duplicates")
    func commitBeforeJournalIsReconciled() async throws {
        let cloudflare = try await CloudflareFake()
        let s3 = try await S3Fake()
        try await TestFiles.withTemporaryDirectory { dir in
            let env = cloudflare.environment.merging(s3.environment) { a, _ in a }
            let course = try cleanCourse(in: dir), pipeline = try upload.pipeline(in: dir)
            let journal = dir.appendingPathComponent("j.db")
            let args = ["run", course.path, "--pipeline", pipeline.path, "--journal", journal.path, "--json", "--uploads", "1", "--concurrency", "1"]
            for point in 1...3 {
                var crashEnv = env
                crashEnv["MEDIA_PIPELINE_CRASH_AT"] = "after_remote_commit_before_journal:\(point)"
                let crashed = await cli.run(args, environment: crashEnv)
                #expect(crashed.status == SIGKILL)
                #expect(integrity(journal) == "ok")
            }
            let final = await cli.run(args, environment: env)
            #expect(final.status == 0, "stderr: \(final.stderr)")
            let rows = try assets(final)
            #expect(rows.allSatisfy { $0["status"] == "uploaded" || $0["status"] == "unchanged" })
            // Exactly one remote copy per file.
            let images = rows.filter { $0["sink"] == "cloudflare-images" }.count
            let objects = rows.filter { $0["sink"] == "r2" }.compactMap { string($0["result"]?["key"]) }
            let videos = rows.filter { $0["sink"] == "stream" }.count
            #expect(try await cloudflare.state()["images"]?.objectPairsCount == images)
            #expect(try await cloudflare.state()["videos"]?.objectPairsCount == videos)
            guard case let .object(stored) = try await s3.objects() else { Issue.record("no object listing"); return }
            #expect(Set(stored.map(\.key)) == Set(objects))
        }
    }

    /// Slows every upload request down, so a run lasts long enough to be interrupted.
    func slowUploads(_ cloudflare: CloudflareFake, _ s3: S3Fake, seconds: Double) async throws {
        let delays = JSONValue.array(Array(repeating: .object([("delay", .number(seconds))]), count: 2000))
        try await cloudflare.server.faults([.object([("method", "*"), ("path", "/(images/v1|stream)"), ("actions", delays)])])
        try await s3.server.faults([.object([("method", "PUT"), ("path", "/"), ("actions", delays)])])
    }

    /// What the fakes hold must be exactly what the rows say: one image per image row, one
    /// complete video per video row (and no incomplete one), one object per R2 key, no multipart
    /// upload left open.
    func expectExactlyOnce(_ rows: [JSONValue], _ cloudflare: CloudflareFake, _ s3: S3Fake) async throws {
        let state = try await cloudflare.state()
        let images = rows.filter { $0["sink"] == "cloudflare-images" }.compactMap { string($0["result"]?["id"]) }
        guard case let .object(storedImages)? = state["images"], case let .object(videos)? = state["videos"],
              case let .object(objects) = try await s3.objects() else {
            Issue.record("the fakes gave no state")
            return
        }
        #expect(Set(storedImages.map(\.key)) == Set(images))
        let complete = videos.filter { $0.value["offset"] == $0.value["length"] && $0.value["length"] != .number(0) }
        let videoRows = rows.filter { $0["sink"] == "stream" }
        #expect(complete.count == videoRows.count, "videos: \(videos.map { ($0.key, $0.value["offset"], $0.value["length"]) })")
        let keys = rows.filter { $0["sink"] == "r2" }.compactMap { string($0["result"]?["key"]) }
        #expect(Set(objects.map(\.key)) == Set(keys))
        #expect(try await s3.server.control("/__fake/multipart") == .array([]), "a multipart upload was left open")
    }

    @Test("killed at 20 random moments, then run to the end: every file ends once, the remote side holds exactly one copy of each")
    func randomKillsThenResume() async throws {
        let cloudflare = try await CloudflareFake()
        let s3 = try await S3Fake()
        try await slowUploads(cloudflare, s3, seconds: 0.15)
        try await TestFiles.withTemporaryDirectory { dir in
            let env = cloudflare.environment.merging(s3.environment) { a, _ in a }
            let course = try cleanCourse(in: dir), pipeline = try upload.pipeline(in: dir)
            // 120 more small files, so the import outlasts twenty kills even on a fast idle machine
            // (each uploads in 0.15 s, two at a time: 9 s of uploads, while twenty kills come
            // after 7 s of runs on average).
            let extra = course.appendingPathComponent("lessons/extra")
            try FileManager.default.createDirectory(at: extra, withIntermediateDirectories: true)
            for n in 1...120 { try Data("Exercise \(n): describe the light in one photo.\n".utf8).write(to: extra.appendingPathComponent("exercise-\(n).txt")) }
            let journal = dir.appendingPathComponent("j.db")
            let args = ["run", course.path, "--pipeline", pipeline.path, "--journal", journal.path, "--json", "--uploads", "2"]
            var generator = SystemRandomNumberGenerator()
            var kills = 0, rounds = 0
            while kills < 20, rounds < 80 {
                rounds += 1
                // The kill comes from `timeout`, at the moment drawn, however busy this process is.
                let moment = Double.random(in: 0.1...0.6, using: &generator)
                let run = try Spawned(args, environment: env, in: dir, killAfter: moment)
                let status = await run.wait(timeout: 120)
                // `timeout` kills its whole process group, itself included: the status is the signal.
                let killed = status == SIGKILL || status == 128 + SIGKILL
                #expect(status == 0 || killed, "run \(rounds) ended with \(String(describing: status)): \(run.errors)")
                if killed { kills += 1 }
                #expect(integrity(journal) == "ok", "journal damaged after kill \(kills)")
            }
            #expect(kills >= 20)
            try await cloudflare.server.faults([])
            try await s3.server.faults([])
            let final = await cli.run(args, environment: env)
            #expect(final.status == 0, "stderr: \(final.stderr)")
            let rows = try assets(final)
            #expect(rows.count == 131)
            #expect(Set(rows.compactMap { string($0["source"]) }).count == 131, "a source was reported twice")
            #expect(rows.allSatisfy { $0["status"] == "uploaded" || $0["status"] == "unchanged" })
            try await expectExactlyOnce(rows, cloudflare, s3)
            #expect(integrity(journal) == "ok")
        }
    }

    @Test("SIGINT: no new file starts, the manifest gets every file (the rest pending), exit 130; the rerun finishes the import")
    func interruptedRunFlushesAndResumes() async throws {
        let cloudflare = try await CloudflareFake()
        let s3 = try await S3Fake()
        try await slowUploads(cloudflare, s3, seconds: 0.5)
        try await TestFiles.withTemporaryDirectory { dir in
            let env = cloudflare.environment.merging(s3.environment) { a, _ in a }
            let course = try cleanCourse(in: dir), pipeline = try upload.pipeline(in: dir)
            let journal = dir.appendingPathComponent("j.db"), manifest = dir.appendingPathComponent("m.jsonl")
            let args = ["run", course.path, "--pipeline", pipeline.path, "--journal", journal.path, "--json", "--uploads", "1",
                        "--concurrency", "1", "--manifest", manifest.path]
            let run = try Spawned(args, environment: env, in: dir)
            // Interrupt once the first file has finished.
            let sent = await run.signal(SIGINT, onceOutputContains: #""event":"asset""#, within: 60)
            try #require(sent, "the run ended before it could be interrupted: \(run.errors)")
            #expect(await run.wait(timeout: 60) == 130, "stderr: \(run.errors)")
            let rows = try upload.rows(try String(contentsOf: manifest, encoding: .utf8))
            #expect(rows.count == 11, "the manifest is not complete")
            let pending = rows.filter { $0["status"] == "pending" }
            #expect(!pending.isEmpty && pending.allSatisfy { $0["reason"] == "interrupted" })
            #expect(rows.filter { $0["status"] == "uploaded" }.count + pending.count == 11)
            #expect(run.errors.contains("stopping") && run.errors.contains("run the same command again"))
            // Every event line is still one JSON object.
            #expect(try upload.rows(run.output).count == 12)
            #expect(integrity(journal) == "ok")

            try await cloudflare.server.faults([])
            try await s3.server.faults([])
            let again = await cli.run(args, environment: env)
            #expect(again.status == 0, "stderr: \(again.stderr)")
            let second = try assets(again)
            #expect(second.filter { $0["status"] == "uploaded" }.count == pending.count)
            #expect(second.filter { $0["status"] == "unchanged" }.count == 11 - pending.count)
            try await expectExactlyOnce(second, cloudflare, s3)
        }
    }

    /// An MP4 header libmagic recognises, then `bytes` of varied data in an `mdat` box.
    func fakeMP4(_ url: URL, bytes: Int) throws {
        var data = Data([0, 0, 0, 0x18]) + Data("ftypmp42".utf8) + Data([0, 0, 0, 0]) + Data("mp42isom".utf8)
        let payload = bytes - data.count - 8
        data += withUnsafeBytes(of: UInt32(payload + 8).bigEndian) { Data($0) } + Data("mdat".utf8)
        var seed: UInt64 = 0x2545_F491_4F6C_DD1D
        data.reserveCapacity(bytes)
        while data.count < bytes {
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17
            withUnsafeBytes(of: seed) { data.append(contentsOf: $0.prefix(bytes - data.count)) }
        }
        try data.write(to: url)
    }

    @Test("G2: killed after 2 of 5 tus chunks, the rerun continues from the server's offset and re-sends at most one chunk more than the rest")
    func tusResumesFromTheServersOffset() async throws {
        let cloudflare = try await CloudflareFake()
        try await TestFiles.withTemporaryDirectory { dir in
            let folder = dir.appendingPathComponent("videos")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let chunk = 5 * 1024 * 1024, size = 5 * chunk - 4_321
            try fakeMP4(folder.appendingPathComponent("lecture.mp4"), bytes: size)
            var text = try String(contentsOf: try upload.pipeline(in: dir), encoding: .utf8)
            text = text.replacingOccurrences(of: #""basicThreshold": "1KB""#, with: #""basicThreshold": "1KB", "chunkSize": "5MiB""#)
            let pipeline = dir.appendingPathComponent("tus.json")
            try text.write(to: pipeline, atomically: true, encoding: .utf8)
            #expect(text.contains("5MiB"))
            let journal = dir.appendingPathComponent("j.db")
            let args = ["run", folder.path, "--pipeline", pipeline.path, "--journal", journal.path, "--json"]
            var env = cloudflare.environment
            env["MEDIA_PIPELINE_CRASH_AT"] = "after_chunk_uploaded:2"
            let crashed = await cli.run(args, environment: env)
            #expect(crashed.status == SIGKILL, "stderr: \(crashed.stderr)")
            let before = try await cloudflare.server.log().count
            let resumed = await cli.run(args, environment: cloudflare.environment)
            #expect(resumed.status == 0, "stderr: \(resumed.stderr)")
            let patches = try await cloudflare.server.log().dropFirst(before).filter { $0["method"] == "PATCH" }
            let resent = patches.reduce(0) { total, entry in
                if case let .number(n)? = entry["bytes_in"] { return total + Int(n) }
                return total
            }
            // 40 % had gone up; the rest is 60 %, and at most one chunk more may be sent again.
            #expect(resent >= size - 2 * chunk && resent <= size - 2 * chunk + chunk, "re-sent \(resent) of \(size)")
            #expect(!(try await cloudflare.server.log().dropFirst(before).contains { $0["method"] == "POST" }), "a new tus upload was created")
            let row = try #require(try assets(resumed).first)
            #expect(row["status"] == "uploaded")
            #expect(row["result"]?["resumedFrom"] == .number(Double(2 * chunk)))
            let uid = try #require(string(row["result"]?["id"]))
            let video = try #require(try await cloudflare.state()["videos"]?[uid])
            #expect(video["sha256"] == row["sha256"] && video["offset"] == .number(Double(size)))
            #expect(try await cloudflare.state()["videos"]?.objectPairsCount == 1)
        }
    }

    @Test("killed after Stream created a tus upload but before its uid was journaled, the rerun deletes that pending upload and leaves one complete video")
    func tusCreatedButNotJournaledIsDeleted() async throws {
        let cloudflare = try await CloudflareFake()
        try await TestFiles.withTemporaryDirectory { dir in
            let folder = dir.appendingPathComponent("videos")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let size = 2 * 5 * 1024 * 1024 + 777
            try fakeMP4(folder.appendingPathComponent("lecture.mp4"), bytes: size)
            var text = try String(contentsOf: try upload.pipeline(in: dir), encoding: .utf8)
            text = text.replacingOccurrences(of: #""basicThreshold": "1KB""#, with: #""basicThreshold": "1KB", "chunkSize": "5MiB""#)
            let pipeline = dir.appendingPathComponent("tus.json")
            try text.write(to: pipeline, atomically: true, encoding: .utf8)
            let journal = dir.appendingPathComponent("j.db")
            let args = ["run", folder.path, "--pipeline", pipeline.path, "--journal", journal.path, "--json"]
            var env = cloudflare.environment
            env["MEDIA_PIPELINE_CRASH_AT"] = "after_tus_created"
            let crashed = await cli.run(args, environment: env)
            #expect(crashed.status == SIGKILL, "expected the crash point to kill the run: \(crashed.stderr)")
            guard case let .object(left)? = try await cloudflare.state()["videos"] else { Issue.record("no videos in the fake's state"); return }
            #expect(left.count == 1 && left.first?.value["state"] == "pendingupload", "the crashed run should have left one empty upload: \(left)")
            let orphan = try #require(left.first?.key)
            let fingerprint = try #require(string(left.first?.value["meta"]?["mpfingerprint"]), "the upload carries no fingerprint")
            #expect(integrity(journal) == "ok")
            let before = try await cloudflare.server.log().count

            let resumed = await cli.run(args, environment: cloudflare.environment)
            #expect(resumed.status == 0, "stderr: \(resumed.stderr)")
            let later = Array(try await cloudflare.server.log().dropFirst(before))
            #expect(later.contains { $0["method"] == "GET" && string($0["query"])?.contains("status=pendingupload") == true }, "no listing of pending uploads")
            #expect(later.filter { $0["method"] == "DELETE" }.count == 1)
            #expect(later.contains { $0["method"] == "DELETE" && string($0["path"])?.hasSuffix("/stream/\(orphan)") == true }, "the orphan was not deleted")
            #expect(later.filter { $0["method"] == "POST" && string($0["path"])?.hasSuffix("/stream") == true }.count == 1)
            let row = try #require(try assets(resumed).first)
            #expect(row["status"] == "uploaded")
            let uid = try #require(string(row["result"]?["id"]))
            guard case let .object(videos)? = try await cloudflare.state()["videos"] else { Issue.record("no videos in the fake's state"); return }
            #expect(videos.map { $0.key } == [uid], "exactly the one video the manifest names should remain: \(videos.map { $0.key })")
            let video = try #require(videos.first?.value)
            #expect(video["state"] != "pendingupload")
            #expect(video["sha256"] == row["sha256"] && video["offset"] == .number(Double(size)))
            #expect(string(video["meta"]?["mpfingerprint"]) == fingerprint, "the rerun should reuse the journaled fingerprint")
            #expect(integrity(journal) == "ok")
        }
    }

    @Test("E8: the work folder fills up while an entry is extracted: disk_full, exit 3, no temporary file left, journal intact; a rerun with space does the rest")
    func diskFullIsFatalAndResumable() async throws {
        let s3 = try await S3Fake()
        try await TestFiles.withTemporaryDirectory { dir in
            let small = dir.appendingPathComponent("small")
            try FileManager.default.createDirectory(at: small, withIntermediateDirectories: true)
            let mounted = Shell.run("/bin/mount", ["-t", "tmpfs", "-o", "size=20m", "tmpfs", small.path])
            try #require(mounted.status == 0, "a 20 MiB tmpfs is needed (the tests run as root): \(mounted.stderr)")
            defer { _ = Shell.run("/bin/umount", ["-l", small.path]) }
            let zip = dir.appendingPathComponent("course.zip"), big = dir.appendingPathComponent("big.pdf")
            try bigPDF(big, bytes: 30 * 1024 * 1024)
            let made = Shell.run("/usr/bin/python3", ["-c", """
                import sys, zipfile
                with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_STORED) as z:
                    z.writestr("a-notes.txt", "first\\n")
                    z.write(sys.argv[2], "b-big.pdf")
                    z.writestr("c-after.txt", "after the big one\\n")
                """, zip.path, big.path])
            try #require(made.status == 0, "\(made.stderr)")
            let journal = dir.appendingPathComponent("j.db")
            let args = ["run", zip.path, "--pipeline", try upload.pipeline(in: dir).path, "--journal", journal.path, "--json",
                        "--concurrency", "1", "--uploads", "1"]
            let full = await cli.run(args + ["--work-dir", small.path], environment: s3.environment)
            #expect(full.status == 3, "stderr: \(full.stderr)")
            let rows = try assets(full)
            #expect(rows.first { string($0["source"])?.hasSuffix("!/b-big.pdf") == true }?["reason"] == "disk_full")
            #expect(rows.first { string($0["source"])?.hasSuffix("!/a-notes.txt") == true }?["status"] == "uploaded")
            #expect(rows.first { string($0["source"])?.hasSuffix("!/c-after.txt") == true }?["status"] == "pending")
            #expect(TestFiles.listing(small).filter { $0.contains("entry-") }.isEmpty, "left: \(TestFiles.listing(small))")
            #expect(integrity(journal) == "ok")

            let again = await cli.run(args + ["--work-dir", dir.appendingPathComponent("roomy").path], environment: s3.environment)
            #expect(again.status == 0, "stderr: \(again.stderr)")
            let second = try assets(again)
            #expect(second.filter { $0["status"] == "uploaded" }.count == 2)
            #expect(second.filter { $0["status"] == "unchanged" }.count == 1)
        }
    }
}
