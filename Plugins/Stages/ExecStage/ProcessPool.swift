import Foundation
import MediaPipeline
import Synchronization

/// The programs of one `exec` step: at most `capacity` of them, each started on first need and
/// serving one file at a time. A file waits for a free one.
final class ProcessPool: Sendable {
    /// One place for a program: empty until it is started, and again after it crashed or was killed.
    struct Slot: Sendable {
        var child: ChildProcess?
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

    /// A free slot, waiting for one when every program is busy; with a new id for the next message.
    func acquire(logger: any Logger) async -> (Slot, id: Int) {
        let slot = await withCheckedContinuation { (continuation: CheckedContinuation<Slot, Never>) in
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
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        return (slot, id)
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
    func takeIdle() -> (children: [ChildProcess], logger: (any Logger)?) {
        state.withLock { state in
            let children = state.idle.compactMap(\.child)
            state.idle = []
            return (children, state.logger)
        }
    }
}
