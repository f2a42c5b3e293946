public import Foundation
public import MediaPipeline
import Synchronization
import Dispatch
import Testing

/// Paths and helpers the test targets share.
public enum TestFiles {
    /// The repository's root folder.
    public static let repoRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }()

    private static let fixtures = Mutex<Result<URL, FixtureError>?>(nil)

    /// Why the fixture script failed.
    public struct FixtureError: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// The real test files made by Tests/Fixtures/make-fixtures.sh, built once per test process.
    public static func fixtureDirectory() throws -> URL {
        try fixtures.withLock { cached in
            if let cached { return try cached.get() }
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mp-fixtures-\(UUID().uuidString.prefix(8))")
            let result = Shell.run("/bin/bash", [repoRoot.appendingPathComponent("Tests/Fixtures/make-fixtures.sh").path, dir.path])
            let outcome: Result<URL, FixtureError> = result.status == 0
                ? .success(dir) : .failure(FixtureError(description: "make-fixtures.sh failed (\(result.status)): \(result.stderr)"))
            cached = outcome
            return try outcome.get()
        }
    }

    /// One fixture file by name.
    public static func fixture(_ name: String) throws -> URL {
        try fixtureDirectory().appendingPathComponent(name)
    }

    /// A new empty folder that is removed when `body` returns.
    public static func withTemporaryDirectory<T>(_ body: (URL) async throws -> T) async rethrows -> T {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mp-test-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer {
            // Whatever the test's runs left here (manifests, journals, work folders, output) holds no secret.
            Canaries.expectNone(under: dir)
            try? FileManager.default.removeItem(at: dir)
        }
        return try await body(dir)
    }

    /// Files (recursively) in a folder, relative paths, sorted.
    public static func listing(_ dir: URL) -> [String] {
        let walker = FileManager.default.enumerator(atPath: dir.path)
        var names: [String] = []
        while let name = walker?.nextObject() as? String { names.append(name) }
        return names.sorted()
    }
}

/// Runs a program and collects its output.
public enum Shell {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    public static func run(_ program: String, _ arguments: [String], environment: [String: String]? = nil,
                           directory: URL? = nil) -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = directory }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return Result(status: -1, stdout: "", stderr: "\(error)") }
        // Read stderr on its own thread while stdout is read here, so neither pipe fills up.
        let errors = DataBox()
        let finished = DispatchSemaphore(value: 0)
        Thread {
            errors.set(err.fileHandleForReading.readDataToEndOfFile())
            finished.signal()
        }.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        finished.wait()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errors.get(), as: UTF8.self))
    }

    /// `run`, waited for on a thread of its own: an async test that runs a program leaves Swift's
    /// few cooperative threads free for the other tests (whose timers would otherwise fire late).
    public static func runOnThread(_ program: String, _ arguments: [String], environment: [String: String]? = nil,
                                   directory: URL? = nil) async -> Result {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: run(program, arguments, environment: environment, directory: directory)) }.start()
        }
    }

    private final class DataBox: Sendable {
        private let data = Mutex(Data())
        func set(_ value: Data) { data.withLock { $0 = value } }
        func get() -> Data { data.withLock { $0 } }
    }

    /// Every tag exiftool finds, as `Group:Tag` → value.
    public static func exifTags(_ file: URL) -> [String: String] {
        let result = run("/usr/bin/exiftool", ["-G", "-a", "-s", "-json", file.path])
        guard let data = result.stdout.data(using: .utf8),
              let list = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]], let tags = list.first else { return [:] }
        return tags.mapValues { "\($0)" }
    }
}

/// A logger that keeps messages for assertions.
public final class MemoryLogger: Logger {
    private let lines = Mutex<[String]>([])
    public init() {}
    public func log(_ level: LogLevel, _ message: String) { lines.withLock { $0.append(message) } }
    public var messages: [String] { lines.withLock { $0 } }
}

/// SplitMix64: a small seeded generator, so a test's "random" choices are the same on every run
/// and a failure can be replayed.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Polls `condition` until it holds or `timeout` seconds pass; whether it held in the end.
public func eventually(timeout: Double = 10, every interval: Duration = .milliseconds(20),
                       _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}
