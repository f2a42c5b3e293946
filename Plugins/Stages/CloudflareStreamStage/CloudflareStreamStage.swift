import CloudflareClient
public import Foundation
public import MediaPipeline

/// Cloudflare Stream for lesson videos: a basic form upload up to 200 MB, tus above that, 30 GB
/// at most. Needs CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN.
public struct CloudflareStreamStage: Sink {
    public static let maxBytes = StreamClient.maxUploadLength
    public static let basicLimit: Int64 = 200_000_000

    let environment: CloudflareEnvironment
    let basicThreshold: Int64
    let chunkSize: Int64
    let requireSignedURLs: Bool
    /// Seconds to wait for the video to be ready to stream; nil: do not wait.
    let waitUntilReady: Double?
    let client: StreamClient
    public var sinkName: String { "stream" }

    public static let factory = StageFactory(kind: "cloudflare.stream", summary: "upload videos to Cloudflare Stream (basic or tus)", isSink: true) { options, context in
        let environment = CloudflareEnvironment.forSink(context, options: &options)
        let threshold = options.bytes("basicThreshold", default: basicLimit, help: "videos up to this size use one form POST; larger ones tus")
        if threshold > basicLimit { options.error("basicThreshold", "Stream takes basic uploads only up to 200MB", hint: "use at most \"200MB\"") }
        let chunk = options.bytes("chunkSize", default: 52_428_800, help: "tus chunk size (rounded down to 256 KiB, 5 MiB…200 MiB)")
        let signed = options.bool("requireSignedURLs", default: false, help: "play only through signed URLs")
        let wait = options.bool("waitUntilReady", default: false, help: "wait until each video is ready to stream")
        let timeout = options.seconds("readyTimeout", default: 1800, help: "longest wait for readyToStream")
        return .sink(CloudflareStreamStage(environment: environment, basicThreshold: threshold, chunkSize: tusChunk(chunk),
                                           requireSignedURLs: signed, waitUntilReady: wait ? timeout : nil,
                                           client: StreamClient(api: CloudflareAPI.shared(context, environment: environment))))
    }

    /// `clamp(roundDown(configured, 256 KiB), 5 MiB, 200 MiB)`.
    public static func tusChunk(_ configured: Int64) -> Int64 {
        StreamClient.chunkSize(configured)
    }

    public var configuration: SinkConfiguration {
        environment.apiConfiguration
    }

    public func refusal(for file: PreparedFile) -> String? {
        guard AssetKind(mime: file.mime) == .video else { return "Stream takes only videos, not \(file.mime)" }
        return file.bytes > Self.maxBytes ? "\(Quantity.describe(bytes: file.bytes)) is over Stream's 30 GB limit" : nil
    }

    /// A direct creator upload URL: a form POST (field `file`) up to 200 MB, a one-time tus
    /// URL above. The video may last at most 6 hours (Stream's largest `maxDurationSeconds`).
    public func directUpload(for asset: Asset, expiry: Date, context: StageContext) async throws -> JSONValue {
        let bytes = try asset.size(), name = (asset.relativePath as NSString).lastPathComponent
        if bytes <= Self.basicLimit {
            let made = try await client.directUpload(maxDurationSeconds: StreamClient.maxDirectUploadDuration, expiry: expiry,
                                                     meta: ["name": name, "purpose": asset.purpose ?? ""])
            return DirectUploadTicket(method: "POST", url: made.uploadURL, protocolName: "form", field: "file", expiry: expiry,
                                      id: made.uid, ref: "stream:\(made.uid)").json
        }
        let made = try await client.directTusUpload(bytes: bytes, maxDurationSeconds: StreamClient.maxDirectUploadDuration,
                                                    expiry: expiry, name: name)
        return DirectUploadTicket(method: "PATCH", url: made.uploadURL, protocolName: "tus", expiry: expiry,
                                  id: made.uid, ref: "stream:\(made.uid)").json
    }

    public func plan(for asset: Asset, context: StageContext) throws -> UploadPlan {
        let file = try asset.upload()
        let endpoint = "\(environment.accountBase)/stream"
        let common: [(key: String, value: JSONValue)] = [("fileType", .string(file.mime)), ("sha256", .string(try asset.uploadSHA256())),
                                                         ("authorization", .string(environment.authorizationPreview))]
        if file.bytes <= basicThreshold {
            return UploadPlan(method: "POST", endpoint: endpoint, contentType: "multipart/form-data", bytes: file.bytes,
                              path: file.url.path, details: [("protocol", "basic")] + common)
        }
        let chunks = (file.bytes + chunkSize - 1) / chunkSize
        return UploadPlan(method: "POST", endpoint: endpoint, contentType: "application/offset+octet-stream", bytes: file.bytes,
                          path: file.url.path,
                          details: [("protocol", "tus"), ("chunkSize", .int(chunkSize)), ("chunks", .int(chunks))] + common)
    }

    public func upload(_ plan: UploadPlan, asset: Asset, context: StageContext) async throws -> JSONValue {
        let details = JSONValue.object(plan.details)
        let name = (asset.relativePath as NSString).lastPathComponent
        let retries = RetryCount()
        var uid: String
        var video: JSONValue?
        var resumedFrom: Int64 = 0
        if details["protocol"] == .string("basic") {
            video = try await client.uploadBasic(path: plan.path, bytes: plan.bytes, filename: name,
                                                 mime: details["fileType"].flatMap { if case let .string(s) = $0 { s } else { nil } } ?? "video/mp4",
                                                 retries: retries)
            guard case let .string(id)? = video?["uid"] else { throw SinkError(.failed, .providerUnavailable, "Stream gave no video uid") }
            uid = id
        } else {
            var metadata: [(String, String?)] = [("name", name)]
            if case let .string(sha)? = details["sha256"] { metadata.append(("sha256", sha)) }
            if requireSignedURLs { metadata.append(("requiresignedurls", nil)) }
            // The upload an interrupted run saved is taken up where the server has it; one it
            // created without hearing of it is found by its fingerprint and deleted.
            (uid, resumedFrom) = try await client.uploadTus(path: plan.path, bytes: plan.bytes, metadata: metadata, chunkSize: chunkSize,
                                                            checkpoint: asset.checkpoint, retries: retries) { uid in
                asset.note("tus upload \(uid) created")
            }
            video = try await client.video(uid: uid)
        }
        if let waitUntilReady { video = try await client.waitUntilReady(uid: uid, timeout: waitUntilReady) }
        var result = StreamClient.report(video, uid: uid, bytes: plan.bytes)
        if resumedFrom > 0 { result = result.adding("resumedFrom", .int(resumedFrom)) }
        if retries.value > 0 { result = result.adding("retries", .int(retries.value)) }
        return result
    }
}
