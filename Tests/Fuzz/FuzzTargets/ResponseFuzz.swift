import CloudflareClient
import Foundation
import HTTPTransport
import MediaPipeline

/// What servers send back, read the way the clients read it. The input is a raw HTTP answer:
/// header lines as libcurl hands them over (a status line first), a blank line, the body.
enum ResponseFuzz {
    static let streamBase = "https://api.cloudflare.com/client/v4/accounts/account/stream"
    static let now = Date(timeIntervalSince1970: 1_767_225_600)

    /// The answer the transport would build from these bytes.
    static func response(_ data: Data) -> HTTPResponse {
        let bytes = [UInt8](data)
        var end = bytes.count
        var bodyStart = bytes.count
        if let blank = find([13, 10, 13, 10], in: bytes) {
            (end, bodyStart) = (blank + 2, blank + 4)
        } else if let blank = find([10, 10], in: bytes) {
            (end, bodyStart) = (blank + 1, blank + 2)
        }
        var status = 200
        var headers: [(name: String, value: String)] = []
        for line in bytes[..<end].split(separator: 10, omittingEmptySubsequences: false) {
            let text = String(decoding: line + [10], as: UTF8.self)
            switch HTTPResponse.HeaderLine(text) {
            case .statusLine:
                headers.removeAll()
                status = text.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 200
            case let .field(name, value):
                headers.append((name, value))
            case .other:
                break
            }
        }
        return HTTPResponse(status: status, headers: headers, body: Data(bytes[bodyStart...]))
    }

    static func find(_ needle: [UInt8], in bytes: [UInt8]) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        return (0...(bytes.count - needle.count)).first { bytes[$0..<$0 + needle.count].elementsEqual(needle) }
    }

    /// A wait the retrier can honour and name: not negative, and whole seconds that fit an `Int`
    /// (its message on a wait past `maxWait` prints `Int(after)`).
    static func checkRetryAfter(_ response: HTTPResponse) {
        guard let wait = Backoff.retryAfter(response.header("Retry-After"), now: now) else { return }
        FuzzCheck.require(wait >= 0 && Int(exactly: wait.rounded(.down)) != nil,
                          "Retry-After '\(response.header("Retry-After") ?? "")' gives a wait of \(wait) s")
    }

    /// tus creation (`Location`, `stream-media-id`), HEAD and PATCH (`Upload-Offset`), and the
    /// API's verdict on the answer.
    static func tus(_ data: Data) -> String {
        let answer = response(data)
        checkRetryAfter(answer)
        _ = CloudflareAPI.classify(answer)
        if let offset = StreamClient.uploadOffset(answer.header("Upload-Offset")) {
            // tus offsets are byte counts; the upload loop subtracts them from the file's length.
            FuzzCheck.require(offset >= 0, "Upload-Offset '\(answer.header("Upload-Offset") ?? "")' read as \(offset)")
        }
        guard let location = answer.header("Location") else { return "no_location" }
        guard let created = StreamClient.createdUpload(location: location, mediaID: answer.header("stream-media-id"), base: streamBase)
        else { return "bad_location" }
        FuzzCheck.require(URL(string: created.url) != nil, "the upload URL \(created.url) does not parse again")
        return "created"
    }

    /// R2's answers: the retry rules, the refusal text, an upload id, a ListParts page, an ETag.
    static func s3(_ data: Data) -> String {
        let answer = response(data)
        checkRetryAfter(answer)
        _ = R2Client.classify(answer)
        _ = R2Client.rejection(answer)
        _ = S3XML.unquoted(S3XML.value("ETag", in: answer.body) ?? answer.header("ETag"))
        let page = S3XML.listedParts(answer.body)
        for part in page.parts.values {
            FuzzCheck.require(part.etag == part.etag.lowercased() && !part.etag.hasPrefix("\""), "an ETag kept its quotes or case")
        }
        if S3XML.value("UploadId", in: answer.body) != nil { return "upload_id" }
        if !page.parts.isEmpty { return "parts" }
        return S3XML.isError(answer.body) ? "error" : "other"
    }

    /// An API v4 envelope: success, result, error codes and the summary shown to people.
    static func api(_ data: Data) -> String {
        let answer = response(data)
        checkRetryAfter(answer)
        _ = CloudflareAPI.classify(answer)
        let envelope = APIResponse(answer)
        _ = StreamClient.refusal(envelope)
        _ = StreamClient.report(envelope.result, uid: "uid", bytes: 1)
        guard envelope.json != nil else { return "not_json" }
        return envelope.success ? "success" : "refused"
    }
}
