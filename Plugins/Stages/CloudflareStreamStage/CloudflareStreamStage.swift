import CloudflareClient
import Foundation
public import MediaPipeline

/// Cloudflare Stream for lesson videos: a basic form upload up to 200 MB, tus above that, 30 GB
/// at most. Needs CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN.
public struct CloudflareStreamStage: Sink {
    public static let maxBytes: Int64 = 30_000_000_000
    public static let basicLimit: Int64 = 200_000_000
    /// tus chunks must be multiples of 256 KiB between 5 MiB and 200 MiB.
    public static let chunkGranularity: Int64 = 262_144
    public static let minChunk: Int64 = 5_242_880
    public static let maxChunk: Int64 = 209_715_200

    let environment: CloudflareEnvironment
    let basicThreshold: Int64
    let chunkSize: Int64
    public var sinkName: String { "stream" }

    public static let factory = StageFactory(kind: "cloudflare.stream", summary: "upload videos to Cloudflare Stream (basic or tus)", isSink: true) { options, context in
        let environment = CloudflareEnvironment.forSink(context, options: &options)
        let threshold = options.bytes("basicThreshold", default: basicLimit, help: "videos up to this size use one form POST; larger ones tus")
        if threshold > basicLimit { options.error("basicThreshold", "Stream takes basic uploads only up to 200MB", hint: "use at most \"200MB\"") }
        let chunk = options.bytes("chunkSize", default: 52_428_800, help: "tus chunk size (rounded down to 256 KiB, 5 MiB…200 MiB)")
        return .sink(CloudflareStreamStage(environment: environment, basicThreshold: threshold, chunkSize: tusChunk(chunk)))
    }

    /// `clamp(roundDown(configured, 256 KiB), 5 MiB, 200 MiB)`.
    public static func tusChunk(_ configured: Int64) -> Int64 {
        min(max(configured / chunkGranularity * chunkGranularity, minChunk), maxChunk)
    }

    public var configuration: SinkConfiguration {
        environment.apiConfiguration
    }

    public func refusal(for file: PreparedFile) -> String? {
        guard AssetKind(mime: file.mime) == .video else { return "Stream takes only videos, not \(file.mime)" }
        return file.bytes > Self.maxBytes ? "\(Quantity.describe(bytes: file.bytes)) is over Stream's 30 GB limit" : nil
    }

    public func plan(for asset: Asset, context: StageContext) throws -> UploadPlan {
        let file = try asset.upload()
        let endpoint = "\(environment.accountBase)/stream"
        if file.bytes <= basicThreshold {
            return UploadPlan(method: "POST", endpoint: endpoint, contentType: "multipart/form-data", bytes: file.bytes,
                              path: file.url.path, details: [("protocol", "basic")])
        }
        let chunks = (file.bytes + chunkSize - 1) / chunkSize
        return UploadPlan(method: "POST", endpoint: endpoint, contentType: "application/offset+octet-stream", bytes: file.bytes,
                          path: file.url.path,
                          details: [("protocol", "tus"), ("chunkSize", .int(chunkSize)), ("chunks", .int(chunks))])
    }
}
