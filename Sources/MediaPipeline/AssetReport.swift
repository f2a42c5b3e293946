/// How a file ended. Part of the CLI contract.
public enum AssetStatus: String, Sendable, CaseIterable {
    case planned, uploaded, unchanged, skipped, rejected, failed, pending
}

/// The manifest row of one source file, also sent as the `asset` event.
public struct AssetReport: Sendable, Equatable {
    public var source: String
    public var sha256: String?
    public var bytes: Int64?
    public var mime: String?
    public var kind: AssetKind?
    public var purpose: String?
    public var status: AssetStatus
    public var sink: String?
    /// The upload's result, or in dry-run the plan.
    public var result: JSONValue?
    public var reason: Reason?
    /// Notes left by stages (e.g. why routing passed a sink over).
    public var notes: [String]
    /// Values stages set on the file (e.g. an `exec` stage's page count); in the row only when some were set.
    public var variables: [String: String] = [:]
    public var milliseconds: Double
    /// The sink asked for the file to be tried again later in the run (not part of the row).
    public var deferrable = false
    /// The journal's rendition key the file was uploaded as (not part of the row).
    public var rendition: String?
    /// The path inside the input (folder or archive), for conditions on finished files (not part of the row).
    public var relativePath: String?

    public init(source: String, sha256: String? = nil, bytes: Int64? = nil, mime: String? = nil, kind: AssetKind? = nil,
                purpose: String? = nil, status: AssetStatus, sink: String? = nil, result: JSONValue? = nil,
                reason: Reason? = nil, notes: [String] = [], milliseconds: Double = 0) {
        self.source = source
        self.sha256 = sha256
        self.bytes = bytes
        self.mime = mime
        self.kind = kind
        self.purpose = purpose
        self.status = status
        self.sink = sink
        self.result = result
        self.reason = reason
        self.notes = notes
        self.milliseconds = milliseconds
    }

    /// A row read back (from the journal), the inverse of `json`.
    public init(row: JSONValue) {
        func text(_ key: String) -> String? { if case let .string(s)? = row[key] { s } else { nil } }
        func number(_ key: String) -> Double? { if case let .number(n)? = row[key] { n } else { nil } }
        self.init(source: text("source") ?? "", sha256: text("sha256"), bytes: number("bytes").map { Int64($0) },
                  mime: text("mime"), kind: text("kind").flatMap(AssetKind.init(rawValue:)), purpose: text("purpose"),
                  status: text("status").flatMap(AssetStatus.init(rawValue:)) ?? .pending, sink: text("sink"),
                  result: row["result"].flatMap { $0 == .null ? nil : $0 },
                  reason: text("reason").map { Reason(ReasonCode(rawValue: $0), "") }, milliseconds: number("ms") ?? 0)
        if case let .object(pairs)? = row["variables"] {
            variables = Dictionary(pairs.compactMap { pair in pair.value.stringValue.map { (pair.key, $0) } }) { first, _ in first }
        }
    }

    /// The row in the shape the manifest and `--json` share.
    public var json: JSONValue {
        let variablesField: [(key: String, value: JSONValue)] = variables.isEmpty ? []
            : [("variables", .object(variables.keys.sorted().map { ($0, .string(variables[$0]!)) }))]
        return .object([
            ("source", .string(source)),
            ("sha256", .optional(sha256)),
            ("bytes", bytes.map { .int($0) } ?? .null),
            ("mime", .optional(mime)),
            ("kind", .optional(kind?.rawValue)),
            ("purpose", .optional(purpose)),
            ("status", .string(status.rawValue)),
            ("sink", .optional(sink)),
            ("result", result ?? .null),
            ("reason", .optional(reason?.code.rawValue)),
        ] + variablesField + [
            ("ms", .number((milliseconds * 10).rounded() / 10)),
        ])
    }
}

/// Counts and bytes at the end of a run.
public struct RunSummary: Sendable {
    public var byStatus: [AssetStatus: Int] = [:]
    /// Per sink: files, bytes, and the retries its requests needed (the rows' `result.retries`).
    public var bySink: [String: (count: Int, bytes: Int64, retries: Int)] = [:]
    public var milliseconds: Double = 0
    /// Sinks stopped by a fatal error, each with why; any makes the exit code 3.
    public var fatal: [String] = []
    /// The signal that stopped the run early (SIGINT, SIGTERM), if one did.
    public var interrupted: Int32?
    /// What became of the notify steps' events; nil when the pipeline has none or nothing is sent (dry-run).
    public var notifications: NotifyTally?

    public init() {}

    public mutating func add(_ report: AssetReport) {
        byStatus[report.status, default: 0] += 1
        if let sink = report.sink {
            let bytes: Int64
            if case let .number(n)? = report.result?["bytes"] { bytes = Int64(n) } else { bytes = report.bytes ?? 0 }
            var retries = 0
            if case let .number(n)? = report.result?["retries"] { retries = Int(exactly: n) ?? 0 }
            let old = bySink[sink] ?? (0, 0, 0)
            bySink[sink] = (old.count + 1, old.bytes + bytes, old.retries + retries)
        }
    }

    public var total: Int { byStatus.values.reduce(0, +) }

    /// The exit code DESIGN.md assigns: 3 fatal > 4 failed > 5 notifications undelivered >
    /// 1 rejected > 0, and 128 + the signal (130, 143) for a run stopped by one after a clean flush.
    public var exitCode: Int32 {
        if !fatal.isEmpty { return 3 }
        if let interrupted { return 128 + interrupted }
        if byStatus[.failed, default: 0] > 0 { return 4 }
        if notifications?.incomplete == true { return 5 }
        if byStatus[.rejected, default: 0] > 0 { return 1 }
        return 0
    }

    /// The `summary` event.
    public var json: JSONValue {
        .object([
            ("event", "summary"),
            ("files", .int(total)),
            ("status", .object(AssetStatus.allCases.map { ($0.rawValue, .int(byStatus[$0, default: 0])) })),
            ("sinks", .object(bySink.keys.sorted().map { name in
                (name, .object([("files", .int(bySink[name]!.count)), ("bytes", .int(bySink[name]!.bytes)),
                                ("retries", .int(bySink[name]!.retries))]))
            })),
            ("fatal", .array(fatal.map(JSONValue.string))),
        ] + (notifications.map { [("notifications", $0.json)] } ?? []) + [
            ("ms", .number(milliseconds.rounded())),
        ])
    }
}
