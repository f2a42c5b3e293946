import Foundation
import PackagePlugin

/// `swift package lint-pipeline [FILE]`: builds the CLI and runs `media-pipeline validate` on the
/// package's pipeline.json (or FILE). The checking itself is the CLI's; this only runs it.
@main
struct PipelineLint: CommandPlugin {
    func performCommand(context: PluginContext, arguments: [String]) async throws {
        let build = try packageManager.build(.product("media-pipeline"), parameters: .init(configuration: .debug))
        guard build.succeeded,
              let tool = build.builtArtifacts.first(where: { $0.kind == .executable && $0.url.lastPathComponent == "media-pipeline" })
        else {
            Diagnostics.error("could not build media-pipeline:\n\(build.logText)")
            return
        }
        let file = arguments.first ?? context.package.directoryURL.appendingPathComponent("pipeline.json").path
        let process = Process()
        process.executableURL = tool.url
        process.arguments = ["validate", file]
        try process.run()
        process.waitUntilExit()
        if process.terminationStatus != 0 {
            Diagnostics.error("\(file) has problems (see above)")
            throw ExitCode(process.terminationStatus)
        }
    }
}

struct ExitCode: Error { let code: Int32; init(_ code: Int32) { self.code = code } }
