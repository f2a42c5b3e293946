public import Foundation

/// How a purpose wants images shaped, e.g. a 512 px square crop for avatars.
public struct ImagePreset: Sendable, Equatable {
    /// `inside` keeps the whole image within the box; `cover` fills the box and crops.
    public enum Fit: String, Sendable, CaseIterable { case inside, cover }

    public var fit: Fit
    public var width: Int
    public var height: Int
    /// `jpeg`, `png`, `webp`, or nil to leave it to the transform stage.
    public var format: String?
    public var quality: Int?

    public init(fit: Fit, width: Int, height: Int, format: String? = nil, quality: Int? = nil) {
        self.fit = fit
        self.width = width
        self.height = height
        self.format = format
        self.quality = quality
    }
}

/// What an upload is for: picks the R2 key prefix and the image preset.
public struct Purpose: Sendable, Equatable {
    public var name: String
    public var prefix: String
    public var image: ImagePreset?

    public init(name: String, prefix: String, image: ImagePreset? = nil) {
        self.name = name
        self.prefix = prefix
        self.image = image
    }
}

/// A path rule: files whose path inside the input matches `match` get `purpose`.
public struct PurposeRule: Sendable, Equatable {
    public var match: Glob
    public var purpose: String
}

/// The `limits` block.
public struct PipelineLimits: Sendable, Equatable {
    public var maxEntriesPerArchive: Int = 50_000
    public var apiRequestsPer5Min: Int = 600
    public var uploads: Int = 8
    /// CPU workers; nil means one per core.
    public var concurrency: Int?
    /// Estimated bytes that concurrent image decodes may hold at once.
    public var memory: Int64 = 160_000_000
    /// How uploads retry transient failures.
    public var retry = RetryLimits()
    /// With a shared journal: how long a worker's claim on a file lasts without renewal, so how
    /// soon the files of a worker that died are taken over (seconds).
    public var lease: Double = 60
    /// Seconds one image may spend in a decoder worker (header or transform) before it is killed.
    public var decodeTimeout: Double = 120
    /// A request that moves no byte for this long is given up as a timeout (and retried), in seconds.
    public var idleTimeout: Double = 60

    public init() {}
}

/// `limits.retry`: attempts and backoff for transient upload failures (full jitter).
public struct RetryLimits: Sendable, Equatable {
    /// Tries per request, the first included.
    public var attempts: Int = 6
    /// The first backoff ceiling; doubled each try.
    public var baseDelay: Double = 1
    /// The largest backoff ceiling.
    public var maxDelay: Double = 30
    /// The longest `Retry-After` honoured; past it the file fails as `rate_limited` (exit 4).
    public var maxWait: Double = 360

    public init() {}
}

/// What a stage does when it throws or rejects a file.
public enum OnError: String, Sendable, CaseIterable {
    /// The file ends `rejected` (the default).
    case reject
    /// The file ends `skipped`.
    case skip
    /// The next stage runs.
    case `continue`
}

/// One entry of `stages`, built.
public struct PipelineStep: Sendable {
    public var name: String
    public var kind: String
    public var when: Condition?
    public var onError: OnError
    public var body: StepBody
    /// The step's `options` as written (env resolved), for the journal's rendition fingerprint.
    public var options: JSONValue

    public init(name: String, kind: String, when: Condition?, onError: OnError, body: StepBody, options: JSONValue = .null) {
        self.name = name
        self.kind = kind
        self.when = when
        self.onError = onError
        self.body = body
        self.options = options
    }
}

/// A loaded, checked pipeline.json.
public struct Pipeline: Sendable {
    public static let version = 1

    public var limits: PipelineLimits
    public var purposes: [String: Purpose]
    public var purposeRules: [PurposeRule]
    public var steps: [PipelineStep]
    /// The document with `${VAR}` resolved, for `explain` (redact before printing).
    public var resolved: JSONValue
    /// Warnings found while loading.
    public var warnings: [Diagnostic]

    /// The sinks by step name.
    public var sinks: [String: any Sink] {
        var out: [String: any Sink] = [:]
        for step in steps { if case let .sink(sink) = step.body { out[step.name] = sink } }
        return out
    }

    /// The purpose for a path: `override` (from `--purpose`) first, else the first matching rule.
    public func purpose(for relativePath: String, override: String?) -> String? {
        override ?? purposeRule(for: relativePath).map { purposeRules[$0].purpose }
    }

    /// The index of the first of `purposeRules` matching the path.
    public func purposeRule(for relativePath: String) -> Int? {
        purposeRules.firstIndex { $0.match.matches(relativePath) }
    }

    /// Everything wrong with a pipeline file, reported together.
    public struct LoadError: Error, Sendable {
        public var diagnostics: [Diagnostic]
    }

    private static let topKeys = ["$schema", "version", "limits", "purposes", "purposeRules", "stages"]

    /// Reads pipeline.json text strictly: version first, unknown keys refused with a did-you-mean,
    /// `${VAR}` resolved once, each stage's options decoded by its own factory.
    public static func load(_ data: Data, registry: StageRegistry, environment: [String: String],
                            assumeConfigured: Bool = false) throws(LoadError) -> Pipeline {
        let document: JSONValue
        do {
            document = try JSONValue.parse(data)
        } catch {
            throw LoadError(diagnostics: [Diagnostic(.error, path: "", "not valid JSON: \(syntaxProblem(in: data))",
                                                     hint: "check commas, quotes and brackets near the place named")])
        }
        return try load(document: document, registry: registry, environment: environment, assumeConfigured: assumeConfigured)
    }

    /// Reads a parsed document (one file, or the merge of a base and its overlays) the same way.
    public static func load(document: JSONValue, registry: StageRegistry, environment: [String: String],
                            assumeConfigured: Bool = false) throws(LoadError) -> Pipeline {
        var diagnostics = Diagnostics()
        guard case .object = document else {
            throw LoadError(diagnostics: [Diagnostic(.error, path: "", "expected a JSON object at the top, found \(document.typeName)")])
        }
        // The version decides how everything else is read, so it is checked alone and first.
        switch document["version"] {
        case nil:
            throw LoadError(diagnostics: [Diagnostic(.error, path: "version", "missing", hint: "add \"version\": 1")])
        case .number(Double(version))?:
            break
        case let other?:
            throw LoadError(diagnostics: [Diagnostic(.error, path: "version", "unsupported version \(other.compactText)",
                                                     hint: "this media-pipeline reads version \(version)")])
        }

        let resolved = resolveEnabled(document, interpolation: Interpolation(environment: environment), diagnostics: &diagnostics)
        var top = OptionsReader(resolved, path: "")
        let (limits, purposes, rules, steps) = readDocument(&top, registry: registry, environment: environment,
                                                            assumeConfigured: assumeConfigured, describing: false,
                                                            diagnostics: &diagnostics)
        diagnostics.append(contentsOf: top.finished().diagnostics)

        if diagnostics.hasErrors { throw LoadError(diagnostics: diagnostics.items) }
        return Pipeline(limits: limits, purposes: purposes, purposeRules: rules, steps: steps, resolved: resolved,
                        warnings: diagnostics.items)
    }

    /// `${VAR}` resolved everywhere but in disabled stages, which are left as written: a stage
    /// turned off for want of its variables must not fail the load for want of them.
    private static func resolveEnabled(_ document: JSONValue, interpolation: Interpolation, diagnostics: inout Diagnostics) -> JSONValue {
        guard case let .array(stages)? = document["stages"] else {
            return interpolation.resolve(document, path: "", diagnostics: &diagnostics)
        }
        let disabled = stages.indices.filter { stages[$0]["enabled"] == .bool(false) }
        var kept = stages
        for i in disabled { kept[i] = .object([]) }
        let resolved = interpolation.resolve(document.adding("stages", .array(kept)), path: "", diagnostics: &diagnostics)
        guard !disabled.isEmpty, case var .array(items)? = resolved["stages"] else { return resolved }
        for i in disabled { items[i] = stages[i] }
        return resolved.adding("stages", .array(items))
    }

    /// Where the JSON text goes wrong, as `line L, column C`. JSONSerialization names the character.
    static func syntaxProblem(in data: Data) -> String {
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            return "the text is not a JSON document"
        } catch {
            let text = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
            guard let match = text.firstMatch(of: /character (\d+)/), let offset = Int(match.1) else { return text }
            let before = data.prefix(offset)
            let line = before.filter { $0 == 0x0A }.count + 1
            let column = before.count - (before.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0) + 1
            let what = text.replacingOccurrences(of: #" around character \d+\.?"#, with: "", options: .regularExpression)
            return "\(what) at line \(line), column \(column)"
        }
    }

    /// Reads the top-level object, each part through its own reader, every key recorded for the
    /// schema. `describing` reads empty parts too and gives `stages` its full schema (each kind's
    /// options, found by building every factory once), which a load does not need.
    static func readDocument(_ top: inout OptionsReader, registry: StageRegistry, environment: [String: String],
                             assumeConfigured: Bool, describing: Bool, diagnostics: inout Diagnostics)
        -> (PipelineLimits, [String: Purpose], [PurposeRule], [PipelineStep]) {
        _ = top.raw("$schema", type: "string", help: "path or URL of the JSON Schema, for editors", schema: ["type": "string"])
        _ = top.raw("version", type: "1", help: "format version", schema: ["const": .int(version)])
        top.require("version")
        var limitsReader = top.object("limits", help: "batch limits")
        let limits = readLimits(&limitsReader)
        top.absorb(limitsReader)
        let purposes = readPurposes(top.raw("purposes", type: "object", help: "upload purposes, by name",
                                            schema: ["type": "object", "additionalProperties": purposeSchema]),
                                    diagnostics: &diagnostics)
        let rules = readRules(top.raw("purposeRules", type: "array", help: "path rules choosing a purpose; the first match applies",
                                      schema: ["type": "array", "items": ruleSchema]),
                              purposes: purposes, diagnostics: &diagnostics)
        let context = FactoryContext(environment: environment, assumeConfigured: assumeConfigured, purposes: purposes, limits: limits)
        let steps = readSteps(top.raw("stages", type: "array", help: "the ordered stages",
                                      schema: ["type": "array", "minItems": 1,
                                               "items": describing ? stepSchema(registry: registry, context: context) : [:]]),
                              registry: registry, context: context, diagnostics: &diagnostics)
        top.require("stages")
        return (limits, purposes, rules, steps)
    }

    private static func readLimits(_ reader: inout OptionsReader) -> PipelineLimits {
        var limits = PipelineLimits()
        limits.maxEntriesPerArchive = reader.int("maxEntriesPerArchive", default: limits.maxEntriesPerArchive, range: 1...10_000_000,
                                                 help: "entries an archive may hold")
        limits.apiRequestsPer5Min = reader.int("apiRequestsPer5Min", default: limits.apiRequestsPer5Min, range: 1...1_000_000,
                                               help: "Cloudflare API budget per 5 minutes")
        limits.uploads = reader.int("uploads", default: limits.uploads, range: 1...256, help: "uploads in flight")
        let concurrency = reader.int("concurrency", default: 0, range: 0...1024, help: "CPU workers (0 = one per core)")
        limits.concurrency = concurrency == 0 ? nil : concurrency
        limits.memory = reader.bytes("memory", default: limits.memory, help: "estimated memory concurrent image decodes may hold at once")
        if limits.memory < 16_000_000 { reader.error("memory", "must be at least 16MB") }
        var retry = reader.object("retry", help: "retries of transient upload failures")
        limits.retry.attempts = retry.int("attempts", default: limits.retry.attempts, range: 1...100, help: "tries per request, the first included")
        limits.retry.baseDelay = retry.seconds("baseDelay", default: limits.retry.baseDelay, help: "first backoff ceiling, doubled per try")
        limits.retry.maxDelay = retry.seconds("maxDelay", default: limits.retry.maxDelay, help: "largest backoff ceiling")
        limits.retry.maxWait = retry.seconds("maxWait", default: limits.retry.maxWait, help: "longest Retry-After honoured")
        reader.absorb(retry)
        limits.lease = reader.seconds("lease", default: limits.lease, help: "how long a worker's claim lasts without renewal (shared journal)")
        if limits.lease < 3 { reader.error("lease", "must be at least 3s") }
        limits.decodeTimeout = reader.seconds("decodeTimeout", default: limits.decodeTimeout,
                                              help: "how long one image may take in a decoder worker before it is killed (timeout)")
        if limits.decodeTimeout < 1 { reader.error("decodeTimeout", "must be at least 1s") }
        limits.idleTimeout = reader.seconds("idleTimeout", default: limits.idleTimeout,
                                            help: "how long a request may move no byte before it is given up as a timeout and retried")
        if limits.idleTimeout < 1 { reader.error("idleTimeout", "must be at least 1s") }
        return limits
    }

    private static func readPurposes(_ value: JSONValue?, diagnostics: inout Diagnostics) -> [String: Purpose] {
        guard let value else { return [:] }
        guard case let .object(pairs) = value else {
            diagnostics.error("purposes", "expected an object of purposes, found \(value.typeName)")
            return [:]
        }
        var purposes: [String: Purpose] = [:]
        for (name, body) in pairs {
            var reader = OptionsReader(body, path: JSONPath.child("purposes", name))
            purposes[name] = readPurpose(name, body, &reader)
            diagnostics.append(contentsOf: reader.finished().diagnostics)
        }
        return purposes
    }

    /// The schema of one purpose, recorded by the reader that decodes one.
    static var purposeSchema: JSONValue {
        var reader = OptionsReader(.object([]), path: "purposes.*")
        _ = readPurpose("*", .object([]), &reader)
        return reader.schema
    }

    private static func readPurpose(_ name: String, _ body: JSONValue, _ reader: inout OptionsReader) -> Purpose {
        let prefix = reader.string("prefix", default: "", help: "R2 key prefix, e.g. avatars/")
        if prefix.hasPrefix("/") { reader.error("prefix", "must not start with '/'", hint: "write e.g. \"avatars/\"") }
        var image = reader.object("image", help: "image preset")
        // Read even when absent, so the preset's keys are recorded for the schema.
        let preset = readPreset(&image)
        if body["image"] == nil { reader.describe(image) } else { reader.absorb(image) }
        return Purpose(name: name, prefix: prefix, image: body["image"] == nil ? nil : preset)
    }

    private static func readPreset(_ reader: inout OptionsReader) -> ImagePreset? {
        let fit = reader.choice("fit", ImagePreset.Fit.allCases.map(\.rawValue), default: "inside", help: "inside or cover")
        let longest = reader.int("maxDimension", default: 0, range: 0...100_000, help: "longest side in pixels")
        let width = reader.int("width", default: longest, range: 0...100_000, help: "box width in pixels")
        let height = reader.int("height", default: longest, range: 0...100_000, help: "box height in pixels")
        let format = reader.choice("format", ["keep", "jpeg", "png", "webp"], default: "keep", help: "output format")
        let quality = reader.int("quality", default: 0, range: 0...100, help: "encoder quality (0 = the stage's)")
        guard width > 0, height > 0 else {
            reader.error("", "an image preset needs width and height, or maxDimension", hint: "e.g. {\"maxDimension\": 1600}")
            return nil
        }
        return ImagePreset(fit: ImagePreset.Fit(rawValue: fit) ?? .inside, width: width, height: height,
                           format: format == "keep" ? nil : format, quality: quality == 0 ? nil : quality)
    }

    private static func readRules(_ value: JSONValue?, purposes: [String: Purpose], diagnostics: inout Diagnostics) -> [PurposeRule] {
        guard let value else { return [] }
        guard case let .array(items) = value else {
            diagnostics.error("purposeRules", "expected an array of rules, found \(value.typeName)")
            return []
        }
        var rules: [PurposeRule] = []
        for (i, item) in items.enumerated() {
            var reader = OptionsReader(item, path: JSONPath.index("purposeRules", i))
            rules.append(readRule(&reader, purposes: purposes))
            diagnostics.append(contentsOf: reader.finished().diagnostics)
        }
        return rules
    }

    /// The schema of one purpose rule, recorded by the reader that decodes one.
    static var ruleSchema: JSONValue {
        var reader = OptionsReader(.object([]), path: "purposeRules[*]")
        _ = readRule(&reader, purposes: [:])
        return reader.schema
    }

    private static func readRule(_ reader: inout OptionsReader, purposes: [String: Purpose]) -> PurposeRule {
        let match = reader.string("match", default: "", help: "glob over the path inside the input, e.g. videos/**")
        let purpose = reader.string("purpose", default: "", help: "the purpose name")
        reader.require("match")
        reader.require("purpose")
        if match.isEmpty { reader.error("match", "missing", hint: "e.g. \"videos/**\"") }
        if purposes[purpose] == nil {
            reader.error("purpose", purpose.isEmpty ? "missing" : "unknown purpose '\(purpose)'",
                         hint: DidYouMean.hint(for: purpose, among: Array(purposes.keys)))
        }
        return PurposeRule(match: Glob(match), purpose: purpose)
    }

    private static func readSteps(_ value: JSONValue?, registry: StageRegistry, context: FactoryContext,
                                  diagnostics: inout Diagnostics) -> [PipelineStep] {
        guard let value else {
            diagnostics.error("stages", "missing", hint: "list the stages, e.g. [{\"kind\": \"validate\"}, …]")
            return []
        }
        guard case let .array(items) = value, !items.isEmpty else {
            diagnostics.error("stages", "expected a non-empty array of stages, found \(value.typeName)")
            return []
        }
        // Names and kinds first, so a router can check the sinks it names wherever they stand.
        var context = context
        let kinds = items.map { $0["kind"]?.stringValue ?? "" }
        context.sinkSteps = items.indices.compactMap { i in
            registry[kinds[i]]?.isSink == true && items[i]["enabled"] != .bool(false) ? (items[i]["name"]?.stringValue ?? kinds[i]) : nil
        }
        var steps: [PipelineStep] = []
        var seen: [String: Int] = [:]
        for (i, item) in items.enumerated() {
            var reader = OptionsReader(item, path: JSONPath.index("stages", i))
            if let step = readStep(&reader, index: i, registry: registry, context: context, seen: &seen, diagnostics: &diagnostics) {
                steps.append(step)
            }
            // A stage turned off is not read past its name and kind.
            let off: Set<String> = item["enabled"] == .bool(false) ? ["on_error", "when", "options"] : []
            diagnostics.append(contentsOf: reader.finished(allowing: off).diagnostics)
        }
        return steps
    }

    private static func readStep(_ reader: inout OptionsReader, index i: Int, registry: StageRegistry, context: FactoryContext,
                                 seen: inout [String: Int], diagnostics: inout Diagnostics) -> PipelineStep? {
        let path = reader.path
        var kind = ""
        switch reader.raw("kind", type: "string", help: "the stage kind",
                          schema: ["type": "string", "enum": .array(registry.kinds.map(JSONValue.string))]) {
        case nil: reader.error("kind", "missing", hint: "one of: " + registry.kinds.joined(separator: ", "))
        case let .string(text)?: kind = text
        case let other?: reader.error("kind", "expected a string, found \(other.typeName)", hint: "one of: " + registry.kinds.joined(separator: ", "))
        }
        reader.require("kind")
        let name = reader.string("name", default: kind, help: "a unique name for this step (default: its kind)")
        if let first = seen[name] {
            reader.error("name", "'\(name)' is already the name of stages[\(first)]", hint: "give each stage a unique name")
        }
        seen[name] = seen[name] ?? i
        // Off: only its name counts (it stays unique); nothing else of it is read or built.
        guard reader.bool("enabled", default: true, help: "false leaves the stage out of the pipeline") else { return nil }
        let onError = reader.choice("on_error", OnError.allCases.map(\.rawValue), default: "reject",
                                    help: "what a failure does to the file")
        let when = Condition.read(reader.raw("when", type: "object", help: "conditions; the stage runs only on files that meet them all",
                                             schema: Condition.schema),
                                  path: JSONPath.child(path, "when"), purposes: Array(context.purposes.keys), diagnostics: &diagnostics)
        let rawOptions = reader.raw("options", type: "object", help: "the stage's own options", schema: ["type": "object"])
        guard !kind.isEmpty else { return nil }
        guard let factory = registry[kind] else {
            reader.error("kind", "unknown stage kind '\(kind)'", hint: DidYouMean.hint(for: kind, among: registry.kinds))
            return nil
        }
        var options = OptionsReader(rawOptions, path: JSONPath.child(path, "options"))
        var stepContext = context
        stepContext.stepName = name
        let built = factory.build(&options, stepContext)
        diagnostics.append(contentsOf: options.finished().diagnostics)
        guard let built else { return nil }
        return PipelineStep(name: name, kind: kind, when: when, onError: OnError(rawValue: onError) ?? .reject, body: built,
                            options: rawOptions ?? .null)
    }

    /// The schema of one stage: the keys every stage has, and per kind (`if kind is …`) the
    /// options its factory reads, found by building it once with none given.
    static func stepSchema(registry: StageRegistry, context: FactoryContext) -> JSONValue {
        var reader = OptionsReader(.object([]), path: "stages[*]")
        var seen: [String: Int] = [:]
        var ignored = Diagnostics()
        _ = readStep(&reader, index: 0, registry: registry, context: context, seen: &seen, diagnostics: &ignored)
        var schema = reader.schema
        // Keys the overlay loader reads; kept here until that loader records them itself.
        let overlayKeys: [(String, JSONValue)] = [
            ("enabled", ["type": "boolean", "default": true, "description": "false leaves the stage out of the pipeline"]),
            ("before", ["type": "string", "description": "in an overlay: insert this stage before the named one"]),
            ("after", ["type": "string", "description": "in an overlay: insert this stage after the named one"]),
        ]
        if case var .object(properties)? = schema["properties"] {
            for (key, node) in overlayKeys where !properties.contains(where: { $0.key == key }) { properties.append((key, node)) }
            schema = schema.adding("properties", .object(properties))
        }
        let branches: [JSONValue] = registry.kinds.compactMap { kind in
            guard let factory = registry[kind] else { return nil }
            let options = factory.optionsSchema(context: context).adding("description", .string(factory.summary))
            return ["if": ["properties": ["kind": ["const": .string(kind)]], "required": ["kind"]],
                    "then": ["properties": ["options": options]]]
        }
        return schema.adding("allOf", .array(branches))
    }
}

extension Pipeline {
    /// The JSON Schema (draft 2020-12) of pipeline.json for `registry`'s stage kinds, assembled
    /// from the keys the loader's readers record.
    public static func schema(registry: StageRegistry) -> JSONValue {
        var top = OptionsReader(.object([]), path: "")
        var ignored = Diagnostics()
        _ = readDocument(&top, registry: registry, environment: [:], assumeConfigured: true, describing: true, diagnostics: &ignored)
        var schema: JSONValue = [
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "media-pipeline pipeline.json",
            "description": .string("The stages each file goes through, the upload purposes and the batch limits (version \(version))."),
        ]
        if case let .object(pairs) = top.schema { for (key, value) in pairs { schema = schema.adding(key, value) } }
        return schema
    }
}
