public import MediaPipeline

/// A journal in PostgreSQL that many workers share, so N copies of `media-pipeline run` split one
/// import between them: each source is claimed by one worker at a time, under a lease that the
/// worker renews while it runs and that another worker takes over once it lapses.
///
/// Tables `mp_sources` and `mp_renditions` are created if absent. See docs/scale-out.md.
public final class PostgresJournal: Journal, Outbox {
    private let session: PostgresSession
    private let renewal: LeaseRenewal

    /// `url` is a libpq connection URI (postgres://user@host:port/db?...). worker: a stable name for this
    /// worker (the CLI passes hostname-pid or $MEDIA_PIPELINE_WORKER). lease: how long a claim lasts without renewal.
    public init(url: String, worker: String, lease: Duration = .seconds(60)) async throws {
        let target = ConnectionTarget(url)
        let seconds = Double(lease.components.seconds) + Double(lease.components.attoseconds) / 1e18
        if target.hasForeignScheme {
            throw PostgresJournalError(.invalidArgument, "the PostgreSQL journal URL \(target.display) must start with postgres:// or postgresql://")
        }
        guard !worker.isEmpty else {
            throw PostgresJournalError(.invalidArgument, "the PostgreSQL journal \(target.display) needs a worker name (set MEDIA_PIPELINE_WORKER)")
        }
        guard seconds > 0 else {
            throw PostgresJournalError(.invalidArgument, "the PostgreSQL journal's lease must be longer than zero, not \(lease)")
        }
        let session = PostgresSession(target: target, worker: worker, leaseSeconds: seconds)
        try await session.open()
        self.session = session
        renewal = LeaseRenewal(target: target, worker: worker, leaseSeconds: seconds)
    }

    deinit { renewal.stopSoon() }

    /// Claims in one transaction: insert if absent, lock with `FOR UPDATE SKIP LOCKED` (a locked row is
    /// busy), pass over a done row with the same stamp, respect another worker's live lease, else take it.
    public func claim(_ source: String, stamp: SourceStamp) async throws -> SourceClaim {
        try await session.claim(source, stamp: stamp)
    }

    /// The rendition's row, if any worker began it.
    public func rendition(_ key: String) async throws -> Rendition? {
        try await session.rendition(key)
    }

    /// Inserts the rendition as `started`; an existing row (started or done) is kept.
    public func begin(_ key: String, sink: String) async throws {
        try await session.begin(key, sink: sink)
    }

    /// Saves resume state unless the rendition is done; fails if it was never begun.
    public func saveRemote(_ key: String, _ remote: JSONValue) async throws {
        try await session.saveRemote(key, remote)
    }

    /// Marks the rendition done with the provider's result; fails if it was never begun.
    public func complete(_ key: String, result: JSONValue) async throws {
        try await session.complete(key, result: result)
    }

    /// Writes the source's state and clears its lease, unless another worker has taken it over since.
    public func finish(_ source: String, stamp: SourceStamp, report: AssetReport, rendition: String?) async throws {
        try await session.finish(source, stamp: stamp, report: report, rendition: rendition)
    }

    /// Adds a notification unless one with its id is there.
    public func enqueue(_ event: OutboxEvent) async throws { try await session.enqueue(event) }

    /// Takes due notifications for this worker (SKIP LOCKED), holding them for `hold` seconds.
    public func takeDue(step: String, now: Double, hold: Double, limit: Int) async throws -> [OutboxEvent] {
        try await session.takeDue(step: step, now: now, hold: hold, limit: limit)
    }

    public func update(_ event: OutboxEvent) async throws { try await session.update(event) }

    public func counts(step: String) async throws -> OutboxCounts { try await session.counts(step: step) }

    /// Stops renewing and closes the connection. Sources claimed and not finished stay leased until
    /// the lease lapses, exactly as if the worker had died.
    public func close() async {
        await renewal.stop()
        await session.close()
    }
}
