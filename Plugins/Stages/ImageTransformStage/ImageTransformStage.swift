import Foundation
public import MediaPipeline
import LocalMedia

/// Resizes images with libvips (never upscaling), turns them upright from EXIF, converts them to
/// sRGB and removes EXIF, XMP, IPTC and GPS. The result is written under a temporary name and
/// renamed only when libvips succeeded, so no half-written file is ever left.
///
/// A purpose's image preset (e.g. a 512 px square for avatars) takes the place of the stage's box.
public struct ImageTransformStage: Stage {
    var maxDimension: Int
    var format: String
    var quality: Int
    var autorotate: Bool
    var stripMetadata: Bool
    var keepICC: Bool

    public static let factory = StageFactory(kind: "image.transform", summary: "resize, auto-rotate, convert to sRGB and strip metadata (libvips)") { options, _ in
        .stage(ImageTransformStage(
            maxDimension: options.int("maxDimension", default: 4096, range: 1...100_000, help: "longest side of the output; smaller images are not enlarged"),
            format: options.choice("format", ["keep", "jpeg", "png", "webp"], default: "keep", help: "output format; keep = same as input when web-safe, else JPEG (PNG with alpha)"),
            quality: options.int("quality", default: 82, range: 1...100, help: "JPEG/WebP quality"),
            autorotate: options.bool("autorotate", default: true, help: "apply the EXIF orientation to the pixels"),
            stripMetadata: options.bool("stripMetadata", default: true, help: "remove EXIF, XMP, IPTC, GPS and comments"),
            keepICC: options.bool("keepICC", default: true, help: "keep an sRGB ICC profile")))
    }

    public func run(_ asset: Asset, context: StageContext) async throws -> StageOutcome {
        guard let header = try asset.imageHeader() else { return .proceed }  // SVG and non-images pass unchanged
        let preset = asset.purpose.flatMap { context.purposes[$0]?.image }
        let output = outputFormat(for: header, preset: preset)
        let spec = VipsTransform(width: preset?.width ?? maxDimension, height: preset?.height ?? maxDimension,
                                 cover: preset?.fit == .cover, autorotate: autorotate, allPages: header.pages > 1 && (output == .gif || output == .webp),
                                 keepICC: keepICC, failOnTruncated: true, strip: stripMetadata, format: output,
                                 quality: preset?.quality ?? quality)
        let stem = UUID().uuidString.lowercased()
        let final = context.workDirectory.appendingPathComponent("\(stem).\(output.fileExtension)")
        let partial = context.workDirectory.appendingPathComponent(".\(stem).part.\(output.fileExtension)")
        let size: (width: Int, height: Int, pages: Int)
        do {
            size = try Vips.transform(asset.file, to: partial, spec)
            try FileManager.default.moveItem(at: partial, to: final)
        } catch let error as VipsError {
            try? FileManager.default.removeItem(at: partial)
            throw error.reason
        } catch {
            try? FileManager.default.removeItem(at: partial)
            throw error
        }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: final.path)[.size] as? NSNumber)?.int64Value ?? 0
        asset.prepared = PreparedFile(url: final, bytes: bytes, mime: output.mime,
                                      image: ImageHeader(format: output.rawValue, width: size.width, height: size.height,
                                                         pages: size.pages, hasAlpha: header.hasAlpha, orientation: 1,
                                                         hasICC: keepICC && header.hasICC))
        return .proceed
    }

    /// `keep` keeps web-safe formats; others (HEIC, AVIF, TIFF) become JPEG, or PNG when they have alpha.
    func outputFormat(for header: ImageHeader, preset: ImagePreset?) -> ImageFormat {
        let wanted = preset?.format ?? format
        if wanted != "keep", let chosen = ImageFormat(rawValue: wanted) { return chosen }
        if let same = ImageFormat(rawValue: header.format) { return same }
        return header.hasAlpha ? .png : .jpeg
    }
}
