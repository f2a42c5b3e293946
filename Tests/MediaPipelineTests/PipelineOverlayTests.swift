import Foundation
import MediaPipeline
import Testing

/// Merges the files in order, then the `--set` flags.
func merge(_ files: [(name: String, text: String)], sets: [String] = []) throws(PipelineOverlay.Failure) -> PipelineOverlay {
    var layers: [PipelineLayer] = []
    for file in files { layers.append(try PipelineLayer(name: file.name, data: Data(file.text.utf8))) }
    var settings: [PipelineSetting] = []
    for text in sets { settings.append(try PipelineSetting(text)) }
    return try PipelineOverlay.merge(layers, settings: settings)
}

/// The top-level keys and values of a JSON object written in a test.
func members(_ text: String) -> [(key: String, value: JSONValue)] {
    guard case let .object(pairs)? = try? JSONValue.parse(Data(text.utf8)) else { return [("unparsable test JSON", .string(text))] }
    return pairs
}

/// Stage `i` of a document.
func stage(_ document: JSONValue, _ i: Int) -> JSONValue? {
    guard case let .array(stages)? = document["stages"], i < stages.count else { return nil }
    return stages[i]
}

struct PipelineOverlayTests {
    static let base = """
        {
          "version": 1,
          "limits": { "uploads": 8, "maxEntriesPerArchive": 5 },
          "purposes": { "a": {} }, "purposeRules": [ { "match": "**", "purpose": "a" } ],
          "stages": [
            { "name": "check", "kind": "noop" },
            { "name": "images", "kind": "noop", "when": { "kind": "image" },
              "options": { "maxDimension": 40, "limit": "1MB" } },
            { "kind": "fixed.sink" }
          ]
        }
        """

    struct Merge: Sendable, CustomTestStringConvertible {
        var label: String
        var overlays: [String]
        var sets: [String] = []
        /// The merged `limits`, `purposeRules` and `stages` expected, as JSON.
        var expected: String
        var testDescription: String { label }
    }

    static let merges: [Merge] = [
        Merge(label: "objects merge key by key", overlays: [#"{"limits": {"uploads": 4}}"#],
              expected: #"{"limits": {"maxEntriesPerArchive": 5, "uploads": 4}}"#),
        Merge(label: "arrays other than stages are replaced", overlays: [#"{"purposeRules": [{"match": "x/**", "purpose": "b"}]}"#],
              expected: #"{"purposeRules": [{"match": "x/**", "purpose": "b"}]}"#),
        Merge(label: "a stage's options merge deeply and its when is replaced",
              overlays: [#"{"stages": [{"name": "images", "when": {"mime": "image/*"}, "options": {"maxDimension": 20}}]}"#],
              expected: #"{"stages": [{"name": "check", "kind": "noop"}, {"name": "images", "kind": "noop", "when": {"mime": "image/*"}, "options": {"maxDimension": 20, "limit": "1MB"}}, {"kind": "fixed.sink"}]}"#),
        Merge(label: "a stage is matched by its kind when it has no name",
              overlays: [#"{"stages": [{"kind": "fixed.sink", "on_error": "skip"}]}"#],
              expected: #"{"stages": [{"name": "check", "kind": "noop"}, {"name": "images", "kind": "noop", "when": {"kind": "image"}, "options": {"maxDimension": 40, "limit": "1MB"}}, {"kind": "fixed.sink", "on_error": "skip"}]}"#),
        Merge(label: "enabled false turns a stage off", overlays: [#"{"stages": [{"name": "check", "enabled": false}]}"#],
              expected: #"{"stages": [{"name": "check", "kind": "noop", "enabled": false}, {"name": "images", "kind": "noop", "when": {"kind": "image"}, "options": {"maxDimension": 40, "limit": "1MB"}}, {"kind": "fixed.sink"}]}"#),
        Merge(label: "new stages go before, after, or at the end",
              overlays: [#"{"stages": [{"name": "x", "kind": "noop", "after": "check"}, {"name": "y", "kind": "noop", "before": "check"}, {"name": "z", "kind": "noop"}]}"#],
              expected: #"{"stages": [{"name": "y", "kind": "noop"}, {"name": "check", "kind": "noop"}, {"name": "x", "kind": "noop"}, {"name": "images", "kind": "noop", "when": {"kind": "image"}, "options": {"maxDimension": 40, "limit": "1MB"}}, {"kind": "fixed.sink"}, {"name": "z", "kind": "noop"}]}"#),
        Merge(label: "a later overlay places a stage relative to one an earlier overlay added",
              overlays: [#"{"stages": [{"name": "x", "kind": "noop"}]}"#, #"{"stages": [{"name": "y", "kind": "noop", "before": "x"}]}"#],
              expected: #"{"stages": [{"name": "check", "kind": "noop"}, {"name": "images", "kind": "noop", "when": {"kind": "image"}, "options": {"maxDimension": 40, "limit": "1MB"}}, {"kind": "fixed.sink"}, {"name": "y", "kind": "noop"}, {"name": "x", "kind": "noop"}]}"#),
        Merge(label: "a known stage given a place moves there",
              overlays: [#"{"stages": [{"name": "check", "after": "images"}]}"#],
              expected: #"{"stages": [{"name": "images", "kind": "noop", "when": {"kind": "image"}, "options": {"maxDimension": 40, "limit": "1MB"}}, {"name": "check", "kind": "noop"}, {"kind": "fixed.sink"}]}"#),
        Merge(label: "a later overlay can turn a stage on again",
              overlays: [#"{"stages": [{"name": "check", "enabled": false}]}"#, #"{"version": 1, "stages": [{"name": "check", "enabled": true}]}"#],
              expected: #"{"stages": [{"name": "check", "kind": "noop", "enabled": true}, {"name": "images", "kind": "noop", "when": {"kind": "image"}, "options": {"maxDimension": 40, "limit": "1MB"}}, {"kind": "fixed.sink"}]}"#),
        Merge(label: "--set reaches stages by name, parses JSON and creates missing objects", overlays: [],
              sets: ["stages.images.options.maxDimension=20", "limits.uploads=4", "limits.retry.attempts=2",
                     "purposeRules=[]", "stages.images.options.limit=2MB", #"stages.check.on_error="skip""#],
              expected: #"{"limits": {"maxEntriesPerArchive": 5, "uploads": 4, "retry": {"attempts": 2}}, "purposeRules": [], "stages": [{"name": "check", "kind": "noop", "on_error": "skip"}, {"name": "images", "kind": "noop", "when": {"kind": "image"}, "options": {"maxDimension": 20, "limit": "2MB"}}, {"kind": "fixed.sink"}]}"#),
        Merge(label: "--set finds a stage whose name holds dots and comes after the files",
              overlays: [#"{"limits": {"uploads": 2}}"#], sets: ["stages.fixed.sink.on_error=continue", "limits.uploads=3"],
              expected: #"{"limits": {"maxEntriesPerArchive": 5, "uploads": 3}, "stages": [{"name": "check", "kind": "noop"}, {"name": "images", "kind": "noop", "when": {"kind": "image"}, "options": {"maxDimension": 40, "limit": "1MB"}}, {"kind": "fixed.sink", "on_error": "continue"}]}"#),
    ]

    @Test(arguments: merges)
    func mergesAsDocumented(_ case_: Merge) throws {
        let files = [("base.json", Self.base)] + case_.overlays.enumerated().map { ("overlay\($0).json", $1) }
        let merged = try merge(files, sets: case_.sets)
        for (key, value) in members(case_.expected) {
            #expect(merged.document[key] == value, "\(key): \(merged.document[key]?.compactText ?? "absent")")
        }
        #expect(merged.document["version"] == 1)
    }

    struct Conflict: Sendable, CustomTestStringConvertible {
        var label: String
        var overlays: [String]
        var sets: [String] = []
        /// The file the problem is reported against, its JSON path, and text the message and hint hold.
        var file: String
        var path: String
        var says: [String]
        var testDescription: String { label }
    }

    static let conflicts: [Conflict] = [
        Conflict(label: "an overlay changing a stage's kind", overlays: [#"{"stages": [{"name": "images", "kind": "fixed.sink"}]}"#],
                 file: "overlay0.json", path: "stages[0].kind",
                 says: ["changes the kind of stage 'images' from 'noop' (base.json:7) to 'fixed.sink'", "\"enabled\": false"]),
        Conflict(label: "before naming no stage", overlays: [#"{"stages": [{"name": "x", "kind": "noop", "before": "imagse"}]}"#],
                 file: "overlay0.json", path: "stages[0].before", says: ["no stage named 'imagse'", "did you mean 'images'?"]),
        Conflict(label: "both before and after", overlays: [#"{"stages": [{"name": "x", "kind": "noop", "before": "check", "after": "check"}]}"#],
                 file: "overlay0.json", path: "stages[0]", says: ["gives both \"before\" and \"after\"", "keep one"]),
        Conflict(label: "a differing version", overlays: [#"{"version": 2}"#],
                 file: "overlay0.json", path: "version", says: ["version 2 differs from version 1 of base.json:2"]),
        Conflict(label: "a disabled stage placed against by a later overlay",
                 overlays: [#"{"stages": [{"name": "check", "enabled": false}]}"#, #"{"stages": [{"name": "x", "kind": "noop", "after": "check"}]}"#],
                 file: "overlay1.json", path: "stages[0].after", says: ["stage 'check' was disabled by overlay0.json:1"]),
        Conflict(label: "an overlay that is not an object", overlays: ["[1]"], file: "overlay0.json", path: "",
                 says: ["expected a JSON object at the top, found an array"]),
        Conflict(label: "an overlay stage with neither name nor kind", overlays: [#"{"stages": [{"options": {}}]}"#],
                 file: "overlay0.json", path: "stages[0]", says: ["needs a \"name\""]),
        Conflict(label: "--set naming no stage", overlays: [], sets: ["stages.imges.options.maxDimension=1"],
                 file: "--set stages.imges.options.maxDimension=1", path: "stages.imges", says: ["no stage named 'imges'", "did you mean 'images'?"]),
        Conflict(label: "--set through a number", overlays: [], sets: ["limits.uploads.max=1"],
                 file: "--set limits.uploads.max=1", path: "limits.uploads", says: ["'limits.uploads' is a number, not an object"]),
        Conflict(label: "--set into an array", overlays: [], sets: ["purposeRules.0.match=x"],
                 file: "--set purposeRules.0.match=x", path: "purposeRules", says: ["is an array", "give the whole array as JSON"]),
        Conflict(label: "--set carrying a secret", overlays: [], sets: ["stages.images.options.secret=whsec_abc"],
                 file: "--set stages.images.options.secret=…", path: "stages.images.options.secret",
                 says: ["visible to every user", "${SECRET}"]),
        Conflict(label: "--set without a value", overlays: [], sets: ["limits.uploads"],
                 file: "--set limits.uploads", path: "", says: ["expected PATH=VALUE"]),
    ]

    @Test(arguments: conflicts)
    func conflictsNameTheFilesAndThePath(_ case_: Conflict) {
        let files = [("base.json", Self.base)] + case_.overlays.enumerated().map { ("overlay\($0).json", $1) }
        let failure = #expect(throws: PipelineOverlay.Failure.self) { try merge(files, sets: case_.sets) }
        #expect(failure?.problems.count == 1, "\(failure?.description ?? "")")
        guard let problem = failure?.problems.first else { return }
        #expect(problem.file == case_.file)
        #expect(problem.path == case_.path)
        for text in case_.says { #expect(problem.description.contains(text), "\(problem)") }
    }

    @Test func aBaseFileCannotPlaceStages() {
        #expect(throws: PipelineOverlay.Failure.self) {
            try merge([("base.json", #"{"version": 1, "stages": [{"kind": "noop", "after": "x"}]}"#)])
        }
    }

    @Test func aSecretMayBeSetAsAReferenceToTheEnvironment() throws {
        let merged = try merge([("base.json", Self.base)], sets: ["stages.images.options.secret=${HOOK_SECRET}"])
        #expect(stage(merged.document, 1)?["options"]?["secret"] == "${HOOK_SECRET}")
    }

    @Test func theParserKnowsTheLineOfEveryKeyAndItem() throws {
        var lines: [String: Int] = [:]
        let value = try JSONValue.parse(Data(Self.base.utf8), lines: &lines)
        #expect(lines["version"] == 2)
        #expect(lines["stages[1]"] == 7)
        #expect(lines["stages[1].options.maxDimension"] == 8)
        #expect(lines["purposeRules[0].match"] == 4)
        #expect(value["limits"]?["uploads"] == 8)
    }

    @Test("the parser reads what JSON allows and refuses the rest", arguments: [
        (#"{"a": "x\u00e9\ud83d\ude00\n\"", "b": [1.5e2, -0, true, false, null], "c": {}}"#, true),
        ("\u{FEFF}[1]", true), ("  7  ", true),
        (#"{"a": 1,}"#, false), ("[01]", false), (#""\ud800""#, false), ("[1] x", false), ("{\"a\n\": 1}", false), ("1e999", false),
    ])
    func parserEdges(_ text: String, _ valid: Bool) throws {
        let parsed = try? JSONValue.parse(Data(text.utf8))
        #expect((parsed != nil) == valid)
        if text.hasPrefix(#"{"a""#), valid {
            #expect(parsed?["a"] == "xé😀\n\"")
            #expect(parsed?["b"] == [150, 0, true, false, nil])
        }
    }

    @Test func originsNameTheFileAndLineTheSetFlagAndTheEnvironment() throws {
        let overlay = """
            {
              "stages": [
                { "name": "images",
                  "options": { "maxDimension": 20 } }
              ]
            }
            """
        let merged = try merge([("base.json", Self.base.replacingOccurrences(of: #""1MB""#, with: #""${LIMIT}""#)), ("school.json", overlay)],
                               sets: ["limits.uploads=3"])
        let pipeline = try Pipeline.load(document: merged.document, registry: testRegistry, environment: ["LIMIT": "2MB"])
        let entries = merged.entries(resolved: pipeline.resolved, interpolation: Interpolation(environment: ["LIMIT": "2MB"]))
        let byPath = Dictionary(uniqueKeysWithValues: entries.map { ($0.path, $0) })
        #expect(byPath["stages[1].options.maxDimension"]?.origin?.description == "school.json:4")
        #expect(byPath["stages[1].options.maxDimension"]?.value == 20)
        #expect(byPath["stages[1].options.limit"]?.origin?.description == "env LIMIT (base.json:8)")
        #expect(byPath["stages[1].options.limit"]?.value == "2MB")
        #expect(byPath["limits.uploads"]?.origin?.description == "--set")
        #expect(byPath["limits.maxEntriesPerArchive"]?.origin?.description == "base.json:3")
        #expect(byPath["stages[1].when.kind"]?.origin?.description == "base.json:7")
        #expect(merged.origin(of: "stages[1].options.nothing") == .file("school.json", line: 4))
    }

    @Test func theLoaderSkipsADisabledStageWithoutResolvingIt() throws {
        let text = """
            {"version": 1, "stages": [
              {"kind": "noop"},
              {"name": "off", "kind": "noop", "enabled": false, "options": {"secret": "${MISSING}", "unknown": 1}},
              {"kind": "fixed.sink"}]}
            """
        let pipeline = try load(text).get()
        #expect(pipeline.steps.map(\.name) == ["noop", "fixed.sink"])
        #expect(stage(pipeline.resolved, 1)?["enabled"] == false)
        let wrong = load(#"{"version": 1, "stages": [{"kind": "noop", "enabled": "no"}]}"#)
        guard case let .failure(error) = wrong else { Issue.record("loaded"); return }
        #expect(error.diagnostics.map(\.path) == ["stages[0].enabled"])
    }
}
