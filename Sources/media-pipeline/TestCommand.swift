import Foundation
import MediaPipeline
import StandardStages
import LocalMedia
import Synchronization

/// `media-pipeline test`: checks a pipeline offline. Each case folder's one input file is planned
/// exactly as `run --dry-run` plans it, and the manifest row is compared with the case's
/// `expect.json`.
struct TestCommand {
    static let spec = CommandSpec(
        name: "test", usage: "test CASES_DIR… [options]",
        abstract: "Check a pipeline offline: plan each case's file as a dry-run would and compare the row with expect.json.",
        options: [
            .init(name: "pipeline", value: "FILE", help: "The pipeline file (default: pipeline.json)."),
            .init(name: "assume-configured", value: nil, help: "Plan as if every sink's variables were set."),
            .init(name: "json", value: nil, help: "Write one NDJSON result per case and a summary to stdout (human text goes to stderr)."),
        ],
        discussion: """
            A case is a folder with expect.json and input/, which holds exactly one file. The path below input/ is what
            purpose rules see: input/lessons/01/thumbnails/cover.jpg is planned as lessons/01/thumbnails/cover.jpg.
            Each CASES_DIR is a case, or a folder whose sub-folders are cases.

            expect.json:
              "description"   what the case shows (free text)
              "purpose"       plan the file with this purpose, as --purpose does
              "unconfigured"  sink step names planned as not configured, e.g. ["cloudflare-images"]
              "expect"        the manifest row: status, sink, purpose, kind, mime, reason (the code),
                              key (a glob over the R2 key or Images id), bytes (the source file's),
                              contentType (of the planned upload); null means "absent"

            Nothing is uploaded and no journal is written.
            Exit codes: 0 every case passed, 1 some case failed, 2 usage, pipeline or case-file error.
            """)

    /// The fields `expect` may name, each checked against the dry-run manifest row.
    static let fields = ["status", "sink", "purpose", "kind", "mime", "reason", "key", "bytes", "contentType"]

    let arguments: ParsedArguments
    let environment: [String: String]
    let console: Console

    func run() async -> Int32 {
        guard !arguments.positional.isEmpty else {
            console.err("error: name at least one case folder; see 'media-pipeline test --help'")
            return 2
        }
        let pipelinePath = arguments.value("pipeline") ?? "pipeline.json"
        guard let pipeline = MediaPipelineCLI.loadPipeline(pipelinePath, environment: environment,
                                                           assumeConfigured: arguments.flag("assume-configured"), console: console)
        else { return 2 }
        DecoderWorkers.setTimeout(pipeline.limits.decodeTimeout)
        var cases: [TestCase] = []
        var problems: [String] = []
        for folder in arguments.positional {
            switch TestCase.folders(under: folder) {
            case let .failure(problem): problems.append(problem.description)
            case let .success(found):
                for path in found {
                    switch TestCase.read(path, pipeline: pipeline) {
                    case let .success(testCase): cases.append(testCase)
                    case let .failure(problem): problems += problem.lines
                    }
                }
            }
        }
        guard problems.isEmpty else {
            for problem in problems { console.err("error: \(problem)") }
            console.err("\(problems.count) problem\(problems.count == 1 ? "" : "s") in the cases; nothing was run")
            return 2
        }

        let fm = FileManager.default
        let work = fm.temporaryDirectory.appendingPathComponent("media-pipeline-test-\(UUID().uuidString.lowercased())")
        do { try fm.createDirectory(at: work, withIntermediateDirectories: true) } catch {
            console.err("error: cannot create the work folder \(work.path): \(error.localizedDescription)")
            return 2
        }
        defer { try? fm.removeItem(at: work) }

        let json = arguments.flag("json")
        func human(_ text: String) { if json { console.err(text) } else { console.out(text) } }
        var failed = 0
        for (index, testCase) in cases.enumerated() {
            let caseWork = work.appendingPathComponent("\(index)")
            try? fm.createDirectory(at: caseWork, withIntermediateDirectories: true)
            let report = await plan(testCase, pipeline: pipeline, work: caseWork)
            let row = report.map { console.redactor.redact($0.json) }
            let mismatches = row.map(testCase.mismatches) ?? [Mismatch(field: "row", expected: "one manifest row", actual: "none")]
            if !mismatches.isEmpty { failed += 1 }
            human("\(mismatches.isEmpty ? "PASS" : "FAIL") \(Console.escape(testCase.name))")
            for mismatch in mismatches {
                human("  \(mismatch.field): expected \(mismatch.expected), got \(mismatch.actual)")
            }
            if !mismatches.isEmpty, let reason = report?.reason {
                human("  (the file ended \(report!.status.rawValue): \(reason.code): \(Console.escape(reason.detail)))")
            }
            if json {
                console.out(JSONValue.object([
                    ("event", "case"), ("case", .string(testCase.name)), ("passed", .bool(mismatches.isEmpty)),
                    ("failures", .array(mismatches.map { .object([("field", .string($0.field)), ("expected", .string($0.expected)),
                                                                  ("actual", .string($0.actual))]) })),
                    ("row", row ?? .null),
                ]).compactText)
            }
        }
        let passed = cases.count - failed
        human("\(cases.count) case\(cases.count == 1 ? "" : "s"): \(passed) passed, \(failed) failed")
        if json {
            console.out(JSONValue.object([("event", "summary"), ("cases", .int(cases.count)), ("passed", .int(passed)),
                                          ("failed", .int(failed))]).compactText)
        }
        return failed == 0 ? 0 : 1
    }

    /// The case's file through the same runner, inputs and row as `run --dry-run`.
    private func plan(_ testCase: TestCase, pipeline: Pipeline, work: URL) async -> AssetReport? {
        var casePipeline = pipeline
        for index in casePipeline.steps.indices {
            if case let .sink(sink) = casePipeline.steps[index].body, testCase.unconfigured.contains(casePipeline.steps[index].name) {
                casePipeline.steps[index].body = .sink(UnconfiguredSink(base: sink))
            }
        }
        let inputs: Inputs
        do { inputs = try Inputs([testCase.input]) } catch { return nil }
        let options = Runner.Options(dryRun: true, concurrency: 1, workDirectory: work, purpose: testCase.purpose)
        let runner = Runner(pipeline: casePipeline, inspector: StandardStages.inspector(),
                            logger: ConsoleLogger(console: Console(redactor: console.redactor, level: .warning)))
        let reports = Reports()
        _ = await runner.run(inputs.sequences(work: work, limits: pipeline.limits), options: options) { report in
            reports.rows.withLock { $0.append(report) }
        }
        return reports.rows.withLock { $0.first }
    }
}

/// The rows a run reports, from whichever task finishes a file.
private final class Reports: Sendable {
    let rows = Mutex<[AssetReport]>([])
}

/// One field of a row that is not what the case expects; values shown as JSON.
struct Mismatch {
    var field: String
    var expected: String
    var actual: String
}

/// A case folder read and checked: where its file is and what its row must show.
struct TestCase {
    /// The folder as named on the command line (or found under it).
    var name: String
    /// The folder `input/`, holding the one file.
    var input: String
    var purpose: String?
    var unconfigured: [String]
    var expect: [(field: String, value: JSONValue)]

    struct Problem: Error, CustomStringConvertible {
        var lines: [String]
        var description: String { lines.joined(separator: "\n") }
    }

    /// The case folders a command-line argument names: itself when it holds expect.json, else
    /// its sub-folders that do, in name order.
    static func folders(under path: String) -> Result<[String], Problem> {
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue else {
            return .failure(Problem(lines: ["\(path): no such folder; name a case folder (with expect.json) or a folder of them"]))
        }
        let join = { (name: String) in path.hasSuffix("/") ? path + name : path + "/" + name }
        if fm.fileExists(atPath: join("expect.json")) { return .success([path]) }
        let children = ((try? fm.contentsOfDirectory(atPath: path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        let cases = children.map(join).filter { fm.fileExists(atPath: $0 + "/expect.json") }
        guard !cases.isEmpty else {
            return .failure(Problem(lines: ["\(path): no expect.json here nor in its sub-folders; see 'media-pipeline test --help' for a case's layout"]))
        }
        return .success(cases)
    }

    /// Reads `folder/expect.json` strictly (unknown keys refused with a did-you-mean) and checks
    /// that `folder/input/` holds exactly one file.
    static func read(_ folder: String, pipeline: Pipeline) -> Result<TestCase, Problem> {
        let file = folder + "/expect.json"
        var diagnostics = Diagnostics()
        var testCase = TestCase(name: folder, input: folder + "/input", purpose: nil, unconfigured: [], expect: [])
        let document: JSONValue
        do {
            guard let data = FileManager.default.contents(atPath: file) else { throw Problem(lines: []) }
            document = try JSONValue.parse(data)
        } catch {
            return .failure(Problem(lines: ["\(file): cannot read it as JSON; write an object such as {\"expect\": {\"status\": \"planned\"}}"]))
        }
        var reader = OptionsReader(document, path: "")
        _ = reader.optionalString("description", help: "what the case shows")
        testCase.purpose = reader.optionalString("purpose", help: "plan the file with this purpose, as --purpose does")
        if let purpose = testCase.purpose, pipeline.purposes[purpose] == nil {
            reader.error("purpose", "'\(purpose)' is not a purpose of this pipeline",
                         hint: DidYouMean.hint(for: purpose, among: pipeline.purposes.keys.sorted()))
        }
        let sinkNames = pipeline.steps.compactMap { step in if case .sink = step.body { step.name } else { nil } }
        switch reader.raw("unconfigured", type: "[sink step names]", help: "sinks planned as not configured") {
        case nil: break
        case let .array(items)?:
            for (i, item) in items.enumerated() {
                guard let name = item.stringValue, sinkNames.contains(name) else {
                    diagnostics.error(JSONPath.index("unconfigured", i), "\(item.compactText) is not the name of a sink stage in the pipeline",
                                      hint: DidYouMean.hint(for: item.stringValue ?? "", among: sinkNames))
                    continue
                }
                testCase.unconfigured.append(name)
            }
        case let other?:
            reader.error("unconfigured", "expected an array of sink stage names, found \(other.typeName)", hint: "e.g. [\"cloudflare-images\"]")
        }
        var expect = reader.object("expect", help: "the manifest row's fields")
        if !reader.has("expect") {
            reader.error("expect", "missing", hint: "say what the row must show, e.g. {\"status\": \"planned\", \"sink\": \"r2\"}")
        }
        for field in TestCommand.fields {
            guard let value = expect.raw(field, type: "JSON", help: "the row's \(field)") else { continue }
            if let problem = check(field, value, pipeline: pipeline, sinks: sinkNames) {
                expect.error(field, problem.message, hint: problem.hint)
            } else {
                testCase.expect.append((field, value))
            }
        }
        reader.absorb(expect)
        diagnostics.append(contentsOf: reader.finished().diagnostics)

        if (try? InputFile.expand([testCase.input]))?.count != 1 {
            let found = (try? InputFile.expand([testCase.input]))?.count
            diagnostics.error("", found == nil ? "\(testCase.input) is missing" : "\(testCase.input) holds \(found!) files",
                              hint: "put exactly one file under input/, in the folders the purpose rules should see")
        }
        guard !diagnostics.hasErrors else {
            return .failure(Problem(lines: diagnostics.items.map { item in
                let location = item.path.isEmpty ? "" : "\(item.path): "
                return "\(file): \(location)\(item.message)\(item.hint.map { " (\($0))" } ?? "")"
            }))
        }
        return .success(testCase)
    }

    /// Why an expected value can never match, e.g. a status that does not exist.
    private static func check(_ field: String, _ value: JSONValue, pipeline: Pipeline, sinks: [String]) -> (message: String, hint: String?)? {
        func words(_ allowed: [String]) -> (message: String, hint: String?)? {
            guard let word = value.stringValue else { return ("expected a string, found \(value.typeName)", "one of: \(allowed.joined(separator: ", "))") }
            return allowed.contains(word) ? nil : ("'\(word)' is not known", DidYouMean.hint(for: word, among: allowed))
        }
        switch (field, value) {
        case ("status", _): return words(AssetStatus.allCases.map(\.rawValue))
        case (_, .null): return nil
        case ("kind", _): return words(AssetKind.allCases.map(\.rawValue))
        case ("purpose", _): return words(pipeline.purposes.keys.sorted())
        case ("sink", _): return words(sinks)
        case ("bytes", .number(let n)) where n >= 0 && n == n.rounded(): return nil
        case ("bytes", _): return ("expected a whole number of bytes, found \(value.typeName)", nil)
        case (_, .string): return nil
        default: return ("expected a string or null, found \(value.typeName)", nil)
        }
    }

    /// The expected fields the row does not show. `key` is a glob over the planned R2 key or Images id.
    func mismatches(_ row: JSONValue) -> [Mismatch] {
        var out: [Mismatch] = []
        for (field, expected) in expect {
            let actual: JSONValue
            switch field {
            case "key": actual = row["result"]?["key"] ?? row["result"]?["id"] ?? .null
            case "contentType": actual = row["result"]?["contentType"] ?? .null
            default: actual = row[field] ?? .null
            }
            let matches: Bool
            if field == "key", case let .string(pattern) = expected, case let .string(key) = actual {
                matches = Glob(pattern).matches(key)
            } else {
                matches = expected == actual
            }
            if !matches { out.append(Mismatch(field: field, expected: expected.compactText, actual: actual.compactText)) }
        }
        return out
    }
}

/// A sink planned as not configured, so a case can check where files go without it.
struct UnconfiguredSink: Sink {
    let base: any Sink
    var sinkName: String { base.sinkName }
    var configuration: SinkConfiguration { SinkConfiguration(missing: ["its variables (the case lists it under unconfigured)"]) }
    func refusal(for file: PreparedFile) -> String? { base.refusal(for: file) }
    func plan(for asset: Asset, context: StageContext) throws -> UploadPlan { try base.plan(for: asset, context: context) }
    func upload(_ plan: UploadPlan, asset: Asset, context: StageContext) async throws -> JSONValue {
        throw SinkError(.rejected, .noSink, "\(sinkName) is planned as not configured")
    }
}
