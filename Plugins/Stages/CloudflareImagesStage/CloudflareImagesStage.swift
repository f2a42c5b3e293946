import CloudflareClient
public import Foundation
public import MediaPipeline

/// Cloudflare Images: for web images within its limits (10 MB, 12,000 px side, 100 MP, 50 MP over
/// all frames of an animation). Needs CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN.
public struct CloudflareImagesStage: Sink {
    public static let maxBytes: Int64 = 10_000_000
    public static let maxSide = 12_000
    public static let maxPixels: Int64 = 100_000_000
    public static let maxAnimationPixels: Int64 = 50_000_000
    /// Types Images takes (AVIF only on Enterprise plans, so it goes elsewhere).
    public static let acceptedTypes: Set<String> = ["image/jpeg", "image/png", "image/webp", "image/gif", "image/svg+xml", "image/heic"]

    let environment: CloudflareEnvironment
    let requireSignedURLs: Bool
    let client: ImagesClient
    public var sinkName: String { "cloudflare-images" }

    public static let factory = StageFactory(kind: "cloudflare.images", summary: "upload images to Cloudflare Images", isSink: true) { options, context in
        let environment = CloudflareEnvironment.forSink(context, options: &options)
        return .sink(CloudflareImagesStage(
            environment: environment,
            requireSignedURLs: options.bool("requireSignedURLs", default: false, help: "deliver only through signed URLs"),
            client: ImagesClient(api: CloudflareAPI.shared(context, environment: environment))))
    }

    public var configuration: SinkConfiguration {
        environment.apiConfiguration
    }

    public func refusal(for file: PreparedFile) -> String? {
        guard Self.acceptedTypes.contains(file.mime) else { return "Images does not take \(file.mime)" }
        if file.bytes > Self.maxBytes { return "\(Quantity.describe(bytes: file.bytes)) is over Images' 10 MB limit" }
        if let image = file.image {
            if image.longestSide > Self.maxSide { return "a side of \(image.longestSide) px is over Images' 12,000 px limit" }
            if image.pixels > Self.maxPixels { return "\(image.pixels / 1_000_000) MP is over Images' 100 MP limit" }
            if image.pages > 1, image.totalPixels > Self.maxAnimationPixels {
                return "the animation's \(image.totalPixels / 1_000_000) MP over all frames is over Images' 50 MP limit"
            }
        }
        return nil
    }

    public func plan(for asset: Asset, context: StageContext) throws -> UploadPlan {
        let file = try asset.upload()
        var details: [(key: String, value: JSONValue)] = [("requireSignedURLs", .bool(requireSignedURLs))]
        // A public image gets an id derived from its content and purpose, so a retried upload
        // finds the first one instead of making a second. Signed images cannot carry a custom id.
        if !requireSignedURLs {
            details.append(("id", .string(Self.imageID(sha256: try asset.sha256(), purpose: asset.purpose))))
        }
        let endpoint = requireSignedURLs ? "\(environment.accountBase)/images/v2/direct_upload" : "\(environment.accountBase)/images/v1"
        return UploadPlan(method: "POST", endpoint: endpoint, contentType: "multipart/form-data",
                          bytes: file.bytes, path: file.url.path,
                          details: [("fileType", .string(file.mime)), ("sha256", .string(try asset.uploadSHA256())),
                                    ("authorization", .string(environment.authorizationPreview))] + details)
    }

    public func upload(_ plan: UploadPlan, asset: Asset, context: StageContext) async throws -> JSONValue {
        let file = try asset.upload()
        let retries = RetryCount()
        var id: String?
        if case let .string(planned)? = JSONValue.object(plan.details)["id"] { id = planned }
        // A signed image's id is saved when reserved; a public one's comes from its content.
        let checkpoint = asset.checkpoint
        var previous: String?
        if id == nil, case let .string(saved)? = checkpoint.saved?["id"] { previous = saved }
        var result = try await client.upload(
            .init(path: file.url.path, bytes: file.bytes, mime: file.mime, filename: (asset.relativePath as NSString).lastPathComponent,
                  sha256: try asset.uploadSHA256(), source: asset.source, id: id, requireSignedURLs: requireSignedURLs),
            retries: retries, resume: previous) { [previous] reserved throws(SinkError) in
            try await checkpoint.save(["id": .string(reserved)])
            asset.note(previous.map { "reserved Images id \(reserved) in place of \($0), which an interrupted run reserved but never filled" }
                ?? "reserved Images id \(reserved)")
        }
        if retries.value > 0 { result = result.adding("retries", .int(retries.value)) }
        return result
    }

    /// A direct creator upload URL: the browser POSTs the file as the form field `file`, with no
    /// token. Images chooses the id; the metadata says where the upload came from.
    public func directUpload(for asset: Asset, expiry: Date, context: StageContext) async throws -> JSONValue {
        let metadata = JSONValue.object([("source", .string(asset.source)), ("purpose", asset.purpose.map(JSONValue.string) ?? .null),
                                         ("direct", true)])
        let made = try await client.directUpload(metadata: metadata, expiry: expiry, requireSignedURLs: requireSignedURLs)
        return DirectUploadTicket(method: "POST", url: made.uploadURL, protocolName: "form", field: "file", expiry: expiry,
                                  id: made.id, ref: "images:\(made.id)").json
    }

    /// `mp/<purpose>/<sha256>`: deterministic, never shaped like a UUID.
    static func imageID(sha256: String, purpose: String?) -> String {
        "mp/\(purpose ?? "none")/\(sha256)"
    }
}
