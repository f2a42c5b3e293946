/// A stage's `when`: every given field must hold for the stage to run on a file.
public struct Condition: Sendable, Equatable {
    public var kinds: [AssetKind]?
    /// MIME patterns; `image/*` matches every image type.
    public var mimes: [String]?
    public var purposes: [String]?
    public var paths: [Glob]?
    public var minBytes: Int64?
    public var maxBytes: Int64?

    public init(kinds: [AssetKind]? = nil, mimes: [String]? = nil, purposes: [String]? = nil, paths: [Glob]? = nil,
                minBytes: Int64? = nil, maxBytes: Int64? = nil) {
        self.kinds = kinds
        self.mimes = mimes
        self.purposes = purposes
        self.paths = paths
        self.minBytes = minBytes
        self.maxBytes = maxBytes
    }

    /// Reads a `when` object; `purposes` are the names a `purpose` field may use.
    public static func read(_ value: JSONValue?, path: String, purposes: [String], diagnostics: inout Diagnostics) -> Condition? {
        guard let value else { return nil }
        var reader = OptionsReader(value, path: path)
        let condition = read(&reader, path: path, purposes: purposes, diagnostics: &diagnostics)
        diagnostics.append(contentsOf: reader.finished().diagnostics)
        return condition
    }

    /// The JSON Schema of a `when` object, recorded by the reader that decodes one.
    public static var schema: JSONValue {
        var reader = OptionsReader(.object([]), path: "when")
        var ignored = Diagnostics()
        _ = read(&reader, path: "when", purposes: [], diagnostics: &ignored)
        return reader.schema
    }

    /// A string, or a non-empty array of strings, each one of `allowed` when given.
    static func wordsSchema(_ allowed: [String]?) -> JSONValue {
        var word: JSONValue = ["type": "string"]
        if let allowed { word = word.adding("enum", .array(allowed.map(JSONValue.string))) }
        return ["anyOf": [word, ["type": "array", "items": word, "minItems": 1]]]
    }

    private static func read(_ reader: inout OptionsReader, path: String, purposes: [String], diagnostics: inout Diagnostics) -> Condition {
        var condition = Condition()
        let kindNames = AssetKind.allCases.map(\.rawValue)
        if let raw = reader.raw("kind", type: "kind or [kinds]", help: "image | video | document | archive | audio | other",
                                schema: wordsSchema(kindNames)) {
            condition.kinds = words(raw, path: JSONPath.child(path, "kind"), allowed: kindNames, diagnostics: &diagnostics)?
                .compactMap(AssetKind.init(rawValue:))
        }
        if let raw = reader.raw("mime", type: "pattern or [patterns]", help: "MIME types from content, e.g. image/* or application/pdf",
                                schema: wordsSchema(nil)) {
            condition.mimes = words(raw, path: JSONPath.child(path, "mime"), allowed: nil, diagnostics: &diagnostics)
        }
        if let raw = reader.raw("purpose", type: "name or [names]", help: "upload purposes", schema: wordsSchema(nil)) {
            condition.purposes = words(raw, path: JSONPath.child(path, "purpose"), allowed: purposes, diagnostics: &diagnostics)
        }
        if let raw = reader.raw("path", type: "glob or [globs]", help: "globs over the path inside the input, e.g. videos/**",
                                schema: wordsSchema(nil)) {
            condition.paths = words(raw, path: JSONPath.child(path, "path"), allowed: nil, diagnostics: &diagnostics)?.map(Glob.init)
        }
        let minBytes = reader.bytes("minBytes", default: -1, help: "at least this size")
        let maxBytes = reader.bytes("maxBytes", default: -1, help: "at most this size")
        condition.minBytes = minBytes >= 0 ? minBytes : nil
        condition.maxBytes = maxBytes >= 0 ? maxBytes : nil
        return condition
    }

    private static func words(_ value: JSONValue, path: String, allowed: [String]?, diagnostics: inout Diagnostics) -> [String]? {
        let items: [(String, JSONValue)]
        switch value {
        case .string: items = [(path, value)]
        case let .array(list) where !list.isEmpty: items = list.enumerated().map { (JSONPath.index(path, $0), $1) }
        default:
            diagnostics.error(path, "expected a string or a non-empty array of strings, found \(value.typeName)")
            return nil
        }
        var out: [String] = []
        for (itemPath, item) in items {
            guard case let .string(word) = item else {
                diagnostics.error(itemPath, "expected a string, found \(item.typeName)")
                continue
            }
            if let allowed, !allowed.contains(word) {
                diagnostics.error(itemPath, "'\(word)' is not known", hint: DidYouMean.hint(for: word, among: allowed))
                continue
            }
            out.append(word)
        }
        return out
    }

    /// True when the asset satisfies every field. Reads only the facts the fields need.
    public func matches(_ asset: Asset) throws -> Bool {
        if let purposes, !purposes.contains(asset.purpose ?? "") { return false }
        if let paths, !paths.contains(where: { $0.matches(asset.relativePath) }) { return false }
        if minBytes != nil || maxBytes != nil {
            let size = try asset.size()
            if let minBytes, size < minBytes { return false }
            if let maxBytes, size > maxBytes { return false }
        }
        if let kinds, !kinds.contains(try asset.kind()) { return false }
        if let mimes {
            let mime = try asset.mime()
            if !mimes.contains(where: { Condition.mime(mime, matches: $0) }) { return false }
        }
        return true
    }

    static func mime(_ mime: String, matches pattern: String) -> Bool {
        if pattern.hasSuffix("/*") { return mime.hasPrefix(pattern.dropLast()) }
        return mime == pattern
    }
}

extension Condition {
    /// True when a finished file's row satisfies every field; used for steps that act on the row
    /// (notify), after the file's facts are known. A field the row does not know does not hold.
    public func matches(_ report: AssetReport) -> Bool {
        if let purposes, !purposes.contains(report.purpose ?? "") { return false }
        if let paths {
            guard let path = report.relativePath, paths.contains(where: { $0.matches(path) }) else { return false }
        }
        if let minBytes { guard let bytes = report.bytes, bytes >= minBytes else { return false } }
        if let maxBytes { guard let bytes = report.bytes, bytes <= maxBytes else { return false } }
        if let kinds { guard let kind = report.kind, kinds.contains(kind) else { return false } }
        if let mimes {
            guard let mime = report.mime, mimes.contains(where: { Condition.mime(mime, matches: $0) }) else { return false }
        }
        return true
    }
}
