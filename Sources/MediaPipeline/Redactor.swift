import Foundation

/// Replaces secret values wherever they appear in text meant for people or files.
///
/// Redaction is by value, so a secret is hidden however it got into a message: through an
/// interpolated option, an error echoed by a server, or a URL.
public struct Redactor: Sendable {
    private let secrets: [String]

    /// Variable names whose values are treated as secrets.
    public static func isSecretName(_ name: String) -> Bool {
        let upper = name.uppercased()
        if ["CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_R2_ACCESS_KEY_ID",
            "CLOUDFLARE_R2_SECRET_ACCESS_KEY"].contains(upper) { return true }
        return ["TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE", "_KEY", "APIKEY"].contains { upper.contains($0) }
    }

    /// A redactor for every secret-looking variable in `environment`.
    public init(environment: [String: String]) {
        var secrets = environment.filter { Redactor.isSecretName($0.key) }.map(\.value)
        // A journal URL may carry a database password.
        if let journal = environment["MEDIA_PIPELINE_JOURNAL"], let password = URLComponents(string: journal)?.password {
            secrets.append(password)
        }
        self.init(secrets: secrets)
    }

    public init(secrets: [String]) {
        // Very short values would mangle ordinary text; longest first so overlaps redact whole.
        // Each secret is also hidden in the forms a server or a URL might echo it in.
        let forms = secrets.filter { $0.count >= 4 }.flatMap { secret in
            [secret, Data(secret.utf8).base64EncodedString(),
             secret.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? secret]
        }
        self.secrets = Array(Set(forms)).sorted { $0.count > $1.count }
    }

    /// `text` with each secret replaced by `****`.
    public func redact(_ text: String) -> String {
        var out = text
        for secret in secrets where out.contains(secret) {
            out = out.replacingOccurrences(of: secret, with: "****")
        }
        return out
    }

    /// The JSON value with every string redacted.
    public func redact(_ value: JSONValue) -> JSONValue {
        switch value {
        case let .string(s): .string(redact(s))
        case let .array(items): .array(items.map(redact))
        case let .object(pairs): .object(pairs.map { (redact($0.key), redact($0.value)) })
        default: value
        }
    }
}
