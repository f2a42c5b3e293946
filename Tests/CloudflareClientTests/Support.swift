import CloudflareClient
import Digests
import Foundation
import HTTPTransport
import MediaPipeline
import Synchronization
import TestSupport

/// A clock whose sleeps return at once and move its time forward; every sleep is recorded.
final class RecordingClock: RetryClock {
    private let state = Mutex((now: Date(timeIntervalSince1970: 1_800_000_000), sleeps: [Double]()))

    func now() -> Date { state.withLock { $0.now } }

    func sleep(seconds: Double) async {
        state.withLock {
            $0.sleeps.append(seconds)
            $0.now = $0.now.addingTimeInterval(max(0, seconds))
        }
        await Task.yield()
    }

    var sleeps: [Double] { state.withLock { $0.sleeps } }
}

extension CloudflareFake {
    /// A client of this fake whose retries sleep on `clock`.
    func api(clock: RecordingClock = RecordingClock(), attempts: Int = 6, maxWait: Double = 360,
             budget: Int = 100_000, token: String = CloudflareFake.token) -> CloudflareAPI {
        var variables = environment
        variables["CLOUDFLARE_API_TOKEN"] = token
        return CloudflareAPI(environment: CloudflareEnvironment(variables, assumeConfigured: false), http: CurlClient(),
                             retrier: Retrier(backoff: Backoff(attempts: attempts, baseDelay: 0.5, maxDelay: 8, maxWait: maxWait),
                                              clock: clock, gate: RequestGate(budget: budget, clock: clock)))
    }
}

/// A file of `count` bytes of a repeating pattern (so offsets matter), removed with its folder.
func patternFile(_ count: Int, in dir: URL, name: String = "data.bin") throws -> URL {
    let url = dir.appendingPathComponent(name)
    var data = Data(capacity: count)
    var x: UInt32 = 2_463_534_242
    for _ in 0..<count {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5
        data.append(UInt8(truncatingIfNeeded: x))
    }
    try data.write(to: url)
    return url
}

func sha256(of url: URL) throws -> String {
    Digest.sha256Hex(try Data(contentsOf: url))
}

extension JSONValue {
    var string: String? { if case let .string(s) = self { s } else { nil } }
    var number: Double? { if case let .number(n) = self { n } else { nil } }
    var array: [JSONValue] { if case let .array(items) = self { items } else { [] } }
    var objectPairs: [(key: String, value: JSONValue)] { if case let .object(pairs) = self { pairs } else { [] } }
}

/// Upload checkpoints kept in memory, as a journal would keep them: what every save stored, in order.
final class Checkpoints: Sendable {
    private let saves = Mutex<[JSONValue]>([])
    /// Runs at each save, before it is noted (to look at what a fake has seen by then).
    private let probe: @Sendable (JSONValue) async throws -> Void

    init(probe: @escaping @Sendable (JSONValue) async throws -> Void = { _ in }) {
        self.probe = probe
    }

    var saved: [JSONValue] { saves.withLock { $0 } }

    /// A checkpoint as the runner hands one to a sink: `saved` from an earlier run, new saves noted here.
    func checkpoint(_ saved: JSONValue? = nil) -> UploadCheckpoint {
        UploadCheckpoint(saved: saved) { [self] value in
            try await probe(value)
            saves.withLock { $0.append(value) }
        }
    }
}
