import CloudflareClient
public import Foundation
public import MediaPipeline

/// R2 over its S3 API: every kind of file, under a key made from a template. Needs
/// CLOUDFLARE_R2_ACCESS_KEY_ID, CLOUDFLARE_R2_SECRET_ACCESS_KEY, CLOUDFLARE_R2_BUCKET_NAME and
/// CLOUDFLARE_ACCOUNT_ID (or CLOUDFLARE_R2_ENDPOINT).
public struct CloudflareR2Stage: Sink {
    /// R2's largest object: 5 TiB − 5 GiB.
    public static let maxObjectBytes: Int64 = 5_492_189_429_760
    /// R2's largest single PUT and largest part: 5 GiB − 5 MiB.
    public static let maxPartBytes: Int64 = 5_363_466_240
    public static let minPartBytes: Int64 = 5 * 1024 * 1024
    public static let maxParts: Int64 = 10_000

    let environment: CloudflareEnvironment
    let keyTemplate: String
    let multipartThreshold: Int64
    let partSize: Int64
    let client: R2Client
    public var sinkName: String { "r2" }

    static let placeholders = ["{purposePrefix}", "{purpose}", "{sha256}", "{ext}", "{name}", "{path}"]

    public static let factory = StageFactory(kind: "cloudflare.r2", summary: "upload files to an R2 bucket (S3 API, multipart for large files)", isSink: true) { options, context in
        let environment = CloudflareEnvironment.forSink(context, options: &options)
        let template = options.string("keyTemplate", default: "{purposePrefix}{sha256}{ext}",
                                      help: "object key; placeholders " + placeholders.joined(separator: " "))
        for match in template.matches(of: /\{[^}]*\}/) where !placeholders.contains(String(match.output)) {
            let unknown = String(match.output)
            options.error("keyTemplate", "unknown placeholder \(unknown)", hint: DidYouMean.hint(for: unknown, among: placeholders))
        }
        let threshold = options.bytes("multipartThreshold", default: 100 * 1024 * 1024, help: "files larger than this go up in parts")
        let part = options.bytes("partSize", default: 8 * 1024 * 1024, help: "smallest part size (grown to keep within 10,000 parts)")
        if part < minPartBytes || part > maxPartBytes { options.error("partSize", "must be from 5MiB to 5GiB − 5MiB") }
        if threshold > maxPartBytes { options.error("multipartThreshold", "must be at most 5GiB − 5MiB, R2's largest single PUT") }
        return .sink(CloudflareR2Stage(environment: environment, keyTemplate: template, multipartThreshold: threshold, partSize: part,
                                       client: R2Client.shared(context, environment: environment)))
    }

    public var configuration: SinkConfiguration {
        var needed = [CloudflareEnvironment.r2AccessKeyID, CloudflareEnvironment.r2SecretAccessKey, CloudflareEnvironment.r2Bucket]
        if environment[CloudflareEnvironment.r2Endpoint] == nil { needed.insert(CloudflareEnvironment.accountID, at: 0) }
        return SinkConfiguration(missing: environment.missing(needed))
    }

    public func refusal(for file: PreparedFile) -> String? {
        file.bytes > Self.maxObjectBytes ? "\(Quantity.describe(bytes: file.bytes)) is over R2's largest object" : nil
    }

    public func plan(for asset: Asset, context: StageContext) throws -> UploadPlan {
        let file = try asset.upload()
        let key = try key(for: asset, file: file, context: context)
        let bucket = environment[CloudflareEnvironment.r2Bucket] ?? "$" + CloudflareEnvironment.r2Bucket
        let objectURL = "\(environment.r2EndpointBase)/\(bucket)/\(key.encodedPath)"
        var details: [(key: String, value: JSONValue)] = [("key", .string(key)), ("sha256", .string(try asset.uploadSHA256()))]
        if let base = environment[CloudflareEnvironment.r2PublicBaseURL] {
            details.append(("url", .string("\(base)/\(key.encodedPath)")))
        }
        // Anything that is not an image is served as a download, never rendered inline.
        if AssetKind(mime: file.mime) != .image { details.append(("contentDisposition", "attachment")) }
        if file.bytes <= multipartThreshold {
            return UploadPlan(method: "PUT", endpoint: objectURL, contentType: file.mime, bytes: file.bytes,
                              path: file.url.path, details: details)
        }
        let part = Self.partSize(for: file.bytes, smallest: partSize)
        details.append(("multipart", .object([("partSize", .int(part)),
                                              ("parts", .int((file.bytes + part - 1) / part))])))
        return UploadPlan(method: "POST", endpoint: objectURL + "?uploads", contentType: file.mime, bytes: file.bytes,
                          path: file.url.path, details: details)
    }

    public func upload(_ plan: UploadPlan, asset: Asset, context: StageContext) async throws -> JSONValue {
        let details = JSONValue.object(plan.details)
        guard case let .string(key)? = details["key"], case let .string(sha256)? = details["sha256"] else {
            throw SinkError(.failed, .stageFailed, "the R2 plan has no key")
        }
        var disposition: String?
        if case let .string(value)? = details["contentDisposition"] { disposition = value }
        var part = partSize
        if case let .number(n)? = details["multipart"]?["partSize"] { part = Int64(n) }
        let retries = RetryCount()
        let sent = try await client.upload(
            .init(key: key, path: plan.path, bytes: plan.bytes, contentType: plan.contentType, contentDisposition: disposition, sha256: sha256),
            multipartThreshold: multipartThreshold, partSize: part, retries: retries, checkpoint: asset.checkpoint)
        var result: [(key: String, value: JSONValue)] = [("key", .string(key))]
        if let url = details["url"] { result.append(("url", url)) }
        result.append(("bytes", .int(plan.bytes)))
        if !sent.sent { result.append(("existing", true)) }
        if sent.resumedParts > 0 { result.append(("resumedParts", .int(sent.resumedParts))) }
        if retries.value > 0 { result.append(("retries", .int(retries.value))) }
        return .object(result)
    }

    /// A presigned PUT: the browser sends the bytes with exactly the declared type and length
    /// (both signed), within one PUT's limit. The key cannot hold the content's SHA-256, which
    /// is not known yet: `{sha256}` becomes `upload-<random id>`.
    public func directUpload(for asset: Asset, expiry: Date, context: StageContext) async throws -> JSONValue {
        let file = try asset.upload()
        guard file.bytes <= Self.maxPartBytes else {
            throw SinkError(.rejected, .tooLarge, "\(Quantity.describe(bytes: file.bytes)) is over R2's largest single PUT (5 GiB − 5 MiB); a presigned URL takes one PUT")
        }
        let key = try key(for: asset, file: file, context: context)
        let seconds = max(1, min(Int(expiry.timeIntervalSinceNow.rounded()), 604_800))
        let url = client.presignedPut(key: key, contentType: file.mime, bytes: file.bytes, expires: seconds)
        return DirectUploadTicket(method: "PUT", url: url.absoluteString, protocolName: "put",
                                  headers: [("Content-Type", file.mime), ("Content-Length", String(file.bytes)),
                                            // Not signed, but asked for by R2 on some accounts.
                                            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD")],
                                  expiry: Date().addingTimeInterval(Double(seconds)), id: key, ref: "r2:\(key)").json
    }

    /// One part size for the whole upload: at least `smallest`, grown in whole MiB so the
    /// file fits in 10,000 parts.
    public static func partSize(for bytes: Int64, smallest: Int64) -> Int64 {
        let mib: Int64 = 1024 * 1024
        let needed = (bytes + maxParts - 1) / maxParts
        let rounded = (needed + mib - 1) / mib * mib
        return min(max(smallest, rounded), maxPartBytes)
    }

    /// The object key from the template; the purpose's prefix comes from the pipeline's purposes.
    func key(for asset: Asset, file: PreparedFile, context: StageContext) throws -> String {
        let values: [String: String] = [
            "{purposePrefix}": asset.purpose.flatMap { context.purposes[$0]?.prefix } ?? "",
            "{purpose}": asset.purpose ?? "",
            "{sha256}": asset.isDeclared ? "upload-" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "") : try asset.sha256(),
            "{ext}": MediaTypes.preferredExtension(for: file.mime),
            "{name}": (asset.relativePath as NSString).lastPathComponent,
            "{path}": asset.relativePath,
        ]
        var key = keyTemplate
        for (placeholder, value) in values { key = key.replacingOccurrences(of: placeholder, with: value) }
        return key
    }
}
