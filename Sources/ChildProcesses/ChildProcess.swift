public import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One running program (an `exec` stage's, or a decoder worker): its process id (also its process group) and our ends
/// of its stdin, stdout and stderr pipes, with what has been read and not yet used.
///
/// Every call blocks: callers run it off the cooperative thread pool (see `ExecStage.detached`), or
/// in place of blocking work it stands for (a decoder worker does what libvips did in process).
/// A value belongs to one caller at a time: its pool hands it out and takes it back.
public struct ChildProcess: Sendable {
    public let pid: pid_t
    private let input: Int32
    private let output: Int32
    private var errors: Int32
    private var outputBuffer: [UInt8] = []
    private var errorBuffer: [UInt8] = []

    /// The longest line the program may write on stdout: a longer one is a protocol error.
    public static let maxLine = 1 << 20
    /// Longer stderr lines are logged in pieces of this many bytes.
    static let maxLogLine = 4096

    /// Why a program could not be started.
    public struct SpawnError: Error, Sendable {
        public var detail: String
    }

    /// How an exchange ended without a reply line.
    public enum Failure: Error, Equatable {
        /// No complete line before the deadline.
        case timeout
        /// stdout reached its end: the program closed it or exited.
        case closed
        /// A line longer than `maxLine`.
        case tooLong
    }

    /// Starts `arguments` (the first is the program's path) with exactly `environment` in its own
    /// process group, with its stdin, stdout and stderr on new pipes and no other descriptor of ours.
    public static func spawn(_ arguments: [String], environment: [String: String]) throws(SpawnError) -> ChildProcess {
        var pipes: [[Int32]] = []
        defer { for pipe in pipes { for fd in pipe where fd >= 0 { close(fd) } } }
        for _ in 0..<3 {
            var fds: [Int32] = [-1, -1]
            guard pipe(&fds) == 0 else { throw SpawnError(detail: "could not make a pipe for \(arguments[0]): \(errorText())") }
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            pipes.append(fds)
        }
        // Our ends do not block: one poll loop writes, reads replies and drains stderr together.
        for fd in [pipes[0][1], pipes[1][0], pipes[2][0]] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipes[0][0], 0)
        posix_spawn_file_actions_adddup2(&actions, pipes[1][1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipes[2][1], 2)
        if let closeFrom = closeFromAction {
            _ = closeFrom(&actions, 3)
        } else {
            markEveryDescriptorCloseOnExec()
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group, so a timeout kills what it started too; a clean signal mask, and
        // default handlers for the signals the CLI ignores during a run (ignored ones are inherited).
        var none = sigset_t()
        sigemptyset(&none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGQUIT, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp)
        guard status == 0 else {
            throw SpawnError(detail: "could not start \(arguments[0]): \(String(cString: strerror(status)))")
        }
        let child = ChildProcess(pid: pid, input: pipes[0][1], output: pipes[1][0], errors: pipes[2][0])
        pipes = [[pipes[0][0], -1], [-1, pipes[1][1]], [-1, pipes[2][1]]]  // the child's ends close here; ours stay open
        return child
    }

    private init(pid: pid_t, input: Int32, output: Int32, errors: Int32) {
        self.pid = pid
        self.input = input
        self.output = output
        self.errors = errors
    }

    /// Writes `message` and waits for one line on stdout, logging stderr lines meanwhile, until
    /// `timeout` seconds have passed. Returns the line without its `\n`.
    public mutating func exchange(_ message: [UInt8], timeout: Double, log: (String) -> Void) -> Result<[UInt8], Failure> {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        var sent = 0
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let newline = outputBuffer.firstIndex(of: 0x0A) {
                guard newline <= Self.maxLine else { return .failure(.tooLong) }
                let line = Array(outputBuffer[..<newline])
                outputBuffer.removeSubrange(...newline)
                return .success(line)
            }
            if outputBuffer.count > Self.maxLine { return .failure(.tooLong) }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return .failure(.timeout) }
            let wait = Int32(min(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1, 60_000))
            var fds = [pollfd(fd: output, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: errors, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: sent < message.count ? input : -1, events: Int16(POLLOUT), revents: 0)]
            let ready = poll(&fds, 3, wait)
            if ready < 0, errno != EINTR { return .failure(.closed) }
            guard ready > 0 else { continue }
            if fds[2].revents != 0 {
                let written = message.withUnsafeBytes { write(input, $0.baseAddress! + sent, message.count - sent) }
                if written > 0 {
                    sent += written
                } else if written < 0, errno != EAGAIN, errno != EINTR {
                    sent = message.count  // the program stopped reading (EPIPE): its end of stdout tells the rest
                }
            }
            if fds[1].revents != 0 { drainErrors(into: &chunk, log: log) }
            if fds[0].revents != 0 {
                let n = chunk.withUnsafeMutableBytes { read(output, $0.baseAddress!, $0.count) }
                if n > 0 {
                    outputBuffer.append(contentsOf: chunk[0..<n])
                } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                    return .failure(.closed)
                }
            }
        }
    }

    /// Runs `body` with SIGPIPE blocked on this thread, so a write to a program that has gone fails
    /// with EPIPE instead of ending the tool; a SIGPIPE raised meanwhile is taken off before the
    /// thread's mask is restored.
    public static func withoutBrokenPipeSignal<T>(_ body: () throws -> T) rethrows -> T {
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &pipeSignal, &previous)
        defer {
            var pending = sigset_t()
            sigpending(&pending)
            if sigismember(&pending, SIGPIPE) == 1 {
                var now = timespec(tv_sec: 0, tv_nsec: 0)
                _ = sigtimedwait(&pipeSignal, nil, &now)
            }
            pthread_sigmask(SIG_SETMASK, &previous, nil)
        }
        return try body()
    }

    /// True when the program wrote something on stdout that no request asked for yet.
    public var hasUnreadOutput: Bool { !outputBuffer.isEmpty }

    /// Reads what stderr holds now without waiting, logging each complete line.
    private mutating func drainErrors(into chunk: inout [UInt8], log: (String) -> Void) {
        guard errors >= 0 else { return }
        while true {
            let n = chunk.withUnsafeMutableBytes { read(errors, $0.baseAddress!, $0.count) }
            if n > 0 {
                errorBuffer.append(contentsOf: chunk[0..<n])
                while let newline = errorBuffer.firstIndex(of: 0x0A) {
                    log(String(decoding: errorBuffer[..<newline], as: UTF8.self))
                    errorBuffer.removeSubrange(...newline)
                }
                while errorBuffer.count >= Self.maxLogLine {
                    log(String(decoding: errorBuffer[..<Self.maxLogLine], as: UTF8.self))
                    errorBuffer.removeSubrange(..<Self.maxLogLine)
                }
                if n < chunk.count { return }
            } else if n < 0, errno == EINTR {
                continue
            } else {
                if n == 0 {
                    // The end: the last line may lack its newline.
                    if !errorBuffer.isEmpty { log(String(decoding: errorBuffer, as: UTF8.self)) }
                    errorBuffer = []
                    close(errors)
                    errors = -1
                }
                return
            }
        }
    }

    /// Ends the program: closes its stdin (a program done with its work exits on that), waits up to
    /// `grace` seconds, then kills its whole process group, reaps it and closes our ends. Logs what
    /// stderr still held. Returns how it ended, e.g. `exited with status 1`.
    @discardableResult
    public mutating func stop(grace: Double, log: (String) -> Void) -> String {
        close(input)
        // Wait for it to exit without reaping it, so its process group id cannot be reused before the kill.
        let deadline = ContinuousClock.now + .milliseconds(Int64(grace * 1000))
        while !hasExited, ContinuousClock.now < deadline { usleep(2_000) }
        let exitedByItself = hasExited
        // Anything it started in its group goes too, even when it exited by itself.
        killpg(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        var chunk = [UInt8](repeating: 0, count: 65536)
        drainErrors(into: &chunk, log: log)
        if !errorBuffer.isEmpty { log(String(decoding: errorBuffer, as: UTF8.self)) }
        errorBuffer = []
        if errors >= 0 { close(errors) }
        close(output)
        return exitedByItself ? Self.describe(status: status) : "did not exit and was killed"
    }

    /// True once the program has ended (it stays a zombie until `stop` reaps it).
    public var hasExited: Bool {
        var info = siginfo_t()
        let r = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)
        return r == 0 && info._sifields._sigchld.si_pid == pid
    }

    /// `exited with status N` or `killed by signal N (NAME)` from a `waitpid` status.
    public static func describe(status: Int32) -> String {
        let signal = status & 0x7F
        if signal == 0 { return "exited with status \((status >> 8) & 0xFF)" }
        let name = strsignal(signal).map { String(cString: $0) } ?? "signal"
        return "killed by signal \(signal) (\(name))"
    }

    private static func errorText() -> String { String(cString: strerror(errno)) }

    /// glibc 2.34's `posix_spawn_file_actions_addclosefrom_np`, found at run time because Swift's
    /// Glibc module leaves GNU extensions out.
    private static let closeFromAction: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    /// Without `addclosefrom`: every descriptor of ours above stderr is closed when the program starts.
    private static func markEveryDescriptorCloseOnExec() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for name in names { if let fd = Int32(name), fd > 2 { _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC) } }
    }
}
