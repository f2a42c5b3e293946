public import Foundation

/// Validates JSON documents against a JSON Schema with an independent validator: Python's
/// jsonschema (Draft202012Validator), through Tests/Fixtures/check_schema.py.
public enum SchemaCheck {
    /// One document's verdict: valid, or the errors as `<json path>: <message>`.
    public struct Verdict: Sendable {
        public var valid: Bool
        public var errors: [String]
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The verdict for each document, by its path. Throws when the schema itself is not a valid
    /// draft 2020-12 schema or the validator cannot run (install it with .ci/install-deps.sh).
    public static func validate(schema: URL, documents: [URL]) throws -> [String: Verdict] {
        let script = TestFiles.repoRoot.appendingPathComponent("Tests/Fixtures/check_schema.py").path
        let result = Shell.run("/usr/bin/env", ["python3", script, schema.path] + documents.map(\.path))
        guard result.status == 0 else {
            throw Failure(description: "check_schema.py exited \(result.status): \(result.stderr)")
        }
        var verdicts: [String: Verdict] = [:]
        for line in result.stdout.split(separator: "\n") {
            guard let row = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let file = row["file"] as? String, let valid = row["valid"] as? Bool else {
                throw Failure(description: "check_schema.py printed an unexpected line: \(line)")
            }
            verdicts[file] = Verdict(valid: valid, errors: row["errors"] as? [String] ?? [])
        }
        return verdicts
    }
}
