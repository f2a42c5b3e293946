import Foundation
import ChildProcesses
import MediaPipeline
import Synchronization

/// The programs of one `exec` step: at most `capacity` of them, each started on first need and
/// serving one file at a time. A file waits for a free one.
final class ProcessPool: Sendable {
    /// One place for a program: empty until it is started, and again after it crashed or was killed.
    struct Slot: Sendable {
        var child: ChildProcess?
        /// An empty work folder left by the slot's last file, given to its next file: making and
        /// removing a folder for every file costs more than the exchange itself.
        var folder: URL?
    }

    private struct State {
        var idle: [Slot] = []
        var handedOut = 0
        var waiting: [CheckedContinuation<Slot, Never>] = []
        var nextID = 0
        /// The logger of the latest file, for what stderr still holds when the run ends.
        var logger: (any Logger)?
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) { self.capacity = max(1, capacity) }

    /// A new number for a file: its message id and its work folder's name.
    func nextID() -> Int {
        state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
    }

    /// A free slot, waiting for one when every program is busy.
    func acquire(logger: any Logger) async -> Slot {
        await withCheckedContinuation { (continuation: CheckedContinuation<Slot, Never>) in
            let free: Slot? = state.withLock { state in
                state.logger = logger
                if let slot = state.idle.popLast() {
                    state.handedOut += 1
                    return slot
                }
                if state.handedOut + state.idle.count < capacity {
                    state.handedOut += 1
                    return Slot(child: nil)
                }
                state.waiting.append(continuation)
                return nil
            }
            if let free { continuation.resume(returning: free) }
        }
    }

    /// Gives a slot back: to the first file waiting, else to the idle ones.
    func release(_ slot: Slot) {
        let next = state.withLock { state -> CheckedContinuation<Slot, Never>? in
            if !state.waiting.isEmpty { return state.waiting.removeFirst() }
            state.handedOut -= 1
            state.idle.append(slot)
            return nil
        }
        next?.resume(returning: slot)
    }

    /// Takes every idle program out of the pool, to be stopped; the pool starts new ones if used again.
    func takeIdle() -> (slots: [Slot], logger: (any Logger)?) {
        state.withLock { state in
            let slots = state.idle
            state.idle = []
            return (slots, state.logger)
        }
    }
}
