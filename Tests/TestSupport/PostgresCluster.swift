public import Foundation

/// A throwaway PostgreSQL server on 127.0.0.1 for tests: a fresh data folder, trust
/// authentication for user `mp`, durability switched off for speed. `stop()` ends it and removes
/// the folder.
///
/// initdb and postgres refuse to run as root (CI runs as root), so as root they run as the
/// `postgres` user through `runuser` on a folder that user owns. Debian keeps the server programs
/// in /usr/lib/postgresql/<version>/bin, off PATH. (Unchecked Sendable: the server's `Process` is
/// only asked whether it runs and for its PID once started.)
public final class PostgresCluster: @unchecked Sendable {
    /// `postgres://mp@127.0.0.1:<port>/postgres`.
    public let url: String
    public let port: Int
    /// The temporary folder holding the data folder, the socket and the server log.
    public let directory: URL
    private let bin: URL
    private let runAs: [String]
    /// `postgres` (or `runuser` running it): this process's child until `stop()`.
    private let server: Process

    /// Why a cluster could not start (or a statement failed); says what to install or read.
    public struct ClusterError: Error, CustomStringConvertible {
        public var description: String
    }

    private init(url: String, port: Int, directory: URL, bin: URL, runAs: [String], server: Process) {
        self.server = server
        self.url = url
        self.port = port
        self.directory = directory
        self.bin = bin
        self.runAs = runAs
    }

    /// Makes a data folder with initdb and starts postgres on a free port, waiting until it accepts
    /// connections. Fails (never skips) when the server programs are missing.
    public static func start() async throws -> PostgresCluster {
        let bin = try serverPrograms()
        let runAs = try runAsPrefix()
        // As root the folder must be reachable by the postgres user: plain /tmp, not a private TMPDIR.
        let directory = URL(fileURLWithPath: getuid() == 0 ? "/tmp" : NSTemporaryDirectory()).appendingPathComponent("mp-pg-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        do {
            if getuid() == 0 {
                guard let user = getpwnam("postgres"), chown(directory.path, user.pointee.pw_uid, user.pointee.pw_gid) == 0 else {
                    throw ClusterError(description: "could not give \(directory.path) to the postgres user: \(String(cString: strerror(errno)))")
                }
            }
            let data = directory.appendingPathComponent("data").path
            let initdb = try await run(runAs + [bin.appendingPathComponent("initdb").path, "-D", data, "-A", "trust", "-U", "mp",
                                                "-E", "UTF8", "--no-locale", "-N", "--no-instructions"], in: directory, timeout: 120)
            guard initdb.status == 0 else { throw ClusterError(description: "initdb failed (\(initdb.status)): \(initdb.output)") }
            // A free port can be taken between the probe and the bind: try a few.
            var lastFailure = ""
            for _ in 0..<3 {
                let port = try TestFiles.freePort()
                let log = directory.appendingPathComponent("postgres.log")
                _ = FileManager.default.createFile(atPath: log.path, contents: nil)
                // postgres runs as this process's child, like the fake servers: `pg_ctl start` would leave a
                // daemon holding the descriptor Foundation watches, and its Process would never end.
                let server = Process()
                let command = runAs + [bin.appendingPathComponent("postgres").path, "-D", data, "-p", "\(port)", "-k", directory.path,
                                       "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                                       "-c", "full_page_writes=off", "-c", "max_connections=200"]
                server.executableURL = URL(fileURLWithPath: command[0])
                server.arguments = Array(command.dropFirst())
                server.currentDirectoryURL = directory
                server.standardInput = FileHandle.nullDevice
                let logHandle = try FileHandle(forWritingTo: log)
                server.standardOutput = logHandle
                server.standardError = logHandle
                try server.run()
                try? logHandle.close()
                let cluster = PostgresCluster(url: "postgres://mp@127.0.0.1:\(port)/postgres", port: port, directory: directory,
                                              bin: bin, runAs: runAs, server: server)
                let deadline = Date().addingTimeInterval(60)
                while server.isRunning, Date() < deadline {
                    let ready = try await run([bin.appendingPathComponent("pg_isready").path, "-q", "-h", "127.0.0.1", "-p", "\(port)",
                                               "-U", "mp", "-d", "postgres"], in: directory, timeout: 30)
                    if ready.status == 0 { return cluster }
                    try await Task.sleep(for: .milliseconds(50))
                }
                let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                lastFailure = "postgres did not accept connections on 127.0.0.1:\(port)"
                    + (server.isRunning ? " within 60 s" : " (it exited with status \(server.terminationStatus))") + ": \(text.suffix(2000))"
                await cluster.stop(removing: false)
            }
            throw ClusterError(description: lastFailure)
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    /// Stops the server at once (no checkpoint: the data is thrown away) and removes its folder.
    public func stop() async {
        await stop(removing: true)
    }

    private func stop(removing: Bool) async {
        if server.isRunning {
            _ = try? await Self.run(runAs + [bin.appendingPathComponent("pg_ctl").path, "stop", "-D",
                                             directory.appendingPathComponent("data").path, "-m", "immediate", "-w"],
                                    in: directory, timeout: 60)
            // Polled, not waitUntilExit (it can hang in a task); SIGKILL if the stop did not take.
            for _ in 0..<500 where server.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
            if server.isRunning { kill(server.processIdentifier, SIGKILL) }
        }
        if removing { try? FileManager.default.removeItem(at: directory) }
    }

    /// Runs SQL with psql (a client, so no `runuser`) and returns its unaligned output.
    @discardableResult
    public func psql(_ sql: String, url: String? = nil) async throws -> String {
        let result = try await Self.run([bin.appendingPathComponent("psql").path, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                         "-d", url ?? self.url, "-c", sql], in: directory, timeout: 60, separateErrors: true)
        guard result.status == 0 else { throw ClusterError(description: "psql failed (\(result.status)) on \(sql): \(result.errors)") }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A new empty schema and a URL whose connections use it, so tests sharing one cluster never
    /// see each other's tables.
    public func makeSchema() async throws -> String {
        let name = "t_" + UUID().uuidString.prefix(8).lowercased()
        try await psql("CREATE SCHEMA \(name)")
        return "\(url)?options=-csearch_path%3D\(name)"
    }

    // MARK: - Finding and running the programs

    /// The folder with initdb, pg_ctl and postgres: the newest /usr/lib/postgresql/<version>/bin, else PATH.
    private static func serverPrograms() throws -> URL {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .sorted { (Double($0) ?? 0) > (Double($1) ?? 0) }
        var candidates = versions.map { URL(fileURLWithPath: "\(root)/\($0)/bin") }
        candidates += (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { URL(fileURLWithPath: String($0)) }
        let needed = ["initdb", "pg_ctl", "postgres", "psql", "pg_isready"]
        if let found = candidates.first(where: { dir in
            needed.allSatisfy { FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent($0).path) }
        }) {
            return found
        }
        let inCI = !(ProcessInfo.processInfo.environment["CI"] ?? "").isEmpty
        let fix = inCI
            ? "CI must install them: `postgresql` is in .ci/install-deps.sh; check that the script ran"
            : "install them (Debian: `apt-get install postgresql`; libpq-dev alone is not enough), or run `bash .ci/install-deps.sh`"
        throw ClusterError(description: "the PostgreSQL server programs (initdb, pg_ctl, postgres, psql, pg_isready) were not found in "
            + "\(root)/*/bin or on PATH; the PostgreSQL journal tests need a real server: \(fix)")
    }

    /// `runuser -u postgres --` when running as root (initdb and postgres refuse root), else nothing.
    private static func runAsPrefix() throws -> [String] {
        guard getuid() == 0 else { return [] }
        guard getpwnam("postgres") != nil else {
            throw ClusterError(description: "running as root, but there is no `postgres` user to run initdb and postgres as "
                + "(the postgresql package creates it; or run the tests as an ordinary user)")
        }
        guard let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw ClusterError(description: "running as root, but runuser (util-linux) is missing: it is needed to start postgres as the postgres user")
        }
        return [runuser, "-u", "postgres", "--"]
    }

    private struct Outcome {
        var status: Int32
        var output: String
        var errors: String
    }

    /// Runs a program with its output in files (a server it starts may keep a pipe open forever) and
    /// polls for the exit: Foundation's waitUntilExit can hang when called from a task.
    private static func run(_ command: [String], in directory: URL, timeout: Double,
                            separateErrors: Bool = false) async throws -> Outcome {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("mp-pg-run-\(UUID().uuidString)")
        let outFile = scratch.appendingPathExtension("out"), errFile = scratch.appendingPathExtension("err")
        _ = FileManager.default.createFile(atPath: outFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outFile)
            try? FileManager.default.removeItem(at: errFile)
        }
        let out = try FileHandle(forWritingTo: outFile), err = try FileHandle(forWritingTo: errFile)
        defer {
            try? out.close()
            try? err.close()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.currentDirectoryURL = directory
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = separateErrors ? err : out
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                kill(process.processIdentifier, SIGKILL)
                throw ClusterError(description: "\(command.joined(separator: " ")) did not finish within \(Int(timeout)) s")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let read = { (file: URL) in (try? String(contentsOf: file, encoding: .utf8)) ?? "" }
        return Outcome(status: process.terminationStatus, output: read(outFile), errors: read(errFile))
    }
}
