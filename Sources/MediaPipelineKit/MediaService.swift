public import Foundation
public import MediaPipeline
import CloudflareClient
import StandardStages
import Synchronization

/// The pipeline for one file at a time, for a server that takes single uploads: the same
/// pipeline.json, stages and sinks as `media-pipeline run`, one call per file.
///
/// ```swift
/// let media = try MediaService(pipelineFile: URL(fileURLWithPath: "pipeline.json"))
/// let report = await media.process(file: upload, filename: "me.jpg", purpose: "avatar")
/// if report.status == .uploaded { print(report.json.compactText) }   // the manifest row
/// ```
///
/// Safe to call from many tasks at once: the calls share one CPU pool (one file's checks and
/// image work per core, `limits.concurrency`) and one upload pool (`limits.uploads`). Nothing is remembered
/// between calls (there is no journal): the providers' content ids keep a repeated file from
/// being stored twice where they can.
public final class MediaService: Sendable {
    public let pipeline: Pipeline
    public let environment: [String: String]
    private let runner: Runner
    private let account: CloudAccount
    /// Where each call's prepared files live while it runs.
    private let workRoot: URL
    /// Shared by every call: checks and image work one per core, uploads as the pipeline's limit.
    private let pools: Runner.Pools

    /// A pipeline already loaded. `environment` supplies the credentials (never printed).
    public init(pipeline: Pipeline, environment: [String: String] = ProcessInfo.processInfo.environment,
                logger: any Logger = SilentLogger(), workRoot: URL = FileManager.default.temporaryDirectory) {
        self.pipeline = pipeline
        self.environment = environment
        self.workRoot = workRoot
        runner = Runner(pipeline: pipeline, inspector: StandardStages.inspector(), logger: logger)
        pools = Runner.Pools(concurrency: pipeline.limits.concurrency ?? ProcessInfo.processInfo.activeProcessorCount,
                             uploads: pipeline.limits.uploads)
        account = CloudAccount(environment: environment)
    }

    /// Loads pipeline.json text; every problem is in the error.
    public convenience init(pipelineJSON data: Data, environment: [String: String] = ProcessInfo.processInfo.environment,
                            logger: any Logger = SilentLogger()) throws(PipelineLoadError) {
        let pipeline: Pipeline
        do {
            pipeline = try Pipeline.load(data, registry: StandardStages.registry, environment: environment)
        } catch {
            throw PipelineLoadError(problems: error.diagnostics.filter { $0.severity == .error }.map(\.description))
        }
        self.init(pipeline: pipeline, environment: environment, logger: logger)
    }

    /// Loads a pipeline file.
    public convenience init(pipelineFile url: URL, environment: [String: String] = ProcessInfo.processInfo.environment,
                            logger: any Logger = SilentLogger()) throws(PipelineLoadError) {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw PipelineLoadError(problems: ["\(url.path): cannot read the pipeline file"])
        }
        do { try self.init(pipelineJSON: data, environment: environment, logger: logger) } catch {
            throw PipelineLoadError(problems: error.problems.map { "\(url.path): \($0)" })
        }
    }

    /// Runs one file through every stage and returns its manifest row: `uploaded` with the sink's
    /// result, or `rejected`/`failed`/`skipped` with the reason. `filename` is the name the client
    /// gave (the file on disk may have any name); with no `purpose`, the path rules decide from it.
    public func process(file: URL, filename: String? = nil, purpose: String?) async -> AssetReport {
        let name = filename ?? file.lastPathComponent
        if let refused = unknown(purpose, source: name) { return refused }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? NSNumber)?.int64Value ?? 0
        let input = InputFile(source: name, url: file, relativePath: name, bytes: bytes)
        let work = workRoot.appendingPathComponent("media-pipeline-\(UUID().uuidString.lowercased())")
        defer { try? FileManager.default.removeItem(at: work) }
        do { try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true) } catch {
            return AssetReport(source: name, status: .failed, reason: Reason(.diskFull, "cannot create a work folder: \(error.localizedDescription)"))
        }
        var options = Runner.Options(dryRun: false, concurrency: 1, uploads: 1, workDirectory: work, purpose: purpose,
                                     journal: nil, outbox: MemoryOutbox())
        options.pools = pools
        options.executor = WorkThreads.shared
        let result = Mutex<AssetReport?>(nil)
        _ = await runner.run([input], options: options) { report in result.withLock { $0 = report } }
        return result.withLock { $0 } ?? AssetReport(source: name, status: .failed, reason: Reason(.stageFailed, "the file was not reported"))
    }

    /// A one-time URL the client uploads a declared file to, straight to the provider the
    /// pipeline's validation and routing choose for these facts. `planned` with the ticket as
    /// `result` (`method`, `url`, `expiresAt`, the media's `ref`, …), or `rejected` with the reason.
    public func directUpload(_ declared: DeclaredFile, purpose: String?, expiresIn seconds: Double = 900) async -> AssetReport {
        await decide(declared, purpose: purpose, expiry: Date().addingTimeInterval(seconds))
    }

    /// Where a declared file would go, or why it would be refused, from its facts alone: nothing
    /// is asked of any provider. `planned` with the sink, or `rejected` with the reason.
    public func check(_ declared: DeclaredFile, purpose: String?) async -> AssetReport {
        await decide(declared, purpose: purpose, expiry: nil)
    }

    private func decide(_ declared: DeclaredFile, purpose: String?, expiry: Date?) async -> AssetReport {
        if let refused = unknown(purpose, source: declared.filename) { return refused }
        return await runner.directUpload(declared, purpose: purpose, expiry: expiry, workDirectory: workRoot)
    }

    /// Why `purpose` cannot be used (`unknown_purpose`: the pipeline does not define it), or nil.
    public func problem(withPurpose purpose: String?) -> Reason? {
        guard let purpose, pipeline.purposes[purpose] == nil else { return nil }
        return Reason(.unknownPurpose, "'\(purpose)' is not a purpose of this pipeline; known: \(pipeline.purposes.keys.sorted().joined(separator: ", "))")
    }

    private func unknown(_ purpose: String?, source: String) -> AssetReport? {
        problem(withPurpose: purpose).map { AssetReport(source: source, status: .rejected, reason: $0) }
    }

    /// Deletes uploaded media. False when it was already gone.
    public func delete(_ ref: MediaRef) async throws(SinkError) -> Bool { try await account.delete(ref) }

    /// Creates a Stream live input; the answer holds the ingest URLs and keys (secrets: hand them
    /// only to whoever will broadcast).
    public func createLiveInput(name: String, recording: Bool) async throws(SinkError) -> JSONValue {
        try await account.stream.createLiveInput(name: name, recording: recording)
    }

    public func liveInputs() async throws(SinkError) -> [JSONValue] { try await account.stream.liveInputs() }

    /// False when it was already gone.
    public func deleteLiveInput(uid: String) async throws(SinkError) -> Bool { try await account.stream.deleteLiveInput(uid: uid) }

    /// The variables a call needs that are missing: for `delete` of `ref` (or the live-input calls
    /// when nil). Empty when it can go ahead.
    public func missingConfiguration(for ref: MediaRef?) -> [String] {
        account.problems(needing: CloudAccount.variables(for: ref?.provider ?? .stream, environment: environment))
    }

    /// Lets go of what stages keep between files (external processes). Call once when done.
    public func finish() async {
        for step in pipeline.steps {
            if case let .stage(stage) = step.body { await stage.finish() }
        }
    }
}

/// A pipeline that could not be loaded, with every problem found.
public struct PipelineLoadError: Error, Sendable, CustomStringConvertible {
    public var problems: [String]
    public var description: String { problems.joined(separator: "\n") }
}

/// A logger that drops everything: the default for embedding apps that log through their own
/// means from the returned reports.
public struct SilentLogger: Logger {
    public init() {}
    public func log(_ level: LogLevel, _ message: String) {}
}

extension ReasonCode {
    /// A purpose the pipeline does not define was asked for.
    public static let unknownPurpose: ReasonCode = "unknown_purpose"
}
