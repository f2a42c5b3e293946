import Foundation
import MediaPipeline

/// The messages of the stage protocol (docs/stage-protocol.md): one JSON object per line on the
/// program's stdin and stdout. Pure values, no I/O.
enum StageProtocol {
    /// The version the tool speaks, sent in `hello`.
    static let version = 1

    /// The first message: who is asking, in which version.
    static func hello(stage: String) -> [UInt8] {
        line(.object([("type", "hello"), ("protocol", .int(version)), ("stage", .string(stage))]))
    }

    /// One file to look at.
    static func asset(id: Int, _ fields: [(key: String, value: JSONValue)]) -> [UInt8] {
        line(.object([("type", "asset"), ("id", .int(id))] + fields))
    }

    private static func line(_ value: JSONValue) -> [UInt8] { Array((value.compactText + "\n").utf8) }

    /// What the program decided about a file.
    enum Reply: Equatable, Sendable {
        /// Go on, with variables to merge, a file to use instead of the working one, and extra files.
        case proceed(variables: [String: String], replace: String?, files: [String])
        case skip(Reason)
        case reject(Reason)
    }

    /// Why a line is not an acceptable reply, for the `stage_protocol` detail.
    struct Violation: Error, Equatable {
        var detail: String
    }

    /// Reads the answer to `hello`: `{"type":"ready"}`, optionally with the version it speaks.
    static func readReady(_ line: [UInt8]) -> Violation? {
        let object: JSONValue
        switch parse(line) {
        case let .success(value): object = value
        case let .failure(violation): return violation
        }
        guard object["type"]?.stringValue == "ready" else {
            return Violation(detail: "answered hello with \(describe(object["type"])) instead of {\"type\":\"ready\"}")
        }
        if let spoken = object["protocol"], spoken != JSONValue.int(version) {
            return Violation(detail: "speaks protocol \(spoken.compactText); this media-pipeline speaks \(version)")
        }
        return nil
    }

    /// Reads the answer to asset message `id`.
    static func readReply(_ line: [UInt8], id: Int) -> Result<Reply, Violation> {
        let object: JSONValue
        switch parse(line) {
        case let .success(value): object = value
        case let .failure(violation): return .failure(violation)
        }
        guard object["id"] == JSONValue.int(id) else {
            return .failure(Violation(detail: "answered with id \(object["id"]?.compactText ?? "missing") to asset \(id)"))
        }
        switch object["type"]?.stringValue {
        case "continue":
            var variables: [String: String] = [:]
            switch object["variables"] {
            case nil, .null?: break
            case let .object(pairs)?:
                for (name, value) in pairs {
                    guard !name.isEmpty else { return .failure(Violation(detail: "a variable has an empty name")) }
                    switch value {
                    case let .string(text): variables[name] = text
                    case .number, .bool: variables[name] = value.compactText
                    default: return .failure(Violation(detail: "variable '\(name)' is \(value.typeName); use a string, number or boolean"))
                    }
                }
            case let other?: return .failure(Violation(detail: "variables is \(other.typeName); expected an object"))
            }
            var replace: String?
            switch object["replace"] {
            case nil, .null?: break
            case let .string(path)? where !path.isEmpty: replace = path
            case let other?: return .failure(Violation(detail: "replace is \(other.compactText); expected a file name"))
            }
            var files: [String] = []
            switch object["files"] {
            case nil, .null?: break
            case let .array(items)?:
                for item in items {
                    guard case let .string(path) = item, !path.isEmpty else {
                        return .failure(Violation(detail: "files holds \(item.compactText); expected file names"))
                    }
                    files.append(path)
                }
            case let other?: return .failure(Violation(detail: "files is \(other.typeName); expected an array of file names"))
            }
            return .success(.proceed(variables: variables, replace: replace, files: files))
        case "skip":
            return reason(object, default: .stageSkipped).map(Reply.skip)
        case "reject":
            guard object["code"] != nil else { return .failure(Violation(detail: "a reject needs a snake_case \"code\"")) }
            return reason(object, default: .stageSkipped).map(Reply.reject)
        default:
            return .failure(Violation(detail: "unknown reply type \(describe(object["type"])); expected continue, skip or reject"))
        }
    }

    private static func reason(_ object: JSONValue, default fallback: ReasonCode) -> Result<Reason, Violation> {
        var code = fallback
        if let given = object["code"] {
            guard let text = given.stringValue, isSnakeCase(text) else {
                return .failure(Violation(detail: "code \(given.compactText) is not snake_case (a-z, 0-9, _; at most 64)"))
            }
            code = ReasonCode(rawValue: text)
        }
        let detail: String
        switch object["reason"] {
        case nil, .null?: detail = ""
        case let .string(text)?: detail = text
        case let other?: return .failure(Violation(detail: "reason is \(other.typeName); expected a string"))
        }
        return .success(Reason(code, detail))
    }

    /// `a-z` first, then `a-z`, `0-9` or `_`; at most 64 characters.
    static func isSnakeCase(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, (0x61...0x7A).contains(first), bytes.count <= 64 else { return false }
        return bytes.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F }
    }

    private static func parse(_ line: [UInt8]) -> Result<JSONValue, Violation> {
        guard let value = try? JSONValue.parse(Data(line)) else {
            return .failure(Violation(detail: "wrote a line that is not JSON: \(preview(line))"))
        }
        guard case .object = value else {
            return .failure(Violation(detail: "wrote \(value.typeName) instead of a JSON object: \(preview(line))"))
        }
        return .success(value)
    }

    private static func describe(_ type: JSONValue?) -> String { type.map(\.compactText) ?? "no type" }

    /// The start of a line, for a message: at most 80 characters, controls escaped by the logger.
    static func preview(_ line: [UInt8]) -> String {
        let text = String(decoding: line.prefix(80), as: UTF8.self)
        return line.count > 80 ? "'\(text)…'" : "'\(text)'"
    }
}
