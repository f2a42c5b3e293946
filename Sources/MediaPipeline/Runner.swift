public import Foundation
import Synchronization

/// Takes each input file through the pipeline's steps with bounded concurrency.
///
/// The runner owns what wraps every stage: `when`, `on_error`, timing, and dry-run reporting of
/// sink plans. It is the one path from input to report.
public struct Runner: Sendable {
    /// What the caller chose for this run.
    public struct Options: Sendable {
        public var dryRun: Bool
        /// Files in the CPU pool at once (checks, hashing, libvips).
        public var concurrency: Int
        /// Uploads in flight at once, in their own pool, so the next files are prepared meanwhile.
        public var uploads: Int
        public var workDirectory: URL
        /// `--purpose`: overrides the purpose rules for every file.
        public var purpose: String?

        public init(dryRun: Bool, concurrency: Int, uploads: Int = PipelineLimits().uploads, workDirectory: URL, purpose: String? = nil) {
            self.dryRun = dryRun
            self.concurrency = max(1, concurrency)
            self.uploads = max(1, uploads)
            self.workDirectory = workDirectory
            self.purpose = purpose
        }

        /// Files in flight: the CPU pool, plus the upload pool when uploads happen.
        var filesInFlight: Int { dryRun ? concurrency : concurrency + uploads }
    }

    public let pipeline: Pipeline
    public let inspector: any AssetInspector
    public let logger: any Logger
    /// Sinks that hit a fatal error (credentials refused, untrusted certificate): no more work goes there.
    private let stoppedSinks = StoppedSinks()

    public init(pipeline: Pipeline, inspector: any AssetInspector, logger: any Logger) {
        self.pipeline = pipeline
        self.inspector = inspector
        self.logger = logger
    }

    /// Runs every input; `report` is called once per file as it finishes (from any task).
    public func run(_ inputs: [InputFile], options: Options, report: @escaping @Sendable (AssetReport) -> Void) async -> RunSummary {
        let started = ContinuousClock.now
        let context = StageContext(logger: logger, dryRun: options.dryRun, workDirectory: options.workDirectory,
                                   purposes: pipeline.purposes, sinks: pipeline.sinks,
                                   memory: Budget(capacity: pipeline.limits.memory))
        let pools = Pools(cpu: Budget(capacity: Int64(options.concurrency)), uploads: Budget(capacity: Int64(options.uploads)))
        var summary = RunSummary()
        await withTaskGroup(of: (InputFile, AssetReport).self) { group in
            // A file a sink defers (its API asked for a longer wait than the run allows) goes once
            // more to the end of the queue, so other work goes on meanwhile.
            var queue = Self.bigFilesFirst(inputs)[...]
            var deferred: Set<String> = []
            func start(_ input: InputFile) {
                group.addTask { (input, await process(input, options: options, context: context, pools: pools)) }
            }
            for _ in 0..<options.filesInFlight {
                guard let input = queue.popFirst() else { break }
                start(input)
            }
            for await (input, finished) in group {
                if finished.deferrable, deferred.insert(input.source).inserted {
                    logger.log(.info, "\(input.source): \(finished.reason?.detail ?? "deferred"); trying again at the end of the queue")
                    queue.append(input)
                } else {
                    summary.add(finished)
                    report(finished)
                }
                if let input = queue.popFirst() { start(input) }
            }
        }
        summary.milliseconds = Runner.milliseconds(since: started)
        summary.fatal = stoppedSinks.all.map { "\($0.key): \($0.value.detail)" }
        return summary
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }

    /// The two pools a file passes through: CPU work up to its sink, then the upload.
    struct Pools: Sendable {
        let cpu: Budget
        let uploads: Budget
    }

    /// Large files (videos, mostly) start first so that none is left uploading alone at the end;
    /// the rest keep their order.
    public static func bigFilesFirst(_ inputs: [InputFile], threshold: Int64 = 64 * 1024 * 1024) -> [InputFile] {
        inputs.filter { $0.bytes >= threshold }.sorted { $0.bytes > $1.bytes } + inputs.filter { $0.bytes < threshold }
    }

    /// One file through every step.
    func process(_ input: InputFile, options: Options, context: StageContext, pools: Pools) async -> AssetReport {
        let started = ContinuousClock.now
        let asset = Asset(source: input.source, file: input.url, relativePath: input.relativePath,
                          purpose: pipeline.purpose(for: input.relativePath, override: options.purpose), inspector: inspector)
        let cpu = Hold(pools.cpu)
        await pools.cpu.reserve(1)
        var report = await walk(asset, context: context, cpu: cpu, uploads: pools.uploads)
        cpu.release()
        if report.status != .planned, report.status != .uploaded {
            discardPrepared(asset, in: context.workDirectory)
        }
        report.milliseconds = Runner.milliseconds(since: started)
        return report
    }

    private func walk(_ asset: Asset, context: StageContext, cpu: Hold, uploads: Budget) async -> AssetReport {
        func end(_ status: AssetStatus, sink: String? = nil, result: JSONValue? = nil, reason: Reason? = nil) -> AssetReport {
            let mime = asset.knownMIME
            return AssetReport(source: asset.source, sha256: asset.knownSHA256, bytes: asset.knownSize ?? (try? asset.size()),
                               mime: mime, kind: mime.map(AssetKind.init(mime:)), purpose: asset.purpose, status: status,
                               sink: sink, result: result, reason: reason, notes: asset.notes)
        }
        var planned: (sink: String, plan: UploadPlan)?
        var uploaded: (sink: String, result: JSONValue)?
        for step in pipeline.steps {
            var outcome: StageOutcome
            do {
                if let when = step.when, try !when.matches(asset) { continue }
                switch step.body {
                case let .stage(stage):
                    outcome = try await stage.run(asset, context: context)
                case let .sink(sink):
                    guard asset.sink == step.name else { continue }
                    let plan = try sink.plan(for: asset, context: context)
                    // Dry-run reports the plan; a real run executes this same plan.
                    if context.dryRun {
                        planned = (sink.sinkName, plan)
                        outcome = .proceed
                        break
                    }
                    if let stopped = stoppedSinks[step.name] {
                        return end(.pending, sink: sink.sinkName, reason: stopped)
                    }
                    do {
                        // The upload leaves the CPU pool for the upload pool: the next file's
                        // checks and transforms run while this one is on the network.
                        cpu.release()
                        let result = try await uploads.withReservation(1) { try await sink.upload(plan, asset: asset, context: context) }
                        uploaded = (sink.sinkName, result)
                        outcome = .proceed
                    } catch let error as SinkError {
                        switch error.severity {
                        case .rejected: return end(.rejected, sink: sink.sinkName, reason: error.reason)
                        case .failed:
                            var report = end(.failed, sink: sink.sinkName, reason: error.reason)
                            report.deferrable = error.deferrable
                            return report
                        case .fatal:
                            stoppedSinks.stop(step.name, error.reason)
                            logger.log(.error, "\(step.name): \(error.reason.detail); no more uploads go to it in this run")
                            return end(.failed, sink: sink.sinkName, reason: error.reason)
                        }
                    }
                }
            } catch let reason as Reason {
                outcome = .reject(reason)
            } catch {
                outcome = .reject(Reason(.stageFailed, "stage '\(step.name)': \(error)"))
            }
            switch outcome {
            case .proceed: continue
            case let .skip(reason): return end(.skipped, reason: reason)
            case let .reject(reason):
                switch step.onError {
                case .reject: return end(.rejected, reason: reason)
                case .skip: return end(.skipped, reason: reason)
                case .continue:
                    logger.log(.warning, "\(asset.source): stage '\(step.name)' failed, continuing: \(reason)")
                    continue
                }
            }
        }
        if let planned {
            return end(.planned, sink: planned.sink, result: planned.plan.json)
        }
        if let uploaded {
            return end(.uploaded, sink: uploaded.sink, result: uploaded.result)
        }
        let why = asset.sink == nil ? "no route stage chose a sink for this file" : "the chosen sink '\(asset.sink!)' did not run"
        return end(.rejected, reason: Reason(.noSink, why))
    }

    /// Removes a prepared file of a file that will not be uploaded, so nothing half-done remains.
    private func discardPrepared(_ asset: Asset, in folder: URL) {
        guard let prepared = asset.prepared, prepared.url.path.hasPrefix(folder.path) else { return }
        try? FileManager.default.removeItem(at: prepared.url)
    }
}

/// The sinks a run stopped sending to, each with the reason it was stopped.
private final class StoppedSinks: Sendable {
    private let reasons = Mutex<[String: Reason]>([:])

    subscript(name: String) -> Reason? { reasons.withLock { $0[name] } }

    func stop(_ name: String, _ reason: Reason) {
        reasons.withLock { if $0[name] == nil { $0[name] = reason } }
    }

    var all: [(key: String, value: Reason)] { reasons.withLock { $0.sorted { $0.key < $1.key } } }
}

/// One slot of a pool, given back once however many times `release` is called.
private final class Hold: Sendable {
    private let pool: Budget
    private let held = Mutex(true)

    init(_ pool: Budget) { self.pool = pool }

    func release() {
        if held.withLock({ held in defer { held = false }; return held }) { pool.release(1) }
    }
}
