import Foundation
import MediaPipeline
import StandardStages
import LocalMedia

/// `media-pipeline run`: every file through the pipeline, reported per file and in a summary.
struct RunCommand {
    static let spec = CommandSpec(
        name: "run", usage: "run PATH… [options]",
        abstract: "Run files, folders (recursively) and archives (.zip, .tar, .tar.gz, .tgz) through the pipeline.",
        options: [
            .init(name: "dry-run", value: nil, help: "Plan every upload and report it; nothing leaves the machine."),
            .init(name: "assume-configured", value: nil, help: "With --dry-run: plan as if every sink's variables were set."),
            .init(name: "purpose", value: "NAME", help: "Use this purpose for every file instead of the path rules."),
            .init(name: "json", value: nil, help: "Write NDJSON events to stdout (human text stays on stderr)."),
            .init(name: "manifest", value: "FILE", help: "Write one JSON line per source file to FILE."),
            .init(name: "journal", value: "FILE|URL", help: "Where the import is remembered (default: .media-pipeline/journal.db; postgres://… for many workers)."),
            .init(name: "no-journal", value: nil, help: "Remember nothing: reruns rely on the providers' content ids."),
            .init(name: "work-dir", value: "DIR", help: "Keep prepared files in DIR (default: a temporary folder, removed)."),
            .init(name: "concurrency", value: "N", help: "Files in the CPU pool at once (default: limits.concurrency, else one per core)."),
            .init(name: "uploads", value: "N", help: "Uploads in flight at once, beside the CPU pool (default: limits.uploads, 8)."),
            .init(name: "quiet", value: nil, help: "Print only problems and the summary."),
            .init(name: "verbose", value: nil, help: "Print what each stage found."),
        ] + PipelineChoice.options,
        discussion: """
            Exit codes: 0 all done, 1 some files rejected, 2 usage or pipeline error (nothing attempted),
            3 fatal, 4 some files failed after retries, 5 notifications not delivered (pending, refused or expired),
            130/143 stopped by SIGINT/SIGTERM after a clean flush (a rerun resumes).
            The journal (FILE or URL) may also come from MEDIA_PIPELINE_JOURNAL, which keeps a password off the command line.
            """)

    let arguments: ParsedArguments
    let environment: [String: String]

    func run() async -> Int32 {
        let quiet = arguments.flag("quiet"), verbose = arguments.flag("verbose")
        let console = Console(redactor: Redactor(environment: environment), level: verbose ? .debug : quiet ? .warning : .info)
        func usage(_ message: String) -> Int32 {
            console.err("error: \(message)")
            return 2
        }
        let dryRun = arguments.flag("dry-run")
        if arguments.flag("assume-configured"), !dryRun { return usage("--assume-configured goes with --dry-run only") }
        if quiet, verbose { return usage("choose one of --quiet and --verbose") }
        guard !arguments.positional.isEmpty else { return usage("name at least one file or folder; see 'media-pipeline run --help'") }
        var concurrency: Int?
        if let text = arguments.value("concurrency") {
            guard let n = Int(text), (1...256).contains(n) else { return usage("--concurrency takes a number from 1 to 256") }
            concurrency = n
        }
        var uploads: Int?
        if let text = arguments.value("uploads") {
            guard let n = Int(text), (1...256).contains(n) else { return usage("--uploads takes a number from 1 to 256") }
            uploads = n
        }
        guard let pipeline = PipelineChoice(arguments).load(environment: environment, assumeConfigured: arguments.flag("assume-configured"),
                                                            console: console)?.pipeline
        else { return 2 }
        DecoderWorkers.setTimeout(pipeline.limits.decodeTimeout)
        if let purpose = arguments.value("purpose"), pipeline.purposes[purpose] == nil {
            let hint = DidYouMeanWord.closest(purpose, Array(pipeline.purposes.keys)).map { " Did you mean '\($0)'?" } ?? ""
            return usage("--purpose '\(purpose)' is not a purpose of this pipeline.\(hint) Known: \(pipeline.purposes.keys.sorted().joined(separator: ", "))")
        }
        let fm = FileManager.default
        let inputs: Inputs
        do { inputs = try Inputs(arguments.positional) } catch { return usage("\(error)") }
        if arguments.flag("no-journal"), arguments.value("journal") != nil { return usage("choose one of --journal and --no-journal") }
        let keepWork = arguments.value("work-dir") != nil
        let work = arguments.value("work-dir").map { URL(fileURLWithPath: $0) }
            ?? fm.temporaryDirectory.appendingPathComponent("media-pipeline-\(UUID().uuidString.lowercased())")
        do { try fm.createDirectory(at: work, withIntermediateDirectories: true) } catch {
            return usage("cannot create the work folder \(work.path): \(error.localizedDescription)")
        }
        defer { if !keepWork { try? fm.removeItem(at: work) } }

        let manifest: FileHandle?
        if let path = arguments.value("manifest") {
            guard fm.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
                return usage("cannot write the manifest \(path)")
            }
            manifest = handle
        } else {
            manifest = nil
        }
        defer { try? manifest?.close() }

        var journal: (any Journal)?
        if !dryRun, !arguments.flag("no-journal") {
            switch await JournalChoice.open(arguments.value("journal"), environment: environment, lease: pipeline.limits.lease) {
            case let .success(opened): journal = opened
            case let .failure(problem):
                if problem.usage { return usage(problem.message) }
                console.err("error: \(problem.message)")
                return 3
            }
        }

        let sequences = inputs.sequences(work: work, limits: pipeline.limits)
        let totalFiles = sequences.reduce(0) { $0 + ($1.count ?? 0) }
        let totalBytes = inputs.bytes

        let json = arguments.flag("json")
        let stop = StopSwitch()
        let options = Runner.Options(dryRun: dryRun, concurrency: concurrency ?? pipeline.limits.concurrency ?? ProcessInfo.processInfo.activeProcessorCount,
                                     uploads: uploads ?? pipeline.limits.uploads, workDirectory: work, purpose: arguments.value("purpose"),
                                     journal: journal, stop: stop, outbox: journal as? any Outbox ?? MemoryOutbox())
        let runner = Runner(pipeline: pipeline, inspector: StandardStages.inspector(), logger: ConsoleLogger(console: console))
        if !quiet {
            let pools = "\(options.concurrency) worker\(options.concurrency == 1 ? "" : "s")" + (dryRun ? "" : " and \(options.uploads) upload\(options.uploads == 1 ? "" : "s") in flight")
            console.err("\(dryRun ? "planning" : "running") \(totalFiles) file\(totalFiles == 1 ? "" : "s") with \(pools)")
        }
        let progress = quiet ? nil : ProgressDisplay(console: console, totalFiles: totalFiles, totalBytes: totalBytes,
                                                    terminal: Console.stderrIsTerminal)
        let signals = StopSignals(stop: stop, console: console, workFolder: keepWork ? nil : work)
        progress?.start()
        let summary = await runner.run(sequences, options: options) { report in
            progress?.add(report)
            let row = console.redactor.redact(report.json)
            if json { console.out(JSONValue.object([("event", "asset")] + Self.pairs(row)).compactText) }
            manifest?.write(Data((row.compactText + "\n").utf8))
            Self.describe(report, console: console, quiet: quiet)
        }
        progress?.stop()
        signals.cancel()
        if let journal { await journal.close() }
        if let signal = summary.interrupted {
            console.err("stopped by \(signal == SIGTERM ? "SIGTERM" : "SIGINT"): files not started are pending; run the same command again to go on")
        }
        if json { console.out(summary.json.compactText) }
        Self.describeSummary(summary, console: console)
        if let notifications = summary.notifications { console.err(NotifyCommand.describe(notifications)) }
        return summary.exitCode
    }

    static func pairs(_ value: JSONValue) -> [(key: String, value: JSONValue)] {
        if case let .object(pairs) = value { return pairs }
        return []
    }

    /// One line per file on stderr; rejections in the contract's shape.
    static func describe(_ report: AssetReport, console: Console, quiet: Bool) {
        let source = Console.escape(report.source)
        switch report.status {
        case .rejected, .failed, .skipped:
            let reason = report.reason.map { "\($0.code): \(Console.escape($0.detail))" } ?? "no reason given"
            console.err("\(report.status.rawValue) \(source) — \(reason)")
        default:
            guard !quiet else { return }
            var line = "\(report.status.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) \(source) → \(report.sink ?? "-")"
            if let result = report.result, case let .string(method)? = result["method"], case let .string(endpoint)? = result["endpoint"] {
                line += "  \(method) \(endpoint)"
            }
            if case let .number(bytes)? = report.result?["bytes"] { line += "  (\(Quantity.describe(bytes: Int64(bytes))))" }
            console.err(line)
        }
        if console.level <= .debug { for note in report.notes { console.err("  note: \(Console.escape(note))") } }
    }

    static func describeSummary(_ summary: RunSummary, console: Console) {
        let counts = AssetStatus.allCases.compactMap { status in
            summary.byStatus[status].map { "\($0) \(status.rawValue)" }
        }
        console.err("summary: \(summary.total) file\(summary.total == 1 ? "" : "s"): \(counts.isEmpty ? "nothing to do" : counts.joined(separator: ", ")) in \(String(format: "%.2f", summary.milliseconds / 1000)) s")
        for name in summary.bySink.keys.sorted() {
            let entry = summary.bySink[name]!
            let retries = entry.retries > 0 ? ", \(entry.retries) retr\(entry.retries == 1 ? "y" : "ies")" : ""
            console.err("  \(name.padding(toLength: 18, withPad: " ", startingAt: 0)) \(entry.count) file\(entry.count == 1 ? "" : "s"), \(Quantity.describe(bytes: entry.bytes))\(retries)")
        }
    }
}
