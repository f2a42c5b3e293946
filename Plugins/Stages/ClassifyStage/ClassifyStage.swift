public import MediaPipeline

/// Records what a file is: its content type, kind, SHA-256 and, for images, the header facts
/// (size, format, orientation, pages, alpha) read without decoding pixels.
///
/// The facts are the asset's own, computed once; this stage makes sure they exist for every
/// later stage and for the manifest.
public struct ClassifyStage: Stage {
    var hash: Bool

    public static let factory = StageFactory(kind: "classify", summary: "record content type, kind, SHA-256 and image facts") { options, _ in
        .stage(ClassifyStage(hash: options.bool("hash", default: true, help: "compute the content SHA-256")))
    }

    public func run(_ asset: Asset, context: StageContext) async throws -> StageOutcome {
        let kind = try asset.kind()
        if hash { _ = try asset.sha256() }
        if kind == .image, let header = try asset.imageHeader() {
            context.logger.log(.debug, "\(asset.source): \(header.format) \(header.width)×\(header.height), \(header.pages) page(s), orientation \(header.orientation)")
        }
        return .proceed
    }
}
