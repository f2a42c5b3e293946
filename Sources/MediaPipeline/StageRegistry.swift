import Synchronization

/// What a stage factory builds: an ordinary stage, a sink the router can choose, or a notifier
/// that speaks up once a file has ended.
public enum StepBody: Sendable {
    case stage(any Stage)
    case sink(any Sink)
    case notifier(any Notifier)
}

/// What a factory may know while building its stage.
public struct FactoryContext: Sendable {
    /// The process environment, for sinks' credentials. Factories keep what they need.
    public var environment: [String: String]
    /// `--assume-configured`: sinks plan as if every variable they need were set.
    public var assumeConfigured: Bool
    /// The names of the pipeline's sink steps, so a router can check its targets.
    public var sinkSteps: [String]
    /// The pipeline's purposes.
    public var purposes: [String: Purpose]
    /// The pipeline's limits (API budget, retries).
    public var limits: PipelineLimits
    /// Objects the stages of one pipeline share, such as one API client (and its rate budget) for two sinks.
    public var shared: SharedObjects
    /// The `name` of the step being built (its `kind` when no name is given), for messages the stage writes.
    public var stepName: String

    public init(environment: [String: String], assumeConfigured: Bool, sinkSteps: [String] = [], purposes: [String: Purpose] = [:],
                limits: PipelineLimits = PipelineLimits(), shared: SharedObjects = SharedObjects(), stepName: String = "") {
        self.stepName = stepName
        self.environment = environment
        self.assumeConfigured = assumeConfigured
        self.sinkSteps = sinkSteps
        self.purposes = purposes
        self.limits = limits
        self.shared = shared
    }
}

/// One object per key for the whole pipeline, made on first use.
public final class SharedObjects: Sendable {
    private let objects = Mutex<[String: any Sendable]>([:])

    public init() {}

    public func object<T: Sendable>(_ key: String, make: () -> T) -> T {
        objects.withLock { objects in
            if let existing = objects[key] as? T { return existing }
            let made = make()
            objects[key] = made
            return made
        }
    }
}

/// Makes one kind of stage from its JSON options.
public struct StageFactory: Sendable {
    /// The `kind` written in pipeline.json, e.g. `image.transform`.
    public let kind: String
    /// One line for `media-pipeline stages`.
    public let summary: String
    /// True when the stage uploads (the router may send files to it).
    public let isSink: Bool
    /// Decodes the options (recording problems in the reader) and builds the stage.
    public let build: @Sendable (inout OptionsReader, FactoryContext) -> StepBody?

    public init(kind: String, summary: String, isSink: Bool = false,
                build: @escaping @Sendable (inout OptionsReader, FactoryContext) -> StepBody?) {
        self.kind = kind
        self.summary = summary
        self.isSink = isSink
        self.build = build
    }

    /// The options this kind reads, found by building it once with none given.
    public func options(context: FactoryContext) -> [OptionsReader.Option] {
        var reader = OptionsReader(nil, path: "options")
        _ = build(&reader, context)
        return reader.options
    }

    /// The JSON Schema of this kind's `options` object, from the same build with none given.
    public func optionsSchema(context: FactoryContext) -> JSONValue {
        var reader = OptionsReader(nil, path: "options")
        _ = build(&reader, context)
        return reader.schema
    }
}

/// Maps each stage `kind` to its factory. The core knows stages only through this.
public struct StageRegistry: Sendable {
    public private(set) var factories: [String: StageFactory] = [:]

    public init(_ factories: [StageFactory] = []) {
        for factory in factories { register(factory) }
    }

    public mutating func register(_ factory: StageFactory) {
        precondition(factories[factory.kind] == nil, "stage kind \(factory.kind) registered twice")
        factories[factory.kind] = factory
    }

    public subscript(kind: String) -> StageFactory? { factories[kind] }

    public var kinds: [String] { factories.keys.sorted() }
}
