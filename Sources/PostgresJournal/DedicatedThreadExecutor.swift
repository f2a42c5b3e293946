import Foundation

/// A serial executor that runs its jobs on one thread of its own.
///
/// libpq blocks its caller while it waits for the server. Swift's cooperative pool has one thread
/// per core (two on a small worker), so a connection that blocked there would stall image work
/// and uploads; the connection's actor runs here instead.
final class DedicatedThreadExecutor: SerialExecutor {
    private let queue = JobQueue()

    init(name: String) {
        let queue = self.queue
        queue.executor = asUnownedSerialExecutor()
        let thread = Thread { queue.run() }
        thread.name = name
        thread.start()
    }

    // The actor owning this executor is gone, so no job can arrive any more: let the thread end.
    deinit { queue.stop() }

    func enqueue(_ job: consuming ExecutorJob) {
        queue.push(UnownedJob(job))
    }

    /// The jobs waiting for the thread. The condition's lock guards every field.
    private final class JobQueue: @unchecked Sendable {
        private let condition = NSCondition()
        private var jobs: [UnownedJob] = []
        private var stopped = false
        /// Set once in `init`, before the thread starts; unowned, so the executor's lifetime decides.
        var executor: UnownedSerialExecutor?

        func push(_ job: UnownedJob) {
            condition.lock()
            jobs.append(job)
            condition.signal()
            condition.unlock()
        }

        func stop() {
            condition.lock()
            stopped = true
            condition.signal()
            condition.unlock()
        }

        func run() {
            while true {
                condition.lock()
                while jobs.isEmpty, !stopped { condition.wait() }
                if jobs.isEmpty {
                    condition.unlock()
                    return
                }
                let job = jobs.removeFirst()
                condition.unlock()
                job.runSynchronously(on: executor!)
            }
        }
    }
}
