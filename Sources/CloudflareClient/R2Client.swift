import Foundation
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
            R2Client(environment: environment, http: CurlClient(),
                     retrier: Retrier(backoff: Backoff(context.limits.retry), clock: SystemClock(), gate: nil))
        }
    }

    public static let credentialsHelp = "\(CloudflareEnvironment.r2AccessKeyID) and \(CloudflareEnvironment.r2SecretAccessKey) must be an R2 API token's key pair with Object Read & Write on the bucket"

    // MARK: Requests

    /// A signed request for `key` (nil: the bucket itself).
    func request(_ method: String, key: String?, query: String = "", headers: [(name: String, value: String)] = [],
                 body: [BodyPiece] = [], payloadHash: String = Digest.emptySHA256Hex) -> HTTPRequest {
        var path = "/\(bucket.encodedPath)"
        if let key { path += "/" + key.encodedPath }
        let url = endpoint + path + (query.isEmpty ? "" : "?" + query)
        var all = headers
        all.append(("host", Self.hostHeader(endpoint)))
        let signed = signer.signedHeaders(method: method, path: Self.basePath(endpoint) + path, query: query, headers: all,
                                          payloadHash: payloadHash, date: retrier.clock.now())
        let sent = all.filter { $0.name != "host" } + signed
        return HTTPRequest(method: method, url: url, headers: sent, body: body)
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
    static func classify(_ response: HTTPResponse) -> Verdict {
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

    static func rejection(_ response: HTTPResponse) -> SinkError {
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

    /// Uploads the object unless an identical one (same `x-amz-meta-sha256`) is already there.
    /// Returns whether bytes were sent.
    public func upload(_ object: Object, multipartThreshold: Int64, partSize: Int64,
                       retries: RetryCount? = nil) async throws(SinkError) -> Bool {
        let existing = try await head(key: object.key)
        if existing.exists, existing.sha256 == object.sha256 { return false }
        if object.bytes <= multipartThreshold {
            try await put(object, retries: retries)
        } else {
            try await multipart(object, partSize: partSize, retries: retries)
        }
        return true
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
    /// each part's ETag checked against its MD5 and the final ETag against the parts'. Any
    /// failure aborts the upload so no partial object is left.
    func multipart(_ object: Object, partSize: Int64, retries: RetryCount?) async throws(SinkError) {
        let created = try await send(request("POST", key: object.key, query: "uploads", headers: object.headers), retries: retries)
        guard (200..<300).contains(created.status), let uploadID = S3XML.value("UploadId", in: created.body) else {
            throw Self.rejection(created)
        }
        let query = "uploadId=\(uploadID.encodedQueryValue)"
        do {
            let parts = try await uploadParts(object, uploadID: uploadID, partSize: partSize, retries: retries)
            try await complete(object, query: query, parts: parts, retries: retries)
        } catch {
            _ = try? await send(request("DELETE", key: object.key, query: query))
            throw error
        }
    }

    /// Part numbers and their MD5s, in order.
    func uploadParts(_ object: Object, uploadID: String, partSize: Int64,
                     retries: RetryCount?) async throws(SinkError) -> [(number: Int, md5: [UInt8])] {
        let count = Int((object.bytes + partSize - 1) / partSize)
        let client = self
        do {
            return try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
                var results: [(number: Int, md5: [UInt8])] = []
                var next = 1
                func start() {
                    let number = next
                    next += 1
                    group.addTask {
                        let offset = Int64(number - 1) * partSize
                        let length = min(partSize, object.bytes - offset)
                        let md5 = try await client.uploadPart(object, uploadID: uploadID, number: number, offset: offset,
                                                              length: length, retries: retries)
                        return (number, md5)
                    }
                }
                while next <= min(count, partsInFlight) { start() }
                while let (number, md5) = try await group.next() {
                    results.append((number, md5))
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

    func uploadPart(_ object: Object, uploadID: String, number: Int, offset: Int64, length: Int64,
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
enum S3XML {
    static func value(_ tag: String, in data: Data) -> String? {
        let text = String(decoding: data.prefix(64 * 1024), as: UTF8.self)
        guard let open = text.range(of: "<\(tag)>"), let close = text.range(of: "</\(tag)>", range: open.upperBound..<text.endIndex) else {
            return nil
        }
        return String(text[open.upperBound..<close.lowerBound])
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&lt;", with: "<")
            .replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }

    static func isError(_ data: Data) -> Bool {
        String(decoding: data.prefix(512), as: UTF8.self).contains("<Error>")
    }

    static func unquoted(_ etag: String?) -> String? {
        etag?.trimmingCharacters(in: CharacterSet(charactersIn: "\" ")).lowercased()
    }
}

extension String {
    /// RFC 3986 unreserved characters kept, everything else percent-encoded (for query values).
    var encodedQueryValue: String {
        addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")) ?? self
    }
}
