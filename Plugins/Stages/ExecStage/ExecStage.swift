import Foundation
import ChildProcesses
public import MediaPipeline
#if canImport(Glibc)
import Glibc
#endif

extension ReasonCode {
    /// An `exec` stage's program gave no answer in time (`timeout`, or `startTimeout` for `ready`); it was killed.
    public static let stageTimeout: ReasonCode = "stage_timeout"
    /// An `exec` stage's program exited, was killed by a signal, closed its output, or could not be started.
    public static let stageCrashed: ReasonCode = "stage_crashed"
    /// An `exec` stage's program wrote something the protocol does not allow (not JSON, a wrong id, an unknown type, a line over 1 MiB).
    public static let stageProtocol: ReasonCode = "stage_protocol"
    /// An `exec` stage's program named a file outside the asset's work folder, or a symbolic link.
    public static let stageOutputOutside: ReasonCode = "stage_output_outside"
    /// An `exec` stage's program skipped the file without giving a code of its own.
    public static let stageSkipped: ReasonCode = "stage_skipped"
}

/// Runs a program of the user's as a stage: it is started once (on the first file), kept, and
/// asked about each file over its stdin and stdout, one JSON object per line
/// (docs/stage-protocol.md). The program sees only the environment the options list.
///
/// A program that does not answer in time is killed with its process group; one that crashes or
/// breaks the protocol is restarted for the next file. Either way only that file is refused.
public struct ExecStage: Stage {
    let name: String
    let command: [String]
    let environment: [String: String]
    let timeout: Double
    let startTimeout: Double
    let changesBytes: Bool
    let pool: ProcessPool

    /// The PATH the program gets when the options list none.
    public static let defaultPath = "/usr/local/bin:/usr/bin:/bin"
    /// How long a program may take to exit once its stdin is closed at the end of a run.
    static let exitGrace = 2.0

    public static let factory = StageFactory(kind: "exec", summary: "run a program of your own on each file (JSON lines over stdin/stdout)") { options, context in
        let commandValue = options.raw("command", type: "[string]", help: "the program and its arguments, e.g. [\"python3\", \"stages/check.py\"] (required)")
        let environment = ExecStage.readEnvironment(&options)
        let timeout = options.seconds("timeout", default: 60, help: "longest wait for the answer about one file; then the program is killed")
        let startTimeout = options.seconds("startTimeout", default: 10, help: "longest wait for the program's ready after hello")
        let instances = options.int("instances", default: 1, range: 1...64, help: "programs kept running, each serving one file at a time")
        let changesBytes = options.bool("changesBytes", default: false,
                                        help: "the program replaces files: its options count in the journal's rendition identity")
        if options.has("timeout"), timeout <= 0 { options.error("timeout", "must be more than 0", hint: "e.g. \"30s\"") }
        if options.has("startTimeout"), startTimeout <= 0 { options.error("startTimeout", "must be more than 0", hint: "e.g. \"10s\"") }
        guard let command = ExecStage.readCommand(commandValue, path: PathSearch(environment["PATH"] ?? ExecStage.defaultPath), options: &options) else { return nil }
        return .stage(ExecStage(name: context.stepName.isEmpty ? "exec" : context.stepName, command: command, environment: environment,
                                timeout: timeout, startTimeout: startTimeout, changesBytes: changesBytes,
                                pool: ProcessPool(capacity: instances)))
    }

    public var shapesBytes: Bool { changesBytes }

    public func run(_ asset: Asset, context: StageContext) async throws -> StageOutcome {
        let id = pool.nextID()
        let fields = try describe(asset)
        let logger = context.logger
        var slot = await pool.acquire(logger: logger)
        let folder: URL
        do {
            folder = try slot.folder ?? makeFolder(id, in: context.workDirectory)
        } catch {
            pool.release(slot)
            throw error
        }
        slot.folder = nil
        let message = StageProtocol.asset(id: id, fields + [("workDir", .string(folder.path))])
        let exchanged = await Self.detached { [self, slot] in
            var slot = slot
            let answer = ask(&slot, message, id: id) { logger.log(.info, "[\(name)] \($0)") }
            return (slot, answer)
        }
        var after = exchanged.0
        let answer = exchanged.1
        // The folder goes back to the slot only when the file leaves nothing in it.
        if case .success(.proceed(_, nil, [])) = answer, Self.isEmptyFolder(folder) { after.folder = folder }
        pool.release(after)

        let reply: StageProtocol.Reply
        switch answer {
        case let .success(value): reply = value
        case let .failure(reason):
            try? FileManager.default.removeItem(at: folder)
            return .reject(reason)
        }
        switch reply {
        case let .skip(reason):
            try? FileManager.default.removeItem(at: folder)
            return .skip(reason)
        case let .reject(reason):
            try? FileManager.default.removeItem(at: folder)
            return .reject(reason)
        case let .proceed(variables, replace, files):
            var checked: [URL] = []
            for given in (replace.map { [$0] } ?? []) + files {
                switch Self.fileInside(given, folder: folder) {
                case let .success(url): checked.append(url)
                case let .failure(reason):
                    try? FileManager.default.removeItem(at: folder)
                    return .reject(Reason(reason.code, "stage '\(name)': \(reason.detail)"))
                }
            }
            if !variables.isEmpty { asset.variables.merge(variables) { _, new in new } }
            if replace != nil {
                let previous = asset.prepared
                asset.prepared = try asset.facts(of: checked[0])
                // A file an earlier stage prepared is not needed any more.
                if let previous, previous.url.path.hasPrefix(context.workDirectory.path + "/") {
                    try? FileManager.default.removeItem(at: previous.url)
                }
            }
            for file in checked.dropFirst(replace == nil ? 0 : 1) { asset.note("\(name): made \(file.path)") }
            return .proceed
        }
    }

    public func finish() async {
        let (slots, logger) = pool.takeIdle()
        let stepName = name
        for case let folder? in slots.map(\.folder) { rmdir(folder.path) }
        await withTaskGroup(of: Void.self) { group in
            for case let child? in slots.map(\.child) {
                group.addTask {
                    await Self.detached {
                        var child = child
                        child.stop(grace: Self.exitGrace) { logger?.log(.info, "[\(stepName)] \($0)") }
                    }
                }
            }
        }
    }

    /// A new empty folder for one file: `exec-<step>/<pid>-<id>` in the run's work folder. Plain
    /// `mkdir` calls, since this runs for every file.
    private func makeFolder(_ id: Int, in work: URL) throws -> URL {
        let parent = work.appendingPathComponent("exec-\(Self.folderName(name))")
        var folder = parent.appendingPathComponent("\(getpid())-\(id)")
        for _ in 0..<3 {
            if mkdir(folder.path, 0o700) == 0 { return folder }
            switch errno {
            case ENOENT: _ = mkdir(parent.path, 0o700)  // the first file of the step
            case EEXIST: folder = parent.appendingPathComponent(UUID().uuidString.lowercased())  // left by an earlier run in a kept --work-dir
            default: break
            }
        }
        throw Reason(.stageFailed, "stage '\(name)': cannot create the work folder \(folder.path): \(String(cString: strerror(errno)))")
    }

    /// The asset message's fields, from facts already known where possible.
    private func describe(_ asset: Asset) throws -> [(key: String, value: JSONValue)] {
        let working = try asset.upload()
        var fields: [(key: String, value: JSONValue)] = [
            ("source", .string(asset.source)),
            ("relativePath", .string(asset.relativePath)),
            ("path", .string(working.url.path)),
            ("mime", .string(working.mime)),
            ("kind", .string(try asset.kind().rawValue)),
            ("purpose", .optional(asset.purpose)),
            ("bytes", .int(working.bytes)),
        ]
        if let sha256 = asset.knownSHA256 { fields.append(("sha256", .string(sha256))) }
        let variables = asset.variables
        fields.append(("variables", .object(variables.keys.sorted().map { ($0, .string(variables[$0]!)) })))
        return fields
    }

    /// One file's exchange, on a thread of its own: starts the program if the slot has none, sends
    /// the message, waits for the reply. A program that failed is stopped and left out of the slot.
    private func ask(_ slot: inout ProcessPool.Slot, _ message: [UInt8], id: Int,
                     log: (String) -> Void) -> Result<StageProtocol.Reply, Reason> {
        if var idle = slot.child, idle.hasExited {
            // It ended between two files: this file is not its victim, so it gets a fresh start.
            log("the program \(idle.stop(grace: 0, log: log)) while idle; starting it again")
            slot.child = nil
        }
        if slot.child == nil {
            switch start(log: log) {
            case let .success(child): slot.child = child
            case let .failure(reason): return .failure(reason)
            }
        }
        guard var child = slot.child else { return .failure(Reason(.stageCrashed, "stage '\(name)': no program")) }
        slot.child = nil
        func fail(_ code: ReasonCode, grace: Double, _ detail: (String) -> String) -> Result<StageProtocol.Reply, Reason> {
            let ending = child.stop(grace: grace, log: log)
            return .failure(Reason(code, "stage '\(name)': \(detail(ending))"))
        }
        switch child.exchange(message, timeout: timeout, log: log) {
        case .failure(.timeout):
            return fail(.stageTimeout, grace: 0) { _ in "no answer within \(Self.seconds(timeout)); the program and its process group were killed" }
        case .failure(.closed):
            return fail(.stageCrashed, grace: 1) { "the program \($0) while working on this file; the next file starts it again" }
        case .failure(.tooLong):
            return fail(.stageProtocol, grace: 0) { _ in "the program wrote a line over \(ChildProcess.maxLine) bytes; it was restarted" }
        case let .success(line):
            if child.hasUnreadOutput {
                return fail(.stageProtocol, grace: 0) { _ in "the program wrote more than one line for one file; it was restarted" }
            }
            switch StageProtocol.readReply(line, id: id) {
            case let .failure(violation):
                return fail(.stageProtocol, grace: 0) { _ in "the program \(violation.detail); it was restarted" }
            case let .success(reply):
                slot.child = child
                return .success(reply)
            }
        }
    }

    /// Starts the program and waits for its `ready`.
    private func start(log: (String) -> Void) -> Result<ChildProcess, Reason> {
        var child: ChildProcess
        do {
            child = try ChildProcess.spawn(command, environment: environment)
        } catch {
            return .failure(Reason(.stageCrashed, "stage '\(name)': \(error.detail)"))
        }
        func fail(_ code: ReasonCode, grace: Double, _ detail: (String) -> String) -> Result<ChildProcess, Reason> {
            let ending = child.stop(grace: grace, log: log)
            return .failure(Reason(code, "stage '\(name)': \(detail(ending))"))
        }
        switch child.exchange(StageProtocol.hello(stage: name), timeout: startTimeout, log: log) {
        case .failure(.timeout):
            return fail(.stageTimeout, grace: 0) { _ in "no ready within \(Self.seconds(startTimeout)) of starting; the program was killed (raise startTimeout?)" }
        case .failure(.closed):
            return fail(.stageCrashed, grace: 1) { "the program \($0) before it was ready" }
        case .failure(.tooLong):
            return fail(.stageProtocol, grace: 0) { _ in "the program wrote a line over \(ChildProcess.maxLine) bytes instead of ready" }
        case let .success(line):
            if let violation = StageProtocol.readReady(line) {
                return fail(.stageProtocol, grace: 0) { _ in "the program \(violation.detail)" }
            }
            return .success(child)
        }
    }

    /// True when the folder holds nothing (one `getdents`, cheaper than removing and making it again).
    static func isEmptyFolder(_ folder: URL) -> Bool {
        guard let dir = opendir(folder.path) else { return false }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != ".", name != ".." { return false }
        }
        return true
    }

    /// A file the program named, as a URL inside `folder`: a regular file (not a link) whose real
    /// path, every link resolved, is under the folder's real path.
    static func fileInside(_ given: String, folder: URL) -> Result<URL, Reason> {
        let url = given.hasPrefix("/") ? URL(fileURLWithPath: given) : folder.appendingPathComponent(given)
        var info = stat()
        guard lstat(url.path, &info) == 0 else {
            return .failure(Reason(.stageProtocol, "the program named '\(given)', which does not exist"))
        }
        if info.st_mode & S_IFMT == S_IFLNK {
            return .failure(Reason(.stageOutputOutside, "'\(given)' is a symbolic link; write the file itself inside workDir"))
        }
        guard let real = realPath(url.path), let base = realPath(folder.path), real.hasPrefix(base + "/") else {
            return .failure(Reason(.stageOutputOutside, "'\(given)' is outside the file's work folder \(folder.path); write it inside workDir"))
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            return .failure(Reason(.stageOutputOutside, "'\(given)' is not a regular file"))
        }
        return .success(URL(fileURLWithPath: real))
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Runs blocking work (pipes, poll, waitpid) on a thread of its own, off the cooperative pool.
    /// SIGPIPE is blocked there: a write to a program that has gone fails with EPIPE instead.
    static func detached<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                var pipeSignal = sigset_t()
                sigemptyset(&pipeSignal)
                sigaddset(&pipeSignal, SIGPIPE)
                pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
                continuation.resume(returning: body())
            }
            thread.start()
        }
    }

    /// A step name as one safe folder name.
    static func folderName(_ name: String) -> String {
        String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value))s" : "\(value)s"
    }

    /// `environment`: names to strings; nothing else reaches the program, PATH excepted.
    private static func readEnvironment(_ options: inout OptionsReader) -> [String: String] {
        var environment: [String: String] = [:]
        let value = options.raw("environment", type: "{name: string}", help: "the program's only variables (PATH defaults to \(defaultPath)); use ${VAR} to pass one on")
        switch value {
        case nil, .null?: break
        case let .object(pairs)?:
            for (name, item) in pairs {
                let key = "environment.\(name)"
                guard !name.isEmpty, !name.contains("="), !name.utf8.contains(0) else {
                    options.error("environment", "'\(name)' is not a variable name", hint: "use letters, digits and _")
                    continue
                }
                guard case let .string(text) = item, !text.utf8.contains(0) else {
                    options.error(key, "expected a string, found \(item.typeName)", hint: "quote the value, e.g. \"1\"")
                    continue
                }
                environment[name] = text
            }
        case let other?:
            options.error("environment", "expected an object of names and strings, found \(other.typeName)",
                          hint: "e.g. {\"LANG\": \"C.UTF-8\", \"API_KEY\": \"${MY_API_KEY}\"}")
        }
        if environment["PATH"] == nil { environment["PATH"] = defaultPath }
        return environment
    }

    /// `command`: a non-empty array of strings whose first names a program that exists; a bare
    /// name is looked up on the program's PATH, a relative path is taken from the current folder.
    private static func readCommand(_ value: JSONValue?, path: PathSearch, options: inout OptionsReader) -> [String]? {
        let example = "e.g. [\"python3\", \"examples/stages/pdf-check.py\"]"
        guard let value else {
            options.error("", "missing 'command'", hint: "name the program and its arguments, \(example)")
            return nil
        }
        guard case let .array(items) = value, !items.isEmpty else {
            options.error("command", "expected a non-empty array of strings, found \(value.typeName)", hint: example)
            return nil
        }
        var words: [String] = []
        for (i, item) in items.enumerated() {
            guard case let .string(word) = item, !word.utf8.contains(0) else {
                options.error("command[\(i)]", "expected a string, found \(item.typeName)", hint: example)
                return nil
            }
            words.append(word)
        }
        guard let program = path.resolve(words[0]) else {
            let hint = words[0].contains("/")
                ? "check the path (relative paths start from the folder media-pipeline runs in) and that the file is executable"
                : "install it, give its full path, or list a PATH in environment that holds it"
            options.error("command[0]", "'\(words[0])' is not an executable program", hint: hint)
            return nil
        }
        words[0] = program
        return words
    }
}

/// Finds a program the way a shell would, on the PATH the program itself will get.
struct PathSearch {
    let folders: [String]

    init(_ path: String) { folders = path.split(separator: ":").map(String.init) }

    func resolve(_ name: String) -> String? {
        if name.contains("/") {
            let absolute = name.hasPrefix("/") ? name : FileManager.default.currentDirectoryPath + "/" + name
            return Self.isProgram(absolute) ? URL(fileURLWithPath: absolute).standardizedFileURL.path : nil
        }
        guard !name.isEmpty else { return nil }
        return folders.lazy.map { "\($0)/\(name)" }.first(where: Self.isProgram)
    }

    private static func isProgram(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFREG && access(path, X_OK) == 0
    }
}
