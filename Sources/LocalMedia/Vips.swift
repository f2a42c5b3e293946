import CVips
import CLibVips
public import Foundation
public import MediaPipeline
import Synchronization

/// A libvips failure, with the operation, the file and libvips' own words.
///
/// libvips keeps one error text for the whole process, so when two files fail at the same moment
/// the words may mix; the reason code is therefore decided from the file itself (see `reason`).
public struct VipsError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var file: URL
    public var message: String
    public var kind: Kind

    /// How the operation ended: libvips refused the file, or the worker doing it crashed or hung.
    public enum Kind: Sendable { case failed, crashed, timedOut }

    public init(operation: String, file: URL, message: String, kind: Kind = .failed) {
        self.operation = operation
        self.file = file
        self.message = message
        self.kind = kind
    }

    public var description: String { "\(operation) \(file.lastPathComponent): \(message)" }

    /// The reason code this failure means, decided from the file rather than the shared error
    /// text: a blocked loader is `loader_blocked`, a file cut short is `truncated`, anything else
    /// `decode_error`.
    public var reason: Reason {
        switch kind {
        case .crashed: return Reason(.decoderCrashed, message)
        case .timedOut: return Reason(.timeout, message)
        case .failed: break
        }
        if let loader = Vips.loader(for: file), loader.blocked {
            return Reason(.loaderBlocked, "\(loader.name) is blocked: the format is read only by a loader libvips marks untrusted")
        }
        if Truncation.isCutShort(file) { return Reason(.truncated, "the file ends before its image data does (\(message))") }
        return Reason(.decodeError, message)
    }
}

/// What the transform writes.
public enum ImageFormat: String, Sendable, CaseIterable, Codable {
    case jpeg, png, webp, gif

    var c: mp_format {
        switch self {
        case .jpeg: MP_FORMAT_JPEG
        case .png: MP_FORMAT_PNG
        case .webp: MP_FORMAT_WEBP
        case .gif: MP_FORMAT_GIF
        }
    }

    /// The MIME type of files in this format.
    public var mime: String { "image/\(rawValue)" }
    /// The usual file extension.
    public var fileExtension: String { self == .jpeg ? "jpg" : rawValue }
}

/// One resize-and-clean of an image with libvips.
public struct VipsTransform: Sendable, Equatable, Codable {
    public var width: Int
    public var height: Int
    /// Fill the box and crop the overflow, rather than fitting inside it.
    public var cover: Bool
    public var autorotate: Bool
    /// Keep every frame of an animation.
    public var allPages: Bool
    /// Keep an sRGB ICC profile; all other metadata is removed regardless.
    public var keepICC: Bool
    public var failOnTruncated: Bool
    /// Remove EXIF, XMP, IPTC, GPS and comments.
    public var strip: Bool
    public var format: ImageFormat
    public var quality: Int

    public init(width: Int, height: Int, cover: Bool = false, autorotate: Bool = true, allPages: Bool = false,
                keepICC: Bool = true, failOnTruncated: Bool = true, strip: Bool = true, format: ImageFormat, quality: Int) {
        self.strip = strip
        self.width = width
        self.height = height
        self.cover = cover
        self.autorotate = autorotate
        self.allPages = allPages
        self.keepICC = keepICC
        self.failOnTruncated = failOnTruncated
        self.format = format
        self.quality = quality
    }
}

/// The door to libvips. Every image operation of the tool goes through here.
public enum Vips {
    private static let started: Result<Void, VipsError> = {
        // VIPS_CONCURRENCY, when set, is read by libvips itself (0 leaves it to libvips).
        if mp_vips_init(CommandLine.arguments.first ?? "media-pipeline", 0) != 0 {
            return .failure(VipsError(operation: "vips_init", file: URL(fileURLWithPath: "/"), message: takeError()))
        }
        return .success(())
    }()

    /// Starts libvips (once), with untrusted loaders blocked.
    public static func start() throws(VipsError) {
        try started.get()
    }

    /// The NUL-terminated text a C function wrote into `buffer`.
    static func text(of buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func takeError() -> String {
        var buffer = [CChar](repeating: 0, count: 2048)
        mp_vips_take_error(&buffer, buffer.count)
        return text(of: buffer).trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "\n", with: "; ")
    }

    /// The image header, read without decoding pixels (in a decoder worker once they are started).
    public static func header(of file: URL) throws(VipsError) -> ImageHeader {
        if let workers = DecoderWorkers.current.withLock({ $0 }) {
            guard let header = try workers.call(WorkerRequest(input: file.path), file: file).header else {
                throw VipsError(operation: "header", file: file, message: "the decoder worker sent no header", kind: .crashed)
            }
            return header
        }
        return try headerInProcess(of: file)
    }

    static func headerInProcess(of file: URL) throws(VipsError) -> ImageHeader {
        try start()
        var h = mp_header()
        guard mp_vips_header(file.path, &h) == 0 else {
            throw VipsError(operation: "header", file: file, message: takeError())
        }
        let loader = withUnsafeBytes(of: h.loader) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let format = loader.replacingOccurrences(of: "load_source", with: "").replacingOccurrences(of: "load", with: "")
        return ImageHeader(format: format, width: Int(h.width), height: Int(h.height), pages: Int(max(h.pages, 1)),
                           hasAlpha: h.has_alpha != 0, orientation: Int(h.orientation == 0 ? 1 : h.orientation),
                           hasICC: h.has_icc != 0)
    }

    /// Resizes (never up), rotates upright, converts to sRGB, removes metadata and saves to `output`.
    /// Returns the output's size in pixels and pages. Runs in a decoder worker once they are started.
    public static func transform(_ input: URL, to output: URL, _ t: VipsTransform) throws(VipsError) -> (width: Int, height: Int, pages: Int) {
        if let workers = DecoderWorkers.current.withLock({ $0 }) {
            let reply = try workers.call(WorkerRequest(input: input.path, output: output.path, transform: t), file: input)
            guard let width = reply.width, let height = reply.height, let pages = reply.pages else {
                throw VipsError(operation: "transform", file: input, message: "the decoder worker sent no size", kind: .crashed)
            }
            return (width, height, pages)
        }
        return try transformInProcess(input, to: output, t)
    }

    static func transformInProcess(_ input: URL, to output: URL, _ t: VipsTransform) throws(VipsError) -> (width: Int, height: Int, pages: Int) {
        try start()
        var spec = mp_transform(width: Int32(t.width), height: Int32(t.height), cover: t.cover ? 1 : 0,
                                autorotate: t.autorotate ? 1 : 0, all_pages: t.allPages ? 1 : 0, keep_icc: t.keepICC ? 1 : 0,
                                fail_on_truncated: t.failOnTruncated ? 1 : 0, strip: t.strip ? 1 : 0, format: t.format.c, quality: Int32(t.quality))
        var result = mp_transform_result()
        guard mp_vips_transform(input.path, output.path, &spec, &result) == 0 else {
            throw VipsError(operation: "transform", file: input, message: takeError())
        }
        return (Int(result.width), Int(result.height), Int(result.pages))
    }

    /// The loader libvips would pick for a file from its first bytes, and whether it is blocked.
    public static func loader(for file: URL) -> (name: String, blocked: Bool)? {
        guard (try? start()) != nil else { return nil }
        var name = [CChar](repeating: 0, count: 128)
        var blocked: Int32 = 0
        guard mp_vips_find_loader(file.path, &name, name.count, &blocked) == 0 else { return nil }
        return (text(of: name), blocked != 0)
    }

    /// The libvips version, e.g. `8.14.1`.
    public static var version: String { String(cString: vips_version_string()) }

    /// Whether libvips has an operation by this nickname (e.g. `heifload`).
    public static func hasOperation(_ nickname: String) -> Bool {
        vips_type_find("VipsOperation", nickname) != 0
    }

    /// Every operation libvips flags untrusted, and whether it is blocked now.
    public static func untrustedOperations() throws(VipsError) -> [(name: String, blocked: Bool)] {
        try start()
        var buffer = [CChar](repeating: 0, count: 8192)
        mp_vips_untrusted_operations(&buffer, buffer.count)
        return text(of: buffer).split(separator: ",").map { item in
            item.hasSuffix("!") ? (String(item.dropLast()), false) : (String(item), true)
        }
    }
}
