import Foundation

/// A libpq connection string (URI or `key=value` form) and the means to keep its password out of
/// every message: libpq echoes parts of a malformed string in its errors.
struct ConnectionTarget: Sendable {
    /// What libpq is given.
    let conninfo: String
    /// The connection string with its password replaced by `***`, for messages.
    let display: String
    /// The password as written and as libpq decodes it, longest first.
    private let secrets: [String]

    init(_ conninfo: String) {
        self.conninfo = conninfo
        let found = Self.passwords(in: conninfo)
        var secrets = Set(found)
        for password in found { if let decoded = password.removingPercentEncoding { secrets.insert(decoded) } }
        self.secrets = secrets.filter { !$0.isEmpty }.sorted { $0.count > $1.count }
        var display = conninfo
        for password in found where !password.isEmpty { display = display.replacingOccurrences(of: password, with: "***") }
        self.display = display
    }

    /// A URI with a scheme libpq does not know: libpq would take the whole string as a database name.
    var hasForeignScheme: Bool {
        guard let scheme = conninfo.range(of: "://") else { return false }
        return !["postgres", "postgresql"].contains(conninfo[..<scheme.lowerBound].lowercased())
    }

    /// `text` with the connection string shown redacted and no trace of the password.
    func redact(_ text: String) -> String {
        var out = text.replacingOccurrences(of: conninfo, with: display)
        // A very short password would turn ordinary words into stars; the string itself is handled above.
        for secret in secrets where secret.count >= 3 { out = out.replacingOccurrences(of: secret, with: "***") }
        return out
    }

    /// The password spellings in a URI's user info and `password=` query parameter, or in a
    /// `key=value` string's `password=` entry.
    static func passwords(in conninfo: String) -> [String] {
        var found: [String] = []
        if let scheme = conninfo.range(of: "://") {
            let rest = conninfo[scheme.upperBound...]
            // libpq ends the user info at the first `@` or `/`.
            if let end = rest.firstIndex(where: { $0 == "@" || $0 == "/" }), rest[end] == "@",
               let colon = rest[..<end].firstIndex(of: ":") {
                found.append(String(rest[rest.index(after: colon)..<end]))
            }
            if let query = rest.firstIndex(of: "?") {
                for pair in rest[rest.index(after: query)...].split(separator: "&") {
                    let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    if parts.count == 2, parts[0].removingPercentEncoding == "password" { found.append(String(parts[1])) }
                }
            }
        } else {
            found += keywordPasswords(in: conninfo)
        }
        return found
    }

    /// `password = value` or `password='quoted value'` in libpq's `key=value` form.
    private static func keywordPasswords(in conninfo: String) -> [String] {
        var found: [String] = []
        var search = conninfo[...]
        while let key = search.range(of: "password") {
            var i = key.upperBound
            search = conninfo[i...]
            while i < conninfo.endIndex, conninfo[i] == " " { i = conninfo.index(after: i) }
            guard i < conninfo.endIndex, conninfo[i] == "=" else { continue }
            i = conninfo.index(after: i)
            while i < conninfo.endIndex, conninfo[i] == " " { i = conninfo.index(after: i) }
            var value = ""
            if i < conninfo.endIndex, conninfo[i] == "'" {
                i = conninfo.index(after: i)
                while i < conninfo.endIndex, conninfo[i] != "'" {
                    if conninfo[i] == "\\", conninfo.index(after: i) < conninfo.endIndex { i = conninfo.index(after: i) }
                    value.append(conninfo[i])
                    i = conninfo.index(after: i)
                }
            } else {
                while i < conninfo.endIndex, !conninfo[i].isWhitespace {
                    value.append(conninfo[i])
                    i = conninfo.index(after: i)
                }
            }
            found.append(value)
            search = conninfo[i...]
        }
        return found
    }
}
