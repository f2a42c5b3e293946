import Foundation
import TestSupport

/// The binary running in the background, so a test can signal it; its output goes to files, so
/// no pipe can fill up while nobody reads it.
final class Spawned: @unchecked Sendable {
    let process = Process()
    let stdout: URL
    let stderr: URL

    /// With `killAfter`, coreutils' `timeout` sends SIGKILL after that many seconds, so the moment
    /// does not depend on when this test process gets round to it. `timeout` signals its whole
    /// process group, itself included, so the status is then SIGKILL.
    init(_ arguments: [String], environment: [String: String], in dir: URL, killAfter: Double? = nil) throws {
        let id = UUID().uuidString.prefix(8)
        stdout = dir.appendingPathComponent("out-\(id).txt")
        stderr = dir.appendingPathComponent("err-\(id).txt")
        _ = FileManager.default.createFile(atPath: stdout.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderr.path, contents: nil)
        if let killAfter {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
            process.arguments = ["--signal=KILL", String(format: "%.3f", killAfter), CLITests.binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: CLITests.binary)
            process.arguments = arguments
        }
        var env = ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory()]
        env.merge(environment) { _, new in new }
        process.environment = env
        process.currentDirectoryURL = TestFiles.repoRoot
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: stdout)
        process.standardError = try FileHandle(forWritingTo: stderr)
        try process.run()
    }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Sends `number` as soon as stdout contains `text`, watching from a thread of its own: a busy
    /// test process (its few cooperative threads taken by other suites) cannot make the signal late.
    /// True when the signal went to a process still running.
    func signal(_ number: Int32, onceOutputContains text: String, within timeout: Double) async -> Bool {
        let process = process, stdout = stdout
        return await withCheckedContinuation { continuation in
            Thread {
                let deadline = Date().addingTimeInterval(timeout)
                while process.isRunning, Date() < deadline {
                    let seen = (try? String(contentsOf: stdout, encoding: .utf8))?.contains(text) ?? false
                    if seen {
                        kill(process.processIdentifier, number)
                        continuation.resume(returning: true)
                        return
                    }
                    usleep(10_000)
                }
                continuation.resume(returning: false)
            }.start()
        }
    }

    /// The exit status (the signal number when a signal ended it), or nil if still running after `timeout` s.
    /// Polls, because waiting on the process from a task can hang.
    func wait(timeout: Double) async -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return process.isRunning ? nil : process.terminationStatus
    }

    var output: String { (try? String(contentsOf: stdout, encoding: .utf8)) ?? "" }
    var errors: String { (try? String(contentsOf: stderr, encoding: .utf8)) ?? "" }
}
