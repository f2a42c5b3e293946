/// Reads one JSON object strictly: typed getters with defaults, every problem recorded with its
/// JSON path, and unknown keys reported with a did-you-mean when the reader finishes.
///
/// Each getter also records the option it read, with a JSON Schema node for its value, so
/// `media-pipeline stages` and `media-pipeline schema` describe options from the very code that
/// decodes them.
public struct OptionsReader {
    /// One option a reader was asked for: what `media-pipeline stages` prints and the schema holds.
    public struct Option: Sendable, Equatable {
        public var name: String
        public var type: String
        public var defaultValue: String
        public var help: String
        /// The JSON Schema (draft 2020-12) of the value, with the help as its description.
        public var schema: JSONValue
        /// The reader refuses the object when this key is missing.
        public var required = false
    }

    public let path: String
    private let pairs: [(key: String, value: JSONValue)]
    /// The key of the parent reader this one was made for by `object(_:help:)`.
    private var parentKey: String?
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

    private mutating func note(_ key: String, _ type: String, _ defaultValue: String, _ help: String,
                               schema: JSONValue, default schemaDefault: JSONValue? = nil) -> JSONValue? {
        var node = schema.adding("description", .string(help))
        if let schemaDefault { node = node.adding("default", schemaDefault) }
        options.append(Option(name: key, type: type, defaultValue: defaultValue, help: help, schema: node))
        return pairs.first { $0.key == key }?.value
    }

    /// Marks `key` as one the object must have (the caller reports it when missing), for the schema.
    public mutating func require(_ key: String) {
        if let index = options.firstIndex(where: { $0.name == key }) { options[index].required = true }
    }

    /// The JSON Schema of the object this reader reads: the keys asked for so far, no others.
    public var schema: JSONValue {
        var properties: [(key: String, value: JSONValue)] = []
        for option in options where !properties.contains(where: { $0.key == option.name }) {
            properties.append((option.name, option.schema))
        }
        var node: [(key: String, value: JSONValue)] = [("type", "object"), ("properties", .object(properties))]
        let required = options.filter(\.required).map(\.name)
        if !required.isEmpty { node.append(("required", .array(required.map(JSONValue.string)))) }
        node.append(("additionalProperties", false))
        return .object(node)
    }

    /// Schema text for sizes (`50MB`, `2GiB`), pixel counts (`250MP`) and durations (`2s`), as
    /// `Quantity` parses them.
    public enum Pattern {
        public static let bytes = #"^\s*([0-9]+|[0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB))\s*$"#
        public static let pixels = #"^\s*([0-9]+|[0-9]+(\.[0-9]+)?\s*MP)\s*$"#
        public static let seconds = #"^\s*[0-9]+(\.[0-9]+)?\s*(ms|s|min|h)?\s*$"#
    }

    /// A number or a text matching `pattern`.
    static func quantitySchema(_ pattern: String, integer: Bool) -> JSONValue {
        ["anyOf": [["type": .string(integer ? "integer" : "number"), "minimum": 0], ["type": "string", "pattern": .string(pattern)]]]
    }

    private mutating func wrongType(_ key: String, _ expected: String, _ found: JSONValue, hint: String? = nil) {
        diagnostics.error(JSONPath.child(path, key), "expected \(expected), found \(found.typeName)", hint: hint)
    }

    /// The raw value under `key`, for options with a shape of their own, which `schema` describes.
    public mutating func raw(_ key: String, type: String, help: String, schema: JSONValue = [:]) -> JSONValue? {
        note(key, type, "-", help, schema: schema)
    }

    public mutating func string(_ key: String, default fallback: String, help: String) -> String {
        guard let value = note(key, "string", fallback.isEmpty ? "\"\"" : fallback, help,
                                schema: ["type": "string"], default: fallback.isEmpty ? nil : .string(fallback)) else { return fallback }
        guard case let .string(s) = value else { wrongType(key, "a string", value); return fallback }
        return s
    }

    public mutating func optionalString(_ key: String, help: String) -> String? {
        guard let value = note(key, "string", "none", help, schema: ["type": "string"]) else { return nil }
        guard case let .string(s) = value else { wrongType(key, "a string", value); return nil }
        return s
    }

    public mutating func bool(_ key: String, default fallback: Bool, help: String) -> Bool {
        guard let value = note(key, "boolean", String(fallback), help, schema: ["type": "boolean"], default: .bool(fallback)) else { return fallback }
        guard case let .bool(b) = value else { wrongType(key, "true or false", value); return fallback }
        return b
    }

    public mutating func int(_ key: String, default fallback: Int, range: ClosedRange<Int>, help: String) -> Int {
        guard let value = note(key, "integer \(range.lowerBound)…\(range.upperBound)", String(fallback), help,
                                    schema: ["type": "integer", "minimum": .int(range.lowerBound), "maximum": .int(range.upperBound)],
                                    default: range.contains(fallback) ? .int(fallback) : nil) else { return fallback }
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
        guard let value = note(key, allowed.joined(separator: " | "), fallback, help,
                                    schema: ["type": "string", "enum": .array(allowed.map(JSONValue.string))],
                                    default: allowed.contains(fallback) ? .string(fallback) : nil) else { return fallback }
        guard case let .string(s) = value else { wrongType(key, "a string", value); return fallback }
        guard allowed.contains(s) else {
            diagnostics.error(JSONPath.child(path, key), "'\(s)' is not allowed", hint: DidYouMean.hint(for: s, among: allowed))
            return fallback
        }
        return s
    }

    /// A byte size: a number, or text like `"50MB"` (decimal) / `"50MiB"` (binary).
    public mutating func bytes(_ key: String, default fallback: Int64, help: String) -> Int64 {
        guard let value = note(key, "size", Quantity.describe(bytes: fallback), help,
                                    schema: Self.quantitySchema(Pattern.bytes, integer: true), default: fallback >= 0 ? .int(fallback) : nil) else { return fallback }
        return Self.quantity(value, at: JSONPath.child(path, key), parse: Quantity.bytes, unit: "a size such as \"50MB\" or \"2GiB\"", diagnostics: &diagnostics) ?? fallback
    }

    /// A duration in seconds: a number, or text like `"250ms"`, `"2s"`, `"5min"`.
    public mutating func seconds(_ key: String, default fallback: Double, help: String) -> Double {
        guard let value = note(key, "duration", "\(fallback)s", help,
                                    schema: Self.quantitySchema(Pattern.seconds, integer: false), default: .number(fallback)) else { return fallback }
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
        guard let value = note(key, "pixels", "\(fallback / 1_000_000)MP", help,
                                    schema: Self.quantitySchema(Pattern.pixels, integer: true), default: .int(fallback)) else { return fallback }
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

    /// A nested object under `key`, read by its own reader; `absorb` or `describe` gives its
    /// keys to this reader's schema.
    public mutating func object(_ key: String, help: String) -> OptionsReader {
        var nested = OptionsReader(note(key, "object", "-", help, schema: ["type": "object"]), path: JSONPath.child(path, key))
        nested.parentKey = key
        return nested
    }

    /// Adds a nested reader's problems (after its own `finish`) and its keys to the schema.
    public mutating func absorb(_ nested: OptionsReader) {
        describe(nested)
        diagnostics.append(contentsOf: nested.finished().diagnostics)
    }

    /// Adds a nested reader's keys to the schema only (for an object that was absent).
    public mutating func describe(_ nested: OptionsReader) {
        guard let key = nested.parentKey, let index = options.firstIndex(where: { $0.name == key }) else { return }
        options[index].schema = nested.schema.adding("description", .string(options[index].help))
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
