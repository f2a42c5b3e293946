public import CloudflareClient
import HTTPTransport
public import MediaPipeline

/// A reference to uploaded media: `images:<id>`, `r2:<key>` or `stream:<uid>`.
public struct MediaRef: Sendable, Hashable, CustomStringConvertible {
    public enum Provider: String, Sendable, CaseIterable { case images, r2, stream }
    public var provider: Provider
    public var id: String

    public init(provider: Provider, id: String) {
        self.provider = provider
        self.id = id
    }

    /// Parses `provider:id`; nil for anything else (an unknown provider, an empty id).
    public init?(_ text: String) {
        guard let colon = text.firstIndex(of: ":"), let provider = Provider(rawValue: String(text[..<colon])),
              text.index(after: colon) < text.endIndex else { return nil }
        self.init(provider: provider, id: String(text[text.index(after: colon)...]))
    }

    /// The reference of what a manifest row says was stored: Images' id, R2's key, Stream's uid.
    public init?(sink: String?, result: JSONValue?) {
        let provider: Provider
        switch sink {
        case "cloudflare-images": provider = .images
        case "r2": provider = .r2
        case "stream": provider = .stream
        default: return nil
        }
        guard case let .string(id)? = result?[provider == .r2 ? "key" : "id"], !id.isEmpty else { return nil }
        self.init(provider: provider, id: id)
    }

    public var description: String { "\(provider.rawValue):\(id)" }
}

/// The Cloudflare clients the account calls use (delete, live inputs), with a short retry budget:
/// someone is waiting for the answer.
public struct CloudAccount: Sendable {
    public let environment: CloudflareEnvironment
    public let api: CloudflareAPI
    public let r2: R2Client

    public init(environment: [String: String]) {
        self.environment = CloudflareEnvironment(environment, assumeConfigured: false)
        let clock = SystemClock()
        let backoff = Backoff(attempts: 3, baseDelay: 0.5, maxDelay: 4, maxWait: 30)
        api = CloudflareAPI(environment: self.environment, http: CurlClient(),
                            retrier: Retrier(backoff: backoff, clock: clock, gate: RequestGate(budget: 600, clock: clock)))
        r2 = R2Client(environment: self.environment, http: CurlClient(), retrier: Retrier(backoff: backoff, clock: clock, gate: nil))
    }

    /// The variables calls to `provider` need.
    public static func variables(for provider: MediaRef.Provider, environment: [String: String] = [:]) -> [String] {
        guard provider == .r2 else { return [CloudflareEnvironment.accountID, CloudflareEnvironment.apiToken] }
        var names = [CloudflareEnvironment.r2AccessKeyID, CloudflareEnvironment.r2SecretAccessKey, CloudflareEnvironment.r2Bucket]
        if environment[CloudflareEnvironment.r2Endpoint] == nil { names.append(CloudflareEnvironment.accountID) }
        return names
    }

    public var stream: StreamClient { StreamClient(api: api) }

    /// Deletes uploaded media. False when it was already gone.
    public func delete(_ ref: MediaRef) async throws(SinkError) -> Bool {
        switch ref.provider {
        case .images: return try await ImagesClient(api: api).delete(id: ref.id)
        case .stream: return try await stream.delete(uid: ref.id)
        case .r2:
            try await r2.delete(key: ref.id)
            return true
        }
    }

    /// Variables missing for a call, or a bad endpoint: a usage error before any request.
    public func problems(needing names: [String]) -> [String] {
        environment.endpointProblems() + environment.missing(names).map { "\($0) is not set" }
    }
}
