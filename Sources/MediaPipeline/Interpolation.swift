import Foundation

/// Resolves `${VAR}`, `${VAR:-default}` and `${VAR:?message}` in pipeline.json strings, once at start.
public struct Interpolation: Sendable {
    public let environment: [String: String]

    public init(environment: [String: String]) {
        self.environment = environment
    }

    /// The problem with one reference, for the diagnostic at its JSON path.
    public struct Failure: Error, Equatable {
        public var message: String
        public var hint: String
    }

    /// `text` with every reference replaced. `$${` stands for a literal `${`.
    public func resolve(_ text: String) -> Result<String, Failure> {
        var supplied: [String] = []
        return resolve(text, supplied: &supplied)
    }

    /// The variables whose values the environment put into `text` (a default used instead does
    /// not count), for showing where a resolved value came from.
    public func variables(suppliedTo text: String) -> [String] {
        var supplied: [String] = []
        _ = resolve(text, supplied: &supplied)
        return supplied
    }

    private func resolve(_ text: String, supplied: inout [String]) -> Result<String, Failure> {
        var out = ""
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            out += rest[..<dollar]
            let after = rest[rest.index(after: dollar)...]
            if after.hasPrefix("${") {  // escaped: $${ -> ${
                out += "${"
                rest = after.dropFirst(2)
                continue
            }
            guard after.hasPrefix("{") else {
                out += "$"
                rest = after
                continue
            }
            guard let close = after.firstIndex(of: "}") else {
                return .failure(Failure(message: "unterminated '${' in \"\(text)\"",
                                        hint: "close the reference with '}', or write '$${' for a literal '${'"))
            }
            let body = after[after.index(after: after.startIndex)..<close]
            switch expand(body, supplied: &supplied) {
            case let .success(value): out += value
            case let .failure(failure): return .failure(failure)
            }
            rest = after[after.index(after: close)...]
        }
        out += rest
        return .success(out)
    }

    private func expand(_ body: Substring, supplied: inout [String]) -> Result<String, Failure> {
        let name: Substring
        var fallback: Substring?
        var required: Substring?
        if let r = body.range(of: ":-") {
            name = body[..<r.lowerBound]
            fallback = body[r.upperBound...]
        } else if let r = body.range(of: ":?") {
            name = body[..<r.lowerBound]
            required = body[r.upperBound...]
        } else {
            name = body
        }
        guard Interpolation.isValidName(name) else {
            return .failure(Failure(message: "'${\(body)}' is not a valid variable reference",
                                    hint: "names are letters, digits and '_', not starting with a digit"))
        }
        if let value = environment[String(name)], !value.isEmpty || (fallback == nil && required == nil) {
            if !supplied.contains(String(name)) { supplied.append(String(name)) }
            return .success(value)
        }
        if let fallback { return .success(String(fallback)) }
        if let required {
            let why = required.isEmpty ? "\(name) is required" : String(required)
            return .failure(Failure(message: "environment variable \(name) is not set: \(why)",
                                    hint: "export \(name)=… before running"))
        }
        return .failure(Failure(message: "environment variable \(name) is not set",
                                hint: "export \(name)=…, or write ${\(name):-default} to give a default"))
    }

    static func isValidName(_ name: Substring) -> Bool {
        guard let first = name.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) }
    }

    /// Every string in `value` resolved; problems are recorded with their JSON path.
    public func resolve(_ value: JSONValue, path: String, diagnostics: inout Diagnostics) -> JSONValue {
        switch value {
        case let .string(text):
            switch resolve(text) {
            case let .success(resolved): return .string(resolved)
            case let .failure(failure):
                diagnostics.error(path, failure.message, hint: failure.hint)
                return value
            }
        case let .array(items):
            return .array(items.enumerated().map { resolve($1, path: "\(path)[\($0)]", diagnostics: &diagnostics) })
        case let .object(pairs):
            return .object(pairs.map { ($0.key, resolve($0.value, path: JSONPath.child(path, $0.key), diagnostics: &diagnostics)) })
        default:
            return value
        }
    }
}

/// Builds JSON paths for diagnostics: `stages[3].options.maxDimension`.
public enum JSONPath {
    public static func child(_ path: String, _ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }

    public static func index(_ path: String, _ i: Int) -> String { "\(path)[\(i)]" }
}
