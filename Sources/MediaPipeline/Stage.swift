public import Foundation

/// A stable, snake_case code saying why a file was refused or passed by. Part of the CLI contract.
public struct ReasonCode: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    public static let typeNotAllowed: ReasonCode = "type_not_allowed"
    public static let typeMismatch: ReasonCode = "type_mismatch"
    public static let emptyFile: ReasonCode = "empty_file"
    public static let noSink: ReasonCode = "no_sink"
    public static let stageFailed: ReasonCode = "stage_failed"
    public static let loaderBlocked: ReasonCode = "loader_blocked"
    public static let decodeError: ReasonCode = "decode_error"
    public static let truncated: ReasonCode = "truncated"
    public static let pixelLimit: ReasonCode = "pixel_limit"
    public static let frameLimit: ReasonCode = "frame_limit"
    /// The image decoder crashed on the file (it runs in a worker process, so only this file is lost).
    public static let decoderCrashed: ReasonCode = "decoder_crashed"
    public static let dimensionLimit: ReasonCode = "dimension_limit"
    public static let tooLarge: ReasonCode = "too_large"
    public static let svgNotAllowed: ReasonCode = "svg_not_allowed"
    public static let svgActiveContent: ReasonCode = "svg_active_content"
    public static let sourceChanged: ReasonCode = "source_changed"
    public static let diskFull: ReasonCode = "disk_full"
    /// An archive inside an archive given on the command line: never expanded.
    public static let nestedArchive: ReasonCode = "nested_archive"
    /// An archive that cannot be read past some point, or whose structure is broken.
    public static let archiveCorrupt: ReasonCode = "archive_corrupt"
    /// The entry's name leaves the archive: `..`, a leading `/`, a drive letter or a backslash.
    public static let unsafePath: ReasonCode = "unsafe_path"
    /// The entry's name is not valid UTF-8, is empty or too long, or holds controls, bidi or zero-width marks.
    public static let badName: ReasonCode = "bad_name"
    /// A symbolic or hard link, or a path through one: never created.
    public static let linkEntry: ReasonCode = "link_entry"
    /// A FIFO, device or socket: never created.
    public static let specialEntry: ReasonCode = "special_entry"
    /// An earlier entry has the same name (compared in NFC and without case).
    public static let duplicateName: ReasonCode = "duplicate_name"
    /// The entry is encrypted; no passphrase is ever asked for.
    public static let encrypted: ReasonCode = "encrypted"
    /// Two zip entries share bytes: the whole archive is refused.
    public static let archiveOverlap: ReasonCode = "archive_overlap"
    /// An entry, or the archive altogether, inflates past a limit.
    public static let archiveBomb: ReasonCode = "archive_bomb"
    /// An entry's data is not the size its header declares.
    public static let sizeMismatch: ReasonCode = "size_mismatch"
    /// The archive has more entries than `limits.maxEntriesPerArchive`: the whole archive is refused.
    public static let entryLimit: ReasonCode = "entry_limit"

    /// The chosen sink cannot hand out a URL for the client to upload to directly.
    public static let directUploadUnsupported: ReasonCode = "direct_upload_unsupported"
    /// The file's bytes are needed to decide (an SVG's content), but a direct upload only declares its facts.
    public static let needsContent: ReasonCode = "needs_content"

    /// The run was stopped (SIGINT, SIGTERM) before the file finished; a rerun takes it up.
    public static let interrupted: ReasonCode = "interrupted"
    /// The provider refused the file for good (400, 413, 415, 422, or an error code saying the file is wrong).
    public static let providerRejected: ReasonCode = "provider_rejected"
    /// What the provider stored does not match what was sent (ETag, digest).
    public static let integrityMismatch: ReasonCode = "integrity_mismatch"
    public static let timeout: ReasonCode = "timeout"
    /// The connection kept failing (refused, reset) through every retry.
    public static let networkError: ReasonCode = "network_error"
    /// The provider kept answering 5xx (or an error code it marks as transient) through every retry.
    public static let providerUnavailable: ReasonCode = "provider_unavailable"
    /// The provider asked us to wait longer than the run is willing to.
    public static let rateLimited: ReasonCode = "rate_limited"
    /// The credentials were refused: fatal for that provider.
    public static let authFailed: ReasonCode = "auth_failed"
    /// The endpoint's TLS certificate is not trusted: fatal, never bypassed.
    public static let tlsUntrusted: ReasonCode = "tls_untrusted"
    /// The endpoint answered with a redirect, which is never followed with credentials: fatal.
    public static let unexpectedRedirect: ReasonCode = "unexpected_redirect"
}

/// Why a stage refused or passed by a file: the code for machines, the detail for people.
public struct Reason: Sendable, Equatable, Error, CustomStringConvertible {
    public var code: ReasonCode
    public var detail: String

    public init(_ code: ReasonCode, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code): \(detail)" }
}

/// What a stage decided about a file.
public enum StageOutcome: Sendable, Equatable {
    /// Go on to the next stage.
    case proceed
    /// Pass the file by on purpose; it ends `skipped`.
    case skip(Reason)
    /// Refuse the file for good; it ends `rejected`.
    case reject(Reason)
}

/// Where stages write messages; the CLI decides where they go.
public protocol Logger: Sendable {
    func log(_ level: LogLevel, _ message: String)
}

/// How much a message matters.
public enum LogLevel: Int, Sendable, Comparable {
    case debug, info, warning, error
    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

/// Everything a stage may use from the outside world, passed in rather than looked up.
public struct StageContext: Sendable {
    public var logger: any Logger
    /// True for `--dry-run`: nothing leaves the machine.
    public var dryRun: Bool
    /// A folder that belongs to this run, for prepared files.
    public var workDirectory: URL
    /// The pipeline's purposes, by name.
    public var purposes: [String: Purpose]
    /// The pipeline's sinks, by step name, for routing.
    public var sinks: [String: any Sink]
    /// Shared by every file of the run: heavy steps (image decodes) reserve their estimated peak here.
    public var memory: Budget

    public init(logger: any Logger, dryRun: Bool, workDirectory: URL, purposes: [String: Purpose], sinks: [String: any Sink],
                memory: Budget = Budget(capacity: PipelineLimits().memory)) {
        self.logger = logger
        self.memory = memory
        self.dryRun = dryRun
        self.workDirectory = workDirectory
        self.purposes = purposes
        self.sinks = sinks
    }
}

/// One unit of work on a file: validate it, transform it, route it, …
///
/// A stage does its one job; timing, logging, `when`, `on_error` and dry-run reporting are the
/// runner's. A stage may throw `Reason` to refuse a file with a code, or any other error, which
/// becomes `stage_failed`.
public protocol Stage: Sendable {
    func run(_ asset: Asset, context: StageContext) async throws -> StageOutcome
    /// True for stages that change the bytes that go up (resize, re-encode): their options are part
    /// of a rendition's identity in the journal, so changing them uploads again.
    var shapesBytes: Bool { get }
    /// True for stages that decide from a file's facts alone (size, type, name, purpose) without
    /// reading its bytes: they also run for direct uploads, where the client only declares the facts.
    var decidesFromFacts: Bool { get }
    /// Called once when a run has ended: lets go of what the stage keeps between files (an
    /// external process, say). A later run may use the stage again.
    func finish() async
}

extension Stage {
    public var shapesBytes: Bool { false }
    public var decidesFromFacts: Bool { false }
    public func finish() async {}
}

/// Whether a sink has what it needs from the environment.
public struct SinkConfiguration: Sendable, Equatable {
    /// The environment variables it still needs; empty when it is configured.
    public var missing: [String]

    public init(missing: [String]) { self.missing = missing }

    public var isConfigured: Bool { missing.isEmpty }
}

/// A request a sink would make to upload one file. Dry-run reports it; a real run executes it.
public struct UploadPlan: Sendable, Equatable {
    public var method: String
    public var endpoint: String
    public var contentType: String
    public var bytes: Int64
    /// The file that would be sent (the prepared one after transforms).
    public var path: String
    /// Sink-specific facts: the R2 key, tus vs basic, part size, …
    public var details: [(key: String, value: JSONValue)]

    public init(method: String, endpoint: String, contentType: String, bytes: Int64, path: String,
                details: [(key: String, value: JSONValue)] = []) {
        self.method = method
        self.endpoint = endpoint
        self.contentType = contentType
        self.bytes = bytes
        self.path = path
        self.details = details
    }

    public static func == (a: UploadPlan, b: UploadPlan) -> Bool {
        a.method == b.method && a.endpoint == b.endpoint && a.contentType == b.contentType && a.bytes == b.bytes
            && a.path == b.path && JSONValue.object(a.details) == JSONValue.object(b.details)
    }

    /// The plan as the manifest's `result` in dry-run.
    public var json: JSONValue {
        .object([("method", .string(method)), ("endpoint", .string(endpoint)), ("contentType", .string(contentType)),
                 ("bytes", .int(bytes)), ("path", .string(path))] + details)
    }
}

/// How an upload went wrong, which decides the file's status and the run's exit code.
public struct SinkError: Error, Sendable, CustomStringConvertible {
    public enum Severity: Sendable, Equatable {
        /// The provider refused this file for good: the file ends `rejected`.
        case rejected
        /// Transient trouble left after every retry: the file ends `failed` (exit 4); a rerun may succeed.
        case failed
        /// The provider cannot be used at all (credentials refused, certificate untrusted): no more
        /// work is sent to it, the file ends `failed` and the run exits 3.
        case fatal
    }

    public var severity: Severity
    public var reason: Reason
    /// A `failed` file that may succeed later in the same run (its API is paused for a while):
    /// the runner tries it once more at the end of the queue.
    public var deferrable: Bool

    public init(_ severity: Severity, _ code: ReasonCode, _ detail: String, deferrable: Bool = false) {
        self.severity = severity
        self.reason = Reason(code, detail)
        self.deferrable = deferrable
    }

    public var description: String { reason.description }
}

/// A stage that uploads. Routing asks whether it is configured and whether a file fits its limits;
/// the runner asks it for a plan, which dry-run reports and a real run executes.
public protocol Sink: Sendable {
    /// The name the manifest uses for this sink: `cloudflare-images`, `r2`, `stream`.
    var sinkName: String { get }
    var configuration: SinkConfiguration { get }
    /// Why `file` cannot go to this sink (over a limit, a type it does not take), or nil when it fits.
    func refusal(for file: PreparedFile) -> String?
    /// The request that would upload the asset.
    func plan(for asset: Asset, context: StageContext) throws -> UploadPlan
    /// Executes the plan `plan(for:context:)` made and returns the manifest's `result`
    /// (`id`, `key`, `url`, …). Throws `SinkError` when it cannot.
    func upload(_ plan: UploadPlan, asset: Asset, context: StageContext) async throws -> JSONValue
    /// A one-time URL the client uploads a declared file to directly (the bytes never pass through
    /// this process), valid until `expiry`: `{method, url, headers?, field?, expiresAt, …}` plus the
    /// id the media will have. Throws `SinkError`; sinks that cannot hand out such URLs refuse.
    func directUpload(for asset: Asset, expiry: Date, context: StageContext) async throws -> JSONValue
}

/// What a client needs to upload a declared file straight to a provider: `{method, url, …,
/// expiresAt, id, ref}`, the one shape every sink's `directUpload` answers in.
public struct DirectUploadTicket: Sendable {
    public var method: String
    public var url: String
    /// How the bytes go: `form` (a multipart POST with the file in `field`), `tus`, or `put` (the
    /// body as is, with exactly `headers`).
    public var protocolName: String
    public var field: String?
    public var headers: [(name: String, value: String)]
    public var expiry: Date
    /// The media's id at the provider and its reference (`images:<id>`, `r2:<key>`, `stream:<uid>`).
    public var id: String
    public var ref: String

    public init(method: String, url: String, protocolName: String, field: String? = nil, headers: [(name: String, value: String)] = [],
                expiry: Date, id: String, ref: String) {
        self.method = method
        self.url = url
        self.protocolName = protocolName
        self.field = field
        self.headers = headers
        self.expiry = expiry
        self.id = id
        self.ref = ref
    }

    public var json: JSONValue {
        var pairs: [(key: String, value: JSONValue)] = [("method", .string(method)), ("url", .string(url)), ("protocol", .string(protocolName))]
        if let field { pairs.append(("field", .string(field))) }
        if !headers.isEmpty { pairs.append(("headers", .object(headers.map { ($0.name, .string($0.value)) }))) }
        let formatter = ISO8601DateFormatter()
        pairs += [("expiresAt", .string(formatter.string(from: expiry))), ("id", .string(id)), ("ref", .string(ref))]
        return .object(pairs)
    }
}

extension Sink {
    public func directUpload(for asset: Asset, expiry: Date, context: StageContext) async throws -> JSONValue {
        throw SinkError(.rejected, .directUploadUnsupported, "\(sinkName) does not hand out direct upload URLs")
    }
}
