import Foundation
import Synchronization

/// What a source looked like when it was journaled, read without opening it: a file whose size or
/// modification time differs is imported again.
public struct SourceStamp: Sendable, Equatable {
    public var bytes: Int64
    /// Seconds since 1970, when known (archive entries may not carry one).
    public var modified: Double?

    public init(bytes: Int64, modified: Double?) {
        self.bytes = bytes
        self.modified = modified
    }
}

/// What the journal remembers of one source's last run.
public struct JournaledSource: Sendable, Equatable {
    public var stamp: SourceStamp
    public var status: AssetStatus
    /// The rendition it maps to, once uploaded.
    public var rendition: String?
    public var report: JSONValue?

    public init(stamp: SourceStamp, status: AssetStatus, rendition: String?, report: JSONValue?) {
        self.stamp = stamp
        self.status = status
        self.rendition = rendition
        self.report = report
    }
}

/// One upload of one content in one shape: content SHA-256 + purpose and preset + the stages that
/// shape the bytes + the sink. Two sources with the same bytes and purpose share it.
public struct Rendition: Sendable, Equatable {
    public enum State: String, Sendable {
        /// Journaled before any remote effect; a crash leaves it here, and `remote` says how to resume.
        case started
        /// The provider confirmed it; `result` is the manifest's result.
        case done
    }

    public var key: String
    public var sink: String
    public var state: State
    /// What the sink saved before its remote effects (upload id, tus URL, reserved id).
    public var remote: JSONValue?
    public var result: JSONValue?

    public init(key: String, sink: String, state: State, remote: JSONValue? = nil, result: JSONValue? = nil) {
        self.key = key
        self.sink = sink
        self.state = state
        self.remote = remote
        self.result = result
    }
}

/// The answer to a claim on a source.
public enum SourceClaim: Sendable, Equatable {
    /// This worker owns the source until it finishes it (or its lease lapses).
    case claimed
    /// Done before with the same stamp: nothing to do.
    case done(JournaledSource)
    /// Another live worker holds it; ask again later.
    case busy
}

/// Durable state of an import: every remote effect is written here before it starts and after it
/// is confirmed, so a rerun after a crash resumes instead of repeating.
///
/// Implementations: SQLite for one machine, PostgreSQL for many workers on one import. Every
/// method may throw; the runner treats a journal error as fatal (exit 3).
public protocol Journal: Sendable {
    /// Takes a source for this worker, unless it is done with the same stamp or another worker holds it.
    func claim(_ source: String, stamp: SourceStamp) async throws -> SourceClaim
    /// The rendition's state, if any run started it.
    func rendition(_ key: String) async throws -> Rendition?
    /// Records that a sink is about to upload this rendition (idempotent).
    func begin(_ key: String, sink: String) async throws
    /// Records what the sink needs to resume (upload id, tus URL) before it acts on it.
    func saveRemote(_ key: String, _ remote: JSONValue) async throws
    /// Records the provider's confirmation.
    func complete(_ key: String, result: JSONValue) async throws
    /// Records a source's terminal state (or `pending`) and lets go of it.
    func finish(_ source: String, stamp: SourceStamp, report: AssetReport, rendition: String?) async throws
    /// Flushes and closes; later calls fail.
    func close() async
}

/// What an earlier, interrupted upload of the same rendition left, and where to note progress.
/// Sinks read `saved` to resume and call `save` before each remote effect they may need to resume.
public final class UploadCheckpoint: Sendable {
    /// What the sink saved last time (nil on a first try or without a journal).
    public let saved: JSONValue?
    private let store: @Sendable (JSONValue) async throws -> Void

    public init(saved: JSONValue?, store: @escaping @Sendable (JSONValue) async throws -> Void) {
        self.saved = saved
        self.store = store
    }

    /// A checkpoint that remembers nothing: runs without a journal.
    public static let none = UploadCheckpoint(saved: nil) { _ in }

    /// Journals `state` durably; throws a fatal `SinkError` when the journal cannot be written, so
    /// no remote effect starts that a rerun could not find.
    public func save(_ state: JSONValue) async throws(SinkError) {
        do { try await store(state) } catch {
            throw SinkError(.fatal, .journalFailed, "the journal could not be written: \(error)")
        }
    }
}

extension ReasonCode {
    /// The journal could not be read or written: fatal, exit 3.
    public static let journalFailed: ReasonCode = "journal_failed"
}

/// Test-only crash points: `MEDIA_PIPELINE_CRASH_AT=name` or `name:N` makes the process kill
/// itself with SIGKILL the first (or N-th) time it reaches the named point, so tests can prove a
/// rerun resumes from exactly there.
public enum CrashPoint {
    private static let target: (name: String, count: Int)? = {
        guard let spec = ProcessInfo.processInfo.environment["MEDIA_PIPELINE_CRASH_AT"], !spec.isEmpty else { return nil }
        let parts = spec.split(separator: ":", maxSplits: 1)
        return (String(parts[0]), parts.count > 1 ? Int(parts[1]) ?? 1 : 1)
    }()
    private static let reached = Mutex<[String: Int]>([:])

    /// Kills the process when `name` (with occurrence `number`, or counted here when nil) is the
    /// configured crash point.
    public static func reach(_ name: String, number: Int? = nil) {
        guard let target, target.name == name else { return }
        let count = number ?? reached.withLock { counts in
            counts[name, default: 0] += 1
            return counts[name]!
        }
        guard count == target.count else { return }
        kill(getpid(), SIGKILL)
    }
}
