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

/// The curl command line, as a browser or an uploader's script would send to a one-time URL:
/// no Authorization, an empty `Expect:` (Cloudflare never answers 100 Continue).
enum Curl {
    struct Answer {
        var status: Int
        var headers: [String: String]
        var body: String
    }

    static func run(_ arguments: [String]) -> Answer {
        let result = Shell.run("/usr/bin/curl", ["-sS", "-D", "-", "-H", "Expect:"] + arguments)
        // `-D -` writes the head before the body; the last head counts.
        let text = result.stdout.replacingOccurrences(of: "\r\n", with: "\n")
        let split = text.range(of: "\n\n")
        let head = split.map { String(text[..<$0.lowerBound]) } ?? text
        let body = split.map { String(text[$0.upperBound...]) } ?? ""
        let lines = head.split(separator: "\n")
        let status = lines.first.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) } ?? 0
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Answer(status: status, headers: headers, body: body.isEmpty ? result.stderr : body)
    }

    /// One `multipart/form-data` POST with the file as its `file` part.
    static func postFile(_ url: String, file: URL, type: String) -> Answer {
        run(["-X", "POST", "-F", "file=@\(file.path);type=\(type)", url])
    }

    /// A tus HEAD, or a PATCH of `file` at `offset`.
    static func tus(_ method: String, _ url: String, offset: Int = 0, file: URL? = nil) -> Answer {
        var arguments = ["-H", "Tus-Resumable: 1.0.0"]
        if method == "HEAD" {
            arguments += ["-I"]
        } else if let file {
            arguments += ["-X", method, "-H", "Upload-Offset: \(offset)", "-H", "Content-Type: application/offset+octet-stream",
                          "--data-binary", "@\(file.path)"]
        }
        return run(arguments + [url])
    }
}
