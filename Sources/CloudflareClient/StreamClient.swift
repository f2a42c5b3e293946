public import Foundation
import HTTPTransport
public import MediaPipeline

/// Cloudflare Stream: basic form uploads, tus resumable uploads, videos, live inputs.
public struct StreamClient: Sendable {
    public let api: CloudflareAPI

    public init(api: CloudflareAPI) { self.api = api }

    var base: String { "\(api.environment.accountBase)/stream" }

    /// tus chunks: multiples of 256 KiB from 5 MiB to 200 MiB; only the last may be shorter.
    public static let chunkGranularity: Int64 = 262_144
    public static let minChunk: Int64 = 5_242_880
    public static let maxChunk: Int64 = 209_715_200

    /// `clamp(roundDown(configured, 256 KiB), 5 MiB, 200 MiB)`.
    public static func chunkSize(_ configured: Int64) -> Int64 {
        min(max(configured / chunkGranularity * chunkGranularity, minChunk), maxChunk)
    }

    /// The length of the PATCH starting at `offset`.
    public static func chunk(at offset: Int64, of length: Int64, size: Int64) -> Int64 {
        min(size, length - offset)
    }

    /// One form POST (files up to 200 MB). Returns the video object.
    public func uploadBasic(path: String, bytes: Int64, filename: String, mime: String,
                            retries: RetryCount? = nil) async throws(SinkError) -> JSONValue {
        var form = FormData()
        form.file("file", filename: filename, contentType: mime, path: path, length: bytes)
        let answer = try await api.send(api.request("POST", base, headers: [("Content-Type", form.contentType)], body: form.body),
                                        retries: retries)
        guard answer.success, let video = answer.result else { throw Self.refusal(answer) }
        return video
    }

    // MARK: Direct creator uploads

    /// The largest video Stream takes: 30 GB.
    public static let maxUploadLength: Int64 = 30_000_000_000

    /// The longest video a direct creator upload may reserve: 6 hours.
    public static let maxDirectUploadDuration = 21_600

    /// A one-time URL that lets whoever holds it upload one video of at most 200 MB without the
    /// API token: a single `multipart/form-data` POST whose `file` part is the video, before
    /// `expiry`. Stream reserves `maxDurationSeconds` (1 to 21,600) of the account's storage until
    /// the video arrives or the URL expires; a longer video fails in processing. `meta` becomes the
    /// video's `meta`. Larger files need `directTusUpload`.
    public func directUpload(maxDurationSeconds: Int, expiry: Date,
                             meta: [String: String]) async throws(SinkError) -> (uid: String, uploadURL: String) {
        try checkDirectUpload(maxDurationSeconds: maxDurationSeconds, expiry: expiry)
        let body = JSONValue.object([("maxDurationSeconds", .int(maxDurationSeconds)), ("expiry", .string(expiry.rfc3339)),
                                     ("meta", .object(meta.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))])
        let answer = try await api.send(api.request("POST", "\(base)/direct_upload", headers: [("Content-Type", "application/json")],
                                                    body: [.bytes(Data(body.compactText.utf8))]))
        guard answer.success, case let .string(uid)? = answer.result?["uid"], case let .string(url)? = answer.result?["uploadURL"] else {
            throw Self.refusal(answer)
        }
        return (uid, url)
    }

    /// A one-time tus upload URL for a video of exactly `bytes` bytes (any size up to Stream's
    /// 30 GB): whoever holds it creates nothing, but sends the bytes with tus HEADs and PATCHes
    /// (Cloudflare's chunk rules apply) without the API token, before `expiry`. `maxDurationSeconds`
    /// and `expiry` go in the creation's `Upload-Metadata`, as does `name` (the video's
    /// `meta.name`). The uid is read from `stream-media-id`, else from the URL's last segment.
    public func directTusUpload(bytes: Int64, maxDurationSeconds: Int, expiry: Date,
                                name: String) async throws(SinkError) -> (uid: String, uploadURL: String) {
        try checkDirectUpload(maxDurationSeconds: maxDurationSeconds, expiry: expiry)
        guard (1...Self.maxUploadLength).contains(bytes) else {
            throw SinkError(.rejected, .badRequest, "a Stream upload holds 1 byte to 30 GB, not \(bytes) bytes")
        }
        let created = try await create(bytes: bytes, metadata: [("maxDurationSeconds", String(maxDurationSeconds)),
                                                               ("expiry", expiry.rfc3339), ("name", name)],
                                       retries: nil, directUser: true)
        return (created.uid, created.url)
    }

    /// Refuses, before any request, a duration Stream would refuse or an expiry already past.
    private func checkDirectUpload(maxDurationSeconds: Int, expiry: Date) throws(SinkError) {
        guard (1...Self.maxDirectUploadDuration).contains(maxDurationSeconds) else {
            throw SinkError(.rejected, .badRequest, "maxDurationSeconds must be 1 to \(Self.maxDirectUploadDuration) (6 hours) "
                            + "for a Stream direct upload, not \(maxDurationSeconds)")
        }
        guard expiry > api.retrier.clock.now() else {
            throw SinkError(.rejected, .badRequest, "a Stream direct upload URL must expire in the future, not at \(expiry.rfc3339)")
        }
    }

    /// The `Upload-Metadata` key (so an arbitrary `meta` entry of the video) that ties a tus
    /// upload to the journaled intent it was created for.
    public static let fingerprintKey = "mpfingerprint"

    /// A tus upload journaled through `checkpoint`. Before each creation the rendition's
    /// fingerprint (the saved one, else a new random one) is saved and sent in `Upload-Metadata`;
    /// the uid and URL are saved as soon as Stream answers, before any byte goes. A saved upload
    /// is resumed. A saved fingerprint without a uid means a run stopped between asking for an
    /// upload and hearing of it: the pending uploads that carry the fingerprint are deleted before
    /// a new one is created, so none stays behind. `created` hears each new uid once it is saved.
    public func uploadTus(path: String, bytes: Int64, metadata: [(String, String?)], chunkSize: Int64,
                          checkpoint: UploadCheckpoint, retries: RetryCount? = nil,
                          created: (String) -> Void = { _ in }) async throws(SinkError) -> (uid: String, resumedFrom: Int64) {
        var fingerprint = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        var resume: (uid: String, url: String)?
        if case let .string(saved)? = checkpoint.saved?["fingerprint"] { fingerprint = saved }
        if case let .string(uid)? = checkpoint.saved?["uid"], case let .string(url)? = checkpoint.saved?["url"] {
            resume = (uid, url)
        } else if checkpoint.saved?["fingerprint"] != nil {
            try await discardPendingUploads(fingerprint: fingerprint, retries: retries)
        }
        let count = retries ?? RetryCount()
        var retriedBefore = 0
        return try await uploadTus(path: path, bytes: bytes, metadata: metadata + [(Self.fingerprintKey, fingerprint)],
                                   chunkSize: chunkSize, resume: resume, retries: count, created: { uid, url throws(SinkError) in
            try await checkpoint.save(["uid": .string(uid), "url": .string(url), "fingerprint": .string(fingerprint)])
            // A creation that was retried may have created an upload whose answer was lost.
            if count.value > retriedBefore { try await discardPendingUploads(fingerprint: fingerprint, keeping: uid, retries: retries) }
            created(uid)
        }, creating: { () throws(SinkError) in
            try await checkpoint.save(["fingerprint": .string(fingerprint)])
            retriedBefore = count.value
        })
    }

    /// A tus upload: create, then PATCH chunks, always continuing from the server's offset.
    /// `created` hears each new upload's uid and URL before any byte is sent (a journal saves them
    /// there), and `creating` runs before each creation request (a journal saves the intent there);
    /// `resume` is such an upload of an interrupted run. Returns the uid and the offset `resume`
    /// went on from (0 when it started afresh).
    public func uploadTus(path: String, bytes: Int64, metadata: [(String, String?)], chunkSize: Int64,
                          resume: (uid: String, url: String)? = nil, retries: RetryCount? = nil,
                          created: (String, String) async throws(SinkError) -> Void = { _, _ in },
                          creating: () async throws(SinkError) -> Void = {})
        async throws(SinkError) -> (uid: String, resumedFrom: Int64) {
        let size = Self.chunkSize(chunkSize)
        /// Where to go on: the server's offset of `existing`, or a new upload when it is gone.
        func position(of existing: (uid: String, url: String)?) async throws(SinkError) -> ((uid: String, url: String), Int64) {
            if let existing, let known = try await self.offset(of: existing.url, retries: retries) { return (existing, known) }
            try await creating()
            let fresh = try await create(bytes: bytes, metadata: metadata, retries: retries)
            CrashPoint.reach("after_tus_created")
            try await created(fresh.uid, fresh.url)
            return (fresh, 0)
        }
        var (upload, offset) = try await position(of: resume)
        let resumedFrom = upload.url == resume?.url ? offset : 0
        var failures = 0
        var confirmed = 0
        while offset < bytes {
            let length = Self.chunk(at: offset, of: bytes, size: size)
            let request = tusRequest("PATCH", upload.url, extra: [("Upload-Offset", "\(offset)"),
                                                                 ("Content-Type", "application/offset+octet-stream")],
                                     body: [.file(path: path, offset: offset, length: length)])
            let (response, verdict) = await api.retrier.attempt(request, with: api.http) { response in
                [204, 200, 409, 460, 404, 410].contains(response.status) ? .done : CloudflareAPI.classify(response)
            }
            switch verdict {
            case let .fail(error):
                throw error
            case let .retry(code, detail, after):
                try await api.retrier.backOff(&failures, code, detail, after: after, retries: retries)
                // The server may have kept part of the chunk: ask where it stands.
                (upload, offset) = try await position(of: upload)
            case .done:
                let response = response!
                switch response.status {
                case 200, 204:
                    guard let next = Self.uploadOffset(response.header("Upload-Offset")), next > offset, next <= bytes else {
                        throw SinkError(.failed, .providerUnavailable, "Stream answered a PATCH without a valid Upload-Offset")
                    }
                    offset = next
                    failures = 0
                    confirmed += 1
                    CrashPoint.reach("after_chunk_uploaded", number: confirmed)
                case 409:
                    // Our offset was wrong: the server's counts.
                    try await api.retrier.backOff(&failures, .providerUnavailable, "Stream answered 409 (offset mismatch)", retries: retries)
                    (upload, offset) = try await position(of: upload)
                case 460:
                    // The chunk arrived damaged: send the same chunk again.
                    try await api.retrier.backOff(&failures, .integrityMismatch, "Stream answered 460 (checksum mismatch)", retries: retries)
                case 404, 410:
                    // The upload expired or was removed; start a new one.
                    try await api.retrier.backOff(&failures, .providerUnavailable, "the tus upload URL answered \(response.status)", retries: retries)
                    (upload, offset) = try await position(of: nil)
                default:
                    throw Self.refusal(APIResponse(response))
                }
            }
        }
        return (upload.uid, resumedFrom)
    }

    /// `POST /stream` with tus headers: the uid from `stream-media-id`, the upload URL from `Location`.
    /// `directUser`: `POST /stream?direct_user=true`, whose `Location` is a one-time URL that takes
    /// the HEADs and PATCHes without the API token.
    func create(bytes: Int64, metadata: [(String, String?)], retries: RetryCount?,
                directUser: Bool = false) async throws(SinkError) -> (uid: String, url: String) {
        let encoded = metadata.map { key, value in value.map { "\(key) \(Data($0.utf8).base64EncodedString())" } ?? key }
            .joined(separator: ",")
        let request = api.request("POST", directUser ? base + "?direct_user=true" : base,
                                  headers: [("Tus-Resumable", "1.0.0"), ("Upload-Length", "\(bytes)"), ("Upload-Metadata", encoded)])
        let answer = try await api.send(request, retries: retries)
        guard answer.status == 201 || answer.status == 200, let location = answer.http.header("Location") else {
            throw Self.refusal(answer)
        }
        guard let created = Self.createdUpload(location: location, mediaID: answer.http.header("stream-media-id"), base: base) else {
            throw SinkError(.failed, .providerUnavailable, "Stream gave an unusable upload URL")
        }
        return created
    }

    /// The upload a tus creation answer names: its URL (`Location`, resolved against `base`) and
    /// the video's uid (`stream-media-id`, else the URL's last segment); nil when `Location` is no URL.
    package static func createdUpload(location: String, mediaID: String?, base: String) -> (uid: String, url: String)? {
        guard let url = URL(string: location, relativeTo: URL(string: base))?.absoluteString else { return nil }
        return (mediaID ?? URL(string: url)?.lastPathComponent ?? "", url)
    }

    /// A tus `Upload-Offset` value as a byte count, or nil when it is missing, not a whole number
    /// or negative (the upload loop subtracts it from the file's length).
    package static func uploadOffset(_ header: String?) -> Int64? {
        guard let offset = header.flatMap(Int64.init), offset >= 0 else { return nil }
        return offset
    }

    /// The uids of the uploads still waiting for their bytes (`pendingupload`) whose `meta`
    /// carries `fingerprint`. Stream lists at most 1,000 videos a call, so the listing goes oldest
    /// first and each next call starts at the last creation time seen, until a call brings no video
    /// not seen before.
    public func pendingUploads(fingerprint: String, retries: RetryCount? = nil) async throws(SinkError) -> [String] {
        var seen = Set<String>()
        var found: [String] = []
        var start: String?
        while true {
            let query = "status=pendingupload&asc=true" + (start.map { "&start=\($0.encodedQueryValue)" } ?? "")
            let answer = try await api.send(api.request("GET", "\(base)?\(query)"), retries: retries)
            guard answer.success, case let .array(videos)? = answer.result else { throw Self.refusal(answer) }
            var fresh = false
            for video in videos {
                guard case let .string(uid)? = video["uid"], seen.insert(uid).inserted else { continue }
                fresh = true
                if video["meta"]?[Self.fingerprintKey] == .string(fingerprint) { found.append(uid) }
            }
            guard fresh, case let .string(created)? = videos.last?["created"] else { return found }
            start = created
        }
    }

    /// Deletes the pending uploads that carry `fingerprint`, except `keeping`; returns how many went.
    @discardableResult
    public func discardPendingUploads(fingerprint: String, keeping: String? = nil, retries: RetryCount? = nil) async throws(SinkError) -> Int {
        var deleted = 0
        for uid in try await pendingUploads(fingerprint: fingerprint, retries: retries) where uid != keeping {
            if try await delete(uid: uid) { deleted += 1 }
        }
        return deleted
    }

    /// The server's offset for an upload (`HEAD`), retried like any request; nil when the upload is gone (404/410).
    public func offset(of url: String, retries: RetryCount? = nil) async throws(SinkError) -> Int64? {
        let answer = try await api.send(tusRequest("HEAD", url), retries: retries)
        if answer.status == 404 || answer.status == 410 { return nil }
        guard let offset = Self.uploadOffset(answer.http.header("Upload-Offset")) else {
            throw SinkError(.failed, .providerUnavailable, "Stream answered HEAD with \(answer.summary) and no Upload-Offset")
        }
        return offset
    }

    /// A tus request; the token goes only to the API's own host.
    func tusRequest(_ method: String, _ url: String, extra: [(name: String, value: String)] = [], body: [BodyPiece] = []) -> HTTPRequest {
        let sameHost = URL(string: url)?.host == URL(string: base)?.host
        return api.request(method, url, headers: [("Tus-Resumable", "1.0.0")] + extra, body: body, authorized: sameHost)
    }

    /// The video, or nil when there is none.
    public func video(uid: String) async throws(SinkError) -> JSONValue? {
        let answer = try await api.send(api.request("GET", "\(base)/\(uid.encodedPath)"))
        if answer.status == 404 { return nil }
        guard answer.success, let video = answer.result else { throw Self.refusal(answer) }
        return video
    }

    /// Polls until the video is ready to stream or reports an error.
    public func waitUntilReady(uid: String, timeout: Double) async throws(SinkError) -> JSONValue {
        let deadline = api.retrier.clock.now().addingTimeInterval(timeout)
        var pause = 1.0
        while true {
            guard let video = try await video(uid: uid) else { throw SinkError(.failed, .providerUnavailable, "video \(uid) vanished") }
            if video["readyToStream"] == .bool(true) { return video }
            if video["status"]?["state"] == .string("error") {
                let why = video["status"]?["errorReasonText"].flatMap { if case let .string(s) = $0 { s } else { nil } } ?? "no reason given"
                throw SinkError(.rejected, .providerRejected, "Stream could not encode the video: \(why)")
            }
            guard api.retrier.clock.now() < deadline else {
                throw SinkError(.failed, .timeout, "video \(uid) was not ready to stream within \(Int(timeout)) s")
            }
            await api.retrier.clock.sleep(seconds: pause)
            pause = min(pause * 2, 15)
        }
    }

    /// Deletes the video; false when there was none.
    public func delete(uid: String) async throws(SinkError) -> Bool {
        let answer = try await api.send(api.request("DELETE", "\(base)/\(uid.encodedPath)"))
        if answer.status == 404 { return false }
        guard answer.success else { throw Self.refusal(answer) }
        return true
    }

    /// The manifest's result for a video.
    public static func report(_ video: JSONValue?, uid: String, bytes: Int64) -> JSONValue {
        var pairs: [(key: String, value: JSONValue)] = [("id", .string(uid))]
        if let hls = video?["playback"]?["hls"] { pairs.append(("url", hls)) }
        if let playback = video?["playback"] { pairs.append(("playback", playback)) }
        if let ready = video?["readyToStream"] { pairs.append(("readyToStream", ready)) }
        pairs.append(("bytes", .int(bytes)))
        return .object(pairs)
    }

    package static func refusal(_ answer: APIResponse) -> SinkError {
        (400..<500).contains(answer.status) ? answer.rejection
            : SinkError(.failed, .providerUnavailable, "Stream answered \(answer.summary)")
    }

    // MARK: Live inputs

    /// Creates a live input; the result holds the ingest URLs and keys (secrets: for the person who asked only).
    public func createLiveInput(name: String, recording: Bool) async throws(SinkError) -> JSONValue {
        let body = JSONValue.object([("meta", .object([("name", .string(name))])),
                                     ("recording", .object([("mode", .string(recording ? "automatic" : "off"))]))])
        let answer = try await api.send(api.request("POST", "\(base)/live_inputs", headers: [("Content-Type", "application/json")],
                                                    body: [.bytes(Data(body.compactText.utf8))]))
        guard answer.success, let input = answer.result else { throw Self.refusal(answer) }
        return input
    }

    public func liveInputs() async throws(SinkError) -> [JSONValue] {
        let answer = try await api.send(api.request("GET", "\(base)/live_inputs"))
        guard answer.success else { throw Self.refusal(answer) }
        if case let .array(items)? = answer.result?["liveInputs"] { return items }
        if case let .array(items)? = answer.result { return items }
        return []
    }

    /// Deletes a live input; false when there was none.
    public func deleteLiveInput(uid: String) async throws(SinkError) -> Bool {
        let answer = try await api.send(api.request("DELETE", "\(base)/live_inputs/\(uid.encodedPath)"))
        if answer.status == 404 { return false }
        guard answer.success else { throw Self.refusal(answer) }
        return true
    }
}
