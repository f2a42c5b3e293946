import Foundation
public import MediaPipeline

/// The Cloudflare settings every sink reads from the environment, and nowhere else.
public struct CloudflareEnvironment: Sendable {
    public static let accountID = "CLOUDFLARE_ACCOUNT_ID"
    public static let apiToken = "CLOUDFLARE_API_TOKEN"
    public static let r2AccessKeyID = "CLOUDFLARE_R2_ACCESS_KEY_ID"
    public static let r2SecretAccessKey = "CLOUDFLARE_R2_SECRET_ACCESS_KEY"
    public static let r2Bucket = "CLOUDFLARE_R2_BUCKET_NAME"
    public static let r2PublicBaseURL = "CLOUDFLARE_R2_PUBLIC_BASE_URL"
    public static let apiBaseURL = "CLOUDFLARE_API_BASE_URL"
    public static let r2Endpoint = "CLOUDFLARE_R2_ENDPOINT"

    private let values: [String: String]

    /// Reads the variables; with `assumeConfigured`, each missing one stands in as `$NAME`
    /// so a plan shows where the value would go without needing it.
    public init(_ environment: [String: String], assumeConfigured: Bool) {
        var values = environment.filter { $0.key.hasPrefix("CLOUDFLARE_") && !$0.value.isEmpty }
        if assumeConfigured {
            for name in [Self.accountID, Self.apiToken, Self.r2AccessKeyID, Self.r2SecretAccessKey, Self.r2Bucket]
            where values[name] == nil {
                values[name] = "$" + name
            }
        }
        self.values = values
    }

    public subscript(name: String) -> String? { values[name] }

    /// Which of `names` are not set.
    public func missing(_ names: [String]) -> [String] { names.filter { values[$0] == nil } }

    /// The API v4 base, default `https://api.cloudflare.com/client/v4`, without a trailing slash.
    public var apiBase: String {
        (values[Self.apiBaseURL] ?? "https://api.cloudflare.com/client/v4").trimmingTrailingSlash
    }

    /// `{apiBase}/accounts/{account}`.
    public var accountBase: String { "\(apiBase)/accounts/\(values[Self.accountID] ?? "$" + Self.accountID)" }

    /// The R2 S3 endpoint, default `https://<account>.r2.cloudflarestorage.com`.
    public var r2EndpointBase: String {
        (values[Self.r2Endpoint] ?? "https://\(values[Self.accountID] ?? "$" + Self.accountID).r2.cloudflarestorage.com").trimmingTrailingSlash
    }

    /// Problems with endpoint overrides: only https, or http to a loopback host.
    public func endpointProblems() -> [String] {
        [Self.apiBaseURL, Self.r2Endpoint, Self.r2PublicBaseURL].compactMap { name in
            guard let text = values[name] else { return nil }
            guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), let host = url.host else {
                return "\(name) is not a URL"
            }
            if scheme == "https" { return nil }
            if scheme == "http", Self.isLoopback(host) { return nil }
            return "\(name) must use https:// (plain http:// is allowed only for 127.0.0.1, ::1 or localhost)"
        }
    }

    static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return h == "localhost" || h == "::1" || h.hasPrefix("127.")
    }
}

extension String {
    var trimmingTrailingSlash: String {
        var s = self
        while s.hasSuffix("/") { s.removeLast() }
        return s
    }

    /// Percent-encodes each `/`-separated segment (RFC 3986 unreserved kept), keeping the slashes.
    public var encodedPath: String {
        var allowed = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)...Unicode.Scalar(127)))
        allowed.insert(charactersIn: "-._~")
        return split(separator: "/", omittingEmptySubsequences: false)
            .map { $0.addingPercentEncoding(withAllowedCharacters: allowed) ?? String($0) }
            .joined(separator: "/")
    }
}

extension CloudflareEnvironment {
    /// The environment as a sink's factory sees it; a bad endpoint override is that stage's error.
    public static func forSink(_ context: FactoryContext, options: inout OptionsReader) -> CloudflareEnvironment {
        let environment = CloudflareEnvironment(context.environment, assumeConfigured: context.assumeConfigured)
        for problem in environment.endpointProblems() { options.error("", problem) }
        return environment
    }

    /// Configured state of a sink that speaks the API v4 (Images, Stream): account and token.
    public var apiConfiguration: SinkConfiguration {
        SinkConfiguration(missing: missing([Self.accountID, Self.apiToken]))
    }
}

extension CloudflareEnvironment {
    /// How a plan shows the API token: never more than its last four characters.
    public var authorizationPreview: String {
        guard let token = self[Self.apiToken] else { return "none" }
        if token.hasPrefix("$") { return "Bearer \(token)" }
        return token.count >= 16 ? "Bearer ****\(token.suffix(4))" : "Bearer ****"
    }
}
