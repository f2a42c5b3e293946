/// Reads one JSON object strictly: typed getters with defaults, every problem recorded with its
/// JSON path, and unknown keys reported with a did-you-mean when the reader finishes.
///
/// Each getter also records the option it read, so `media-pipeline stages` can list a stage's
/// options from the very code that decodes them.
public struct OptionsReader {
    /// One option a reader was asked for: what `media-pipeline stages` prints.
    public struct Option: Sendable, Equatable {
        public var name: String
        public var type: String
        public var defaultValue: String
        public var help: String
    }

    public let path: String
    private let pairs: [(key: String, value: JSONValue)]
    public private(set) var diagnostics = Diagnostics()
    public private(set) var options: [Option] = []

    /// A reader over `value`, which must be an object (or absent, meaning all defaults).
    public init(_ value: JSONValue?, path: String) {
        self.path = path
        switch value {
        case nil, .null?: pairs = []
        case let .object(p)?: pairs = p
        case let other?:
            pairs = []
            diagnostics.error(path, "expected an object, found \(other.typeName)")
        }
    }

    /// True when the object has `key`.
    public func has(_ key: String) -> Bool { pairs.contains { $0.key == key } }

    private mutating func note(_ key: String, _ type: String, _ defaultValue: String, _ help: String) -> JSONValue? {
        options.append(Option(name: key, type: type, defaultValue: defaultValue, help: help))
        return pairs.first { $0.key == key }?.value
    }

    private mutating func wrongType(_ key: String, _ expected: String, _ found: JSONValue, hint: String? = nil) {
        diagnostics.error(JSONPath.child(path, key), "expected \(expected), found \(found.typeName)", hint: hint)
    }

    /// The raw value under `key`, for options with a shape of their own.
    public mutating func raw(_ key: String, type: String, help: String) -> JSONValue? {
        note(key, type, "-", help)
    }

    public mutating func string(_ key: String, default fallback: String, help: String) -> String {
        guard let value = note(key, "string", fallback.isEmpty ? "\"\"" : fallback, help) else { return fallback }
        guard case let .string(s) = value else { wrongType(key, "a string", value); return fallback }
        return s
    }

    public mutating func optionalString(_ key: String, help: String) -> String? {
        guard let value = note(key, "string", "none", help) else { return nil }
        guard case let .string(s) = value else { wrongType(key, "a string", value); return nil }
        return s
    }

    public mutating func bool(_ key: String, default fallback: Bool, help: String) -> Bool {
        guard let value = note(key, "boolean", String(fallback), help) else { return fallback }
        guard case let .bool(b) = value else { wrongType(key, "true or false", value); return fallback }
        return b
    }

    public mutating func int(_ key: String, default fallback: Int, range: ClosedRange<Int>, help: String) -> Int {
        guard let value = note(key, "integer \(range.lowerBound)…\(range.upperBound)", String(fallback), help) else { return fallback }
        guard case let .number(n) = value, n == n.rounded(), n >= -9e15, n <= 9e15 else {
            wrongType(key, "a whole number", value)
            return fallback
        }
        guard range.contains(Int(n)) else {
            diagnostics.error(JSONPath.child(path, key), "\(Int(n)) is out of range",
                              hint: "use a value from \(range.lowerBound) to \(range.upperBound)")
            return fallback
        }
        return Int(n)
    }

    /// One of a fixed set of words, with a did-you-mean for a misspelling.
    public mutating func choice(_ key: String, _ allowed: [String], default fallback: String, help: String) -> String {
        guard let value = note(key, allowed.joined(separator: " | "), fallback, help) else { return fallback }
        guard case let .string(s) = value else { wrongType(key, "a string", value); return fallback }
        guard allowed.contains(s) else {
            diagnostics.error(JSONPath.child(path, key), "'\(s)' is not allowed", hint: DidYouMean.hint(for: s, among: allowed))
            return fallback
        }
        return s
    }

    /// A byte size: a number, or text like `"50MB"` (decimal) / `"50MiB"` (binary).
    public mutating func bytes(_ key: String, default fallback: Int64, help: String) -> Int64 {
        guard let value = note(key, "size", Quantity.describe(bytes: fallback), help) else { return fallback }
        return Self.quantity(value, at: JSONPath.child(path, key), parse: Quantity.bytes, unit: "a size such as \"50MB\" or \"2GiB\"", diagnostics: &diagnostics) ?? fallback
    }

    /// A duration in seconds: a number, or text like `"250ms"`, `"2s"`, `"5min"`.
    public mutating func seconds(_ key: String, default fallback: Double, help: String) -> Double {
        guard let value = note(key, "duration", "\(fallback)s", help) else { return fallback }
        switch value {
        case let .number(n) where n >= 0 && n.isFinite: return n
        case let .string(s):
            if let v = Quantity.seconds(s) { return v }
            diagnostics.error(JSONPath.child(path, key), "'\(s)' is not a duration", hint: "write seconds, or text such as \"250ms\", \"2s\", \"5min\"")
        default:
            diagnostics.error(JSONPath.child(path, key), "expected a duration such as \"2s\", found \(value.typeName)")
        }
        return fallback
    }

    /// A pixel count: a number, or text like `"250MP"`.
    public mutating func pixels(_ key: String, default fallback: Int64, help: String) -> Int64 {
        guard let value = note(key, "pixels", "\(fallback / 1_000_000)MP", help) else { return fallback }
        return Self.quantity(value, at: JSONPath.child(path, key), parse: Quantity.pixels, unit: "a pixel count such as \"250MP\"", diagnostics: &diagnostics) ?? fallback
    }

    /// Reads a size or pixel count that is not under a reader (e.g. one entry of a per-kind table).
    public static func quantity(_ value: JSONValue, at path: String, parse: (String) -> Int64?, unit: String,
                                diagnostics: inout Diagnostics) -> Int64? {
        switch value {
        case let .number(n) where n >= 0 && n == n.rounded() && n < 9e18: return Int64(n)
        case let .string(s):
            if let v = parse(s) { return v }
            diagnostics.error(path, "'\(s)' is not \(unit)", hint: "units: B, KB, MB, GB (10^3) or KiB, MiB, GiB (2^10); MP for pixels")
            return nil
        default:
            diagnostics.error(path, "expected \(unit), found \(value.typeName)")
            return nil
        }
    }

    /// A nested object under `key`, read by its own reader.
    public mutating func object(_ key: String, help: String) -> OptionsReader {
        OptionsReader(note(key, "object", "-", help), path: JSONPath.child(path, key))
    }

    /// Adds a nested reader's problems (after its own `finish`).
    public mutating func absorb(_ nested: OptionsReader) {
        diagnostics.append(contentsOf: nested.finished().diagnostics)
    }

    /// Adds problems found elsewhere, each with its own path.
    public mutating func append(_ other: Diagnostics) { diagnostics.append(contentsOf: other) }

    /// Records a problem found by the caller at `key`.
    public mutating func error(_ key: String, _ message: String, hint: String? = nil) {
        diagnostics.error(key.isEmpty ? path : JSONPath.child(path, key), message, hint: hint)
    }

    /// The reader with unknown keys reported: every key must have been asked for.
    public func finished(allowing extra: Set<String> = []) -> OptionsReader {
        var copy = self
        let known = options.map(\.name) + extra
        for pair in pairs where !known.contains(pair.key) {
            copy.diagnostics.error(JSONPath.child(path, pair.key), "unknown key '\(pair.key)'",
                                   hint: known.isEmpty ? "this object takes no keys" : DidYouMean.hint(for: pair.key, among: known))
        }
        return copy
    }
}
