public import MediaPipeline

/// Chooses the sink for each file: the first rule whose `when` holds gives candidates in order,
/// and the first candidate that is configured and whose limits the prepared file fits wins.
/// Why each other candidate was passed over is noted on the asset.
public struct RouteStage: Stage {
    struct Rule: Sendable {
        var when: Condition?
        var to: [String]
    }

    var rules: [Rule]

    public static let factory = StageFactory(kind: "route", summary: "choose a sink per file from ordered rules and the sinks' limits") { options, context in
        let raw = options.raw("rules", type: "[{when?, to: [sink step names]}]", help: "ordered rules; the first whose when holds applies",
                              schema: ["type": "array", "minItems": 1, "items": ruleSchema(context)])
        guard case let .array(items)? = raw, !items.isEmpty else {
            if raw != nil || context.sinkSteps.isEmpty == false {
                options.error("rules", "expected a non-empty array of rules", hint: "e.g. [{\"when\": {\"kind\": \"image\"}, \"to\": [\"cloudflare-images\", \"r2\"]}]")
            }
            return nil
        }
        var rules: [Rule] = []
        for (i, item) in items.enumerated() {
            var rule = OptionsReader(item, path: JSONPath.index(JSONPath.child(options.path, "rules"), i))
            var diagnostics = Diagnostics()
            rules.append(readRule(&rule, context: context, diagnostics: &diagnostics))
            options.absorb(rule)
            options.append(diagnostics)
        }
        return .stage(RouteStage(rules: rules))
    }

    /// The schema of one rule, recorded by the reader that decodes one.
    static func ruleSchema(_ context: FactoryContext) -> JSONValue {
        var reader = OptionsReader(.object([]), path: "rules[*]")
        var ignored = Diagnostics()
        _ = readRule(&reader, context: context, diagnostics: &ignored)
        return reader.schema
    }

    static func readRule(_ rule: inout OptionsReader, context: FactoryContext, diagnostics: inout Diagnostics) -> Rule {
        let path = rule.path
        let when = Condition.read(rule.raw("when", type: "object", help: "conditions", schema: Condition.schema),
                                  path: JSONPath.child(path, "when"), purposes: Array(context.purposes.keys), diagnostics: &diagnostics)
        var targets: [String] = []
        switch rule.raw("to", type: "[names]", help: "sink step names, best first",
                        schema: ["type": "array", "minItems": 1, "items": ["type": "string"]]) {
        case let .array(names)? where !names.isEmpty:
            for (j, name) in names.enumerated() {
                guard let name = name.stringValue, context.sinkSteps.contains(name) else {
                    let given = name.stringValue ?? name.compactText
                    diagnostics.error(JSONPath.index(JSONPath.child(path, "to"), j), "'\(given)' is not the name of a sink stage in this pipeline",
                                      hint: DidYouMean.hint(for: given, among: context.sinkSteps))
                    continue
                }
                targets.append(name)
            }
        default:
            rule.error("to", "expected a non-empty array of sink stage names", hint: "e.g. [\"r2\"]")
        }
        rule.require("to")
        return Rule(when: when, to: targets)
    }

    /// Rules and sink limits look at facts only, so direct uploads are routed the same way.
    public var decidesFromFacts: Bool { true }

    public func run(_ asset: Asset, context: StageContext) async throws -> StageOutcome {
        guard let rule = try rules.first(where: { try $0.when?.matches(asset) ?? true }) else {
            return .reject(Reason(.noSink, "no route rule matches this file"))
        }
        let file = try asset.upload()
        var passedOver: [String] = []
        for name in rule.to {
            guard let sink = context.sinks[name] else { continue }
            if !sink.configuration.isConfigured {
                passedOver.append("\(name): not configured (set \(sink.configuration.missing.joined(separator: ", ")))")
            } else if let refusal = sink.refusal(for: file) {
                passedOver.append("\(name): \(refusal)")
            } else {
                passedOver.forEach(asset.note)
                asset.sink = name
                return .proceed
            }
        }
        return .reject(Reason(.noSink, "no sink can take this file: " + passedOver.joined(separator: "; ")))
    }
}
