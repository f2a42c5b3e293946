/// One problem found in a pipeline file, with where it is and how to fix it.
public struct Diagnostic: Sendable, Equatable, CustomStringConvertible {
    /// How bad a problem is: errors stop the run, warnings do not.
    public enum Severity: String, Sendable { case error, warning }

    public var severity: Severity
    /// The JSON path inside the file, e.g. `stages[3].options.maxDimension`; empty for the whole file.
    public var path: String
    public var message: String
    /// How to fix it, when there is something useful to say.
    public var hint: String?

    public init(_ severity: Severity, path: String, _ message: String, hint: String? = nil) {
        self.severity = severity
        self.path = path
        self.message = message
        self.hint = hint
    }

    public var description: String {
        let location = path.isEmpty ? "" : "\(path): "
        let fix = hint.map { " (\($0))" } ?? ""
        return "\(severity.rawValue): \(location)\(message)\(fix)"
    }
}

/// Collects every problem found while reading a pipeline, so all are reported at once.
public struct Diagnostics: Sendable {
    public private(set) var items: [Diagnostic] = []

    public init() {}

    public var hasErrors: Bool { items.contains { $0.severity == .error } }

    public mutating func error(_ path: String, _ message: String, hint: String? = nil) {
        items.append(Diagnostic(.error, path: path, message, hint: hint))
    }

    public mutating func warning(_ path: String, _ message: String, hint: String? = nil) {
        items.append(Diagnostic(.warning, path: path, message, hint: hint))
    }

    public mutating func append(contentsOf other: Diagnostics) { items += other.items }
}

/// Suggests the closest known name for a misspelt one.
public enum DidYouMean {
    /// The candidate nearest to `name` by edit distance, when it is close enough to be a likely typo.
    public static func suggestion(for name: String, among candidates: some Sequence<String>) -> String? {
        let lowered = name.lowercased()
        var best: (name: String, distance: Int)?
        for candidate in candidates {
            let d = distance(lowered, candidate.lowercased())
            if d < (best?.distance ?? Int.max) { best = (candidate, d) }
        }
        guard let best, best.distance <= max(2, name.count / 3) else { return nil }
        return best.name
    }

    /// "did you mean 'x'?" or a list of what is allowed.
    public static func hint(for name: String, among candidates: [String]) -> String {
        if let s = suggestion(for: name, among: candidates) { return "did you mean '\(s)'?" }
        return "expected one of: " + candidates.sorted().joined(separator: ", ")
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            previous = current
        }
        return previous[b.count]
    }
}
