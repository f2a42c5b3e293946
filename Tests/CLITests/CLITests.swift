import Foundation
import TestSupport
import Testing

/// The real binary, run as a user would, on real files.
struct CLITests {
    static let binary = TestFiles.repoRoot.appendingPathComponent(".build/debug/media-pipeline").path
    /// Canary credentials, given to every run whose test sets none of its own.
    static let canaries = [
        "CLOUDFLARE_API_TOKEN": Canaries.make("api"),
        "CLOUDFLARE_R2_SECRET_ACCESS_KEY": Canaries.make("r2s"),
        "CLOUDFLARE_R2_ACCESS_KEY_ID": Canaries.makePlain("r2a"),
        "CLOUDFLARE_ACCOUNT_ID": "canary-acct-\(UUID().uuidString.prefix(8))",
        "MEDIA_PIPELINE_TOKEN": Canaries.make("serve"),
        "PGPASSWORD": Canaries.make("pg"),
    ]

    /// Runs the binary. Unless the test passes credentials of its own (an empty value leaves a
    /// variable unset), every run gets the canaries, and its output and journal are searched for them.
    func run(_ arguments: [String], environment: [String: String] = [:]) async -> Shell.Result {
        var env = ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory()]
        if !environment.keys.contains(where: { $0.hasPrefix("CLOUDFLARE_") }) {
            env.merge(Self.canaries.filter { !$0.key.hasPrefix("CLOUDFLARE_") || arguments.contains("--assume-configured") }) { _, new in new }
        }
        // Each run gets a journal of its own unless the test names one, so runs never see each other's.
        var journal: URL?
        if !arguments.contains("--journal"), !arguments.contains("--no-journal"), environment["MEDIA_PIPELINE_JOURNAL"] == nil {
            journal = FileManager.default.temporaryDirectory.appendingPathComponent("mp-journal-\(UUID().uuidString)")
            env["MEDIA_PIPELINE_JOURNAL"] = journal!.appendingPathComponent("journal.db").path
        }
        env.merge(environment) { _, new in new }
        env = env.filter { !$0.value.isEmpty }
        let result = await Shell.runOnThread(Self.binary, arguments, environment: env, directory: TestFiles.repoRoot)
        Canaries.expectNone(in: result.stdout, "the standard output of `media-pipeline \(arguments.first ?? "")`")
        Canaries.expectNone(in: result.stderr, "the standard error of `media-pipeline \(arguments.first ?? "")`")
        if let journal {
            Canaries.expectNone(under: journal)
            try? FileManager.default.removeItem(at: journal)
        }
        return result
    }

    /// Copies fixtures into a folder of their own, so one run sees exactly these files.
    func folder(_ names: [String], in dir: URL) throws -> URL {
        let input = dir.appendingPathComponent("in")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        for name in names { try FileManager.default.copyItem(at: try TestFiles.fixture(name), to: input.appendingPathComponent(name)) }
        return input
    }

    func rows(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
    }

    func assertNoSecret(_ texts: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        for text in texts { Canaries.expectNone(in: text, "the output", sourceLocation: sourceLocation) }
    }

    @Test("the canary search finds a canary as is, URL-encoded and base64-encoded at any offset, and nothing else")
    func theCanarySearchFindsEveryForm() {
        let canary = Canaries.make("probe")
        #expect(Canaries.found(in: Data("x \(canary) y".utf8)).count == 1)
        #expect(Canaries.found(in: Data("q=\(canary.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)&".utf8)).count == 1)
        for prefix in ["", "a", "ab", "abc", "Bearer "] {
            let encoded = Data((prefix + canary + "!tail").utf8).base64EncodedString()
            #expect(Canaries.found(in: Data("Authorization: Basic \(encoded)".utf8)).count == 1, "after \(prefix.count) bytes")
        }
        #expect(Canaries.found(in: Data("canary-probe- and other words, \(UUID().uuidString)".utf8)).isEmpty)
    }

    @Test func helpAndVersionWorkForEveryCommand() async {
        #expect(await run(["--version"]).stdout.hasPrefix("media-pipeline "))
        for command in ["run", "validate", "explain", "stages", "doctor", "delete", "live", "notify", "test", "schema", "serve"] {
            let help = await run([command, "--help"])
            #expect(help.status == 0 && help.stdout.contains("USAGE: media-pipeline \(command)"))
        }
        let wrong = await run(["rnu"])
        #expect(wrong.status == 2 && wrong.stderr.contains("did you mean 'run'?") == false && wrong.stderr.contains("Did you mean 'run'?"))
        #expect(await run(["run", "--dryrun", "x"]).stderr.contains("did you mean '--dry-run'?"))
    }

    @Test func aDryRunPlansGoodFilesRejectsBadOnesAndLeaksNoSecret() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let input = try folder(["photo.jpg", "rotated.jpg", "doc.pdf", "doc.docx", "clip.mp4", "lesson.png", "empty.jpg"], in: dir)
            let manifest = dir.appendingPathComponent("manifest.jsonl")
            let work = dir.appendingPathComponent("work")
            let result = await run(["run", input.path, "--dry-run", "--json", "--verbose", "--manifest", manifest.path, "--work-dir", work.path],
                             environment: Self.canaries.merging(["CLOUDFLARE_R2_BUCKET_NAME": "media"]) { a, _ in a })
            #expect(result.status == 1, "stderr: \(result.stderr)")
            let events = try rows(result.stdout)
            let assets = events.filter { $0["event"] as? String == "asset" }
            #expect(assets.count == 7)
            #expect(events.last?["event"] as? String == "summary")
            let manifestText = try String(contentsOf: manifest, encoding: .utf8)
            let byName = Dictionary(uniqueKeysWithValues: try rows(manifestText).map { (($0["source"] as! String).components(separatedBy: "/").last!, $0) })
            #expect(byName.count == 7)
            #expect(byName["photo.jpg"]?["status"] as? String == "planned")
            #expect(byName["photo.jpg"]?["sink"] as? String == "cloudflare-images")
            #expect(byName["doc.pdf"]?["sink"] as? String == "r2")
            #expect(byName["doc.docx"]?["mime"] as? String == "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
            #expect(byName["clip.mp4"]?["sink"] as? String == "stream")
            #expect(byName["lesson.png"]?["reason"] as? String == "type_not_allowed")
            #expect(byName["empty.jpg"]?["reason"] as? String == "empty_file")
            // The plan names the prepared file, which exists in the kept work folder.
            let plan = try #require(byName["rotated.jpg"]?["result"] as? [String: Any])
            let path = try #require(plan["path"] as? String)
            #expect(path.hasPrefix(work.path) && FileManager.default.fileExists(atPath: path))
            #expect(result.stderr.contains("rejected \(input.path)/lesson.png — type_not_allowed: "))
            assertNoSecret([result.stdout, result.stderr, manifestText])
            // Only the prepared images remain in the work folder: nothing partial.
            #expect(TestFiles.listing(work).allSatisfy { $0.hasSuffix(".jpg") && !$0.contains(".part") })
        }
    }

    @Test func explainAndValidateNeverPrintSecrets() async throws {
        let explain = await run(["explain"], environment: Self.canaries)
        #expect(explain.status == 0)
        #expect(explain.stdout.contains("stage cloudflare-images (cloudflare.images): configured"))
        let validate = await run(["validate"], environment: Self.canaries)
        #expect(validate.status == 0 && validate.stdout.contains("OK"))
        assertNoSecret([explain.stdout, explain.stderr, validate.stdout, validate.stderr])
    }

    @Test func explainInputsShowsEachFilesPurposeAndRule() async throws {
        let course = try UploadTests.course()
        let result = await run(["explain", "--inputs", course.path])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 12)
        #expect(lines.contains(#"videos/01-intro.mp4 → lesson-video  (purposeRules[0] "**/videos/**", key prefix "videos/")"#))
        #expect(lines.contains(#"avatars/instructor.jpg → avatar  (purposeRules[1] "**/avatars/**", key prefix "avatars/")"#))
        #expect(lines.contains(#"course.json → course-material  (purposeRules[5] "**", key prefix "materials/")"#))
    }

    @Test("usage and pipeline errors exit 2 before anything runs", arguments: [
        (["run"], "name at least one file or folder"),
        (["run", "/nonexistent-folder", "--dry-run"], "no such file or folder"),
        (["run", "Tests", "--assume-configured"], "--assume-configured goes with --dry-run only"),
        (["run", "Tests", "--dry-run", "--quiet", "--verbose"], "choose one of --quiet and --verbose"),
        (["delete", "photos:1"], "is not a reference"),
        (["delete", "images:abc"], "CLOUDFLARE_API_TOKEN is not set"),
        (["live", "launch"], "say 'live create --name NAME'"),
        (["run", "Tests", "--dry-run", "--purpose", "avatr"], "Did you mean 'avatar'?"),
        (["run", "Tests", "--dry-run", "--concurrency", "0"], "--concurrency takes a number"),
        (["validate", "Package.swift"], "not valid JSON"),
    ])
    func usageErrorsExitTwo(_ arguments: [String], _ message: String) async {
        let result = await run(arguments)
        #expect(result.status == 2)
        #expect(result.stderr.contains(message), "stderr: \(result.stderr)")
    }

    @Test func anHTTPEndpointForARemoteHostIsAConfigError() async {
        let result = await run(["validate"], environment: ["CLOUDFLARE_API_BASE_URL": "http://api.example.com/client/v4"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("CLOUDFLARE_API_BASE_URL must use https://"))
        #expect(await run(["validate"], environment: ["CLOUDFLARE_API_BASE_URL": "http://127.0.0.1:9/client/v4"]).status == 0)
    }

    @Test func stagesListsEveryKindWithItsOptions() async {
        let result = await run(["stages"])
        for kind in ["validate", "classify", "image.transform", "route", "cloudflare.images", "cloudflare.r2", "cloudflare.stream", "notify.webhook", "exec"] {
            #expect(result.stdout.contains("\n\(kind)") || result.stdout.hasPrefix(kind))
        }
        #expect(result.stdout.contains("maxDimension: integer"))
    }
}
