import Foundation
import MediaPipeline
import Testing

/// A stage that does nothing, so the loader can be tested without real stages.
struct NoopStage: Stage {
    func run(_ asset: Asset, context: StageContext) async throws -> StageOutcome { .proceed }
}

/// A sink with fixed configuration, for routing-free loader tests. Its upload returns a fixed
/// result, throws `failure` when one is given, or does what `onUpload` says.
struct FixedSink: Sink {
    var failure: SinkError?
    var onUpload: (@Sendable (Asset) async throws -> JSONValue)?
    var sinkName: String { "fixed" }
    func upload(_ plan: UploadPlan, asset: Asset, context: StageContext) async throws -> JSONValue {
        if let failure { throw failure }
        if let onUpload { return try await onUpload(asset) }
        return .object([("id", .string(asset.source))])
    }
    var configuration: SinkConfiguration { SinkConfiguration(missing: []) }
    func refusal(for file: PreparedFile) -> String? { nil }
    func plan(for asset: Asset, context: StageContext) throws -> UploadPlan {
        UploadPlan(method: "PUT", endpoint: "test://fixed", contentType: "x/y", bytes: 0, path: "")
    }
}

let testRegistry = StageRegistry([
    StageFactory(kind: "noop", summary: "does nothing") { options, _ in
        _ = options.int("maxDimension", default: 10, range: 1...100, help: "a number")
        _ = options.bytes("limit", default: 1, help: "a size")
        _ = options.string("secret", default: "", help: "a secret")
        return .stage(NoopStage())
    },
    StageFactory(kind: "fixed.sink", summary: "a sink", isSink: true) { _, _ in .sink(FixedSink()) },
])

func load(_ text: String, environment: [String: String] = [:]) -> Result<Pipeline, Pipeline.LoadError> {
    Result { () throws(Pipeline.LoadError) in
        try Pipeline.load(Data(text.utf8), registry: testRegistry, environment: environment)
    }
}

struct PipelineConfigTests {
    struct BadCase: Sendable, CustomTestStringConvertible {
        var json: String
        var path: String
        var message: String
        var hint: String?
        /// Only the loader can judge it (environment, names across the file, JSON syntax), so a
        /// JSON Schema cannot refuse it.
        var loaderOnly = false
        var testDescription: String { "\(path): \(message)" }
    }

    static let badCases: [BadCase] = [
        BadCase(json: #"{"stages": []}"#, path: "version", message: "missing", hint: "add \"version\": 1"),
        BadCase(json: #"{"version": 2, "stages": []}"#, path: "version", message: "unsupported version 2"),
        BadCase(json: #"{"version": 1, "stages": [{"kind": "noop"}], "extra": 1}"#, path: "extra", message: "unknown key 'extra'"),
        BadCase(json: #"{"version": 1, "stage": []}"#, path: "stage", message: "unknown key 'stage'", hint: "did you mean 'stages'?"),
        BadCase(json: #"{"version": 1, "stages": [{"kind": "nop"}]}"#, path: "stages[0].kind", message: "unknown stage kind 'nop'", hint: "did you mean 'noop'?"),
        BadCase(json: #"{"version": 1, "stages": [{"kind": "noop"}, {"kind": "noop", "options": {"maxDimenson": 5}}]}"#,
                path: "stages[1].options.maxDimenson", message: "unknown key 'maxDimenson'", hint: "did you mean 'maxDimension'?"),
        BadCase(json: #"{"version": 1, "stages": [{"kind": "noop", "options": {"maxDimension": "big"}}]}"#,
                path: "stages[0].options.maxDimension", message: "expected a whole number, found a string"),
        BadCase(json: #"{"version": 1, "stages": [{"kind": "noop", "options": {"maxDimension": 500}}]}"#,
                path: "stages[0].options.maxDimension", message: "500 is out of range", hint: "use a value from 1 to 100"),
        BadCase(json: #"{"version": 1, "stages": [{"kind": "noop", "options": {"limit": "12 parsecs"}}]}"#,
                path: "stages[0].options.limit", message: "'12 parsecs' is not a size such as \"50MB\" or \"2GiB\""),
        BadCase(json: #"{"version": 1, "stages": [{"kind": "noop", "on_error": "explode"}]}"#,
                path: "stages[0].on_error", message: "'explode' is not allowed"),
        BadCase(json: #"{"version": 1, "stages": [{"kind": "noop", "when": {"kind": "imag"}}]}"#,
                path: "stages[0].when.kind", message: "'imag' is not known", hint: "did you mean 'image'?"),
        BadCase(json: #"{"version": 1, "stages": [{"kind": "noop", "when": {"colour": "red"}}]}"#,
                path: "stages[0].when.colour", message: "unknown key 'colour'"),
        BadCase(json: #"{"version": 1, "stages": [{"kind": "noop"}, {"kind": "noop"}]}"#,
                path: "stages[1].name", message: "'noop' is already the name of stages[0]", loaderOnly: true),
        BadCase(json: #"{"version": 1, "stages": [{"kind": "noop", "options": {"secret": "${MISSING_VAR}"}}]}"#,
                path: "stages[0].options.secret", message: "environment variable MISSING_VAR is not set", loaderOnly: true),
        BadCase(json: #"{"version": 1, "stages": [{"kind": "noop", "options": {"secret": "${NEEDED:?set it to the webhook key}"}}]}"#,
                path: "stages[0].options.secret", message: "environment variable NEEDED is not set: set it to the webhook key", loaderOnly: true),
        BadCase(json: #"{"version": 1, "purposes": {"avatar": {"prefx": "a/"}}, "stages": [{"kind": "noop"}]}"#,
                path: "purposes.avatar.prefx", message: "unknown key 'prefx'", hint: "did you mean 'prefix'?"),
        BadCase(json: #"{"version": 1, "purposes": {"avatar": {"prefix": "a/"}}, "purposeRules": [{"match": "**", "purpose": "avatr"}], "stages": [{"kind": "noop"}]}"#,
                path: "purposeRules[0].purpose", message: "unknown purpose 'avatr'", hint: "did you mean 'avatar'?", loaderOnly: true),
        BadCase(json: #"{"version": 1, "limits": {"uploads": 0}, "stages": [{"kind": "noop"}]}"#,
                path: "limits.uploads", message: "0 is out of range"),
        BadCase(json: #"{"version": 1, "limits": {"idleTimeout": "500ms"}, "stages": [{"kind": "noop"}]}"#,
                path: "limits.idleTimeout", message: "must be at least 1s", loaderOnly: true),
        BadCase(json: "{\"version\": 1,\n \"stages\" []}", path: "", message: "not valid JSON: Invalid value at line 2, column 11", loaderOnly: true),
    ]

    @Test("an invalid pipeline names the JSON path, the problem and the fix", arguments: badCases)
    func invalidPipelineIsExplained(_ bad: BadCase) throws {
        guard case let .failure(error) = load(bad.json) else {
            Issue.record("expected \(bad.json) to be refused")
            return
        }
        let match = error.diagnostics.first { $0.path == bad.path && $0.message.hasPrefix(bad.message) }
        #expect(match != nil, "diagnostics were: \(error.diagnostics)")
        if let hint = bad.hint { #expect(match?.hint == hint) }
    }

    @Test func everyProblemIsReportedAtOnce() throws {
        let json = #"{"version": 1, "bogus": 1, "stages": [{"kind": "nop"}, {"kind": "noop", "options": {"maxDimension": 0, "x": 1}}]}"#
        guard case let .failure(error) = load(json) else { Issue.record("expected failure"); return }
        #expect(Set(error.diagnostics.map(\.path)) == ["bogus", "stages[0].kind", "stages[1].options.maxDimension", "stages[1].options.x"])
    }

    @Test func aValidPipelineLoadsWithDefaultsAndResolvedVariables() throws {
        let json = #"""
            {"$schema": "./s.json", "version": 1,
             "purposes": {"avatar": {"prefix": "avatars/", "image": {"fit": "cover", "width": 512, "height": 512}},
                          "thumbnail": {"prefix": "t/", "image": {"maxDimension": 1600}}},
             "purposeRules": [{"match": "videos/**", "purpose": "thumbnail"}, {"match": "**", "purpose": "avatar"}],
             "stages": [{"kind": "noop", "options": {"secret": "${TOKEN:-fallback}"}},
                        {"name": "out", "kind": "fixed.sink", "on_error": "continue"}]}
            """#
        let pipeline = try load(json, environment: ["TOKEN": "t0ps3cret"]).get()
        #expect(pipeline.steps.map(\.name) == ["noop", "out"])
        #expect(pipeline.steps[1].onError == .continue)
        #expect(pipeline.limits.uploads == 8)
        #expect(pipeline.limits.idleTimeout == 60)
        #expect(pipeline.purposes["avatar"]?.image == ImagePreset(fit: .cover, width: 512, height: 512))
        #expect(pipeline.purposes["thumbnail"]?.image == ImagePreset(fit: .inside, width: 1600, height: 1600))
        #expect(pipeline.purpose(for: "videos/a/b.mp4", override: nil) == "thumbnail")
        #expect(pipeline.purpose(for: "img/me.jpg", override: nil) == "avatar")
        #expect(pipeline.purpose(for: "videos/x.mp4", override: "avatar") == "avatar")
        #expect(pipeline.resolved["stages"]?.compactText.contains("t0ps3cret") == true)
        #expect(Redactor(environment: ["TOKEN": "t0ps3cret"]).redact(pipeline.resolved).compactText.contains("t0ps3cret") == false)
    }

    @Test("sizes are decimal (MB) and binary (MiB); pixels in MP")
    func sizesAreDecimalAndBinary() {
        #expect(Quantity.bytes("50MB") == 50_000_000)
        #expect(Quantity.bytes("50MiB") == 52_428_800)
        #expect(Quantity.bytes("1.5GB") == 1_500_000_000)
        #expect(Quantity.bytes("2GiB") == 2_147_483_648)
        #expect(Quantity.bytes("812") == 812)
        #expect(Quantity.bytes("-1MB") == nil)
        #expect(Quantity.bytes("MB") == nil)
        #expect(Quantity.pixels("250MP") == 250_000_000)
        #expect(Quantity.pixels("1.5MP") == 1_500_000)
    }
}

struct InterpolationTests {
    static let environment = ["HOST": "example.org", "EMPTY": "", "PORT": "8080"]

    static let cases: [(input: String, value: String?, error: String?)] = [
        ("plain text", "plain text", nil),
        ("https://${HOST}:${PORT}/x", "https://example.org:8080/x", nil),
        ("${MISSING:-fallback}", "fallback", nil),
        ("${EMPTY:-fallback}", "fallback", nil),
        ("${EMPTY}", "", nil),
        ("${HOST:-other}", "example.org", nil),
        ("cost: $5", "cost: $5", nil),
        ("literal $${HOST}", "literal ${HOST}", nil),
        ("${MISSING}", nil, "environment variable MISSING is not set"),
        ("${MISSING:?give the URL}", nil, "environment variable MISSING is not set: give the URL"),
        ("${EMPTY:?}", nil, "environment variable EMPTY is not set: EMPTY is required"),
        ("${HOST", nil, "unterminated '${' in \"${HOST\""),
        ("${1BAD}", nil, "'${1BAD}' is not a valid variable reference"),
        ("${}", nil, "'${}' is not a valid variable reference"),
    ]

    @Test("interpolation resolves or explains", arguments: cases)
    func resolves(_ input: String, _ value: String?, _ error: String?) {
        switch Interpolation(environment: Self.environment).resolve(input) {
        case let .success(got): #expect(got == value, "\(input)")
        case let .failure(failure): #expect(failure.message == error, "\(input)")
        }
    }
}

struct GlobTests {
    static let cases: [(String, String, Bool)] = [
        ("videos/**", "videos/01/intro.mp4", true),
        ("videos/**", "videos/intro.mp4", true),
        ("videos/**", "images/videos/x.mp4", false),
        ("**/thumbnails/**", "images/thumbnails/a.jpg", true),
        ("**/thumbnails/**", "thumbnails/a.jpg", true),
        ("**", "anything/at/all.txt", true),
        ("*.pdf", "a.pdf", true),
        ("*.pdf", "dir/a.pdf", false),
        ("**/*.pdf", "dir/sub/a.pdf", true),
        ("lesson-?.txt", "lesson-1.txt", true),
        ("lesson-?.txt", "lesson-10.txt", false),
    ]

    @Test("globs match whole path segments", arguments: cases)
    func matches(_ pattern: String, _ path: String, _ expected: Bool) {
        #expect(Glob(pattern).matches(path) == expected)
    }
}

struct RedactorTests {
    @Test func secretsAreHiddenByValueWherever_they_appear() {
        let redactor = Redactor(environment: ["CLOUDFLARE_API_TOKEN": "canary-token-123", "HOME": "/root",
                                              "NOTIFY_SECRET": "whsec_abc", "CLOUDFLARE_ACCOUNT_ID": "acct1234"])
        #expect(redactor.redact("Bearer canary-token-123 for acct1234") == "Bearer **** for ****")
        #expect(redactor.redact("key whsec_abc") == "key ****")
        #expect(redactor.redact("/root stays") == "/root stays")
    }
}
