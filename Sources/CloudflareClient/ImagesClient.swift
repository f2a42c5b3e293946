public import Foundation
import HTTPTransport
public import MediaPipeline

/// Cloudflare Images: upload (public with a content-derived id, or signed through a reserved id),
/// look up, delete.
public struct ImagesClient: Sendable {
    public let api: CloudflareAPI

    public init(api: CloudflareAPI) { self.api = api }

    var base: String { "\(api.environment.accountBase)/images" }

    /// One image to send.
    public struct Upload: Sendable {
        public var path: String
        public var bytes: Int64
        public var mime: String
        public var filename: String
        /// SHA-256 of the bytes sent; kept in the image's metadata.
        public var sha256: String
        public var source: String
        /// The custom id for a public image; nil for a signed one (Cloudflare refuses both together).
        public var id: String?
        public var requireSignedURLs: Bool

        public init(path: String, bytes: Int64, mime: String, filename: String, sha256: String, source: String, id: String?,
                    requireSignedURLs: Bool) {
            self.path = path
            self.bytes = bytes
            self.mime = mime
            self.filename = filename
            self.sha256 = sha256
            self.source = source
            self.id = id
            self.requireSignedURLs = requireSignedURLs
        }

        /// `{"sha256":…,"source":…}`, the source cut so the whole stays within Images' 1,024 bytes.
        var metadata: String {
            var source = self.source
            while true {
                let text = JSONValue.object([("sha256", .string(sha256)), ("source", .string(source))]).compactText
                if text.utf8.count <= 1024 || source.isEmpty { return text }
                source = String(source.dropFirst(max(1, text.utf8.count - 1024)))
            }
        }
    }

    /// Uploads and returns the manifest's result. A retried upload never makes a second image:
    /// a public image's id is derived from its content, and "already exists" is checked against it;
    /// a signed image's id is reserved first (`reserved` hears it before any bytes go, so a journal
    /// can save it). `resume` is the id an interrupted run reserved: when that image is there (no
    /// longer a draft) it is the result; a draft is deleted and replaced by a new reservation,
    /// since its one-time upload URL was not kept.
    public func upload(_ upload: Upload, retries: RetryCount? = nil, resume: String? = nil,
                       reserved: (String) async throws(SinkError) -> Void = { _ in }) async throws(SinkError) -> JSONValue {
        if let id = upload.id, !upload.requireSignedURLs {
            var form = FormData()
            form.field("id", id)
            form.field("metadata", upload.metadata)
            form.field("requireSignedURLs", "false")
            form.file("file", filename: upload.filename, contentType: upload.mime, path: upload.path, length: upload.bytes)
            let answer = try await api.send(api.request("POST", "\(base)/v1", headers: [("Content-Type", form.contentType)], body: form.body),
                                            retries: retries)
            return try await finish(answer, id: id, upload: upload)
        }
        if let resume, let existing = try await image(id: resume) {
            if existing["draft"] != .bool(true) { return Self.report(existing, bytes: upload.bytes).adding("existing", true) }
            _ = try? await delete(id: resume)
        }
        // Signed: reserve an id through a direct upload, then send the file to its one-time URL.
        let (id, uploadURL) = try await reserve(id: nil, metadata: upload.metadata, requireSignedURLs: upload.requireSignedURLs,
                                                expiry: nil, retries: retries)
        try await reserved(id)
        var form = FormData()
        form.file("file", filename: upload.filename, contentType: upload.mime, path: upload.path, length: upload.bytes)
        // The one-time URL carries its own authority: the token is not sent there.
        let sent = try await api.send(api.request("POST", uploadURL, headers: [("Content-Type", form.contentType)], body: form.body,
                                                  authorized: false), retries: retries)
        return try await finish(sent, id: id, upload: upload)
    }

    /// How far ahead a direct upload URL's expiry may lie: 2 minutes to 6 hours (Images' own window).
    public static let directUploadExpiryWindow: ClosedRange<TimeInterval> = 120...21_600

    /// A one-time URL that lets whoever holds it upload one image without the API token: a single
    /// `multipart/form-data` POST whose `file` part is the image, before `expiry`. Until then the
    /// image exists as a draft under the returned id (`id` when given, a custom id for a public
    /// image, else one Images chooses). `metadata` (a JSON object of at most 1,024 bytes) stays
    /// with the image. `expiry` must lie 2 minutes to 6 hours ahead of the client's clock; any
    /// other is refused here, before a request is sent.
    public func directUpload(id: String? = nil, metadata: JSONValue? = nil, expiry: Date,
                             requireSignedURLs: Bool = false) async throws(SinkError) -> (id: String, uploadURL: String) {
        let ahead = expiry.timeIntervalSince(api.retrier.clock.now())
        guard Self.directUploadExpiryWindow.contains(ahead) else {
            throw SinkError(.rejected, .badRequest, "an Images direct upload URL must expire 2 minutes to 6 hours from now, "
                            + "not \(Int(ahead.rounded())) s from now: pick an expiry in that window")
        }
        if let metadata {
            guard case .object = metadata else {
                throw SinkError(.rejected, .badRequest, "Images metadata must be a JSON object, e.g. {\"owner\":\"…\"}")
            }
            guard metadata.compactText.utf8.count <= 1024 else {
                throw SinkError(.rejected, .badRequest,
                                "Images keeps at most 1,024 bytes of metadata, not \(metadata.compactText.utf8.count): leave some keys out")
            }
        }
        return try await reserve(id: id, metadata: metadata?.compactText, requireSignedURLs: requireSignedURLs, expiry: expiry,
                                 retries: nil)
    }

    /// `POST /images/v2/direct_upload`: a draft image and its one-time upload URL.
    func reserve(id: String?, metadata: String?, requireSignedURLs: Bool, expiry: Date?,
                 retries: RetryCount?) async throws(SinkError) -> (id: String, uploadURL: String) {
        var form = FormData()
        if let id { form.field("id", id) }
        if let metadata { form.field("metadata", metadata) }
        form.field("requireSignedURLs", requireSignedURLs ? "true" : "false")
        if let expiry { form.field("expiry", expiry.rfc3339) }
        let answer = try await api.send(api.request("POST", "\(base)/v2/direct_upload", headers: [("Content-Type", form.contentType)],
                                                    body: form.body), retries: retries)
        guard answer.success, case let .string(id)? = answer.result?["id"], case let .string(uploadURL)? = answer.result?["uploadURL"] else {
            throw (400..<500).contains(answer.status) ? answer.rejection
                : SinkError(.failed, .providerUnavailable, "Images gave no upload URL: \(answer.summary)")
        }
        return (id, uploadURL)
    }

    private func finish(_ answer: APIResponse, id: String, upload: Upload) async throws(SinkError) -> JSONValue {
        if answer.success, let result = answer.result {
            return Self.report(result, bytes: upload.bytes)
        }
        let exists = answer.status == 409 || answer.errorCodes.contains(5409)
            || answer.errors.contains { $0.message.lowercased().contains("already exist") }
        guard exists else {
            if (400..<500).contains(answer.status) { throw answer.rejection }
            throw SinkError(.failed, .providerUnavailable, "Images answered \(answer.summary)")
        }
        // Sent before (the answer was lost, or an earlier run): the same content counts as done.
        guard let existing = try await image(id: id) else {
            throw SinkError(.failed, .providerUnavailable, "Images says \(id) exists but cannot find it")
        }
        let meta = existing["meta"] ?? existing["metadata"]
        guard meta?["sha256"] == .string(upload.sha256), existing["draft"] != .bool(true) else {
            throw SinkError(.rejected, .providerRejected, "an image with id \(id) already exists with other content")
        }
        var result = Self.report(existing, bytes: upload.bytes)
        if case var .object(pairs) = result {
            pairs.append(("existing", true))
            result = .object(pairs)
        }
        return result
    }

    /// The manifest's result: id, the first delivery URL, every variant.
    static func report(_ image: JSONValue, bytes: Int64) -> JSONValue {
        var variants: [JSONValue] = []
        if case let .array(items)? = image["variants"] { variants = items }
        return .object([("id", image["id"] ?? .null), ("url", variants.first ?? .null), ("variants", .array(variants)),
                        ("bytes", .int(bytes))])
    }

    /// The image, or nil when there is none with this id.
    public func image(id: String) async throws(SinkError) -> JSONValue? {
        let answer = try await api.send(api.request("GET", "\(base)/v1/\(id.encodedPath)"))
        if answer.status == 404 { return nil }
        guard answer.success, let result = answer.result else { throw answer.rejection }
        return result
    }

    /// Deletes the image; false when there was none.
    public func delete(id: String) async throws(SinkError) -> Bool {
        let answer = try await api.send(api.request("DELETE", "\(base)/v1/\(id.encodedPath)"))
        if answer.status == 404 || answer.errorCodes.contains(5404) { return false }
        guard answer.success else { throw answer.rejection }
        return true
    }
}
