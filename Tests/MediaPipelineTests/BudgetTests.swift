import MediaPipeline
import Synchronization
import Testing

struct BudgetTests {
    /// Sums what is held at once, remembers the largest sum, and counts finished reservations.
    final class Holding: Sendable {
        private let state = Mutex((now: Int64(0), peak: Int64(0), finished: 0))
        func add(_ n: Int64) { state.withLock { $0.now += n; $0.peak = max($0.peak, $0.now) } }
        func finish() { state.withLock { $0.finished += 1 } }
        var peak: Int64 { state.withLock { $0.peak } }
        var finished: Int { state.withLock { $0.finished } }
    }

    static let cases: [[Int64]] = [[60, 60, 60, 60, 60, 60], [10, 90, 10, 90, 50, 50], [250, 10, 10], [100, 100, 1]]

    @Test("reservations never exceed the budget, and all of them run", arguments: cases)
    func neverOverBudget(_ amounts: [Int64]) async {
        let budget = Budget(capacity: 100)
        let holding = Holding()
        await withTaskGroup(of: Void.self) { group in
            for amount in amounts {
                group.addTask {
                    await budget.withReservation(amount) {
                        let held = min(amount, 100)
                        holding.add(held)
                        try? await Task.sleep(for: .milliseconds(3))
                        holding.add(-held)
                        holding.finish()
                    }
                }
            }
        }
        #expect(holding.finished == amounts.count)
        #expect(holding.peak <= 100)
        #expect(holding.peak >= min(amounts.max()!, 100))
        #expect(budget.available == 100)
    }
}
