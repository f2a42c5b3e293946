import Foundation
import Synchronization

/// Threads of the tool's own for the work of files. Stages read files, hash them, ask libmagic
/// and wait for decoder workers with ordinary blocking calls; run on Swift's cooperative pool
/// (one thread per core) those calls would hold its threads while they wait on a pipe or a disk,
/// and every other task of the process (a server's requests, uploads' bookkeeping) would wait
/// too. A runner whose options name this executor runs each file's steps here instead.
public final class WorkThreads: TaskExecutor, @unchecked Sendable {
    /// Shared by every run of the process. More threads than files are ever in flight on a
    /// machine this size would only cost memory; blocking work beyond them queues.
    public static let shared = WorkThreads(count: max(8, ProcessInfo.processInfo.activeProcessorCount * 4))

    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    init(count: Int) {
        for n in 0..<count {
            let thread = Thread { [unowned self] in self.serve() }
            thread.name = "media-pipeline work \(n)"
            thread.start()
        }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func serve() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
