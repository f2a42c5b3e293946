import Foundation
import LocalMedia
import MediaPipeline

/// Classification as the `classify` stage does it: libmagic and our refinements (ISO brands,
/// SVG, zip flavours) for the type, then the libvips header for images. The bytes go to a file
/// of their own (the tests run inputs side by side), as the real tool reads files, not buffers.
enum ClassifyFuzz {
    static let inspector = LocalInspector()

    static func run(_ data: Data) -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("media-pipeline-fuzz-\(UUID().uuidString)")
        do {
            try data.write(to: file)
        } catch {
            fatalError("cannot write the fuzz input to \(file.path): \(error)")
        }
        defer { try? FileManager.default.removeItem(at: file) }
        let asset = Asset(source: "input", file: file, relativePath: "input", purpose: nil, inspector: inspector)
        guard let kind = try? asset.kind() else { return "unreadable" }
        do {
            guard let header = try asset.imageHeader() else { return kind.rawValue }
            FuzzCheck.require(header.width > 0 && header.height > 0, "an image header with no pixels: \(header)")
            FuzzCheck.require(header.pages >= 1, "an image header with no page: \(header)")
            return "image:\(header.format)"
        } catch let reason as Reason {
            return reason.code.rawValue
        } catch {
            return "error"
        }
    }
}
