import Foundation
import MediaPipeline
import StandardStages

/// The whole pipeline.json path of the CLI: each file parsed with line tracking, the overlay
/// merged with `--set` flags, the result loaded by every stage's factory, and the origins that
/// `explain --origins` prints.
enum PipelineFuzz {
    static let environment = ["CLOUDFLARE_ACCOUNT_ID": "account", "COURSE": "intro", "EMPTY": ""]

    static func run(_ data: Data) -> String {
        let fields = data.fields(3)
        // One file given alone takes the shorter path of `Pipeline.load(_:)`.
        if fields.count == 1 {
            _ = try? Pipeline.load(fields[0], registry: StandardStages.registry, environment: environment, assumeConfigured: true)
        }
        var layers: [PipelineLayer] = []
        for (index, text) in fields.prefix(2).enumerated() {
            do {
                layers.append(try PipelineLayer(name: index == 0 ? "pipeline.json" : "overlay.json", data: text))
            } catch {
                return "syntax_error"
            }
        }
        var settings: [PipelineSetting] = []
        if fields.count == 3 {
            for line in String(decoding: fields[2], as: UTF8.self).split(separator: "\n") {
                if let setting = try? PipelineSetting(String(line)) { settings.append(setting) }
            }
        }
        let overlay: PipelineOverlay
        do {
            overlay = try PipelineOverlay.merge(layers, settings: settings)
        } catch {
            FuzzCheck.require(!error.problems.isEmpty, "a refused merge names no problem")
            return "merge_refused"
        }
        do {
            let pipeline = try Pipeline.load(document: overlay.document, registry: StandardStages.registry,
                                             environment: environment, assumeConfigured: true)
            _ = overlay.entries(resolved: pipeline.resolved, interpolation: Interpolation(environment: environment))
            return "loaded"
        } catch {
            FuzzCheck.require(error.diagnostics.contains { $0.severity == .error }, "a refused load names no error")
            for diagnostic in error.diagnostics { _ = overlay.origin(of: diagnostic.path) }
            return "load_refused"
        }
    }
}
