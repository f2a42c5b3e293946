import Foundation
public import MediaPipeline

/// Refuses files before any work is spent on them: size per kind (from `stat`, before reading),
/// type from the content against an allow-list, name against content, SVG policy, and image
/// pixel, side and frame limits from the header (before any pixel is decoded).
public struct ValidateStage: Stage {
    /// The content types allowed when the pipeline does not list its own.
    public static let defaultAllowed = [
        "image/jpeg", "image/png", "image/webp", "image/gif", "image/heic", "image/heif", "image/avif", "image/tiff",
        "image/svg+xml", "video/*", "audio/mpeg", "audio/x-wav", "audio/wav", "audio/ogg", "audio/flac", "audio/mp4",
        "audio/x-m4a", "application/pdf", "text/plain", "text/csv", "application/msword", "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint", "application/vnd.openxmlformats-officedocument.*",
        "application/vnd.oasis.opendocument.*", "application/epub+zip", "application/rtf", "text/rtf", "application/json", "application/zip",
    ]

    var maxBytes: [AssetKind: Int64]
    var allowed: [String]
    var maxPixels: Int64
    var maxFramePixels: Int64
    var maxSide: Int
    var allowSVG: Bool
    var allowNestedArchives: Bool

    public static let factory = StageFactory(kind: "validate", summary: "refuse files by size, content type, name and image limits") { options, _ in
        let defaults: [AssetKind: Int64] = [.image: 50_000_000, .document: 500_000_000, .video: 30_000_000_000,
                                            .audio: 500_000_000, .archive: 500_000_000, .other: 500_000_000]
        var sizes = options.object("maxBytes", help: "largest file per kind: image, document, video, audio, archive, other")
        var maxBytes: [AssetKind: Int64] = [:]
        for kind in AssetKind.allCases {
            maxBytes[kind] = sizes.bytes(kind.rawValue, default: defaults[kind]!, help: "largest \(kind.rawValue)")
        }
        options.absorb(sizes)
        var allowed = defaultAllowed
        if let raw = options.raw("allow", type: "[MIME patterns]", help: "content types allowed (default: images, video, audio, documents, zip)",
                                   schema: ["type": "array", "minItems": 1, "items": ["type": "string"]]) {
            if case let .array(items) = raw, items.allSatisfy({ $0.stringValue != nil }), !items.isEmpty {
                allowed = items.compactMap(\.stringValue)
            } else {
                options.error("allow", "expected a non-empty array of MIME types such as \"image/*\"")
            }
        }
        return .stage(ValidateStage(
            maxBytes: maxBytes, allowed: allowed,
            maxPixels: options.pixels("maxPixels", default: 250_000_000, help: "largest image area (one frame)"),
            maxFramePixels: options.pixels("maxFramePixels", default: 50_000_000, help: "largest area summed over all frames of an animation"),
            maxSide: options.int("maxSide", default: 65_500, range: 1...1_000_000, help: "longest image side in pixels"),
            allowSVG: options.bool("allowSVG", default: false, help: "accept SVG without active content"),
            allowNestedArchives: options.bool("allowNestedArchives", default: false,
                                              help: "store archives found inside an imported archive as opaque files (never expanded)")))
    }

    /// Size, type and name are facts a client can declare, so direct uploads are checked too.
    public var decidesFromFacts: Bool { true }

    public func run(_ asset: Asset, context: StageContext) async throws -> StageOutcome {
        // Size first: from stat, so an oversized file is refused before a byte is read.
        let size = try asset.size()
        if size == 0 { return .reject(Reason(.emptyFile, "the file is empty")) }
        let largest = maxBytes.values.max() ?? .max
        if size > largest { return .reject(tooLarge(size, limit: largest, what: "any file")) }

        let mime = try asset.mime()
        let kind = AssetKind(mime: mime)
        guard allowed.contains(where: { Self.mime(mime, matches: $0) }) else {
            return .reject(Reason(.typeNotAllowed, "content is \(mime), which this pipeline does not accept"))
        }
        let declared = asset.declaredExtension
        if let expected = MediaTypes.extensions[mime], !declared.isEmpty, !expected.contains(declared) {
            return .reject(Reason(.typeMismatch, "named .\(declared) but the content is \(mime) (.\(expected[0]))"))
        }
        if let limit = maxBytes[kind], size > limit { return .reject(tooLarge(size, limit: limit, what: "\(kind.rawValue) files")) }
        // Archives are expanded one level only: one found inside another is never opened.
        if kind == .archive, let container = asset.container, !allowNestedArchives {
            return .reject(Reason(.nestedArchive, "an archive inside \(container); archives are expanded one level only (validate.options.allowNestedArchives stores them as files)"))
        }

        if mime == "image/svg+xml" {
            guard allowSVG else { return .reject(Reason(.svgNotAllowed, "SVG files are not accepted (validate.options.allowSVG is false)")) }
            if asset.isDeclared { return .reject(Reason(.needsContent, "an SVG is accepted only after its content is checked; upload it through the server")) }
            if let active = try SVGCheck.activeContent(in: asset.file) { return .reject(Reason(.svgActiveContent, active)) }
            return .proceed
        }
        guard kind == .image, let header = try asset.imageHeader() else { return .proceed }
        if header.pixels > maxPixels {
            return .reject(Reason(.pixelLimit, "\(header.width)×\(header.height) is \(megapixels(header.pixels)), over the \(megapixels(maxPixels)) limit"))
        }
        if header.longestSide > maxSide {
            return .reject(Reason(.dimensionLimit, "a side of \(header.longestSide) px is over the \(maxSide) px limit"))
        }
        if header.pages > 1, header.totalPixels > maxFramePixels {
            return .reject(Reason(.frameLimit, "\(header.pages) frames of \(header.width)×\(header.height) are \(megapixels(header.totalPixels)), over the \(megapixels(maxFramePixels)) limit for animations"))
        }
        return .proceed
    }

    private func tooLarge(_ size: Int64, limit: Int64, what: String) -> Reason {
        Reason(.tooLarge, "\(Quantity.describe(bytes: size)) is over the \(Quantity.describe(bytes: limit)) limit for \(what)")
    }

    private func megapixels(_ n: Int64) -> String { String(format: "%.1f MP", Double(n) / 1e6) }

    static func mime(_ mime: String, matches pattern: String) -> Bool {
        pattern.hasSuffix("*") ? mime.hasPrefix(pattern.dropLast()) : mime == pattern
    }
}
