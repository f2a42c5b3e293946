@testable import media_pipeline
import MediaPipeline
import Testing

/// The progress line and when it is drawn.
struct ProgressTests {
    func report(_ status: AssetStatus, bytes: Int64) -> AssetReport {
        AssetReport(source: "x", bytes: bytes, status: status)
    }

    @Test func theLineCountsFilesBytesRateEtaAndFailures() {
        var progress = Progress(totalFiles: 4, totalBytes: 4_000_000)
        #expect(progress.line(elapsed: 0) == "0/4 files · 0 B of 4.0 MB")
        progress.add(report(.uploaded, bytes: 1_000_000))
        progress.add(report(.failed, bytes: 1_000_000))
        #expect(progress.line(elapsed: 2) == "2/4 files · 2.0 MB of 4.0 MB · 1.0 MB/s · ETA 2 s · 1 not done")
        progress.add(report(.uploaded, bytes: 2_000_000))
        #expect(progress.line(elapsed: 4) == "3/4 files · 4.0 MB of 4.0 MB · 1.0 MB/s · 1 not done")
    }

    @Test func durationsReadNaturally() {
        #expect(Progress.duration(42) == "42 s")
        #expect(Progress.duration(125) == "2 min 5 s")
        #expect(Progress.duration(7_260) == "2 h 1 min")
    }

    @Test("on a terminal the line is redrawn at most 10 times a second")
    func terminalRedrawsAreThrottled() {
        var pacing = ProgressPacing(terminal: true)
        var drawn = 0
        for tick in 0..<1000 where pacing.shouldDraw(at: Double(tick) * 0.001) { drawn += 1 }  // one second, every ms
        #expect(drawn == 10)
    }

    @Test("off a terminal a plain line every 5 s, none for a short run")
    func plainLinesArePeriodic() {
        var pacing = ProgressPacing(terminal: false)
        let answers = [0.1, 4.9, 5.0, 9.0, 10.0].map { pacing.shouldDraw(at: $0) }
        #expect(answers == [false, false, true, false, true])
    }
}
