import Foundation
import MediaPipeline
import Synchronization
import TestSupport
import Testing

/// Real runs of the binary against the local Cloudflare fake and the moto S3 server.
struct UploadTests {
    let cli = CLITests()

    private static let builtCourse = Mutex<URL?>(nil)

    /// The bundled example course, built once per test process.
    static func course() throws -> URL {
        try builtCourse.withLock { cached in
            if let cached { return cached }
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mp-course-\(UUID().uuidString.prefix(8))")
            let made = Shell.run("/bin/bash", [TestFiles.repoRoot.appendingPathComponent("examples/make-course.sh").path, dir.path])
            guard made.status == 0 else { throw TestFiles.FixtureError(description: "make-course.sh failed: \(made.stderr)") }
            cached = dir
            return dir
        }
    }

    /// The bundled pipeline with the API budget raised for local fakes, quick retries, and tus
    /// for any video over 1 KB (so the example's short clip goes through tus).
    func pipeline(in dir: URL) throws -> URL {
        var text = try String(contentsOf: TestFiles.repoRoot.appendingPathComponent("pipeline.json"), encoding: .utf8)
        text = text.replacingOccurrences(of: #""apiRequestsPer5Min": 600"#,
                                         with: #""apiRequestsPer5Min": 100000, "retry": { "baseDelay": "20ms", "maxDelay": "100ms" }"#)
        text = text.replacingOccurrences(of: #"{ "name": "stream",  "kind": "cloudflare.stream" }"#,
                                         with: #"{ "name": "stream",  "kind": "cloudflare.stream", "options": { "basicThreshold": "1KB" } }"#)
        #expect(text.contains("100000") && text.contains("basicThreshold"))
        let url = dir.appendingPathComponent("pipeline.json")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func rows(_ text: String) throws -> [JSONValue] {
        try text.split(separator: "\n").map { try JSONValue.parse(Data($0.utf8)) }
    }

    func string(_ value: JSONValue?) -> String? { if case let .string(s)? = value { s } else { nil } }

    @Test("the example course lands in Images, R2 and Stream; a rerun sends nothing new")
    func exampleCourseEndToEnd() async throws {
        let cloudflare = try await CloudflareFake()
        // A bucket of its own: a request another test's process sends to a port this server
        // took over later names another bucket, and is not counted below.
        let bucket = "course-\(UUID().uuidString.prefix(8).lowercased())"
        let s3 = try await S3Fake(arguments: ["--bucket", bucket])
        try await TestFiles.withTemporaryDirectory { dir in
            let env = cloudflare.environment.merging(s3.environment) { a, _ in a }
            // First the plan, with the same environment: nothing may be sent.
            let planned = await cli.run(["run", try Self.course().path, "--pipeline", try pipeline(in: dir).path, "--dry-run", "--json"],
                                  environment: env)
            let plans = try rows(planned.stdout).filter { $0["event"] == "asset" && $0["status"] == "planned" }
            #expect(plans.count == 11)
            let cloudflareLog = try await cloudflare.server.log()
            let s3Log = try await s3.server.log().filter { string($0["path"])?.hasPrefix("/\(bucket)") == true }
            #expect(cloudflareLog.isEmpty && s3Log.isEmpty, "sent during the dry-run: \(cloudflareLog) \(s3Log)")
            let manifest = dir.appendingPathComponent("manifest.jsonl")
            let result = await cli.run(["run", try Self.course().path, "--pipeline", try pipeline(in: dir).path, "--manifest", manifest.path],
                                 environment: env)
            #expect(result.status == 1, "stderr: \(result.stderr)")  // the course holds one bad file on purpose
            let rows = try rows(try String(contentsOf: manifest, encoding: .utf8))
            #expect(rows.count == 12)
            #expect(rows.filter { $0["status"] == "rejected" }.map { string($0["reason"]) } == ["type_not_allowed"])
            #expect(rows.filter { $0["status"] == "uploaded" }.count == 11)
            // The real run did what the plan said: same sink, same id or key, for every file.
            for plan in plans {
                let row = try #require(rows.first { $0["source"] == plan["source"] })
                #expect(row["sink"] == plan["sink"])
                if plan["sink"] == "r2" { #expect(row["result"]?["key"] == plan["result"]?["key"]) }
                if plan["sink"] == "cloudflare-images" { #expect(row["result"]?["id"] == plan["result"]?["id"]) }
                #expect(row["result"]?["bytes"] == plan["result"]?["bytes"])
            }

            // Images: every image, under its content id, with its metadata.
            let images = try await cloudflare.state()["images"]
            let imageRows = rows.filter { $0["sink"] == "cloudflare-images" }
            #expect(imageRows.count == 5)
            for row in imageRows {
                let id = try #require(string(row["result"]?["id"]))
                #expect(id == "mp/\(string(row["purpose"]) ?? "")/\(string(row["sha256"]) ?? "")")
                #expect(images?[id]?["meta"]?["sha256"] != nil)
                #expect(string(row["result"]?["url"])?.hasPrefix("https://imagedelivery.net/") == true)
            }

            // R2: documents under their purpose prefix, typed from their content, marked as downloads.
            let objects = try await s3.objects()
            let r2Rows = rows.filter { $0["sink"] == "r2" }
            #expect(r2Rows.count == 5)
            for row in r2Rows {
                let key = try #require(string(row["result"]?["key"]))
                let sha = try #require(string(row["sha256"]))
                #expect(key.contains(sha))
                let object = try #require(objects[key], "no object \(key)")
                #expect(object["content_type"] == row["mime"])
                #expect(object["sha256"] == .string(sha))
                #expect(object["metadata"]?["sha256"] == .string(sha))
                #expect(object["content_disposition"] == "attachment")
            }
            #expect(Set(r2Rows.compactMap { string($0["result"]?["key"])?.split(separator: "/").first.map(String.init) })
                    == ["materials", "resources", "attachments"])

            // Stream: the video, through tus.
            let videoRow = try #require(rows.first { $0["sink"] == "stream" })
            let uid = try #require(string(videoRow["result"]?["id"]))
            let video = try #require(try await cloudflare.state()["videos"]?[uid])
            #expect(video["sha256"] == videoRow["sha256"])
            #expect(try await cloudflare.server.log().contains { $0["method"] == "PATCH" })

            // A rerun finds everything already there: no new image, object or PUT.
            let puts = try await s3.server.log().filter { $0["method"] == "PUT" }.count
            let again = await cli.run(["run", try Self.course().path, "--pipeline", try pipeline(in: dir).path, "--json"], environment: env)
            #expect(again.status == 1)
            let second = try self.rows(again.stdout).filter { $0["event"] == "asset" }
            #expect(second.filter { $0["sink"] == "cloudflare-images" || $0["sink"] == "r2" }.allSatisfy { $0["result"]?["existing"] == true })
            #expect(try await cloudflare.state()["images"]?.objectPairsCount == 5)
            #expect(try await s3.server.log().filter { $0["method"] == "PUT" }.count == puts)
        }
    }

    @Test func withoutTheImagesVariablesImagesLandInR2() async throws {
        let s3 = try await S3Fake()
        try await TestFiles.withTemporaryDirectory { dir in
            let result = await cli.run(["run", try Self.course().appendingPathComponent("images").path, "--pipeline", try pipeline(in: dir).path,
                                  "--json"], environment: s3.environment)
            #expect(result.status == 0, "stderr: \(result.stderr)")
            let assets = try rows(result.stdout).filter { $0["event"] == "asset" }
            #expect(assets.count == 3)
            #expect(assets.allSatisfy { $0["sink"] == "r2" && $0["status"] == "uploaded" })
            let objects = try await s3.objects()
            for row in assets {
                let key = try #require(string(row["result"]?["key"]))
                #expect(string(objects[key]?["content_type"])?.hasPrefix("image/") == true)
                #expect(objects[key]?["content_disposition"] == nil || objects[key]?["content_disposition"] == .null)
            }
        }
    }

    @Test("I1: canary secrets never appear in output, manifest or work files, even when a server echoes them")
    func canariesNeverLeak() async throws {
        let token = "canary-tok-\(UUID().uuidString.prefix(12))"
        let cloudflare = try await CloudflareFake(token: token)
        try await cloudflare.server.faults([["method": "POST", "path": "/images/v1$", "actions": [["status": 400, "echo_headers": true]]],
                                            ["method": "POST", "path": "/stream$", "actions": [["status": 500, "echo_headers": true]]]])
        let secret = "canary-r2-\(UUID().uuidString.prefix(12))"
        try await TestFiles.withTemporaryDirectory { dir in
            let s3 = try await S3Fake()
            var env = cloudflare.environment.merging(s3.environment) { a, _ in a }
            env["CLOUDFLARE_R2_SECRET_ACCESS_KEY"] = secret  // wrong on purpose: R2 refuses it
            let manifest = dir.appendingPathComponent("m.jsonl"), work = dir.appendingPathComponent("work")
            var outputs: [String] = []
            for extra in [["--verbose"], ["--dry-run", "--verbose", "--json"]] {
                let result = await cli.run(["run", try Self.course().path, "--pipeline", try pipeline(in: dir).path, "--manifest", manifest.path,
                                      "--work-dir", work.path] + extra, environment: env)
                outputs += [result.stdout, result.stderr, try String(contentsOf: manifest, encoding: .utf8)]
            }
            #expect(outputs[1].contains("provider_rejected") && outputs[1].contains("auth_failed"))
            for file in TestFiles.listing(work) {
                if let data = FileManager.default.contents(atPath: work.appendingPathComponent(file).path) {
                    outputs.append(String(decoding: data, as: UTF8.self))
                }
            }
            for canary in [token, secret] {
                for form in [canary, Data(canary.utf8).base64EncodedString(),
                             canary.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? canary] {
                    #expect(!outputs.contains { $0.contains(form) }, "a canary leaked")
                }
            }
        }
    }

    @Test("I2: a dry-run shows method, host, path, type, size and sha256, and the token's last four characters at most")
    func dryRunPlanShowsTheRequests() async throws {
        let token = "dry-run-token-\(UUID().uuidString.prefix(8))-ab12"
        try await TestFiles.withTemporaryDirectory { dir in
            let env = ["CLOUDFLARE_ACCOUNT_ID": "acc123", "CLOUDFLARE_API_TOKEN": token]
            let result = await cli.run(["run", try Self.course().appendingPathComponent("images/cover.jpg").path, "--dry-run", "--json",
                                  "--pipeline", try pipeline(in: dir).path], environment: env)
            let plan = try #require(try rows(result.stdout).first { $0["event"] == "asset" })["result"]
            #expect(plan?["method"] == "POST")
            // The account id counts as a secret, so the plan shows where it goes, not what it is.
            #expect(plan?["endpoint"] == "https://api.cloudflare.com/client/v4/accounts/****/images/v1")
            #expect(plan?["contentType"] == "multipart/form-data")
            #expect(string(plan?["sha256"])?.count == 64)
            #expect(plan?["authorization"] == "Bearer ****ab12")
            #expect(!result.stdout.contains(token) && !result.stderr.contains(token))
        }
    }

    @Test("F13: an http:// endpoint for a remote host stops the run before any request (exit 2)")
    func plainHTTPToARemoteHostIsAUsageError() async throws {
        let cloudflare = try await CloudflareFake()
        var env = cloudflare.environment
        env["CLOUDFLARE_API_BASE_URL"] = "http://api.example.com/client/v4"
        let result = await cli.run(["run", try Self.course().appendingPathComponent("images").path], environment: env)
        #expect(result.status == 2)
        #expect(result.stderr.contains("must use https://"))
        #expect(try await cloudflare.server.log().isEmpty)
    }

    @Test("F13: an untrusted certificate is fatal (exit 3) with no insecure fallback")
    func untrustedCertificateIsFatal() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let cert = dir.appendingPathComponent("cert.pem").path, key = dir.appendingPathComponent("key.pem").path
            let made = Shell.run("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                                                     "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", key, "-out", cert])
            #expect(made.status == 0, "openssl: \(made.stderr)")
            let cloudflare = try await CloudflareFake(arguments: ["--tls-cert", cert, "--tls-key", key], scheme: "https")
            let result = await cli.run(["run", try Self.course().appendingPathComponent("images").path, "--pipeline", try pipeline(in: dir).path],
                                 environment: cloudflare.environment)
            #expect(result.status == 3, "stderr: \(result.stderr)")
            // The handshake failed, so no HTTP request (and no token) ever reached the server.
            #expect(result.stderr.contains("tls_untrusted") && result.stderr.contains("no insecure fallback"))
            #expect(cloudflare.server.process.isRunning)
        }
    }

    @Test("F13: a redirect to another host is not followed with the token (exit 3)")
    func redirectsAreNotFollowed() async throws {
        let cloudflare = try await CloudflareFake(), elsewhere = try await CloudflareFake()
        let target = elsewhere.server.base.replacingOccurrences(of: "127.0.0.1", with: "localhost") + "/client/v4/steal"
        try await cloudflare.server.faults([["method": "POST", "path": "/images/v1$", "actions": [["redirect": .string(target), "status": 307]]]])
        try await TestFiles.withTemporaryDirectory { dir in
            let result = await cli.run(["run", try Self.course().appendingPathComponent("images/cover.jpg").path, "--pipeline",
                                  try pipeline(in: dir).path], environment: cloudflare.environment)
            #expect(result.status == 3)
            #expect(result.stderr.contains("unexpected_redirect"))
            #expect(try await elsewhere.server.log().isEmpty)
        }
    }

    @Test("F5: a refused token stops Images (exit 3), names the variable, leaves the rest pending")
    func refusedTokenIsFatal() async throws {
        let cloudflare = try await CloudflareFake()
        try await TestFiles.withTemporaryDirectory { dir in
            var env = cloudflare.environment
            env["CLOUDFLARE_API_TOKEN"] = "wrong-token-\(UUID().uuidString.prefix(8))"
            let result = await cli.run(["run", try Self.course().appendingPathComponent("images").path, "--pipeline", try pipeline(in: dir).path,
                                  "--json", "--concurrency", "1", "--uploads", "1"], environment: env)
            #expect(result.status == 3)
            #expect(result.stderr.contains("CLOUDFLARE_API_TOKEN needs Images Write and Stream Edit"))
            #expect(!result.stderr.contains(env["CLOUDFLARE_API_TOKEN"]!))
            let assets = try rows(result.stdout).filter { $0["event"] == "asset" }
            #expect(assets.filter { $0["status"] == "failed" }.count == 1)
            #expect(assets.filter { $0["status"] == "pending" }.count == 2)
            #expect(try await cloudflare.server.log().count == 1)
        }
    }

    @Test("a long run prints plain progress lines on stderr while --json stays valid NDJSON on stdout")
    func progressOffATerminal() async throws {
        let cloudflare = try await CloudflareFake()
        try await cloudflare.server.faults([["method": "POST", "path": "/images/v1$", "actions": [["delay": 2.2], ["delay": 2.2], ["delay": 2.2]]]])
        try await TestFiles.withTemporaryDirectory { dir in
            let result = await cli.run(["run", try Self.course().appendingPathComponent("images").path, "--pipeline", try pipeline(in: dir).path,
                                  "--json", "--concurrency", "1", "--uploads", "1"], environment: cloudflare.environment)
            #expect(result.status == 0, "stderr: \(result.stderr)")
            #expect(result.stderr.contains("progress: 1/3 files") || result.stderr.contains("progress: 2/3 files"))
            let lines = result.stdout.split(separator: "\n")
            #expect(lines.count == 4)
            for line in lines { #expect((try? JSONValue.parse(Data(line.utf8))) != nil, "not JSON: \(line)") }
            #expect(!result.stdout.contains("progress"))
        }
    }

    @Test func deleteRemovesWhatARunUploaded() async throws {
        let cloudflare = try await CloudflareFake()
        let s3 = try await S3Fake()
        try await TestFiles.withTemporaryDirectory { dir in
            let env = cloudflare.environment.merging(s3.environment) { a, _ in a }
            let course = try Self.course()
            let result = await cli.run(["run", course.appendingPathComponent("images/cover.jpg").path, course.appendingPathComponent("videos").path,
                                  course.appendingPathComponent("lessons/01-intro/slides.pdf").path,
                                  "--pipeline", try pipeline(in: dir).path, "--json"], environment: env)
            #expect(result.status == 0, "stderr: \(result.stderr)")
            let refs = try rows(result.stdout).filter { $0["event"] == "asset" }.compactMap { row -> String? in
                switch row["sink"] {
                case "cloudflare-images": string(row["result"]?["id"]).map { "images:" + $0 }
                case "r2": string(row["result"]?["key"]).map { "r2:" + $0 }
                case "stream": string(row["result"]?["id"]).map { "stream:" + $0 }
                default: nil
                }
            }
            #expect(refs.count == 3)
            let deleted = await cli.run(["delete"] + refs, environment: env)
            #expect(deleted.status == 0, "stderr: \(deleted.stderr)")
            #expect(deleted.stdout.components(separatedBy: "deleted ").count == 4)
            #expect(try await cloudflare.state()["images"]?.objectPairsCount == 0)
            #expect(try await cloudflare.state()["videos"]?.objectPairsCount == 0)
            #expect(try await s3.objects().objectPairsCount == 0)
            let again = await cli.run(["delete", try #require(refs.first { $0.hasPrefix("images:") })], environment: env)
            #expect(again.status == 0 && again.stdout.contains("already gone"))
        }
    }

    @Test func liveInputsAreCreatedListedAndDeletedWithKeysOnlyForTheUser() async throws {
        let cloudflare = try await CloudflareFake()
        let env = cloudflare.environment
        let created = await cli.run(["live", "create", "--name", "Office hours"], environment: env)
        #expect(created.status == 0, "stderr: \(created.stderr)")
        #expect(created.stdout.contains("rtmps://") && created.stdout.contains("srt://") && created.stdout.contains("stream key: "))
        let uid = try #require(created.stdout.firstMatch(of: /live input ([0-9a-f]{32})/).map { String($0.1) })
        let key = try #require(try await cloudflare.state()["live_inputs"]?[uid]?["rtmps"]?["streamKey"]).stringValue
        #expect(created.stdout.contains(key) && !created.stderr.contains(key))
        let listed = await cli.run(["live", "list"], environment: env)
        #expect(listed.stdout.contains(uid) && listed.stdout.contains("Office hours") && !listed.stdout.contains(key))
        #expect(await cli.run(["live", "delete", uid], environment: env).stdout.contains("deleted live input"))
        #expect(await cli.run(["live", "delete", uid], environment: env).stdout.contains("already gone"))
    }

    @Test func doctorSaysWhatWorksAndWhatToFix() async throws {
        let cloudflare = try await CloudflareFake()
        let s3 = try await S3Fake()
        let good = await cli.run(["doctor"], environment: cloudflare.environment.merging(s3.environment) { a, _ in a })
        #expect(good.status == 0, "stdout: \(good.stdout)")
        #expect(good.stdout.contains("ok       libvips 8."))
        #expect(good.stdout.contains("CLOUDFLARE_API_TOKEN is active"))
        #expect(good.stdout.contains("R2 bucket 'media' is reachable"))
        var broken = cloudflare.environment.merging(s3.environment) { a, _ in a }
        broken["CLOUDFLARE_API_TOKEN"] = "not-the-token-1234"
        broken["CLOUDFLARE_R2_BUCKET_NAME"] = "no-such-bucket"
        broken.removeValue(forKey: "CLOUDFLARE_R2_SECRET_ACCESS_KEY")
        let bad = await cli.run(["doctor"], environment: broken)
        #expect(bad.status == 1)
        #expect(bad.stdout.contains("problem  CLOUDFLARE_API_TOKEN is not an active token"))
        #expect(bad.stdout.contains("CLOUDFLARE_R2_SECRET_ACCESS_KEY not set"))
        #expect(bad.stdout.contains("fix: "))
        #expect(!bad.stdout.contains("not-the-token-1234"))
    }
}

extension JSONValue {
    var objectPairsCount: Int { if case let .object(pairs) = self { pairs.count } else { -1 } }
    var stringValue: String { if case let .string(s) = self { s } else { "" } }
}
