import Foundation
import MediaPipeline
import Synchronization

/// What a run has done so far, as one line a person can read:
/// `37/120 files · 412 MB of 1.20 GB · 35 MB/s · ETA 22 s · 2 failed`.
struct Progress: Sendable {
    let totalFiles: Int
    /// Nil when not known before reading (archives): then no ETA is given.
    let totalBytes: Int64?
    var doneFiles = 0
    var doneBytes: Int64 = 0
    var failures = 0

    mutating func add(_ report: AssetReport) {
        doneFiles += 1
        doneBytes += report.bytes ?? 0
        if report.status == .failed || report.status == .rejected { failures += 1 }
    }

    /// The line after `elapsed` seconds.
    func line(elapsed: Double) -> String {
        var parts = ["\(doneFiles)/\(totalFiles) files",
                     Quantity.describe(bytes: doneBytes) + (totalBytes.map { " of \(Quantity.describe(bytes: $0))" } ?? "")]
        if elapsed > 0.5, doneBytes > 0 {
            let rate = Double(doneBytes) / elapsed
            parts.append("\(Quantity.describe(bytes: Int64(rate)))/s")
            if let totalBytes, doneBytes < totalBytes { parts.append("ETA \(Self.duration(Double(totalBytes - doneBytes) / rate))") }
        }
        if failures > 0 { parts.append("\(failures) not done") }
        return parts.joined(separator: " · ")
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s) s" }
        if s < 3600 { return "\(s / 60) min \(s % 60) s" }
        return "\(s / 3600) h \(s % 3600 / 60) min"
    }
}

/// When to show the progress line: on a terminal redrawn in place at most 10 times a second,
/// elsewhere (CI, pipes) as a plain line every few seconds.
struct ProgressPacing: Sendable {
    let terminal: Bool
    var lastDrawn: Double?

    /// Seconds between two draws.
    var interval: Double { terminal ? 0.1 : 5 }

    /// Whether to draw at time `now` (seconds since the run started), and if so notes it.
    mutating func shouldDraw(at now: Double) -> Bool {
        if let lastDrawn, now - lastDrawn < interval { return false }
        // Off a terminal the first line waits a whole interval: short runs print none.
        if lastDrawn == nil, !terminal, now < interval { return false }
        lastDrawn = now
        return true
    }
}

/// Draws the progress of a run on stderr until stopped.
final class ProgressDisplay: Sendable {
    private struct State {
        var progress: Progress
        var pacing: ProgressPacing
    }

    private let console: Console
    private let started = ContinuousClock.now
    private let state: Mutex<State>
    private let ticker = Mutex<Task<Void, Never>?>(nil)

    init(console: Console, totalFiles: Int, totalBytes: Int64?, terminal: Bool) {
        self.console = console
        state = Mutex(State(progress: Progress(totalFiles: totalFiles, totalBytes: totalBytes), pacing: ProgressPacing(terminal: terminal)))
    }

    private var elapsed: Double {
        let d = ContinuousClock.now - started
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    func start() {
        let task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                self?.draw()
            }
        }
        ticker.withLock { $0 = task }
    }

    func add(_ report: AssetReport) {
        state.withLock { $0.progress.add(report) }
        draw()
    }

    private func draw() {
        let now = elapsed
        let line: String? = state.withLock { s in s.pacing.shouldDraw(at: now) ? s.progress.line(elapsed: now) : nil }
        guard let line else { return }
        if state.withLock({ $0.pacing.terminal }) { console.status(line) } else { console.err("progress: \(line)") }
    }

    /// Stops drawing and clears the line.
    func stop() {
        ticker.withLock { $0?.cancel() }
        console.status(nil)
    }
}
