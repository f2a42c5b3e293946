import Foundation
#if canImport(CMalloc)
import CMalloc
#endif
import MediaPipeline
import StandardStages
import LocalMedia

/// The composition root: reads arguments and the environment, builds the pipeline from the
/// standard stages, and decides where every piece of text goes.
@main
enum MediaPipelineCLI {
    static let version = "0.1.0"

    static let commands: [CommandSpec] = [RunCommand.spec, ValidateCommand.spec, ExplainCommand.spec, StagesCommand.spec,
                                          DoctorCommand.spec, DeleteCommand.spec, LiveCommand.spec, NotifyCommand.spec, TestCommand.spec,
                                          SchemaCommand.spec, ServeCommand.spec]

    static let rootHelp = """
        USAGE: media-pipeline <command> [options]

        Moves course media into Cloudflare: images to Images (or R2), documents to R2, videos to
        Stream, through the stages declared in pipeline.json.

        COMMANDS:
        \(commands.map { "  " + $0.name.padding(toLength: 12, withPad: " ", startingAt: 0) + $0.abstract }.joined(separator: "\n"))

        OPTIONS:
          --version   Show the version.
          --help      Show this help. Every command takes --help too.

        Credentials come only from the environment: CLOUDFLARE_ACCOUNT_ID, CLOUDFLARE_API_TOKEN,
        CLOUDFLARE_R2_ACCESS_KEY_ID, CLOUDFLARE_R2_SECRET_ACCESS_KEY, CLOUDFLARE_R2_BUCKET_NAME,
        CLOUDFLARE_R2_PUBLIC_BASE_URL. They are never printed.
        """

    static func main() async {
        tuneAllocator()
        let arguments = Array(CommandLine.arguments.dropFirst())
        let environment = ProcessInfo.processInfo.environment
        if arguments == [DecoderWorkers.commandName] { exit(DecoderWorkers.serve()) }
        // Images are decoded by workers this program starts as itself, so a decoder crash costs one file.
        if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            DecoderWorkers.start(executable: executable, environment: environment)
        }
        let code = await run(arguments, environment: environment)
        DecoderWorkers.stop()
        exit(code)
    }

    /// Large decode buffers (a progressive JPEG keeps every coefficient) are freed after each
    /// file, but glibc keeps freed memory in per-thread arenas and raises its mmap threshold as it
    /// goes, so a long batch's RSS creeps up. A fixed 1 MiB threshold returns big buffers to the
    /// system on free. Measured figures are in bench/README.md.
    static func tuneAllocator() {
        #if canImport(CMalloc)
        _ = mallopt(M_MMAP_THRESHOLD, 1 << 20)
        #endif
    }

    static func run(_ arguments: [String], environment: [String: String]) async -> Int32 {
        let console = Console(redactor: Redactor(environment: environment), level: .info)
        guard let first = arguments.first else {
            console.err(rootHelp)
            return 2
        }
        switch first {
        case "--help", "-h", "help":
            console.out(rootHelp)
            return 0
        case "--version":
            console.out("media-pipeline \(version)")
            return 0
        default:
            break
        }
        guard let spec = commands.first(where: { $0.name == first }) else {
            let hint = DidYouMeanWord.closest(first, commands.map(\.name)).map { " Did you mean '\($0)'?" } ?? ""
            console.err("error: unknown command '\(Console.escape(first))'.\(hint) See 'media-pipeline --help'.")
            return 2
        }
        let parsed: ParsedArguments
        do {
            parsed = try spec.parse(Array(arguments.dropFirst()))
        } catch {
            console.err("error: \(error)")
            return 2
        }
        if parsed.flag("help") {
            console.out(spec.help)
            return 0
        }
        switch spec.name {
        case RunCommand.spec.name: return await RunCommand(arguments: parsed, environment: environment).run()
        case ValidateCommand.spec.name: return ValidateCommand(arguments: parsed, environment: environment, console: console).run()
        case ExplainCommand.spec.name: return ExplainCommand(arguments: parsed, environment: environment, console: console).run()
        case DoctorCommand.spec.name: return await DoctorCommand(environment: environment, console: console).run()
        case DeleteCommand.spec.name: return await DeleteCommand(arguments: parsed, environment: environment, console: console).run()
        case LiveCommand.spec.name: return await LiveCommand(arguments: parsed, environment: environment, console: console).run()
        case NotifyCommand.spec.name: return await NotifyCommand(arguments: parsed, environment: environment, console: console).run()
        case TestCommand.spec.name: return await TestCommand(arguments: parsed, environment: environment, console: console).run()
        case SchemaCommand.spec.name: return SchemaCommand(arguments: parsed, console: console).run()
        case ServeCommand.spec.name: return await ServeCommand(arguments: parsed, environment: environment, console: console).run()
        default: return StagesCommand(environment: environment, console: console).run()
        }
    }

    /// Loads one pipeline file, printing every problem with the file's name when it cannot.
    static func loadPipeline(_ path: String, environment: [String: String], assumeConfigured: Bool,
                             console: Console) -> Pipeline? {
        PipelineChoice(files: [path]).load(environment: environment, assumeConfigured: assumeConfigured, console: console)?.pipeline
    }
}
