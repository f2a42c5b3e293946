import Foundation
import MediaPipeline
import StandardStages

/// `media-pipeline validate`: every problem in a pipeline file, with its JSON path.
struct ValidateCommand {
    static let spec = CommandSpec(
        name: "validate", usage: "validate [FILE] [--pipeline FILE…] [--set PATH=VALUE…]",
        abstract: "Check a pipeline file and list every problem with its JSON path.", options: PipelineChoice.options,
        discussion: "FILE (default pipeline.json) is the base; each --pipeline adds an overlay file over it, in order.")

    let arguments: ParsedArguments
    let environment: [String: String]
    let console: Console

    func run() -> Int32 {
        guard arguments.positional.count <= 1 else {
            console.err("error: validate takes one pipeline file; give overlays with --pipeline FILE")
            return 2
        }
        let choice = PipelineChoice(arguments, leading: arguments.positional)
        // Sinks' credentials are not needed to check a file's shape.
        guard let pipeline = choice.load(environment: environment, assumeConfigured: true, console: console)?.pipeline
        else { return 2 }
        console.out("\(choice.label): OK, \(pipeline.steps.count) stages, \(pipeline.purposes.count) purposes")
        return 0
    }
}

/// `media-pipeline explain`: the pipeline as it will run, environment applied, secrets hidden.
struct ExplainCommand {
    static let spec = CommandSpec(
        name: "explain", usage: "explain [FILE] [--pipeline FILE…] [--set PATH=VALUE…] [--origins | --inputs PATH]",
        abstract: "Show the resolved pipeline with the environment applied and secrets redacted.",
        options: [.init(name: "origins", value: nil, help: "List each value with where it was set: file:line, env VAR or --set."),
                  .init(name: "inputs", value: "PATH", help: "Instead: each file under PATH with its purpose and the rule that chose it.")]
            + PipelineChoice.options,
        discussion: "FILE (default pipeline.json) is the base; each --pipeline adds an overlay file over it, in order.")

    let arguments: ParsedArguments
    let environment: [String: String]
    let console: Console

    func run() -> Int32 {
        guard arguments.positional.count <= 1 else {
            console.err("error: explain takes one pipeline file; give overlays with --pipeline FILE")
            return 2
        }
        guard let loaded = PipelineChoice(arguments, leading: arguments.positional)
            .load(environment: environment, assumeConfigured: false, console: console)
        else { return 2 }
        let pipeline = loaded.pipeline
        if let inputs = arguments.value("inputs") { return explain(inputs: inputs, pipeline) }
        if arguments.flag("origins") {
            printOrigins(loaded)
        } else {
            console.out(console.redactor.redact(pipeline.resolved).prettyText)
        }
        console.out("")
        for step in pipeline.steps {
            var line = "stage \(step.name) (\(step.kind))"
            if case let .sink(sink) = step.body {
                line += sink.configuration.isConfigured ? ": configured" : ": not configured, set \(sink.configuration.missing.joined(separator: ", "))"
            }
            console.out(line)
        }
        for off in loaded.overlay.disabled { console.out("stage \(off.name): disabled by \(off.origin)") }
        return 0
    }

    /// `path = value   origin`, one line per value, the origins in one column.
    private func printOrigins(_ loaded: PipelineChoice.Loaded) {
        let entries = loaded.overlay.entries(resolved: loaded.pipeline.resolved, interpolation: Interpolation(environment: environment))
        let lefts = entries.map { "\($0.path) = \(console.redactor.redact($0.value).compactText)" }
        let width = min(lefts.map(\.count).max() ?? 0, 72)
        for (left, entry) in zip(lefts, entries) {
            console.out(left.padding(toLength: max(width, left.count), withPad: " ", startingAt: 0) + "   " + (entry.origin?.description ?? "default"))
        }
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
