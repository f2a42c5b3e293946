import MediaPipeline
import StandardStages

/// `media-pipeline schema`: the JSON Schema of pipeline.json, made from the readers the loader
/// uses, so it never says something the loader does not.
struct SchemaCommand {
    static let spec = CommandSpec(
        name: "schema", usage: "schema",
        abstract: "Print the JSON Schema (draft 2020-12) of pipeline.json for the stage kinds of this build.",
        options: [],
        discussion: """
            Editors use it for completion and checks: pipeline.json names it with "$schema": "./pipeline.schema.json",
            which is written with 'media-pipeline schema > pipeline.schema.json'. The schema checks the file's shape;
            'media-pipeline validate' also checks what only the loader can (environment variables, routes naming sinks).
            """)

    let arguments: ParsedArguments
    let console: Console

    func run() -> Int32 {
        guard arguments.positional.isEmpty else {
            console.err("error: schema takes no arguments; see 'media-pipeline schema --help'")
            return 2
        }
        console.out(Pipeline.schema(registry: StandardStages.registry).prettyText)
        return 0
    }
}
