import Foundation
import MediaPipeline
import TestSupport
import Testing

/// The JSON Schema the loader's readers record, checked by an independent validator.
struct PipelineSchemaTests {
    static let validDocument = #"""
        {"$schema": "./s.json", "version": 1, "limits": {"uploads": 4, "memory": "64MB", "retry": {"baseDelay": "250ms"}},
         "purposes": {"avatar": {"prefix": "avatars/", "image": {"fit": "cover", "width": 512, "height": 512}}},
         "purposeRules": [{"match": "**", "purpose": "avatar"}],
         "stages": [{"kind": "noop", "when": {"kind": ["image", "video"], "maxBytes": "10MB"},
                     "options": {"maxDimension": 5, "limit": "2GiB", "secret": "${TOKEN:-fallback}"}},
                    {"name": "out", "kind": "fixed.sink", "on_error": "continue"}]}
        """#

    @Test("the schema accepts a valid pipeline and refuses every structural row of the invalid-file table")
    func schemaRefusesWhatTheLoaderRefusesForItsShape() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let schema = dir.appendingPathComponent("schema.json")
            try Data(Pipeline.schema(registry: testRegistry).prettyText.utf8).write(to: schema)
            let valid = dir.appendingPathComponent("valid.json")
            try Data(Self.validDocument.utf8).write(to: valid)
            #expect(throws: Never.self) { try load(Self.validDocument, environment: [:]).get() }
            let rows = PipelineConfigTests.badCases.filter { !$0.loaderOnly }
            #expect(rows.count >= 12)
            var files: [URL] = []
            for (i, row) in rows.enumerated() {
                let file = dir.appendingPathComponent("bad-\(i).json")
                try Data(row.json.utf8).write(to: file)
                files.append(file)
            }
            let verdicts = try SchemaCheck.validate(schema: schema, documents: [valid] + files)
            #expect(verdicts[valid.path]?.valid == true, "\(verdicts[valid.path]?.errors ?? [])")
            for (row, file) in zip(rows, files) {
                let verdict = try #require(verdicts[file.path])
                #expect(!verdict.valid, "the schema accepted \(row.json)")
                // The validator names the same key, in its path or its message.
                let key = String(row.path.split(separator: ".").last ?? "").replacingOccurrences(of: #"\[\d+\]$"#, with: "",
                                                                                                  options: .regularExpression)
                #expect(verdict.errors.contains { $0.contains(key) }, "\(row.path): \(verdict.errors)")
            }
        }
    }

    @Test func eachKindsOptionsAreClosedAndTyped() throws {
        let schema = Pipeline.schema(registry: testRegistry)
        #expect(schema["$schema"] == "https://json-schema.org/draft/2020-12/schema")
        #expect(schema["required"] == ["version", "stages"])
        #expect(schema["additionalProperties"] == false)
        let step = try #require(schema["properties"]?["stages"]?["items"])
        #expect(step["properties"]?["kind"]?["enum"] == ["fixed.sink", "noop"])
        for key in ["name", "kind", "when", "on_error", "options", "enabled", "before", "after"] {
            #expect(step["properties"]?[key] != nil, "stages[*].\(key) is missing")
        }
        guard case let .array(branches)? = step["allOf"] else { Issue.record("no per-kind branches"); return }
        let noop = try #require(branches.first { $0["if"]?["properties"]?["kind"]?["const"] == "noop" })
        let options = try #require(noop["then"]?["properties"]?["options"])
        #expect(options["additionalProperties"] == false)
        #expect(options["properties"]?["maxDimension"]?["minimum"] == 1)
        #expect(options["properties"]?["maxDimension"]?["maximum"] == 100)
        #expect(options["properties"]?["maxDimension"]?["default"] == 10)
        #expect(options["properties"]?["limit"]?["anyOf"] != nil)
        #expect(schema["properties"]?["limits"]?["properties"]?["retry"]?["additionalProperties"] == false)
        #expect(schema["properties"]?["purposes"]?["additionalProperties"]?["properties"]?["image"]?["properties"]?["fit"]?["enum"]
                == ["inside", "cover"])
    }
}
