import Foundation
import MediaPipeline
import StandardStages

/// The pipeline a command works with: each `--pipeline FILE` (a base, then overlays) merged in
/// order, then each `--set PATH=VALUE`, read by the one strict loader. Every command that loads
/// a pipeline takes these options from here.
struct PipelineChoice {
    static let options: [CommandSpec.Option] = [
        .init(name: "pipeline", value: "FILE",
              help: "The pipeline file (default: pipeline.json). Repeat to lay overlay files over it, in order.", repeats: true),
        .init(name: "set", value: "PATH=VALUE",
              help: "Change one value after the files, e.g. stages.images.options.maxDimension=2048 (JSON, else text).", repeats: true),
    ]

    /// The files in the order they merge.
    var files: [String]
    /// The `--set` flags' text, in order.
    var settings: [String]

    /// `leading` are files a command takes as positional arguments (`validate FILE`); they come first.
    init(_ arguments: ParsedArguments, leading: [String] = []) {
        files = leading + arguments.all("pipeline")
        if files.isEmpty { files = ["pipeline.json"] }
        settings = arguments.all("set")
    }

    init(files: [String], settings: [String] = []) {
        self.files = files
        self.settings = settings
    }

    /// The files as one name, for summary lines.
    var label: String { files.joined(separator: " + ") }

    /// A loaded pipeline with the merge that produced it (for origins).
    struct Loaded {
        var pipeline: Pipeline
        var overlay: PipelineOverlay
    }

    /// Reads, merges and loads; prints every problem (placed at `file:line` where it can be) and
    /// returns nil when there is any.
    func load(environment: [String: String], assumeConfigured: Bool, console: Console) -> Loaded? {
        var layers: [PipelineLayer] = []
        var problems: [PipelineOverlay.Problem] = []
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else {
                console.err("error: \(file): cannot read the pipeline file (give one with --pipeline FILE)")
                return nil
            }
            do { layers.append(try PipelineLayer(name: file, data: data)) } catch { problems += error.problems }
        }
        var parsed: [PipelineSetting] = []
        for text in settings {
            do { parsed.append(try PipelineSetting(text)) } catch { problems += error.problems }
        }
        var merged: PipelineOverlay?
        if problems.isEmpty {
            do { merged = try PipelineOverlay.merge(layers, settings: parsed) } catch { problems += error.problems }
        }
        guard let overlay = merged else {
            for problem in problems { console.err(problem.description) }
            summarize(problems.count, console: console)
            return nil
        }
        do {
            let pipeline = try Pipeline.load(document: overlay.document, registry: StandardStages.registry, environment: environment,
                                             assumeConfigured: assumeConfigured)
            for warning in pipeline.warnings { console.err(located(warning, overlay)) }
            return Loaded(pipeline: pipeline, overlay: overlay)
        } catch {
            for diagnostic in error.diagnostics { console.err(located(diagnostic, overlay)) }
            summarize(error.diagnostics.filter { $0.severity == .error }.count, console: console)
            return nil
        }
    }

    private func summarize(_ count: Int, console: Console) {
        console.err("\(label): \(count) error\(count == 1 ? "" : "s"); nothing was run")
    }

    /// The diagnostic prefixed with the file and line that wrote the value it is about; a
    /// reference to a stage an overlay turned off says where.
    private func located(_ diagnostic: Diagnostic, _ overlay: PipelineOverlay) -> String {
        var diagnostic = diagnostic
        if let off = overlay.disabled.first(where: { diagnostic.message.contains("'\($0.name)'") }) {
            diagnostic.hint = (diagnostic.hint.map { $0 + "; " } ?? "") + "stage '\(off.name)' was disabled by \(off.origin)"
        }
        let location = overlay.origin(of: diagnostic.path).map(String.init(describing:)) ?? files[0]
        return "\(location): \(diagnostic)"
    }
}
