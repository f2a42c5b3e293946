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

    public var shapesBytes: Bool { true }

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
            size = try await context.memory.withReservation(Self.estimatedPeak(header, spec)) {
                try Vips.transform(asset.file, to: partial, spec)
            }
            try FileManager.default.moveItem(at: partial, to: final)
        } catch {
            try? FileManager.default.removeItem(at: partial)
            throw (error as? VipsError)?.reason ?? error
        }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: final.path)[.size] as? NSNumber)?.int64Value ?? 0
        asset.prepared = PreparedFile(url: final, bytes: bytes, mime: output.mime,
                                      image: ImageHeader(format: output.rawValue, width: size.width, height: size.height,
                                                         pages: size.pages, hasAlpha: header.hasAlpha, orientation: 1,
                                                         hasICC: keepICC && header.hasICC))
        return .proceed
    }

    /// A rough upper bound of the bytes libvips holds while transforming: the decoded pixels (JPEG
    /// decodes at 1/2, 1/4 or 1/8 when the box allows) times a factor for decoder and encoder
    /// buffers. Measured peaks: a 12 MP JPEG kept at full size ~120 MB, a 5 MP RGBA lossless WebP
    /// ~180 MB, a 24 MP JPEG shrunk for a 1600 px box ~60 MB.
    static func estimatedPeak(_ header: ImageHeader, _ spec: VipsTransform) -> Int64 {
        var pixels = header.pixels * Int64(spec.allPages ? header.pages : 1)
        var factor: Int64 = 8
        if header.format == "jpeg" {
            // Fitting inside a box scales by the larger ratio, covering it by the smaller one;
            // libjpeg then decodes at the largest power-of-two shrink not above that scale.
            let ratios = (Double(header.width) / Double(max(spec.width, 1)), Double(header.height) / Double(max(spec.height, 1)))
            let ratio = spec.cover ? min(ratios.0, ratios.1) : max(ratios.0, ratios.1)
            let shrink = Int64([8, 4, 2].first { Double($0) <= ratio } ?? 1)
            pixels /= shrink * shrink
            factor = 3
        }
        return pixels * (header.hasAlpha ? 4 : 3) * factor
    }

    /// `keep` keeps web-safe formats; others (HEIC, AVIF, TIFF) become JPEG, or PNG when they have alpha.
    func outputFormat(for header: ImageHeader, preset: ImagePreset?) -> ImageFormat {
        let wanted = preset?.format ?? format
        if wanted != "keep", let chosen = ImageFormat(rawValue: wanted) { return chosen }
        if let same = ImageFormat(rawValue: header.format) { return same }
        return header.hasAlpha ? .png : .jpeg
    }
}
