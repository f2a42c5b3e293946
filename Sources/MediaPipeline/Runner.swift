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
        /// Where remote effects are recorded so reruns resume; nil runs without memory (and dry-run never uses one).
        public var journal: (any Journal)?
        /// Pulled by SIGINT/SIGTERM: no new file starts, files in flight finish, the rest end `pending`.
        public var stop: StopSwitch
        /// Where notify steps' events wait for delivery (the journal, or memory without one); nil sends none.
        public var outbox: (any Outbox)?
        /// Names this run in notifications.
        public var identity: RunIdentity
        /// Pools shared with other runs, instead of this run's own of `concurrency` and `uploads`.
        public var pools: Pools?
        /// Where each file's steps run; nil: Swift's cooperative pool. The steps block on files,
        /// libmagic and decoder workers, so a process that does other work meanwhile (a server
        /// answering requests) gives them `WorkThreads.shared`.
        public var executor: (any TaskExecutor)?

        public init(dryRun: Bool, concurrency: Int, uploads: Int = PipelineLimits().uploads, workDirectory: URL, purpose: String? = nil,
                    journal: (any Journal)? = nil, stop: StopSwitch = StopSwitch(), outbox: (any Outbox)? = nil,
                    identity: RunIdentity = RunIdentity(id: UUID().uuidString.lowercased())) {
            self.outbox = dryRun ? nil : outbox
            self.identity = identity
            self.dryRun = dryRun
            self.concurrency = max(1, concurrency)
            self.uploads = max(1, uploads)
            self.workDirectory = workDirectory
            self.purpose = purpose
            self.journal = dryRun ? nil : journal
            self.stop = stop
        }

        /// Files in flight: the CPU pool, plus the upload pool when uploads happen.
        var filesInFlight: Int { dryRun ? concurrency : concurrency + uploads }
    }

    public let pipeline: Pipeline
    public let inspector: any AssetInspector
    public let logger: any Logger
    /// Sinks that hit a fatal error (credentials refused, untrusted certificate): no more work goes there.
    private let stoppedSinks = StoppedSinks()
    /// One upload per rendition at a time, so two sources with the same bytes and purpose share it.
    private let renditionLocks = KeyedLocks()

    public init(pipeline: Pipeline, inspector: any AssetInspector, logger: any Logger) {
        self.pipeline = pipeline
        self.inspector = inspector
        self.logger = logger
    }

    /// Runs files already on disk, large ones first.
    public func run(_ inputs: [InputFile], options: Options, report: @escaping @Sendable (AssetReport) -> Void) async -> RunSummary {
        await run([InputList(Self.bigFilesFirst(inputs))], options: options, report: report)
    }

    /// Runs every input of each sequence in turn; `report` is called once per source as it ends
    /// (from any task). Memory stays flat: at most `filesInFlight` inputs are held at once.
    public func run(_ sequences: [any InputSequence], options: Options, report: @escaping @Sendable (AssetReport) -> Void) async -> RunSummary {
        let started = ContinuousClock.now
        let context = StageContext(logger: logger, dryRun: options.dryRun, workDirectory: options.workDirectory,
                                   purposes: pipeline.purposes, sinks: pipeline.sinks,
                                   memory: Budget(capacity: pipeline.limits.memory))
        let pools = options.pools ?? Pools(concurrency: options.concurrency, uploads: options.uploads)
        var summary = RunSummary()
        var feed = Feed(sequences: sequences)
        var halt: String?
        // Notify events are written to the outbox as files end and sent beside the work, so no
        // upload waits for a receiver.
        let notifySteps = NotifyDispatcher.steps(of: pipeline)
        let dispatcher = options.outbox.flatMap { outbox in
            notifySteps.isEmpty ? nil : NotifyDispatcher(steps: notifySteps, outbox: outbox, run: options.identity, logger: logger)
        }
        async let delivery: NotifyTally? = dispatcher?.deliver()
        /// Writes a finished file's events; a failure stops the run like any journal failure.
        func announce(_ done: AssetReport, stamp: SourceStamp?) async {
            guard let dispatcher, halt == nil else { return }
            do { try await dispatcher.announce(done, stamp: stamp) } catch {
                halt = "the notification outbox could not be written: \(error)"
                logger.log(.error, halt!)
            }
        }
        await withTaskGroup(of: (InputFile, AssetReport).self) { group in
            // A file a sink defers (its API asked for a longer wait than the run allows) goes once
            // more to the end of the queue, so other work goes on meanwhile.
            var deferred: Set<String> = []
            var later: [InputFile] = []
            // Files another worker holds: asked for again once the rest is done, when that worker
            // has finished them or died and let its lease lapse. Files not on disk yet (archive
            // entries) are found again by reading their archive once more.
            var waiting: [InputFile] = []
            var revisit: [Int: Set<String>] = [:]
            var running = 0
            func finish(_ done: AssetReport) {
                summary.add(done)
                report(done)
            }
            /// The next input and whether its file is already on disk.
            func nextCandidate() async -> (InputCandidate, ready: Bool)? {
                while true {
                    if let candidate = feed.next() { return (candidate, false) }
                    if !later.isEmpty { return (.file(later.removeFirst()), true) }
                    guard !waiting.isEmpty || !revisit.isEmpty else { return nil }
                    if options.stop.isPulled || halt != nil {
                        for input in waiting { finish(AssetReport(source: input.source, bytes: input.bytes, status: .pending,
                                                                  reason: Reason(.interrupted, halt ?? "held by another worker when the run stopped"))) }
                        waiting = []
                        revisit = [:]
                        return nil
                    }
                    // Only files others hold are left: wait for ours to end, then ask again.
                    if running > 0 { return nil }
                    try? await Task.sleep(for: .seconds(1))
                    feed.again(InputList(waiting), revisit)
                    waiting = []
                    revisit = [:]
                }
            }
            /// Starts the next input that needs work and reports the ones that do not; false when
            /// nothing more can start now.
            func startNext() async -> Bool {
                while let (candidate, ready) = await nextCandidate() {
                    let stopping = options.stop.isPulled || halt != nil
                    switch candidate {
                    case let .rejected(source, reason):
                        let refused = AssetReport(source: source, status: .rejected, reason: reason)
                        await announce(refused, stamp: nil)
                        finish(refused)
                        continue
                    case let .file(input):
                        if stopping {
                            finish(AssetReport(source: input.source, bytes: input.bytes, status: .pending,
                                               reason: Reason(.interrupted, halt ?? "the run was stopped before this file started")))
                            if ready, input.temporary { try? FileManager.default.removeItem(at: input.url) }
                            continue
                        }
                        if let journal = options.journal {
                            do {
                                switch try await journal.claim(input.source, stamp: input.stamp) {
                                case .claimed:
                                    break
                                case let .done(previous):
                                    finish(Self.unchanged(input, previous))
                                    if ready, input.temporary { try? FileManager.default.removeItem(at: input.url) }
                                    continue
                                case .busy:
                                    if input.temporary, !ready {
                                        revisit[feed.index, default: []].insert(input.source)
                                    } else {
                                        waiting.append(input)
                                    }
                                    continue
                                }
                            } catch {
                                halt = "the journal failed: \(error)"
                                logger.log(.error, halt!)
                                finish(AssetReport(source: input.source, status: .pending, reason: Reason(.journalFailed, halt!)))
                                continue
                            }
                        }
                        do {
                            let file = ready ? input : try feed.materialize()
                            running += 1
                            group.addTask { (file, await process(file, options: options, context: context, pools: pools)) }
                            return true
                        } catch {
                            var refused = AssetReport(source: input.source, bytes: input.bytes, status: .rejected,
                                                      reason: error as? Reason ?? Reason(.stageFailed, "\(error)"))
                            if refused.reason?.code == .diskFull {
                                // No file can be prepared now: stop (exit 3); a rerun with space does the rest.
                                refused.status = .failed
                                halt = "the work folder is full: \(options.workDirectory.path)"
                            }
                            await announce(refused, stamp: input.stamp)
                            if let problem = await record(refused, input: input, journal: options.journal) { halt = problem }
                            finish(refused)
                            continue
                        }
                    }
                }
                return false
            }
            for _ in 0..<options.filesInFlight {
                guard await startNext() else { break }
            }
            for await (input, finished) in group {
                running -= 1
                if finished.deferrable, !options.stop.isPulled, halt == nil, deferred.insert(input.source).inserted {
                    logger.log(.info, "\(input.source): \(finished.reason?.detail ?? "deferred"); trying again at the end of the queue")
                    later.append(input)
                } else {
                    if input.temporary { try? FileManager.default.removeItem(at: input.url) }
                    await announce(finished, stamp: input.stamp)
                    if let problem = await record(finished, input: input, journal: options.journal) { halt = problem }
                    finish(finished)
                }
                _ = await startNext()
            }
        }
        // Stages that keep something between files (external processes) let go of it now.
        for step in pipeline.steps {
            if case let .stage(stage) = step.body { await stage.finish() }
        }
        summary.milliseconds = Runner.milliseconds(since: started)
        summary.fatal = stoppedSinks.all.map { "\($0.key): \($0.value.detail)" } + (halt.map { [$0] } ?? [])
        summary.interrupted = options.stop.signal
        if let dispatcher {
            // A batch that ran to its end says so; a stopped one leaves its events for the next run.
            if summary.interrupted == nil, halt == nil {
                do { try await dispatcher.announceBatch(summary) } catch {
                    summary.fatal.append("the notification outbox could not be written: \(error)")
                }
                dispatcher.finish()
            } else {
                dispatcher.finish(within: 0)
            }
        }
        summary.notifications = await delivery
        return summary
    }

    /// Writes a source's end to the journal. A failure there is returned: it stops the run
    /// (exit 3), and a rerun redoes this file, which finds its upload already there.
    private func record(_ report: AssetReport, input: InputFile, journal: (any Journal)?) async -> String? {
        guard let journal else { return nil }
        do {
            try await journal.finish(input.source, stamp: input.stamp, report: report, rendition: report.rendition)
            return nil
        } catch {
            let problem = "the journal could not record the end of \(input.source): \(error)"
            logger.log(.error, problem)
            return problem
        }
    }

    /// The report of a source the journal says is done with the same size and time.
    static func unchanged(_ input: InputFile, _ previous: JournaledSource) -> AssetReport {
        var report = previous.report.map { AssetReport(row: $0) } ?? AssetReport(source: input.source, status: .unchanged)
        report.source = input.source
        report.status = .unchanged
        report.reason = nil
        report.milliseconds = 0
        report.rendition = previous.rendition
        return report
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }

    /// The two pools a file passes through: CPU work up to its sink, then the upload.
    /// The CPU pool and the upload pool. A run makes its own from its options; runs that should
    /// share one bound (a server running each request's file as a run of its own) pass the same.
    public struct Pools: Sendable {
        public let cpu: Budget
        public let uploads: Budget

        public init(concurrency: Int, uploads: Int) {
            cpu = Budget(capacity: Int64(max(1, concurrency)))
            self.uploads = Budget(capacity: Int64(max(1, uploads)))
        }
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
                          purpose: pipeline.purpose(for: input.relativePath, override: options.purpose), inspector: inspector,
                          container: input.container)
        let cpu = Hold(pools.cpu)
        await pools.cpu.reserve(1)
        var report = await withTaskExecutorPreference(options.executor) {
            await walk(asset, context: context, cpu: cpu, uploads: pools.uploads, journal: options.journal)
        }
        cpu.release()
        if report.status != .planned, report.status != .uploaded {
            discardPrepared(asset, in: context.workDirectory)
        }
        report.milliseconds = Runner.milliseconds(since: started)
        return report
    }

    /// The report of an asset that ended with `status`, from the facts it gathered on the way.
    static func report(_ asset: Asset, _ status: AssetStatus, sink: String? = nil, result: JSONValue? = nil,
                       reason: Reason? = nil) -> AssetReport {
        let mime = asset.knownMIME
        var report = AssetReport(source: asset.source, sha256: asset.knownSHA256, bytes: asset.knownSize ?? (try? asset.size()),
                                 mime: mime, kind: mime.map(AssetKind.init(mime:)), purpose: asset.purpose, status: status,
                                 sink: sink, result: result, reason: reason, notes: asset.notes)
        report.variables = asset.variables
        report.relativePath = asset.relativePath
        return report
    }

    /// A file the client will upload straight to the provider: the stages that decide from facts
    /// (validate, route, …) run on the declared facts, then the chosen sink hands out a one-time
    /// URL valid until `expiry`. The report is `planned` with that URL as `result`, or
    /// `rejected`/`failed` with the reason; stages that need the bytes (transforms, external
    /// programs) and notifiers do not run. With no `expiry` only the decision is made: `planned`
    /// names the sink and asks it for nothing (a server checks an upload's declared facts this way
    /// before it reads the body).
    public func directUpload(_ declared: DeclaredFile, purpose: String?, expiry: Date?, workDirectory: URL) async -> AssetReport {
        let started = ContinuousClock.now
        let asset = Asset(declared: declared, purpose: pipeline.purpose(for: declared.filename, override: purpose))
        let context = StageContext(logger: logger, dryRun: false, workDirectory: workDirectory, purposes: pipeline.purposes,
                                   sinks: pipeline.sinks, memory: Budget(capacity: pipeline.limits.memory))
        func end(_ status: AssetStatus, sink: String? = nil, result: JSONValue? = nil, reason: Reason? = nil) -> AssetReport {
            var report = Self.report(asset, status, sink: sink, result: result, reason: reason)
            report.milliseconds = Runner.milliseconds(since: started)
            return report
        }
        for step in pipeline.steps {
            let outcome: StageOutcome
            do {
                if let when = step.when, try !when.matches(asset) { continue }
                switch step.body {
                case let .stage(stage):
                    guard stage.decidesFromFacts else { continue }
                    outcome = try await stage.run(asset, context: context)
                case .notifier:
                    continue
                case let .sink(sink):
                    guard asset.sink == step.name else { continue }
                    guard let expiry else { return end(.planned, sink: sink.sinkName) }
                    if let stopped = stoppedSinks[step.name] { return end(.failed, sink: sink.sinkName, reason: stopped) }
                    do {
                        let ticket = try await sink.directUpload(for: asset, expiry: expiry, context: context)
                        return end(.planned, sink: sink.sinkName, result: ticket)
                    } catch let error as SinkError {
                        if error.severity == .fatal { stoppedSinks.stop(step.name, error.reason) }
                        return end(error.severity == .rejected ? .rejected : .failed, sink: sink.sinkName, reason: error.reason)
                    }
                }
            } catch {
                outcome = Self.outcome(of: error, step: step)
            }
            if let (status, reason) = verdict(outcome, step: step, asset: asset) { return end(status, reason: reason) }
        }
        return end(.rejected, reason: Reason(.noSink, asset.sink == nil ? "no route stage chose a sink for this file"
                                                                       : "the chosen sink '\(asset.sink!)' is not in the pipeline"))
    }

    private func walk(_ asset: Asset, context: StageContext, cpu: Hold, uploads: Budget, journal: (any Journal)?) async -> AssetReport {
        var rendition: String?
        func end(_ status: AssetStatus, sink: String? = nil, result: JSONValue? = nil, reason: Reason? = nil) -> AssetReport {
            var report = Self.report(asset, status, sink: sink, result: result, reason: reason)
            report.rendition = rendition
            return report
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
                case .notifier:
                    // Notifiers speak once the file has ended, from the outbox.
                    continue
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
                        guard let journal else {
                            let result = try await send(plan, asset: asset, step: step.name, sink: sink, context: context, uploads: uploads)
                            uploaded = (sink.sinkName, result)
                            outcome = .proceed
                            break
                        }
                        let key = try renditionKey(asset, sink: step.name)
                        rendition = key
                        let (result, fresh) = try await renditionLocks.withLock(key) {
                            try await upload(plan, asset: asset, rendition: key, step: step.name, sink: sink, journal: journal,
                                             context: context, uploads: uploads)
                        }
                        if !fresh { return end(.unchanged, sink: sink.sinkName, result: result) }
                        uploaded = (sink.sinkName, result)
                        outcome = .proceed
                    } catch let stopped as StoppedWhileWaiting {
                        return end(.pending, sink: sink.sinkName, reason: stopped.reason)
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
            } catch {
                outcome = Self.outcome(of: error, step: step)
            }
            if let (status, reason) = verdict(outcome, step: step, asset: asset) { return end(status, reason: reason) }
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

    /// A thrown `Reason` refuses the file with its code; any other error is `stage_failed`.
    static func outcome(of error: any Error, step: PipelineStep) -> StageOutcome {
        if let reason = error as? Reason { return .reject(reason) }
        return .reject(Reason(.stageFailed, "stage '\(step.name)': \(error)"))
    }

    /// What a step's outcome means for the file: nil to go on, else the status it ends with.
    /// `on_error` decides what a refusal does.
    private func verdict(_ outcome: StageOutcome, step: PipelineStep, asset: Asset) -> (AssetStatus, Reason)? {
        switch outcome {
        case .proceed: return nil
        case let .skip(reason): return (.skipped, reason)
        case let .reject(reason):
            switch step.onError {
            case .reject: return (.rejected, reason)
            case .skip: return (.skipped, reason)
            case .continue:
                logger.log(.warning, "\(asset.source): stage '\(step.name)' failed, continuing: \(reason)")
                return nil
            }
        }
    }

    /// Uploads one rendition with the journal: skipped when done before (false), else journaled
    /// before the sink acts and after the provider confirms, with what an interrupted run saved.
    private func upload(_ plan: UploadPlan, asset: Asset, rendition key: String, step: String, sink: any Sink,
                        journal: any Journal, context: StageContext, uploads: Budget) async throws -> (JSONValue, Bool) {
        let previous: Rendition?
        do {
            previous = try await journal.rendition(key)
            if let previous, previous.state == .done, let result = previous.result { return (result, false) }
            if previous == nil { try await journal.begin(key, sink: step) }
        } catch {
            throw SinkError(.fatal, .journalFailed, "the journal could not be used: \(error)")
        }
        asset.checkpoint = UploadCheckpoint(saved: previous?.remote) { try await journal.saveRemote(key, $0) }
        let result = try await send(plan, asset: asset, step: step, sink: sink, context: context, uploads: uploads)
        CrashPoint.reach("after_remote_commit_before_journal")
        do { try await journal.complete(key, result: result) } catch {
            throw SinkError(.fatal, .journalFailed, "the journal could not record the upload of \(asset.source): \(error)")
        }
        return (result, true)
    }

    /// Runs the sink's upload on one slot of the upload pool. The sink's stop is checked again once
    /// the slot is held, and a fatal error stops the sink before the slot is given back, so a file
    /// that waited for the slot sends nothing to a sink that has just refused the run.
    private func send(_ plan: UploadPlan, asset: Asset, step: String, sink: any Sink, context: StageContext,
                      uploads: Budget) async throws -> JSONValue {
        try await uploads.withReservation(1) {
            if let stopped = stoppedSinks[step] { throw StoppedWhileWaiting(reason: stopped) }
            do {
                return try await sink.upload(plan, asset: asset, context: context)
            } catch let error as SinkError where error.severity == .fatal {
                stoppedSinks.stop(step, error.reason)
                throw error
            }
        }
    }

    /// A rendition's identity: the original's SHA-256, the purpose and its image preset, the
    /// options of every stage that shapes the bytes, and the sink step.
    func renditionKey(_ asset: Asset, sink step: String) throws -> String {
        var shape = "purpose=\(asset.purpose ?? "-")"
        if let preset = asset.purpose.flatMap({ pipeline.purposes[$0]?.image }) { shape += " preset=\(preset)" }
        for step in pipeline.steps {
            if case let .stage(stage) = step.body, stage.shapesBytes { shape += " \(step.kind)=\(step.options.compactText)" }
        }
        return "\(try asset.sha256())/\(step)/\(FNV1a.hex(shape))"
    }

    /// Removes a prepared file of a file that will not be uploaded, so nothing half-done remains.
    private func discardPrepared(_ asset: Asset, in folder: URL) {
        guard let prepared = asset.prepared, prepared.url.path.hasPrefix(folder.path) else { return }
        try? FileManager.default.removeItem(at: prepared.url)
    }
}

/// Reads inputs from several sequences in turn.
private struct Feed {
    var sequences: [any InputSequence]
    /// The sequence being read.
    var index = 0

    /// Adds a second pass over some inputs: `files` on disk, and the named sources of sequences
    /// that can be read again.
    mutating func again(_ files: InputList, _ sources: [Int: Set<String>]) {
        sequences.append(files)
        for (index, names) in sources.sorted(by: { $0.key < $1.key }) {
            if let reopened = sequences[index].reopened() { sequences.append(OnlySources(base: reopened, sources: names)) }
        }
    }

    mutating func next() -> InputCandidate? {
        while index < sequences.count {
            if let candidate = sequences[index].next() { return candidate }
            index += 1
        }
        return nil
    }

    mutating func materialize() throws -> InputFile { try sequences[index].materialize() }
}

/// The inputs of a sequence whose source is in a set.
private struct OnlySources: InputSequence {
    var base: any InputSequence
    let sources: Set<String>

    var count: Int? { nil }
    var bytes: Int64? { nil }

    mutating func next() -> InputCandidate? {
        while let candidate = base.next() {
            if case let .file(input) = candidate, sources.contains(input.source) { return candidate }
        }
        return nil
    }

    mutating func materialize() throws -> InputFile { try base.materialize() }
}

/// Lets one task at a time work under a key; others with the same key wait their turn.
final class KeyedLocks: Sendable {
    private let waiting = Mutex<[String: [CheckedContinuation<Void, Never>]]>([:])

    func withLock<T: Sendable>(_ key: String, _ body: () async throws -> T) async throws -> T {
        await withCheckedContinuation { (turn: CheckedContinuation<Void, Never>) in
            let mine = waiting.withLock { queue -> Bool in
                if let others = queue[key] {
                    queue[key] = others + [turn]
                    return false
                }
                queue[key] = []
                return true
            }
            if mine { turn.resume() }
        }
        defer {
            let next = waiting.withLock { queue -> CheckedContinuation<Void, Never>? in
                guard var others = queue[key], !others.isEmpty else {
                    queue[key] = nil
                    return nil
                }
                let first = others.removeFirst()
                queue[key] = others
                return first
            }
            next?.resume()
        }
        return try await body()
    }
}

/// A short, stable hash for fingerprints (not for security).
enum FNV1a {
    static func hex(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}

/// Pulled once by SIGINT or SIGTERM; the runner then starts no new file.
public final class StopSwitch: Sendable {
    private let pulled = Mutex<Int32?>(nil)

    public init() {}

    /// Records the signal; returns false when it was already pulled (a second signal).
    @discardableResult
    public func pull(signal: Int32) -> Bool {
        pulled.withLock { current in
            guard current == nil else { return false }
            current = signal
            return true
        }
    }

    public var isPulled: Bool { signal != nil }
    public var signal: Int32? { pulled.withLock { $0 } }
}

/// The file's sink was stopped by a fatal error while the file waited for an upload slot.
private struct StoppedWhileWaiting: Error {
    let reason: Reason
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
