import Foundation
import MediaPipeline
import StandardStages

/// `media-pipeline validate`: every problem in a pipeline file, with its JSON path.
struct ValidateCommand {
    static let spec = CommandSpec(
        name: "validate", usage: "validate [FILE]",
        abstract: "Check a pipeline file and list every problem with its JSON path.", options: [])

    let arguments: ParsedArguments
    let environment: [String: String]
    let console: Console

    func run() -> Int32 {
        guard arguments.positional.count <= 1 else {
            console.err("error: validate takes one pipeline file")
            return 2
        }
        let path = arguments.positional.first ?? "pipeline.json"
        // Sinks' credentials are not needed to check a file's shape.
        guard let pipeline = MediaPipelineCLI.loadPipeline(path, environment: environment, assumeConfigured: true, console: console)
        else { return 2 }
        console.out("\(path): OK, \(pipeline.steps.count) stages, \(pipeline.purposes.count) purposes")
        return 0
    }
}

/// `media-pipeline explain`: the pipeline as it will run, environment applied, secrets hidden.
struct ExplainCommand {
    static let spec = CommandSpec(
        name: "explain", usage: "explain [FILE] [--inputs PATH]",
        abstract: "Show the resolved pipeline with the environment applied and secrets redacted.",
        options: [.init(name: "inputs", value: "PATH", help: "Instead: each file under PATH with its purpose and the rule that chose it.")])

    let arguments: ParsedArguments
    let environment: [String: String]
    let console: Console

    func run() -> Int32 {
        let path = arguments.positional.first ?? "pipeline.json"
        guard let pipeline = MediaPipelineCLI.loadPipeline(path, environment: environment, assumeConfigured: false, console: console)
        else { return 2 }
        if let inputs = arguments.value("inputs") { return explain(inputs: inputs, pipeline) }
        console.out(console.redactor.redact(pipeline.resolved).prettyText)
        console.out("")
        for step in pipeline.steps {
            var line = "stage \(step.name) (\(step.kind))"
            if case let .sink(sink) = step.body {
                line += sink.configuration.isConfigured ? ": configured" : ": not configured, set \(sink.configuration.missing.joined(separator: ", "))"
            }
            console.out(line)
        }
        return 0
    }

    /// One line per file (or archive entry, read without extracting it): its path, its purpose,
    /// and which of `purposeRules` chose it.
    private func explain(inputs path: String, _ pipeline: Pipeline) -> Int32 {
        let inputs: Inputs
        do { inputs = try Inputs([path]) } catch {
            console.err("error: \(error)")
            return 2
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("media-pipeline-explain-\(UUID().uuidString.lowercased())")
        guard (try? FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)) != nil else {
            console.err("error: cannot create \(work.path)")
            return 2
        }
        defer { try? FileManager.default.removeItem(at: work) }
        for var sequence in inputs.sequences(work: work, limits: pipeline.limits) {
            while let candidate = sequence.next() {
                switch candidate {
                case let .rejected(source, reason):
                    console.out("\(Console.escape(source)) → refused: \(reason.code)  (\(Console.escape(reason.detail)))")
                case let .file(file):
                    describe(file, pipeline)
                }
            }
        }
        return 0
    }

    private func describe(_ file: InputFile, _ pipeline: Pipeline) {
        let name = Console.escape(file.relativePath)
        if let index = pipeline.purposeRule(for: file.relativePath) {
            let rule = pipeline.purposeRules[index]
            let prefix = pipeline.purposes[rule.purpose].map { ", key prefix \"\($0.prefix)\"" } ?? ""
            console.out("\(name) → \(rule.purpose)  (purposeRules[\(index)] \"\(rule.match.pattern)\"\(prefix))")
        } else {
            console.out("\(name) → no purpose  (no rule matches)")
        }
    }
}

/// `media-pipeline stages`: the stage kinds this build knows and their options.
struct StagesCommand {
    static let spec = CommandSpec(
        name: "stages", usage: "stages", abstract: "List the stage kinds and their options.", options: [])

    let environment: [String: String]
    let console: Console

    func run() -> Int32 {
        let context = FactoryContext(environment: [:], assumeConfigured: true)
        for factory in StandardStages.factories {
            console.out("\(factory.kind)\(factory.isSink ? " (sink)" : "")  — \(factory.summary)")
            for option in factory.options(context: context) {
                console.out("    \(option.name): \(option.type), default \(option.defaultValue) — \(option.help)")
            }
            console.out("")
        }
        return 0
    }
}
