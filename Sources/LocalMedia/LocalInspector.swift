public import Foundation
public import MediaPipeline

/// The standard `AssetInspector`: libmagic (refined) for the type, libvips for image headers,
/// libcrypto for SHA-256.
public struct LocalInspector: AssetInspector {
    private let sniffer = ContentSniffer()

    public init() {}

    /// Image types libvips is asked to open. SVG never is: it is checked as text and passed on unchanged.
    public static let decodableImageTypes: Set<String> = [
        "image/jpeg", "image/png", "image/webp", "image/gif", "image/heic", "image/heif", "image/avif", "image/tiff",
    ]

    public func sniffMIME(of file: URL) throws -> String {
        try sniffer.mime(of: file)
    }

    public func imageHeader(of file: URL, mime: String) throws -> ImageHeader? {
        guard Self.decodableImageTypes.contains(mime) else { return nil }
        do {
            return try Vips.header(of: file)
        } catch {
            throw error.reason
        }
    }

    public func sha256(of file: URL) throws -> String {
        try SHA256.hex(of: file)
    }
}
