import CloudflareClient
import Foundation
import HTTPTransport
import MediaPipeline
import TestSupport
import Testing

/// The one retry policy: full-jitter backoff, Retry-After, the shared pause, the API budget.
struct RetryTests {
    @Test("full jitter: every delay lies in [0, min(cap, base·2ⁿ)]", arguments: 0..<12)
    func backoffStaysUnderItsCeiling(_ retry: Int) {
        let backoff = Backoff(attempts: 20, baseDelay: 0.5, maxDelay: 30)
        let ceiling = min(30, 0.5 * pow(2, Double(retry)))
        #expect(backoff.ceiling(retry: retry) == ceiling)
        for _ in 0..<200 {
            let d = backoff.delay(retry: retry)
            #expect(d >= 0 && d <= ceiling)
        }
        #expect(backoff.delay(retry: retry, random: 0) == 0)
        #expect(backoff.delay(retry: retry, random: 1) == ceiling)
    }

    @Test func retryAfterReadsSecondsAndHTTPDates() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(Backoff.retryAfter("7", now: now) == 7)
        #expect(Backoff.retryAfter(" 120 ", now: now) == 120)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        #expect(Backoff.retryAfter(formatter.string(from: now.addingTimeInterval(90)), now: now) == 90)
        #expect(Backoff.retryAfter(formatter.string(from: now.addingTimeInterval(-5)), now: now) == 0)
        #expect(Backoff.retryAfter("soon", now: now) == nil)
        #expect(Backoff.retryAfter(nil, now: now) == nil)
        // Waits no run would honour are cut to a year, which prints as whole seconds.
        #expect(Backoff.retryAfter("92233720368547758073", now: now) == Backoff.longestRetryAfter)
        #expect(Backoff.retryAfter("inf", now: now) == Backoff.longestRetryAfter)
        #expect(Backoff.retryAfter(formatter.string(from: now.addingTimeInterval(4e8)), now: now) == Backoff.longestRetryAfter)
    }

    @Test func aPauseHoldsEveryCallerUntilItsDeadline() async {
        let clock = RecordingClock()
        let gate = RequestGate(budget: 1000, clock: clock)
        let start = clock.now()
        gate.pause(until: start.addingTimeInterval(7))
        await withTaskGroup(of: Date.self) { group in
            for _ in 0..<4 { group.addTask { await gate.admit(); return clock.now() } }
            for await admitted in group { #expect(admitted.timeIntervalSince(start) >= 7) }
        }
    }

    @Test func theBudgetAdmitsAtMostItsCountPerWindow() async {
        let clock = RecordingClock()
        let gate = RequestGate(budget: 5, window: 300, clock: clock)
        let start = clock.now()
        var times: [Double] = []
        for _ in 0..<12 {
            await gate.admit()
            times.append(clock.now().timeIntervalSince(start))
        }
        // Any 300 s window holds at most 5 admissions.
        for (i, t) in times.enumerated() {
            #expect(times[i...].prefix { $0 < t + 300 }.count <= 5)
        }
        #expect(times[5] >= 300 && times[10] >= 600)
    }

    @Test("F2: 500, 502 then success: the third try succeeds and the waits follow full jitter")
    func transientStatusesAreRetried() async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "GET", "path": "/images/v1/some-id$", "actions": [["status": 500], ["status": 502]]]])
        let clock = RecordingClock()
        let api = fake.api(clock: clock)
        let count = RetryCount()
        let answer = try await api.send(api.request("GET", "\(api.environment.accountBase)/images/v1/some-id"), retries: count)
        #expect(answer.status == 404)  // the fake's answer once the faults are spent
        #expect(count.value == 2)
        #expect(clock.sleeps.count == 2)
        for (n, wait) in clock.sleeps.enumerated() { #expect(wait >= 0 && wait <= min(8, 0.5 * pow(2, Double(n)))) }
        let log = try await fake.server.log()
        #expect(log.count == 3)
    }

    @Test("F2: an Images code marked transient is retried whatever the status")
    func transientImagesCodesAreRetried() async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "GET", "path": "/images/v1/stats$", "actions": [["status": 400, "code": 5408]]]])
        let api = fake.api()
        let count = RetryCount()
        let answer = try await api.send(api.request("GET", "\(api.environment.accountBase)/images/v1/stats"), retries: count)
        #expect(answer.success)
        #expect(count.value == 1)
    }

    @Test("F2: tries run out → failed, provider_unavailable")
    func persistentFailureFails() async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "GET", "path": "/images/v1/stats$", "actions": .array(Array(repeating: ["status": 503], count: 5))]])
        let api = fake.api(attempts: 3)
        await #expect {
            _ = try await api.send(api.request("GET", "\(api.environment.accountBase)/images/v1/stats"))
        } throws: { error in
            guard let error = error as? SinkError else { return false }
            return error.severity == .failed && error.reason.code == .providerUnavailable
        }
        #expect(try await fake.server.log().count == 3)
    }

    @Test("F3: a 429 with Retry-After (seconds or date) pauses every request on the API until the deadline",
          arguments: ["seconds", "date"])
    func retryAfterPausesEveryWorker(_ form: String) async throws {
        let fake = try await CloudflareFake()
        let clock = RecordingClock()
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let value = form == "seconds" ? "7" : formatter.string(from: Date().addingTimeInterval(300))
        try await fake.server.faults([["method": "GET", "path": "/images/v1/stats$",
                                       "actions": [["status": 429, "headers": ["Retry-After": .string(value)]]]]])
        let api = fake.api(clock: clock)
        let url = "\(api.environment.accountBase)/images/v1/stats"
        let first = try await api.send(api.request("GET", url))
        #expect(first.success)
        let pausedUntil = try #require(api.retrier.gate?.pausedUntil)
        let pause = pausedUntil.timeIntervalSince(Date(timeIntervalSince1970: 1_800_000_000))
        #expect(form == "seconds" ? pause == 7 : (pause >= 200 && pause <= 300))
        // The retry itself went only after the deadline.
        #expect(clock.now() >= pausedUntil)
        let log = try await fake.server.log()
        #expect(log.count == 2)
    }

    @Test("F3: a wait longer than limits.retry.maxWait fails the file as rate_limited (exit 4), without waiting")
    func aBlockLongerThanTheCapFails() async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "GET", "path": "/images/v1/stats$",
                                       "actions": [["status": 429, "headers": ["Retry-After": "300"]]]]])
        let clock = RecordingClock()
        let api = fake.api(clock: clock, maxWait: 60)
        await #expect {
            _ = try await api.send(api.request("GET", "\(api.environment.accountBase)/images/v1/stats"))
        } throws: { error in
            (error as? SinkError)?.reason.code == .rateLimited && (error as? SinkError)?.severity == .failed
        }
        #expect(clock.sleeps.isEmpty)
    }

    @Test func concurrentWorkersShareOnePause() async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "GET", "path": "/images/v1/stats$",
                                       "actions": [["status": 429, "headers": ["Retry-After": "30"]]]]])
        let clock = RecordingClock()
        let api = fake.api(clock: clock)
        let url = "\(api.environment.accountBase)/images/v1/stats"
        _ = try await api.send(api.request("GET", url))
        // After the 429 every later request, from any worker, goes only once the pause is over.
        let deadline = try #require(api.retrier.gate?.pausedUntil)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    _ = try await api.send(api.request("GET", url))
                    #expect(clock.now() >= deadline)
                }
            }
            try await group.waitForAll()
        }
    }
}
