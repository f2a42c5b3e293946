import Foundation

/// Extends every lease a worker holds, three times per lease, from a thread and a connection of
/// its own.
///
/// Neither a task pool kept busy by image work and uploads nor a slow statement on the journal's
/// own connection can delay a renewal: only a worker that is really stopped (killed, frozen, cut
/// off from the server) lets its leases lapse. A renewal that fails is tried again at the next
/// tick on a fresh connection; it is not reported, since the worker's next journal call reports
/// any trouble with the server.
final class LeaseRenewal: @unchecked Sendable {
    /// Guards `stopped`, `ended` and `whenEnded`; the thread waits on it between renewals.
    private let condition = NSCondition()
    private var stopped = false
    private var ended = false
    private var whenEnded: [@Sendable () -> Void] = []

    init(target: ConnectionTarget, worker: String, leaseSeconds: Double) {
        let thread = Thread { [self] in
            renewUntilStopped(conninfo: target.conninfo, worker: worker, leaseSeconds: leaseSeconds)
        }
        thread.name = "postgres-lease-renewal"
        thread.start()
    }

    /// Stops renewing and waits until no renewal is in flight, so none lands after this returns.
    func stop() async {
        stopSoon()
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            condition.lock()
            defer { condition.unlock() }
            if ended { done.resume() } else { whenEnded.append { done.resume() } }
        }
    }

    /// Stops renewing without waiting (the journal is gone without `close`).
    func stopSoon() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func renewUntilStopped(conninfo: String, worker: String, leaseSeconds: Double) {
        var connection: PostgresConnection?
        while waitForNextTick(after: leaseSeconds / 3) {
            if connection?.isBroken == true { connection = nil }
            do {
                let db = try connection ?? PostgresConnection(conninfo: conninfo, applicationName: "media-pipeline/\(worker)/lease")
                connection = db
                try db.exec("""
                    UPDATE mp_sources SET lease_until = now() + $2::double precision * interval '1 second'
                    WHERE worker = $1 AND lease_until IS NOT NULL
                    """, [worker, String(leaseSeconds)])
            } catch {
                connection = nil
            }
        }
        connection = nil
        condition.lock()
        ended = true
        let waiting = whenEnded
        whenEnded = []
        condition.unlock()
        waiting.forEach { $0() }
    }

    /// Waits `seconds`; false once `stop` was called.
    private func waitForNextTick(after seconds: Double) -> Bool {
        let due = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while !stopped, condition.wait(until: due) {}
        return !stopped
    }
}
