import ExecStage
import Foundation
import LocalMedia
import MediaPipeline
import StandardStages
import TestSupport
import Testing

/// The `exec` stage with real programs: small Python scripts written by each test.
struct ExecStageTests {
    /// What every test program starts with: read hello, then `handle` each asset after `ready`.
    static let prelude = """
        import json, os, signal, subprocess, sys, time
        def send(message):
            sys.stdout.write(json.dumps(message) + "\\n")
            sys.stdout.flush()
        hello = json.loads(sys.stdin.readline())

        """
    static let loop = """

        send({"type": "ready"})
        for line in sys.stdin:
            handle(json.loads(line))

        """

    /// Writes a program whose `handle(a)` is `body` and builds an exec stage running it.
    func stage(_ body: String, in dir: URL, options: [(key: String, value: JSONValue)] = [], name: String = "probe") throws -> ExecStage {
        let script = dir.appendingPathComponent("stage-\(UUID().uuidString.prefix(8)).py")
        try (Self.prelude + body + Self.loop).write(to: script, atomically: true, encoding: .utf8)
        var reader = OptionsReader(.object([("command", ["/usr/bin/python3", .string(script.path)])] + options), path: "options")
        let built = ExecStage.factory.build(&reader, FactoryContext(environment: [:], assumeConfigured: false, stepName: name))
        #expect(reader.finished().diagnostics.items.isEmpty, "\(reader.finished().diagnostics.items)")
        guard case let .stage(stage)? = built, let exec = stage as? ExecStage else { throw Reason(.stageFailed, "not built") }
        return exec
    }

    /// A real file under a name of the test's choosing.
    func asset(_ source: String, file: String = "notes.txt") throws -> Asset {
        Asset(source: source, file: try TestFiles.fixture(file), relativePath: source, purpose: "course-material", inspector: LocalInspector())
    }

    func context(_ dir: URL, _ logger: MemoryLogger = MemoryLogger()) -> StageContext {
        let work = dir.appendingPathComponent("work")
        try? FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        return StageContext(logger: logger, dryRun: true, workDirectory: work, purposes: [:], sinks: [:])
    }

    /// The code of a refusal, or nil when the file went on.
    func code(_ outcome: StageOutcome) -> String? {
        switch outcome {
        case .proceed: nil
        case let .skip(reason), let .reject(reason): reason.code.rawValue
        }
    }

    func detail(_ outcome: StageOutcome) -> String {
        switch outcome {
        case .proceed: ""
        case let .skip(reason), let .reject(reason): reason.detail
        }
    }

    /// True once the process is gone or a zombie waiting for its parent (it runs no more).
    static func isGone(_ pid: Int) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(close, offsetBy: 2)] == "Z"
    }

    static let pidReply = #"send({"type": "continue", "id": a["id"], "variables": {"pid": os.getpid()}})"#

    @Test func aFileGoesOnWithVariablesAReplacementAndExtraFiles() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let exec = try stage("""
                def handle(a):
                    print("looking at " + a["source"], file=sys.stderr, flush=True)
                    with open(os.path.join(a["workDir"], "summary.txt"), "w") as f:
                        f.write("summary of " + a["source"])
                    with open(os.path.join(a["workDir"], "extra.json"), "w") as f:
                        f.write("{}")
                    send({"type": "continue", "id": a["id"], "replace": "summary.txt", "files": ["extra.json"],
                          "variables": {"pages": 3, "ok": True, "stage": hello["stage"], "protocol": hello["protocol"],
                                        "seen": a["variables"].get("before", "-"), "kind": a["kind"], "mime": a["mime"],
                                        "bytes": a["bytes"], "purpose": a["purpose"], "original": a["path"]}})
                """, in: dir)
            let logger = MemoryLogger()
            let context = context(dir, logger)
            let doc = try asset("lessons/doc.pdf", file: "doc.pdf")
            doc.variables = ["before": "x"]
            #expect(try await exec.run(doc, context: context) == .proceed)
            await exec.finish()
            let variables = doc.variables
            #expect(variables["pages"] == "3" && variables["ok"] == "true" && variables["before"] == "x")
            #expect(variables["stage"] == "probe" && variables["protocol"] == "1" && variables["seen"] == "x")
            #expect(variables["kind"] == "document" && variables["mime"] == "application/pdf" && variables["purpose"] == "course-material")
            #expect(variables["bytes"] == String(try doc.size()) && variables["original"] == doc.file.path)
            let prepared = try #require(doc.prepared)
            #expect(prepared.url.lastPathComponent == "summary.txt" && prepared.url.path.hasPrefix(context.workDirectory.path + "/exec-probe/"))
            #expect(prepared.mime == "text/plain" && prepared.bytes == Int64("summary of lessons/doc.pdf".utf8.count))
            #expect(doc.notes.contains { $0.hasPrefix("probe: made ") && $0.hasSuffix("/extra.json") })
            #expect(logger.messages.contains("[probe] looking at lessons/doc.pdf"))
        }
    }

    @Test func aCrashRefusesThatFileOnlyAndTheNextOneStartsTheProgramAgain() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let exec = try stage("""
                def handle(a):
                    if a["source"] == "exit":
                        print("giving up", file=sys.stderr, flush=True)
                        sys.exit(3)
                    if a["source"] == "abort":
                        os.abort()
                    \(Self.pidReply)
                """, in: dir)
            let logger = MemoryLogger()
            let context = context(dir, logger)
            let first = try asset("first")
            #expect(try await exec.run(first, context: context) == .proceed)
            let exited = try await exec.run(try asset("exit"), context: context)
            #expect(code(exited) == "stage_crashed")
            #expect(detail(exited).contains("exited with status 3"), "\(exited)")
            #expect(logger.messages.contains("[probe] giving up"))
            let second = try asset("second")
            #expect(try await exec.run(second, context: context) == .proceed)
            let aborted = try await exec.run(try asset("abort"), context: context)
            #expect(code(aborted) == "stage_crashed")
            #expect(detail(aborted).contains("killed by signal 6"), "\(aborted)")
            let third = try asset("third")
            #expect(try await exec.run(third, context: context) == .proceed)
            await exec.finish()
            let pids = [first, second, third].compactMap { $0.variables["pid"] }
            #expect(pids.count == 3 && Set(pids).count == 3, "each crash is followed by a fresh process: \(pids)")
        }
    }

    @Test func aProgramThatHangsIsKilledWithItsGroupWithinTheTimeoutAndTheNextFileGoesOn() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let report = dir.appendingPathComponent("pids.txt")
            let exec = try stage("""
                def handle(a):
                    if a["source"] == "hang":
                        helper = subprocess.Popen(["sleep", "300"])
                        with open(\(JSONValue.string(report.path).compactText), "w") as f:
                            f.write("%d %d" % (os.getpid(), helper.pid))
                        time.sleep(3000)
                    \(Self.pidReply)
                """, in: dir, options: [("timeout", "1s")])
            let context = context(dir)
            let before = try asset("before")
            #expect(try await exec.run(before, context: context) == .proceed)
            let started = ContinuousClock.now
            let hung = try await exec.run(try asset("hang"), context: context)
            let took = ContinuousClock.now - started
            #expect(code(hung) == "stage_timeout", "\(hung)")
            #expect(detail(hung).contains("no answer within 1s"))
            #expect(took >= .seconds(1) && took < .seconds(150), "took \(took)")
            let pids = try String(contentsOf: report, encoding: .utf8).split(separator: " ").compactMap { Int($0) }
            #expect(pids.count == 2)
            // SIGKILL went to the process group: the program and the helper it started are both gone.
            for _ in 0..<50 where !pids.allSatisfy(Self.isGone) { try await Task.sleep(for: .milliseconds(20)) }
            #expect(pids.allSatisfy(Self.isGone), "still running: \(pids)")
            let after = try asset("after")
            #expect(try await exec.run(after, context: context) == .proceed)
            #expect(after.variables["pid"] != nil && after.variables["pid"] != before.variables["pid"])
            await exec.finish()
        }
    }

    @Test("a reply the protocol does not allow refuses the file and restarts the program", arguments: [
        ("not JSON", #"sys.stdout.write("hello there\n"); sys.stdout.flush()"#, "is not JSON"),
        ("a wrong id", #"send({"type": "continue", "id": a["id"] + 1})"#, "answered with id"),
        ("an unknown type", #"send({"type": "maybe", "id": a["id"]})"#, "unknown reply type"),
        ("not an object", #"send([a["id"]])"#, "instead of a JSON object"),
        ("a code not in snake_case", #"send({"type": "reject", "id": a["id"], "code": "Bad Code"})"#, "not snake_case"),
        ("a reject without code", #"send({"type": "reject", "id": a["id"]})"#, "needs a snake_case"),
        ("a variable that is an object", #"send({"type": "continue", "id": a["id"], "variables": {"x": {}}})"#, "variable 'x'"),
        ("two lines for one file", #"sys.stdout.write('{"type":"continue","id":%d}\n{"type":"continue","id":%d}\n' % (a["id"], a["id"])); sys.stdout.flush()"#, "more than one line"),
        ("a line over 1 MiB", #"sys.stdout.write("x" * (1 << 20) + "x" * 100 + "\n"); sys.stdout.flush()"#, "over 1048576 bytes"),
    ])
    func protocolViolations(_ what: String, _ reply: String, _ expected: String) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let exec = try stage("""
                def handle(a):
                    if a["source"] != "bad":
                        \(Self.pidReply)
                        return
                    \(reply)
                """, in: dir)
            let context = context(dir)
            let before = try asset("before")
            #expect(try await exec.run(before, context: context) == .proceed)
            let bad = try await exec.run(try asset("bad"), context: context)
            #expect(code(bad) == "stage_protocol", "\(what): \(bad)")
            #expect(detail(bad).contains(expected), "\(what): \(bad)")
            let after = try asset("after")
            #expect(try await exec.run(after, context: context) == .proceed, "\(what)")
            #expect(after.variables["pid"] != before.variables["pid"], "\(what): the program was restarted")
            await exec.finish()
        }
    }

    @Test func aProgramThatIsNeverReadyIsRefusedWithinTheStartTimeout() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let script = dir.appendingPathComponent("silent.py")
            try "import time\ntime.sleep(3000)\n".write(to: script, atomically: true, encoding: .utf8)
            var reader = OptionsReader(["command": ["python3", .string(script.path)], "startTimeout": "500ms"], path: "options")
            guard case let .stage(exec)? = ExecStage.factory.build(&reader, FactoryContext(environment: [:], assumeConfigured: false, stepName: "slow"))
            else { Issue.record("not built"); return }
            let started = ContinuousClock.now
            let outcome = try await exec.run(try asset("a"), context: context(dir))
            #expect(code(outcome) == "stage_timeout" && detail(outcome).contains("no ready within 0.5s"), "\(outcome)")
            #expect(ContinuousClock.now - started < .seconds(150), "a program that never answers must not hold the file for its 3,000 s sleep (the bound is loose: a busy test machine schedules late)")

            try "print('{\"type\": \"hi\"}', flush=True)\nimport time\ntime.sleep(3000)\n".write(to: script, atomically: true, encoding: .utf8)
            let rude = try await exec.run(try asset("b"), context: context(dir))
            #expect(code(rude) == "stage_protocol" && detail(rude).contains("instead of {\"type\":\"ready\"}"), "\(rude)")
            await exec.finish()
        }
    }

    @Test("a file named outside the work folder, or through a link, refuses the asset", arguments: [
        ("an absolute path elsewhere", #"send({"type": "continue", "id": a["id"], "replace": os.environ["OUTSIDE"]})"#),
        ("a relative path climbing out", #"open(os.path.join(a["workDir"], "..", "up.txt"), "w").write("x"); send({"type": "continue", "id": a["id"], "replace": "../up.txt"})"#),
        ("a link to a file outside", #"os.symlink(os.environ["OUTSIDE"], os.path.join(a["workDir"], "link.txt")); send({"type": "continue", "id": a["id"], "replace": "link.txt"})"#),
        ("a file through a linked folder", #"os.symlink(os.path.dirname(os.environ["OUTSIDE"]), os.path.join(a["workDir"], "dir")); send({"type": "continue", "id": a["id"], "files": ["dir/outside.txt"]})"#),
    ])
    func outputOutsideTheWorkFolder(_ what: String, _ reply: String) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let outside = dir.appendingPathComponent("outside.txt")
            try "secret".write(to: outside, atomically: true, encoding: .utf8)
            let exec = try stage("def handle(a):\n    \(reply)\n", in: dir, options: [("environment", ["OUTSIDE": .string(outside.path)])])
            let doc = try asset("a")
            let outcome = try await exec.run(doc, context: context(dir))
            await exec.finish()
            #expect(code(outcome) == "stage_output_outside", "\(what): \(outcome)")
            #expect(doc.prepared == nil, "\(what)")
        }
    }

    @Test func theProgramSeesOnlyTheListedVariablesAndADefaultPath() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            // /proc/self/environ is what the program was started with, before Python adds anything.
            let body = """
                def handle(a):
                    names = sorted(v.split(b"=", 1)[0].decode() for v in open("/proc/self/environ", "rb").read().split(b"\\0") if v)
                    send({"type": "continue", "id": a["id"], "variables": {"names": ",".join(names), "path": os.environ["PATH"]}})
                """
            let listed = try stage(body, in: dir, options: [("environment", ["GREETING": "hi"])])
            let doc = try asset("a")
            #expect(try await listed.run(doc, context: context(dir)) == .proceed)
            await listed.finish()
            #expect(doc.variables["names"] == "GREETING,PATH")
            #expect(doc.variables["path"] == ExecStage.defaultPath)

            let ownPath = try stage(body, in: dir, options: [("environment", ["PATH": "/usr/bin"])])
            let other = try asset("b")
            #expect(try await ownPath.run(other, context: context(dir)) == .proceed)
            await ownPath.finish()
            #expect(other.variables["names"] == "PATH" && other.variables["path"] == "/usr/bin")
        }
    }

    @Test func instancesServeFilesAtTheSameTime() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let exec = try stage("def handle(a):\n    time.sleep(0.3)\n    \(Self.pidReply)\n", in: dir, options: [("instances", 2)])
            let context = context(dir)
            let one = try asset("one"), two = try asset("two")
            async let first = exec.run(one, context: context)
            async let second = exec.run(two, context: context)
            #expect(try await [first, second] == [.proceed, .proceed])
            await exec.finish()
            #expect(one.variables["pid"] != nil && one.variables["pid"] != two.variables["pid"])
        }
    }

    @Test func finishEndsEveryProgramEvenOneThatIgnoresTheEndOfItsInput() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let script = dir.appendingPathComponent("stubborn.py")
            try (Self.prelude + "def handle(a):\n    \(Self.pidReply)\n" + Self.loop + "time.sleep(3000)\n")
                .write(to: script, atomically: true, encoding: .utf8)
            var reader = OptionsReader(["command": ["python3", .string(script.path)]], path: "options")
            guard case let .stage(exec)? = ExecStage.factory.build(&reader, FactoryContext(environment: [:], assumeConfigured: false))
            else { Issue.record("not built"); return }
            let doc = try asset("a")
            #expect(try await exec.run(doc, context: context(dir)) == .proceed)
            let pid = try #require(doc.variables["pid"].flatMap { Int($0) })
            #expect(!Self.isGone(pid))
            let started = ContinuousClock.now
            await exec.finish()
            #expect(ContinuousClock.now - started < .seconds(150), "finish must not wait for a program that ignores the end of its input")
            #expect(Self.isGone(pid))
            // Used again after a run ended, the stage starts a new program.
            let again = try asset("b")
            #expect(try await exec.run(again, context: context(dir)) == .proceed)
            #expect(again.variables["pid"] != doc.variables["pid"])
            await exec.finish()
        }
    }

    @Test("wrong options are reported with their JSON path and a fix", arguments: [
        (#"{}"#, "stages[0].options", "missing 'command'"),
        (#"{"command": []}"#, "stages[0].options.command", "expected a non-empty array of strings"),
        (#"{"command": ["no-such-program-here"]}"#, "stages[0].options.command[0]", "'no-such-program-here' is not an executable program"),
        (#"{"command": ["./missing/check.py"]}"#, "stages[0].options.command[0]", "is not an executable program"),
        (#"{"command": ["python3", 3]}"#, "stages[0].options.command[1]", "expected a string"),
        (#"{"command": ["python3"], "environment": {"N": 1}}"#, "stages[0].options.environment.N", "expected a string"),
        (#"{"command": ["python3"], "timeout": "soon"}"#, "stages[0].options.timeout", "is not a duration"),
        (#"{"command": ["python3"], "timeout": 0}"#, "stages[0].options.timeout", "must be more than 0"),
        (#"{"command": ["python3"], "instance": 2}"#, "stages[0].options.instance", "unknown key"),
    ])
    func wrongOptions(_ options: String, _ path: String, _ message: String) throws {
        let text = #"{"version": 1, "stages": [{"name": "check", "kind": "exec", "options": \#(options)}]}"#
        do {
            _ = try Pipeline.load(Data(text.utf8), registry: StandardStages.registry, environment: [:])
            Issue.record("loaded: \(options)")
        } catch {
            #expect(error.diagnostics.contains { $0.path == path && $0.message.contains(message) && $0.hint != nil },
                    "\(error.diagnostics)")
        }
    }
}
