public import Foundation

/// Where a value of the merged pipeline was set: shown by `explain --origins` and used to place
/// the loader's diagnostics in the file that wrote the faulty value.
public indirect enum ValueOrigin: Sendable, Equatable, CustomStringConvertible {
    /// A pipeline file, at the line of the key (or array item) that set the value last.
    case file(String, line: Int?)
    /// A `--set PATH=VALUE` flag.
    case setting(String)
    /// `${VAR}` references the environment filled in; `written` is where the reference stands.
    case environment([String], written: ValueOrigin)

    public var description: String {
        switch self {
        case let .file(name, line?): "\(name):\(line)"
        case let .file(name, nil): name
        case .setting: "--set"
        case let .environment(names, written): "env \(names.joined(separator: ", ")) (\(written))"
        }
    }
}

/// One pipeline file, parsed, with the line of each key for provenance.
public struct PipelineLayer: Sendable {
    /// The file's name as the user gave it.
    public var name: String
    public var document: JSONValue
    /// JSON path → line of its key or item in this file.
    public var lines: [String: Int]

    public init(name: String, document: JSONValue, lines: [String: Int] = [:]) {
        self.name = name
        self.document = document
        self.lines = lines
    }

    /// Parses a file's text; a syntax error names the file, line and column.
    public init(name: String, data: Data) throws(PipelineOverlay.Failure) {
        var lines: [String: Int] = [:]
        do {
            document = try JSONValue.parse(data, lines: &lines)
        } catch {
            throw PipelineOverlay.Failure(file: name, path: "", "not valid JSON: \(Pipeline.syntaxProblem(in: data))",
                                          hint: "check commas, quotes and brackets near the place named")
        }
        self.name = name
        self.lines = lines
    }
}

/// One `--set PATH=VALUE`: a dotted path (stages addressed by name) and a JSON value.
public struct PipelineSetting: Sendable, Equatable {
    /// The flag's text, `PATH=VALUE`.
    public var text: String
    public var path: [String]
    public var value: JSONValue

    /// Reads `PATH=VALUE`. VALUE is JSON when it parses as JSON (`2048`, `true`, `"x"`, `{…}`),
    /// else the text itself.
    public init(_ text: String) throws(PipelineOverlay.Failure) {
        guard let eq = text.firstIndex(of: "=") else {
            throw PipelineOverlay.Failure(file: "--set \(text)", path: "", "expected PATH=VALUE",
                                          hint: "e.g. --set stages.images.options.maxDimension=2048")
        }
        let path = text[..<eq].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !path.contains(where: \.isEmpty) else {
            throw PipelineOverlay.Failure(file: "--set \(text)", path: "", "'\(text[..<eq])' is not a dotted path",
                                          hint: "write keys joined by dots, e.g. limits.uploads=4")
        }
        let raw = String(text[text.index(after: eq)...])
        self.text = text
        self.path = path
        value = (try? JSONValue.parse(Data(raw.utf8))) ?? .string(raw)
    }
}

/// Merges pipeline files in order (a base and its overlays), then `--set` flags, into the one
/// document `Pipeline.load` reads, remembering where each value came from.
///
/// Objects merge key by key; other values are replaced by the later file. `stages` merge by
/// name: an overlay stage with an existing name changes that stage (its `options` merge, other
/// fields replace, `"enabled": false` turns it off); a new name is inserted at `before`/`after`
/// or appended.
public struct PipelineOverlay: Sendable {
    /// The merged document, for `Pipeline.load`.
    public var document: JSONValue
    /// JSON path in `document` → where its value was set.
    public var origins: [String: ValueOrigin]
    /// Stages that end up disabled, by name, with where `enabled: false` was written.
    public var disabled: [(name: String, origin: ValueOrigin)]

    /// A problem merging the files, naming the files involved and the JSON path.
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        /// The file (or `--set` flag) at fault.
        public var file: String
        public var path: String
        public var message: String
        public var hint: String?

        public var description: String {
            "\(file): error: \(path.isEmpty ? "" : "\(path): ")\(message)\(hint.map { " (\($0))" } ?? "")"
        }
    }

    /// Every problem found while merging, reported together.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var problems: [Problem]

        init(file: String, path: String, _ message: String, hint: String? = nil) {
            problems = [Problem(file: file, path: path, message: message, hint: hint)]
        }

        init(problems: [Problem]) { self.problems = problems }

        public var description: String { problems.map(\.description).joined(separator: "\n") }
    }

    /// Merges `layers` in order, then applies `settings`.
    public static func merge(_ layers: [PipelineLayer], settings: [PipelineSetting] = []) throws(Failure) -> PipelineOverlay {
        guard let base = layers.first else { throw Failure(file: "--pipeline", path: "", "no pipeline file given") }
        var merger = Merger()
        var root = Node(base.document, path: "", layer: base)
        merger.checkBase(root, layer: base)
        for layer in layers.dropFirst() {
            root = merger.overlay(root, with: layer)
        }
        for setting in settings {
            root = merger.apply(setting, to: root)
        }
        guard merger.problems.isEmpty else { throw Failure(problems: merger.problems) }
        var origins: [String: ValueOrigin] = [:]
        let document = root.flatten(path: "", into: &origins)
        let disabled = Merger.stages(of: root).compactMap { stage -> (name: String, origin: ValueOrigin)? in
            guard case let .leaf(.bool(false), origin)? = stage.member("enabled"), let name = stage.stageName else { return nil }
            return (name, origin)
        }
        return PipelineOverlay(document: document, origins: origins, disabled: disabled)
    }

    /// Where the value at `path` was set: its own origin, else its nearest parent's.
    public func origin(of path: String) -> ValueOrigin? {
        var path = path
        while true {
            if let origin = origins[path] { return origin }
            guard !path.isEmpty else { return nil }
            path = JSONPath.parent(path)
        }
    }

    /// One value of the resolved pipeline and where it came from, for `explain --origins`.
    public struct Entry: Sendable, Equatable {
        public var path: String
        public var value: JSONValue
        public var origin: ValueOrigin?
    }

    /// Every scalar (and every array of scalars, as one entry) of `resolved` with its origin; a
    /// string the environment filled in names the variables.
    public func entries(resolved: JSONValue, interpolation: Interpolation) -> [Entry] {
        var out: [Entry] = []
        collect(resolved, written: document, path: "", interpolation: interpolation, into: &out)
        return out
    }

    private func collect(_ value: JSONValue, written: JSONValue?, path: String, interpolation: Interpolation, into out: inout [Entry]) {
        func variables(_ raw: JSONValue?) -> [String] {
            guard case let .string(text)? = raw else { return [] }
            return interpolation.variables(suppliedTo: text)
        }
        switch value {
        case let .object(pairs) where !pairs.isEmpty:
            for (key, child) in pairs {
                collect(child, written: written?[key], path: JSONPath.child(path, key), interpolation: interpolation, into: &out)
            }
        case let .array(items) where items.contains(where: \.isContainer):
            for (i, item) in items.enumerated() {
                let raw: JSONValue? = if case let .array(rawItems)? = written, i < rawItems.count { rawItems[i] } else { nil }
                collect(item, written: raw, path: JSONPath.index(path, i), interpolation: interpolation, into: &out)
            }
        default:
            var names = variables(written)
            if case let .array(rawItems)? = written { for item in rawItems { names += variables(item) } }
            var place = origin(of: path)
            if !names.isEmpty, let written = place { place = .environment(names, written: written) }
            out.append(Entry(path: path, value: value, origin: place))
        }
    }

    /// The stage `name` was disabled, when it was: for explaining a reference to it.
    public func disabledOrigin(of name: String) -> ValueOrigin? {
        disabled.first { $0.name == name }?.origin
    }
}

extension JSONValue {
    var isContainer: Bool {
        switch self {
        case .object, .array: true
        default: false
        }
    }
}

extension JSONPath {
    /// `stages[2].options` for `stages[2].options.maxDimension`; `stages` for `stages[2]`.
    public static func parent(_ path: String) -> String {
        guard let cut = path.lastIndex(where: { $0 == "." || $0 == "[" }) else { return "" }
        return String(path[..<cut])
    }
}

/// A JSON value with the origin of every part, so merging keeps provenance.
indirect enum Node {
    case leaf(JSONValue, ValueOrigin)
    case array([Node], ValueOrigin)
    case object([(key: String, value: Node)], ValueOrigin)

    init(_ value: JSONValue, path: String, layer: PipelineLayer) {
        self.init(value, path: path) { .file(layer.name, line: layer.lines[$0]) }
    }

    init(_ value: JSONValue, path: String, origin: (String) -> ValueOrigin) {
        switch value {
        case let .array(items):
            self = .array(items.enumerated().map { Node($1, path: JSONPath.index(path, $0), origin: origin) }, origin(path))
        case let .object(pairs):
            self = .object(pairs.map { ($0.key, Node($0.value, path: JSONPath.child(path, $0.key), origin: origin)) }, origin(path))
        default:
            self = .leaf(value, origin(path))
        }
    }

    var origin: ValueOrigin {
        switch self {
        case let .leaf(_, o), let .array(_, o), let .object(_, o): o
        }
    }

    var pairs: [(key: String, value: Node)]? {
        if case let .object(pairs, _) = self { return pairs }
        return nil
    }

    func member(_ key: String) -> Node? { pairs?.first { $0.key == key }?.value }

    var string: String? {
        if case let .leaf(.string(s), _) = self { return s }
        return nil
    }

    /// A stage's name: `name`, else its `kind`.
    var stageName: String? { member("name")?.string ?? member("kind")?.string }

    func setting(_ key: String, _ value: Node?) -> Node {
        guard case .object(var pairs, let origin) = self else { return self }
        if let i = pairs.firstIndex(where: { $0.key == key }) {
            if let value { pairs[i].value = value } else { pairs.remove(at: i) }
        } else if let value {
            pairs.append((key, value))
            pairs.sort { $0.key < $1.key }
        }
        return .object(pairs, origin)
    }

    /// Objects merge key by key (the later origin wins for the object itself); anything else is replaced.
    func merged(with over: Node) -> Node {
        guard case .object = self, case let .object(overPairs, overOrigin) = over else { return over }
        var out = self
        for (key, value) in overPairs {
            out = out.setting(key, member(key).map { $0.merged(with: value) } ?? value)
        }
        if case let .object(pairs, _) = out { out = .object(pairs, overOrigin) }
        return out
    }

    func flatten(path: String, into origins: inout [String: ValueOrigin]) -> JSONValue {
        origins[path] = origin
        switch self {
        case let .leaf(value, _): return value
        case let .array(items, _):
            return .array(items.enumerated().map { $1.flatten(path: JSONPath.index(path, $0), into: &origins) })
        case let .object(pairs, _):
            return .object(pairs.map { ($0.key, $0.value.flatten(path: JSONPath.child(path, $0.key), into: &origins)) })
        }
    }
}

/// The merge's working state: the problems found so far.
private struct Merger {
    var problems: [PipelineOverlay.Problem] = []

    mutating func problem(_ file: String, _ path: String, _ message: String, hint: String? = nil) {
        problems.append(.init(file: file, path: path, message: message, hint: hint))
    }

    static func stages(of root: Node) -> [Node] {
        if case let .array(items, _)? = root.member("stages") { return items }
        return []
    }

    /// `before`/`after` place an overlay's stages; in the base they have nothing to be relative to.
    mutating func checkBase(_ root: Node, layer: PipelineLayer) {
        for (i, stage) in Self.stages(of: root).enumerated() {
            for key in ["before", "after"] where stage.member(key) != nil {
                problem(layer.name, "stages[\(i)].\(key)", "'\(key)' only places a stage added by an overlay file",
                        hint: "in the base file, put the stage where it belongs in the list")
            }
        }
    }

    mutating func overlay(_ root: Node, with layer: PipelineLayer) -> Node {
        guard case let .object(pairs) = layer.document else {
            problem(layer.name, "", "expected a JSON object at the top, found \(layer.document.typeName)",
                    hint: "an overlay is an object holding only the keys it changes, e.g. {\"limits\": {\"uploads\": 4}}")
            return root
        }
        var out = root
        for (key, value) in pairs {
            let node = Node(value, path: key, layer: layer)
            switch key {
            case "version":
                if let own = root.member("version"), case let .leaf(baseVersion, _) = own, baseVersion != value {
                    problem(layer.name, "version", "version \(value.compactText) differs from version \(baseVersion.compactText) of \(own.origin)",
                            hint: "an overlay is written for the base's format version; drop \"version\" or make it \(baseVersion.compactText)")
                }
            case "stages":
                out = out.setting("stages", mergeStages(root.member("stages"), node, layer: layer))
            default:
                out = out.setting(key, root.member(key).map { $0.merged(with: node) } ?? node)
            }
        }
        return out
    }

    private mutating func mergeStages(_ base: Node?, _ over: Node, layer: PipelineLayer) -> Node? {
        guard case let .array(overItems, _) = over else {
            problem(layer.name, "stages", "expected an array of stages, found \(over.typeName)",
                    hint: "list only the stages to change or add, e.g. [{\"name\": \"images\", \"options\": {\"maxDimension\": 2048}}]")
            return base
        }
        guard case .array(var stages, let origin)? = base else {
            // The base has no stages list; the loader reports that. The overlay's list stands alone.
            return over
        }
        for (j, item) in overItems.enumerated() {
            let path = "stages[\(j)]"
            guard item.pairs != nil else {
                problem(layer.name, path, "expected a stage object, found \(item.typeName)")
                continue
            }
            guard let name = item.stageName else {
                problem(layer.name, path, "a stage in an overlay needs a \"name\" (or a \"kind\", the default name)",
                        hint: "name the stage to change, e.g. {\"name\": \"images\", …}, or give a new stage its kind")
                continue
            }
            let before = item.member("before"), after = item.member("after")
            var anchor: (key: String, name: String)?
            if before != nil, after != nil {
                problem(layer.name, path, "stage '\(name)' gives both \"before\" and \"after\"", hint: "keep one of them")
                continue
            }
            for (key, node) in [("before", before), ("after", after)] {
                guard let node else { continue }
                guard let target = node.string else {
                    problem(layer.name, "\(path).\(key)", "expected a stage name, found \(node.typeName)")
                    continue
                }
                anchor = (key, target)
            }
            if before != nil || after != nil, anchor == nil { continue }
            let stage = item.setting("before", nil).setting("after", nil)
            var insertAt: Int?
            if let anchor {
                let names = stages.map { $0.stageName ?? "" }
                guard let at = names.firstIndex(of: anchor.name), anchor.name != name else {
                    let others = names.filter { $0 != name && !$0.isEmpty }
                    problem(layer.name, "\(path).\(anchor.key)", "no stage named '\(anchor.name)' to put '\(name)' \(anchor.key)",
                            hint: DidYouMean.hint(for: anchor.name, among: others))
                    continue
                }
                if case let .leaf(.bool(false), off)? = stages[at].member("enabled") {
                    problem(layer.name, "\(path).\(anchor.key)", "stage '\(anchor.name)' was disabled by \(off)",
                            hint: "place '\(name)' relative to a stage that runs, or enable '\(anchor.name)' again")
                    continue
                }
                insertAt = anchor.key == "before" ? at : at + 1
            }
            if let existing = stages.firstIndex(where: { $0.stageName == name }) {
                let old = stages[existing]
                if let newKind = stage.member("kind")?.string, let oldKind = old.member("kind"), oldKind.string != newKind {
                    problem(layer.name, "\(path).kind",
                            "changes the kind of stage '\(name)' from '\(oldKind.string ?? "")' (\(oldKind.origin)) to '\(newKind)'",
                            hint: "an overlay cannot change a stage's kind: disable it with \"enabled\": false and add a stage with a new name")
                    continue
                }
                var changed = old
                // `name` only matched the stage, so the base keeps the credit for it.
                for (key, value) in stage.pairs ?? [] where key != "name" {
                    changed = changed.setting(key, key == "options" ? (old.member(key).map { $0.merged(with: value) } ?? value) : value)
                }
                stages[existing] = changed
                if var insertAt {  // a known stage given a place is moved there
                    stages.remove(at: existing)
                    if existing < insertAt { insertAt -= 1 }
                    stages.insert(changed, at: insertAt)
                }
            } else if let insertAt {
                stages.insert(stage, at: insertAt)
            } else {
                stages.append(stage)
            }
        }
        return .array(stages, origin)
    }

    /// Sets one value by a dotted path; `stages.NAME` picks a stage by name.
    mutating func apply(_ setting: PipelineSetting, to root: Node) -> Node {
        let flag = "--set \(setting.text)"
        if let key = setting.path.last, Redactor.isSecretName(key), !(setting.value.stringValue ?? "").contains("${") {
            // The value itself is not repeated in the message.
            problem("--set \(setting.path.joined(separator: "."))=…", setting.path.joined(separator: "."), "a secret on the command line is visible to every user of this machine (ps)",
                    hint: "put it in the environment and refer to it: --set '\(setting.path.joined(separator: "."))=${\(key.uppercased())}'")
            return root
        }
        let value = Node(setting.value, path: "") { _ in .setting(setting.text) }
        do throws(PipelineOverlay.Failure) {
            return try Self.set(value, at: setting.path[...], walked: [], in: root, flag: flag)
        } catch {
            problems += error.problems
            return root
        }
    }

    private static func set(_ value: Node, at path: ArraySlice<String>, walked: [String], in node: Node,
                            flag: String) throws(PipelineOverlay.Failure) -> Node {
        guard let key = path.first else { return value }
        let here = walked.joined(separator: ".")
        guard node.pairs != nil else {
            throw PipelineOverlay.Failure(file: flag, path: here, "'\(here)' is \(node.typeName), not an object, so '\(key)' cannot be set inside it",
                        hint: "set '\(here)' itself, e.g. --set '\(here)=…'")
        }
        if walked.isEmpty, key == "stages" {
            guard case .array(var stages, let origin)? = node.member("stages") else {
                throw PipelineOverlay.Failure(file: flag, path: "stages", "the pipeline has no stages list to address by name")
            }
            let rest = path.dropFirst()
            let names = stages.map { $0.stageName ?? "" }
            // A stage's name may itself hold dots (a kind such as image.transform), so the longest match wins.
            for count in stride(from: rest.count, through: 1, by: -1) {
                let name = rest.prefix(count).joined(separator: ".")
                guard let i = names.firstIndex(of: name) else { continue }
                guard count < rest.count else {
                    throw PipelineOverlay.Failure(file: flag, path: "stages.\(name)", "names a whole stage",
                                hint: "set one of its fields, e.g. --set stages.\(name).options.KEY=VALUE or stages.\(name).enabled=false")
                }
                stages[i] = try set(value, at: rest.dropFirst(count), walked: ["stages", name], in: stages[i], flag: flag)
                return node.setting("stages", .array(stages, origin))
            }
            let given = rest.first ?? ""
            throw PipelineOverlay.Failure(file: flag, path: "stages.\(given)", given.isEmpty ? "names no stage" : "no stage named '\(given)'",
                        hint: DidYouMean.hint(for: given, among: names.filter { !$0.isEmpty }))
        }
        let child = node.member(key)
        if case .array? = child, path.count > 1 {
            let inner = (walked + [key]).joined(separator: ".")
            throw PipelineOverlay.Failure(file: flag, path: inner, "'\(inner)' is an array; --set cannot reach inside it",
                        hint: "give the whole array as JSON, e.g. --set '\(inner)=[…]'")
        }
        let start = child ?? .object([], value.origin)
        return node.setting(key, try set(value, at: path.dropFirst(), walked: walked + [key], in: start, flag: flag))
    }
}

extension Node {
    var typeName: String {
        switch self {
        case let .leaf(value, _): value.typeName
        case .array: "an array"
        case .object: "an object"
        }
    }
}
