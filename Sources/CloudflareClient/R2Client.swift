import Digests
public import Foundation
public import HTTPTransport
public import MediaPipeline

/// R2 over its S3 API, signed with SigV4 (region `auto`): single PUTs, multipart uploads with
/// R2's equal-part rule, HEAD to skip identical objects, delete, and a bucket check.
public struct R2Client: Sendable {
    public let http: CurlClient
    public let retrier: Retrier
    let signer: SigV4Signer
    /// `https://<account>.r2.cloudflarestorage.com` or the override.
    public let endpoint: String
    public let bucket: String
    /// Parts uploading at once in one multipart upload.
    public var partsInFlight = 4
    /// `max-parts` of each ListParts page when a multipart upload is resumed.
    public var partsPerListPage = 1000

    public init(environment: CloudflareEnvironment, http: CurlClient, retrier: Retrier) {
        self.http = http
        self.retrier = retrier
        endpoint = environment.r2EndpointBase
        bucket = environment[CloudflareEnvironment.r2Bucket] ?? ""
        signer = SigV4Signer(credentials: .init(accessKeyID: environment[CloudflareEnvironment.r2AccessKeyID] ?? "",
                                                secretAccessKey: environment[CloudflareEnvironment.r2SecretAccessKey] ?? ""),
                             region: "auto", service: "s3", s3Rules: true)
    }

    /// The one R2 client of a pipeline.
    public static func shared(_ context: FactoryContext, environment: CloudflareEnvironment) -> R2Client {
        context.shared.object("r2") {
            R2Client(environment: environment, http: CurlClient.forUploads(context.limits),
                     retrier: Retrier(backoff: Backoff(context.limits.retry), clock: SystemClock(), gate: nil))
        }
    }

    public static let credentialsHelp = "\(CloudflareEnvironment.r2AccessKeyID) and \(CloudflareEnvironment.r2SecretAccessKey) must be an R2 API token's key pair with Object Read & Write on the bucket"

    // MARK: Requests

    /// A signed request for `key` (nil: the bucket itself).
    package func request(_ method: String, key: String?, query: String = "", headers: [(name: String, value: String)] = [],
                 body: [BodyPiece] = [], payloadHash: String = Digest.emptySHA256Hex) -> HTTPRequest {
        let path = self.path(key: key)
        let url = endpoint + path + (query.isEmpty ? "" : "?" + query)
        var all = headers
        all.append(("host", Self.hostHeader(endpoint)))
        let signed = signer.signedHeaders(method: method, path: Self.basePath(endpoint) + path, query: query, headers: all,
                                          payloadHash: payloadHash, date: retrier.clock.now())
        let sent = all.filter { $0.name != "host" } + signed
        return HTTPRequest(method: method, url: url, headers: sent, body: body)
    }

    /// `/<bucket>[/<key>]`, path style, each segment percent-encoded as SigV4 wants it for S3.
    func path(key: String?) -> String {
        "/\(bucket.encodedPath)" + (key.map { "/" + $0.encodedPath } ?? "")
    }

    /// The longest a presigned URL may stay valid: 7 days (R2 and S3 take 1 s to 604,800 s).
    public static let presignedExpiryRange = 1...604_800

    /// A presigned URL that lets whoever holds it PUT one object under `key` without the R2
    /// credentials, until `expires` seconds after `now` (kept within `presignedExpiryRange`).
    ///
    /// The URL is bound to the declared type and length: `host`, `content-type` and
    /// `content-length` are signed, so the upload must send `Content-Type: contentType` and exactly
    /// `bytes` bytes, or R2 refuses it (`SignatureDoesNotMatch`). The payload is `UNSIGNED-PAYLOAD`.
    /// It works on the S3 endpoint only (`<account>.r2.cloudflarestorage.com`), never on a custom
    /// domain or r2.dev, and R2 has no presigned POST.
    public func presignedPut(key: String, contentType: String, bytes: Int64, expires: Int, now: Date = Date()) -> URL {
        let path = self.path(key: key)
        let headers: [(name: String, value: String)] = [("host", Self.hostHeader(endpoint)), ("content-type", contentType),
                                                        ("content-length", String(bytes))]
        let seconds = min(max(expires, Self.presignedExpiryRange.lowerBound), Self.presignedExpiryRange.upperBound)
        let query = signer.presign(method: "PUT", path: Self.basePath(endpoint) + path, query: "", headers: headers,
                                   expires: seconds, date: now).query
        // The path and query are percent-encoded, so only an endpoint that is no URL (which
        // `CloudflareEnvironment.endpointProblems()` reports before any client is made) fails here.
        guard let url = URL(string: endpoint + path + "?" + query) else {
            preconditionFailure("\(CloudflareEnvironment.r2Endpoint) \(endpoint) is not a URL")
        }
        return url
    }

    /// `host[:port]` as libcurl sends it (default ports left out).
    static func hostHeader(_ endpoint: String) -> String {
        guard let url = URL(string: endpoint), let host = url.host else { return endpoint }
        let bracketed = host.contains(":") ? "[\(host)]" : host
        if let port = url.port, !(url.scheme == "https" && port == 443), !(url.scheme == "http" && port == 80) {
            return "\(bracketed):\(port)"
        }
        return bracketed
    }

    /// The endpoint's own path (an emulator may sit under one), without a trailing slash.
    static func basePath(_ endpoint: String) -> String {
        guard let url = URL(string: endpoint) else { return "" }
        let path = url.path
        return path == "/" ? "" : path
    }

    func send(_ request: HTTPRequest, retries: RetryCount? = nil) async throws(SinkError) -> HTTPResponse {
        try await retrier.send(request, with: http, retries: retries, classify: Self.classify)
    }

    /// S3's retry rules: 5xx, 408, 429, `SlowDown`/`InternalError`, and a 200 whose body is an `<Error>`.
    package static func classify(_ response: HTTPResponse) -> Verdict {
        if let redirect = Retrier.redirectVerdict(response) { return redirect }
        let code = S3XML.value("Code", in: response.body)
        let summary = code.map { "HTTP \(response.status) \($0)" } ?? "HTTP \(response.status)"
        if ["SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout"].contains(code ?? "")
            || [408, 429, 500, 502, 503, 504].contains(response.status) {
            return .retry(response.status == 429 || code == "SlowDown" ? .rateLimited : .providerUnavailable,
                          "R2 answered \(summary)", after: Backoff.retryAfter(response.header("Retry-After"), now: Date()))
        }
        if response.status == 200, S3XML.isError(response.body) {
            return .retry(.providerUnavailable, "R2 answered 200 with an error: \(code ?? "unknown")")
        }
        if ["BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest"].contains(code ?? "") {
            return .retry(.integrityMismatch, "R2 received other bytes than were sent (\(summary))")
        }
        if response.status == 403 || ["SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"].contains(code ?? "") {
            return .fail(SinkError(.fatal, .authFailed, "R2 refused the credentials (\(summary)): \(credentialsHelp)"))
        }
        if code == "NoSuchBucket" {
            return .fail(SinkError(.fatal, .authFailed, "R2 has no bucket named by \(CloudflareEnvironment.r2Bucket) (\(summary))"))
        }
        return .done
    }

    package static func rejection(_ response: HTTPResponse) -> SinkError {
        let code = S3XML.value("Code", in: response.body) ?? "HTTP \(response.status)"
        let message = S3XML.value("Message", in: response.body).map { ": " + ServerText.clean($0) } ?? ""
        if (400..<500).contains(response.status) {
            return SinkError(.rejected, .providerRejected, "R2 refused the object (\(response.status) \(code)\(message))")
        }
        return SinkError(.failed, .providerUnavailable, "R2 answered \(response.status) \(code)\(message)")
    }

    // MARK: Objects

    /// What an object upload carries besides its bytes.
    public struct Object: Sendable {
        public var key: String
        public var path: String
        public var bytes: Int64
        public var contentType: String
        public var contentDisposition: String?
        /// SHA-256 of the whole object, stored as `x-amz-meta-sha256`.
        public var sha256: String

        public init(key: String, path: String, bytes: Int64, contentType: String, contentDisposition: String?, sha256: String) {
            self.key = key
            self.path = path
            self.bytes = bytes
            self.contentType = contentType
            self.contentDisposition = contentDisposition
            self.sha256 = sha256
        }

        var headers: [(name: String, value: String)] {
            var headers: [(name: String, value: String)] = [("Content-Type", contentType), ("x-amz-meta-sha256", sha256)]
            if let contentDisposition { headers.append(("Content-Disposition", contentDisposition)) }
            return headers
        }
    }

    /// The object's `x-amz-meta-sha256`, or nil when there is no object under `key`.
    public func head(key: String) async throws(SinkError) -> (exists: Bool, sha256: String?, bytes: Int64?) {
        let response = try await send(request("HEAD", key: key))
        if response.status == 404 { return (false, nil, nil) }
        guard (200..<300).contains(response.status) else { throw Self.rejection(response) }
        return (true, response.header("x-amz-meta-sha256"), response.header("Content-Length").flatMap(Int64.init))
    }

    /// Uploads the object unless an identical one (same `x-amz-meta-sha256`) is already there;
    /// a multipart upload an interrupted run saved in `checkpoint` is resumed. Returns whether
    /// bytes were sent and how many parts of the earlier run were kept.
    public func upload(_ object: Object, multipartThreshold: Int64, partSize: Int64, retries: RetryCount? = nil,
                       checkpoint: UploadCheckpoint = .none) async throws(SinkError) -> (sent: Bool, resumedParts: Int) {
        let existing = try await head(key: object.key)
        if existing.exists, existing.sha256 == object.sha256 { return (false, 0) }
        if object.bytes <= multipartThreshold {
            try await put(object, retries: retries)
            return (true, 0)
        }
        return (true, try await multipart(object, partSize: partSize, retries: retries, checkpoint: checkpoint))
    }

    /// One PUT signed with the object's SHA-256 (which R2 checks against the body). The MD5 is
    /// taken on another thread while the bytes go out, and the returned ETag must equal it.
    func put(_ object: Object, retries: RetryCount?) async throws(SinkError) {
        let path = object.path, length = object.bytes
        let md5 = Task.detached { Result { () throws(SinkError) in try FileDigest.md5(path: path, offset: 0, length: length) } }
        var failures = 0
        while true {
            let response = try await send(request("PUT", key: object.key, headers: object.headers,
                                                  body: [.file(path: object.path, offset: 0, length: object.bytes)],
                                                  payloadHash: object.sha256), retries: retries)
            guard (200..<300).contains(response.status) else { throw Self.rejection(response) }
            if S3XML.unquoted(response.header("ETag")) == Digest.hex(try await md5.value.get()) { return }
            try await retrier.backOff(&failures, .integrityMismatch,
                                      "R2's ETag for \(object.key) is not the MD5 of the bytes sent", retries: retries)
        }
    }

    /// A multipart upload: one part size for all, the last part shorter, a few parts in flight,
    /// each part's ETag checked against its MD5 and the final ETag against the parts'.
    ///
    /// The key and part size are saved in `checkpoint` before the upload is created, and the
    /// upload id before the first part goes. An upload saved there by an interrupted run (same key
    /// and part size) is resumed: its listed parts whose size and ETag match our bytes are kept,
    /// the others sent. A run stopped between creating the upload and saving its id left only the
    /// key: the uploads R2 holds open for that key are then found by listing them, one is resumed
    /// and the others are aborted, so none is left behind. Definitive failures abort the upload so
    /// no partial object is left; transient ones leave a journaled upload for the rerun to resume.
    /// Returns the number of parts kept.
    func multipart(_ object: Object, partSize: Int64, retries: RetryCount?,
                   checkpoint: UploadCheckpoint = .none) async throws(SinkError) -> Int {
        var resumed: (uploadID: String, parts: [Int: ListedPart])?
        if let saved = checkpoint.saved, case let .string(key)? = saved["key"] {
            let sameShape = key == object.key && saved["partSize"] == .int(partSize)
            if case let .string(id)? = saved["uploadId"] {
                if sameShape {
                    // nil: R2 no longer knows it (completed, aborted or expired), so a new one starts.
                    resumed = try await listParts(key: key, uploadID: id, retries: retries).map { (id, $0) }
                } else {
                    // Cut another way (the pipeline changed): it can never complete, so it is let go.
                    _ = try? await send(request("DELETE", key: key, query: "uploadId=\(id.encodedQueryValue)"))
                }
            } else {
                // The id was never heard: R2 may hold the upload all the same.
                resumed = try await adoptOpenUpload(key: key, keep: sameShape, retries: retries)
            }
        }
        let uploadID: String
        if let resumed {
            uploadID = resumed.uploadID
        } else {
            try await checkpoint.save(["key": .string(object.key), "partSize": .int(partSize)])
            uploadID = try await createMultipart(object, retries: retries)
            CrashPoint.reach("after_multipart_created")
        }
        let query = "uploadId=\(uploadID.encodedQueryValue)"
        do {
            if checkpoint.saved?["uploadId"] != .string(uploadID) {
                try await checkpoint.save(["uploadId": .string(uploadID), "key": .string(object.key), "partSize": .int(partSize)])
            }
            let parts = try await uploadParts(object, uploadID: uploadID, partSize: partSize, listed: resumed?.parts ?? [:],
                                              retries: retries)
            try await complete(object, query: query, parts: parts.map { ($0.number, $0.md5) }, retries: retries)
            return parts.filter(\.kept).count
        } catch {
            let transient: Set<ReasonCode> = [.networkError, .timeout, .providerUnavailable, .rateLimited, .interrupted]
            if checkpoint === UploadCheckpoint.none || error.severity != .failed || !transient.contains(error.reason.code) {
                _ = try? await send(request("DELETE", key: object.key, query: query))
            }
            throw error
        }
    }

    /// `CreateMultipartUpload` with the object's metadata: the new upload id.
    package func createMultipart(_ object: Object, retries: RetryCount?) async throws(SinkError) -> String {
        let created = try await send(request("POST", key: object.key, query: "uploads", headers: object.headers), retries: retries)
        guard (200..<300).contains(created.status), let uploadID = S3XML.value("UploadId", in: created.body) else {
            throw Self.rejection(created)
        }
        return uploadID
    }

    /// The multipart uploads R2 holds open for exactly `key` (ListMultipartUploads with the key as
    /// prefix): with `keep`, the first one R2 still lists parts for is returned to be resumed; every
    /// other one is aborted.
    func adoptOpenUpload(key: String, keep: Bool, retries: RetryCount?) async throws(SinkError)
        -> (uploadID: String, parts: [Int: ListedPart])? {
        let response = try await send(request("GET", key: nil, query: "prefix=\(key.encodedQueryValue)&uploads"), retries: retries)
        guard (200..<300).contains(response.status) else { throw Self.rejection(response) }
        let ids = S3XML.values("Upload", in: String(decoding: response.body, as: UTF8.self)).compactMap { upload in
            S3XML.values("Key", in: upload).first == key ? S3XML.values("UploadId", in: upload).first : nil
        }
        var adopted: (uploadID: String, parts: [Int: ListedPart])?
        for id in ids {
            if keep, adopted == nil, let parts = try await listParts(key: key, uploadID: id, retries: retries) {
                adopted = (id, parts)
            } else {
                _ = try? await send(request("DELETE", key: key, query: "uploadId=\(id.encodedQueryValue)"))
            }
        }
        return adopted
    }

    /// A part an unfinished multipart upload holds, as ListParts describes it.
    package struct ListedPart: Sendable, Equatable {
        package var etag: String
        package var size: Int64
    }

    /// The parts of an unfinished multipart upload, read page by page (`max-parts`,
    /// `part-number-marker`), or nil when R2 no longer knows the upload (`NoSuchUpload`).
    func listParts(key: String, uploadID: String, retries: RetryCount?) async throws(SinkError) -> [Int: ListedPart]? {
        var parts: [Int: ListedPart] = [:]
        var marker = 0
        while true {
            let query = "max-parts=\(partsPerListPage)" + (marker > 0 ? "&part-number-marker=\(marker)" : "")
                + "&uploadId=\(uploadID.encodedQueryValue)"
            let response = try await send(request("GET", key: key, query: query), retries: retries)
            if response.status == 404, S3XML.value("Code", in: response.body) == "NoSuchUpload" { return nil }
            guard (200..<300).contains(response.status) else { throw Self.rejection(response) }
            let page = S3XML.listedParts(response.body)
            parts.merge(page.parts) { _, later in later }
            guard let next = page.nextMarker, next > marker else { return parts }
            marker = next
        }
    }

    /// Part numbers and their MD5s, in order; `kept` when a part in `listed` (stored by an earlier
    /// run) has the size and ETag of our bytes, so it was not sent again.
    func uploadParts(_ object: Object, uploadID: String, partSize: Int64, listed: [Int: ListedPart],
                     retries: RetryCount?) async throws(SinkError) -> [(number: Int, md5: [UInt8], kept: Bool)] {
        let count = Int((object.bytes + partSize - 1) / partSize)
        let client = self
        do {
            return try await withThrowingTaskGroup(of: (number: Int, md5: [UInt8], kept: Bool).self) { group in
                var results: [(number: Int, md5: [UInt8], kept: Bool)] = []
                var next = 1
                var sent = 0
                func start() {
                    let number = next
                    next += 1
                    group.addTask {
                        let offset = Int64(number - 1) * partSize
                        let length = min(partSize, object.bytes - offset)
                        if let part = listed[number], part.size == length {
                            let md5 = try FileDigest.md5(path: object.path, offset: offset, length: length)
                            if part.etag == Digest.hex(md5) { return (number, md5, true) }
                        }
                        let md5 = try await client.uploadPart(object, uploadID: uploadID, number: number, offset: offset,
                                                              length: length, retries: retries)
                        return (number, md5, false)
                    }
                }
                while next <= min(count, partsInFlight) { start() }
                while let part = try await group.next() {
                    results.append(part)
                    if !part.kept {
                        sent += 1
                        CrashPoint.reach("after_part_uploaded", number: sent)
                    }
                    if next <= count { start() }
                }
                return results.sorted { $0.number < $1.number }
            }
        } catch let error as SinkError {
            throw error
        } catch {
            throw SinkError(.failed, .networkError, "\(error)")
        }
    }

    /// `UploadPart` with Content-MD5, retried until R2's ETag is the part's MD5; returns the MD5.
    package func uploadPart(_ object: Object, uploadID: String, number: Int, offset: Int64, length: Int64,
                            retries: RetryCount?) async throws(SinkError) -> [UInt8] {
        // Content-MD5 makes R2 check the part; the payload is left unsigned so each byte is hashed once.
        let md5 = try FileDigest.md5(path: object.path, offset: offset, length: length)
        let query = "partNumber=\(number)&uploadId=\(uploadID.encodedQueryValue)"
        var failures = 0
        while true {
            let response = try await send(request("PUT", key: object.key, query: query,
                                                  headers: [("Content-MD5", Data(md5).base64EncodedString())],
                                                  body: [.file(path: object.path, offset: offset, length: length)],
                                                  payloadHash: SigV4Signer.unsignedPayload), retries: retries)
            guard (200..<300).contains(response.status) else { throw Self.rejection(response) }
            if S3XML.unquoted(response.header("ETag")) == Digest.hex(md5) { return md5 }
            try await retrier.backOff(&failures, .integrityMismatch,
                                      "R2's ETag for part \(number) of \(object.key) is not the MD5 of the bytes sent", retries: retries)
        }
    }

    func complete(_ object: Object, query: String, parts: [(number: Int, md5: [UInt8])], retries: RetryCount?) async throws(SinkError) {
        let xml = "<CompleteMultipartUpload>" + parts.map {
            "<Part><PartNumber>\($0.number)</PartNumber><ETag>\"\(Digest.hex($0.md5))\"</ETag></Part>"
        }.joined() + "</CompleteMultipartUpload>"
        let body = Data(xml.utf8)
        let expected = Digest.hex(Digest.md5(parts.flatMap(\.md5))) + "-\(parts.count)"
        let response = try await send(request("POST", key: object.key, query: query, headers: [("Content-Type", "application/xml")],
                                              body: [.bytes(body)], payloadHash: Digest.sha256Hex(body)), retries: retries)
        if response.status == 404, S3XML.value("Code", in: response.body) == "NoSuchUpload" {
            // Completed by an earlier try whose answer was lost: the object tells.
            let existing = try await head(key: object.key)
            if existing.exists, existing.sha256 == object.sha256 { return }
            // The upload vanished and the key does not hold these bytes: a rerun starts afresh.
            throw SinkError(.failed, .providerUnavailable, "R2 no longer knows the multipart upload of \(object.key) (NoSuchUpload)")
        }
        guard (200..<300).contains(response.status) else { throw Self.rejection(response) }
        let etag = S3XML.unquoted(S3XML.value("ETag", in: response.body) ?? response.header("ETag"))
        guard etag == expected else {
            throw SinkError(.failed, .integrityMismatch,
                            "R2's ETag for \(object.key) (\(etag ?? "none")) is not the one its parts make (\(expected))")
        }
    }

    /// Deletes the object; S3 answers 204 whether or not it existed.
    public func delete(key: String) async throws(SinkError) {
        let response = try await send(request("DELETE", key: key))
        guard (200..<300).contains(response.status) else { throw Self.rejection(response) }
    }

    /// `HEAD /<bucket>`: the status says whether the bucket is there and the key pair may use it.
    public func headBucket() async throws(SinkError) -> Int {
        try await send(request("HEAD", key: nil)).status
    }
}

/// The MD5 of a byte range of a file, read in 1 MiB pieces into one buffer.
enum FileDigest {
    static func md5(path: String, offset: Int64, length: Int64) throws(SinkError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SinkError(.failed, .stageFailed, "cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let md5 = MD5Observer()
        let size = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        var done: Int64 = 0
        while done < length {
            let n = pread(fd, buffer, Int(min(Int64(size), length - done)), off_t(offset + done))
            guard n > 0 else { throw SinkError(.failed, .sourceChanged, "\(path) became shorter while it was being read") }
            md5.consume(UnsafeRawBufferPointer(start: buffer, count: n))
            done += Int64(n)
        }
        return md5.digest
    }
}

/// The few values read from S3's XML answers.
package enum S3XML {
    package static func value(_ tag: String, in data: Data) -> String? {
        values(tag, in: String(decoding: data.prefix(64 * 1024), as: UTF8.self)).first
    }

    /// The text of every `<tag>` element in `text`, in order (for nested ones, read further with this).
    package static func values(_ tag: String, in text: String) -> [String] {
        var found: [String] = []
        var rest = text[...]
        while let open = rest.range(of: "<\(tag)>"), let close = rest.range(of: "</\(tag)>", range: open.upperBound..<rest.endIndex) {
            found.append(String(rest[open.upperBound..<close.lowerBound])
                .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#34;", with: "\"")
                .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
                .replacingOccurrences(of: "&apos;", with: "'").replacingOccurrences(of: "&amp;", with: "&"))
            rest = rest[close.upperBound...]
        }
        return found
    }

    package static func isError(_ data: Data) -> Bool {
        String(decoding: data.prefix(512), as: UTF8.self).contains("<Error>")
    }

    package static func unquoted(_ etag: String?) -> String? {
        etag?.trimmingCharacters(in: CharacterSet(charactersIn: "\" ")).lowercased()
    }

    /// One page of a ListParts answer: each complete `<Part>` by number (a later duplicate
    /// wins), and the marker of the next page when `IsTruncated` says there is one.
    package static func listedParts(_ body: Data) -> (parts: [Int: R2Client.ListedPart], nextMarker: Int?) {
        let text = String(decoding: body, as: UTF8.self)
        var parts: [Int: R2Client.ListedPart] = [:]
        for part in values("Part", in: text) {
            guard let number = values("PartNumber", in: part).first.flatMap({ Int($0) }),
                  let etag = unquoted(values("ETag", in: part).first),
                  let size = values("Size", in: part).first.flatMap({ Int64($0) }) else { continue }
            parts[number] = R2Client.ListedPart(etag: etag, size: size)
        }
        guard values("IsTruncated", in: text).first == "true" else { return (parts, nil) }
        return (parts, values("NextPartNumberMarker", in: text).first.flatMap { Int($0) })
    }
}

extension String {
    /// RFC 3986 unreserved characters kept, everything else percent-encoded (for query values).
    var encodedQueryValue: String {
        addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")) ?? self
    }
}
