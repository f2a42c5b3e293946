import Foundation
import TestSupport
import Testing

/// `media-pipeline test` over case folders, and `media-pipeline schema`, run as a user would.
struct PipelineCaseTests {
    let cli = CLITests()
    static let examples = TestFiles.repoRoot.appendingPathComponent("examples/cases")

    /// Writes a case folder: `expect` as expect.json and a copy of an example case's input.
    func makeCase(in dir: URL, named name: String, inputFrom example: String, expect: String) throws -> URL {
        let folder = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Self.examples.appendingPathComponent("\(example)/input"),
                                         to: folder.appendingPathComponent("input"))
        try Data(expect.utf8).write(to: folder.appendingPathComponent("expect.json"))
        return folder
    }

    @Test func theExampleCasesPassWithTheDefaultPipeline() async throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.examples.path)
            .filter { FileManager.default.fileExists(atPath: Self.examples.appendingPathComponent("\($0)/expect.json").path) }.sorted()
        #expect(names.count >= 8)
        let result = await cli.run(["test", "--assume-configured", "examples/cases"])
        #expect(result.status == 0, "stdout: \(result.stdout)\nstderr: \(result.stderr)")
        for name in names { #expect(result.stdout.contains("PASS examples/cases/\(name)\n"), "\(name): \(result.stdout)") }
        #expect(!result.stdout.contains("FAIL"))
        #expect(result.stdout.contains("\(names.count) cases: \(names.count) passed, 0 failed"))
    }

    @Test func aWrongExpectationFailsAndNamesTheField() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let folder = try makeCase(in: dir, named: "pdf-to-images", inputFrom: "material-pdf-to-r2", expect: """
                {"expect": {"status": "planned", "sink": "cloudflare-images", "purpose": "course-material", "key": "materials/*.pdf"}}
                """)
            let result = await cli.run(["test", "--assume-configured", folder.path])
            #expect(result.status == 1, "stdout: \(result.stdout)\nstderr: \(result.stderr)")
            #expect(result.stdout.contains("FAIL \(folder.path)"))
            #expect(result.stdout.contains(#"  sink: expected "cloudflare-images", got "r2""#), "\(result.stdout)")
            #expect(!result.stdout.contains("  purpose:") && !result.stdout.contains("  key:"))
            #expect(result.stdout.contains("1 case: 0 passed, 1 failed"))

            let json = await cli.run(["test", "--assume-configured", "--json", folder.path])
            #expect(json.status == 1)
            let events = try cli.rows(json.stdout)
            #expect(events.count == 2)
            #expect(events.first?["passed"] as? Bool == false)
            let failures = events.first?["failures"] as? [[String: Any]]
            #expect(failures?.count == 1 && failures?.first?["field"] as? String == "sink")
            #expect((events.first?["row"] as? [String: Any])?["sink"] as? String == "r2")
            #expect(events.last?["event"] as? String == "summary" && events.last?["failed"] as? Int == 1)
            #expect(json.stderr.contains("FAIL"))
        }
    }

    @Test func aKeyPatternIsAGlobOverThePlannedKey() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let folder = try makeCase(in: dir, named: "wrong-prefix", inputFrom: "lesson-resource-to-r2",
                                      expect: #"{"expect": {"key": "materials/*.pdf"}}"#)
            let result = await cli.run(["test", "--assume-configured", folder.path])
            #expect(result.status == 1)
            #expect(result.stdout.contains(#"  key: expected "materials/*.pdf", got "resources/"#), "\(result.stdout)")
        }
    }

    @Test func casesAreCheckedBeforeAnythingRuns() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let misspelt = try makeCase(in: dir, named: "misspelt", inputFrom: "material-pdf-to-r2",
                                        expect: #"{"expect": {"sikn": "r2", "status": "plannd"}, "purpose": "avatr"}"#)
            let twoFiles = try makeCase(in: dir, named: "two-files", inputFrom: "material-pdf-to-r2",
                                        expect: #"{"expect": {"sink": "r2"}}"#)
            try Data("x".utf8).write(to: twoFiles.appendingPathComponent("input/other.txt"))
            let result = await cli.run(["test", "--assume-configured", dir.path])
            #expect(result.status == 2)
            #expect(result.stdout.isEmpty, "nothing runs: \(result.stdout)")
            #expect(result.stderr.contains("\(misspelt.path)/expect.json: expect.sikn: unknown key 'sikn' (did you mean 'sink'?)"), "\(result.stderr)")
            #expect(result.stderr.contains("expect.status: 'plannd' is not known (did you mean 'planned'?)"))
            #expect(result.stderr.contains("purpose: 'avatr' is not a purpose of this pipeline (did you mean 'avatar'?)"))
            #expect(result.stderr.contains("\(twoFiles.path)/input holds 2 files"))
            #expect(await cli.run(["test", dir.appendingPathComponent("nowhere").path]).status == 2)
            #expect(await cli.run(["test"]).status == 2)
        }
    }

    @Test func theCommittedSchemaIsTheCommandsOutput() async throws {
        let result = await cli.run(["schema"])
        #expect(result.status == 0)
        let committed = try String(contentsOf: TestFiles.repoRoot.appendingPathComponent("pipeline.schema.json"), encoding: .utf8)
        #expect(result.stdout == committed, "run 'media-pipeline schema > pipeline.schema.json' and commit it")
        let pipeline = try String(contentsOf: TestFiles.repoRoot.appendingPathComponent("pipeline.json"), encoding: .utf8)
        #expect(pipeline.contains(#""$schema": "./pipeline.schema.json""#))
    }

    @Test func theSchemaAcceptsEveryExamplePipeline() throws {
        let root = TestFiles.repoRoot
        var pipelines = [root.appendingPathComponent("pipeline.json")]
        for folder in ["examples", "bench"] {
            let walker = FileManager.default.enumerator(at: root.appendingPathComponent(folder), includingPropertiesForKeys: nil)
            while let url = walker?.nextObject() as? URL {
                // Overlays are partial documents (a stage may be named only): the schema is for whole pipelines.
                guard url.pathExtension == "json", !url.path.contains("/overlays/"), let data = try? Data(contentsOf: url),
                      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                      object["version"] != nil, object["stages"] != nil else { continue }
                pipelines.append(url)
            }
        }
        #expect(pipelines.count >= 3)
        let verdicts = try SchemaCheck.validate(schema: root.appendingPathComponent("pipeline.schema.json"), documents: pipelines)
        for file in pipelines {
            #expect(verdicts[file.path]?.valid == true, "\(file.path): \(verdicts[file.path]?.errors ?? [])")
        }
    }
}
