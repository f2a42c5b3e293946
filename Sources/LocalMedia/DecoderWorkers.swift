import ChildProcesses
import Foundation
import MediaPipeline
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// libvips in worker processes: image headers are read and images transformed by a program the
/// tool starts (itself, with a hidden command), one file at a time per worker. A decoder that
/// crashes on a hostile file then costs that file (`decoder_crashed`) and a fresh worker, never
/// the batch; one that hangs is killed after `timeout` (`timeout`).
///
/// Workers get no credentials: their environment is libvips' own variables and a fixed PATH.
/// Without `DecoderWorkers.start`, libvips runs in the tool's own process (library users, tests).
public final class DecoderWorkers: Sendable {
    /// The program and arguments of a worker, e.g. `[/usr/bin/media-pipeline, __decoder-worker]`.
    let command: [String]
    let environment: [String: String]
    /// Seconds one file may take in a worker before the worker is killed.
    private let timeout: Mutex<Double>
    /// Workers waiting for a file, with when each became idle.
    private let idle = Mutex<[(child: ChildProcess, since: ContinuousClock.Instant)]>([])
    /// A worker idle this long is ended, so a long-running process (`serve`) gives the memory of
    /// a busy spell back once it is quiet.
    static let idleLimit: Duration = .seconds(15)

    /// The hidden command the tool answers as a worker.
    public static let commandName = "__decoder-worker"
    /// Test only: `crash:<text>` makes a worker raise SIGSEGV, `hang:<text>` makes it stop answering,
    /// when the file's name contains `<text>`; several are separated by commas. Read by the worker,
    /// so the tool's own process never acts on it.
    public static let faultVariable = "MEDIA_PIPELINE_TEST_DECODER_FAULT"

    static let current = Mutex<DecoderWorkers?>(nil)

    init(command: [String], environment: [String: String], timeout: Double) {
        self.command = command
        self.environment = environment
        self.timeout = Mutex(timeout)
    }

    /// From now on every libvips header read and transform of this process runs in workers started
    /// as `executable commandName`. `environment` is the tool's; only libvips' variables pass on.
    public static func start(executable: String, environment: [String: String], timeout: Double = 120) {
        var passed = environment.filter { $0.key.hasPrefix("VIPS_") || $0.key == faultVariable }
        passed["PATH"] = "/usr/bin:/bin"
        // A crash ends the worker at once: no backtrace (it could take seconds, and the file's name is enough).
        passed["SWIFT_BACKTRACE"] = "enable=no"
        let workers = DecoderWorkers(command: [executable, commandName], environment: passed, timeout: timeout)
        current.withLock { $0 = workers }
        // Ends workers idle past the limit, until these workers are replaced or stopped.
        Thread {
            while current.withLock({ $0 }) === workers {
                Thread.sleep(forTimeInterval: 2)
                workers.stopIdle(olderThan: idleLimit)
            }
        }.start()
    }

    /// Sets how long one file may take in a worker (the pipeline's `limits.decodeTimeout`).
    public static func setTimeout(_ seconds: Double) {
        current.withLock { $0 }?.timeout.withLock { $0 = seconds }
    }

    /// Ends every idle worker (they exit at the end of their input).
    public static func stop() {
        let workers = current.withLock { current in
            defer { current = nil }
            return current
        }
        workers?.stopIdle()
    }

    /// Ends the idle workers, or only those idle for longer than `age`.
    func stopIdle(olderThan age: Duration = .zero) {
        let now = ContinuousClock.now
        let children = idle.withLock { idle in
            let old = idle.filter { now - $0.since >= age }
            idle.removeAll { now - $0.since >= age }
            return old
        }
        for var entry in children { entry.child.stop(grace: 1, log: { _ in }) }
    }

    /// Sends one request to an idle worker (or a new one) and returns its answer. A worker that
    /// dies, hangs or answers nonsense is stopped and the file fails with the matching kind.
    func call(_ request: WorkerRequest, file: URL) throws(VipsError) -> WorkerReply {
        let message: [UInt8]
        do {
            message = Array(try JSONEncoder().encode(request)) + [0x0A]
        } catch {
            throw VipsError(operation: request.operation, file: file, message: "could not encode the request: \(error)")
        }
        var child: ChildProcess
        if let ready = idle.withLock({ $0.popLast() }) {
            child = ready.child
        } else {
            do {
                child = try ChildProcess.spawn(command, environment: environment)
            } catch {
                throw VipsError(operation: request.operation, file: file, message: "could not start a decoder worker: \(error.detail)", kind: .crashed)
            }
        }
        let timeout = self.timeout.withLock { $0 }
        let exchanged = ChildProcess.withoutBrokenPipeSignal {
            child.exchange(message, timeout: timeout) { line in FileHandle.standardError.write(Data(("decoder worker: " + line + "\n").utf8)) }
        }
        switch exchanged {
        case .success(let line):
            if let reply = try? JSONDecoder().decode(WorkerReply.self, from: Data(line)), !child.hasUnreadOutput {
                idle.withLock { $0.append((child, ContinuousClock.now)) }
                if let failure = reply.failure {
                    throw VipsError(operation: request.operation, file: file, message: failure)
                }
                return reply
            }
            child.stop(grace: 0, log: { _ in })
            throw VipsError(operation: request.operation, file: file, message: "the decoder worker answered something that is not a reply", kind: .crashed)
        case .failure(.timeout):
            child.stop(grace: 0, log: { _ in })
            throw VipsError(operation: request.operation, file: file,
                            message: "no answer from the decoder worker within \(Int(timeout)) s; it was killed", kind: .timedOut)
        case .failure:
            let ended = child.stop(grace: 1, log: { _ in })
            throw VipsError(operation: request.operation, file: file,
                            message: "the decoder worker ended (\(ended)) while reading this file; the next file gets a new worker", kind: .crashed)
        }
    }

    /// The worker's side: answers one request per line on stdin until stdin ends. Returns the exit status.
    public static func serve() -> Int32 {
        let faults = (ProcessInfo.processInfo.environment[faultVariable] ?? "").split(separator: ",").compactMap { TestFault(String($0)) }
        // A worker whose tool has gone (killed, so stdin may never end while libvips hangs) leaves too.
        let parent = getppid()
        Thread.detachNewThread {
            while getppid() == parent { sleep(1) }
            _exit(0)
        }
        let output = FileHandle.standardOutput
        while let line = readLine(strippingNewline: true) {
            let reply: WorkerReply
            do {
                let request = try JSONDecoder().decode(WorkerRequest.self, from: Data(line.utf8))
                let input = URL(fileURLWithPath: request.input)
                for fault in faults { fault.act(on: input) }
                switch request.transform {
                case nil:
                    reply = WorkerReply(header: try Vips.headerInProcess(of: input))
                case let spec?:
                    let size = try Vips.transformInProcess(input, to: URL(fileURLWithPath: request.output ?? ""), spec)
                    reply = WorkerReply(width: size.width, height: size.height, pages: size.pages)
                }
            } catch let error as VipsError {
                reply = WorkerReply(failure: error.message)
            } catch {
                reply = WorkerReply(failure: "\(error)")
            }
            guard let encoded = try? JSONEncoder().encode(reply) else { return 1 }
            output.write(encoded + Data([0x0A]))
        }
        return 0
    }

    /// What `MEDIA_PIPELINE_TEST_DECODER_FAULT` asks a worker to do.
    struct TestFault {
        var crash: Bool
        var pattern: String

        init?(_ text: String) {
            let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, ["crash", "hang"].contains(parts[0]), !parts[1].isEmpty else { return nil }
            crash = parts[0] == "crash"
            pattern = parts[1]
        }

        func act(on file: URL) {
            guard file.lastPathComponent.contains(pattern) else { return }
            if crash { raise(SIGSEGV) }
            while true { sleep(60) }
        }
    }
}

/// One request to a worker: a header read (no `transform`) or a transform into `output`.
struct WorkerRequest: Codable {
    var input: String
    var output: String?
    var transform: VipsTransform?

    var operation: String { transform == nil ? "header" : "transform" }
}

/// A worker's answer: a header, an output size, or libvips' words for a failure.
struct WorkerReply: Codable {
    var header: ImageHeader?
    var width: Int?
    var height: Int?
    var pages: Int?
    var failure: String?
}
