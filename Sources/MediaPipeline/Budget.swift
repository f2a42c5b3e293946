import Synchronization

/// Bounds how much of something concurrent work may hold at once: bytes of memory for image
/// decodes, slots for CPU work or uploads.
///
/// Work reserves its amount (an estimated peak, or one slot) before it starts and gives it back
/// when it ends; work that does not fit waits (suspended, holding no thread) until earlier work
/// finishes. Waiters are served
/// in arrival order, so a large image is never starved by a stream of small ones. A reservation
/// larger than the whole budget is cut to the budget: it then runs alone.
public final class Budget: Sendable {
    public let capacity: Int64

    private struct Waiter {
        var amount: Int64
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var available: Int64
        var waiters: [Waiter] = []
    }

    private let state: Mutex<State>

    public init(capacity: Int64) {
        self.capacity = max(1, capacity)
        self.state = Mutex(State(available: max(1, capacity)))
    }

    /// Runs `body` while holding `amount` units of the budget.
    public func withReservation<T>(_ amount: Int64, _ body: () async throws -> T) async rethrows -> T {
        let amount = min(max(amount, 0), capacity)
        await reserve(amount)
        defer { release(amount) }
        return try await body()
    }

    /// Units not reserved right now.
    public var available: Int64 { state.withLock { $0.available } }

    /// Waits until `amount` units fit, then takes them. Pair with `release`.
    public func reserve(_ amount: Int64) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { s -> Bool in
                if s.waiters.isEmpty, amount <= s.available {
                    s.available -= amount
                    return true
                }
                s.waiters.append(Waiter(amount: amount, continuation: continuation))
                return false
            }
            if granted { continuation.resume() }
        }
    }

    /// Gives back units taken with `reserve`.
    public func release(_ amount: Int64) {
        let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.available += amount
            var ready: [CheckedContinuation<Void, Never>] = []
            while let first = s.waiters.first, first.amount <= s.available {
                s.available -= first.amount
                ready.append(s.waiters.removeFirst().continuation)
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }
}
