import CloudflareClient
import Foundation
import HTTPTransport
import MediaPipeline
import TestSupport
import Testing

/// R2 presigned PUT URLs: each URL compared with the one botocore (an independent SigV4
/// implementation) makes for the same key, headers and time, then used by curl against moto.
/// moto cannot check query signatures (with its checks on it answers 500 to them), so the upload
/// runs against a server of its own with `--no-auth`; the signature itself is botocore's check.
@Suite(.serialized)
struct PresignedPutTests {
    static let time = Date(timeIntervalSince1970: 1_800_000_123)
    static let accessKey = "AKIAR2EXAMPLE0000001"
    static let secretKey = "r2/example+secret/key0000000000000000000"

    /// A client of `endpoint` that sends nothing: presigning needs no server.
    static func client(endpoint: String = "https://0123456789abcdef.r2.cloudflarestorage.com", bucket: String = "media",
                       keys: (String, String) = (accessKey, secretKey)) -> R2Client {
        R2Client(environment: CloudflareEnvironment(["CLOUDFLARE_R2_ENDPOINT": endpoint, "CLOUDFLARE_R2_BUCKET_NAME": bucket,
                                                     "CLOUDFLARE_R2_ACCESS_KEY_ID": keys.0,
                                                     "CLOUDFLARE_R2_SECRET_ACCESS_KEY": keys.1], assumeConfigured: false),
                 http: CurlClient(), retrier: Retrier(backoff: Backoff(attempts: 1, baseDelay: 0, maxDelay: 0), clock: SystemClock(), gate: nil))
    }

    @Test("the URL is the one botocore's S3SigV4QueryAuth makes for the same key, headers and time", arguments: [
        ("https://0123456789abcdef.r2.cloudflarestorage.com", "lessons/01/intro.mp4", "video/mp4", Int64(52_428_800), 3600),
        ("https://0123456789abcdef.eu.r2.cloudflarestorage.com", "a b+c/café (1) 50%.pdf", "application/pdf", 1, 604_800),
        ("http://127.0.0.1:9000", "日本語/ファイル 名.png", "image/png", 123_456, 1),
        ("https://r2.example.test/under/a/path", "x=y&z/~tilde;semi,comma@[1].txt", "text/plain; charset=utf-8", 0, 900),
    ])
    func theURLIsBotocores(_ endpoint: String, _ key: String, _ type: String, _ bytes: Int64, _ expires: Int) throws {
        let url = Self.client(endpoint: endpoint).presignedPut(key: key, contentType: type, bytes: bytes, expires: expires, now: Self.time)
        let expected = try Botocore.presignedPut(endpoint: endpoint, bucket: "media", key: key, contentType: type, bytes: bytes,
                                                 expires: expires, time: Self.time, keys: (Self.accessKey, Self.secretKey))
        #expect(url.absoluteString == expected)
        let query = Self.query(url)
        #expect(query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256")
        #expect(query["X-Amz-Credential"] == "\(Self.accessKey)/20270115/auto/s3/aws4_request")
        #expect(query["X-Amz-Date"] == "20270115T080203Z")
        #expect(query["X-Amz-Expires"] == "\(expires)")
        #expect(query["X-Amz-SignedHeaders"] == "content-length;content-type;host")
        #expect(query["X-Amz-Signature"]?.count == 64)
        #expect(url.absoluteString.contains(Self.secretKey) == false)
    }

    @Test("the signature binds the content type, the length, the key and the time")
    func theSignatureBindsTypeAndLength() throws {
        let r2 = Self.client()
        func signature(key: String = "a/b.mp4", type: String = "video/mp4", bytes: Int64 = 1000, expires: Int = 600,
                       now: Date = Self.time) -> String? {
            Self.query(r2.presignedPut(key: key, contentType: type, bytes: bytes, expires: expires, now: now))["X-Amz-Signature"]
        }
        let base = try #require(signature())
        #expect(signature() == base)
        let variants = [signature(type: "video/webm"), signature(type: "application/octet-stream"), signature(bytes: 1001),
                        signature(bytes: 999), signature(key: "a/c.mp4"), signature(expires: 601),
                        signature(now: Self.time.addingTimeInterval(1))]
        #expect(Set(variants.compactMap { $0 }).count == variants.count)
        #expect(!variants.contains(base))
        // botocore agrees that another declared type or length gives another signature: the same
        // URL cannot be used for them.
        for (type, bytes) in [("video/webm", Int64(1000)), ("video/mp4", 1001)] {
            let other = try Botocore.presignedPut(endpoint: "https://0123456789abcdef.r2.cloudflarestorage.com", bucket: "media",
                                                  key: "a/b.mp4", contentType: type, bytes: bytes, expires: 600, time: Self.time,
                                                  keys: (Self.accessKey, Self.secretKey))
            #expect(Self.query(try #require(URL(string: other)))["X-Amz-Signature"] != base)
        }
    }

    @Test("X-Amz-Expires is kept within R2's 1 s … 7 days", arguments: [(-5, 1), (0, 1), (1, 1), (604_800, 604_800), (604_801, 604_800)])
    func expiryIsKeptInRange(_ asked: Int, _ sent: Int) {
        let url = Self.client().presignedPut(key: "k", contentType: "image/png", bytes: 1, expires: asked, now: Self.time)
        #expect(Self.query(url)["X-Amz-Expires"] == "\(sent)")
    }

    @Test("AWS's published presigned GET example signs to its published signature")
    func awsPublishedExample() {
        // https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
        let signer = SigV4Signer(credentials: .init(accessKeyID: "AKIAIOSFODNN7EXAMPLE",
                                                    secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                                 region: "us-east-1", service: "s3", s3Rules: true)
        let (query, signature) = signer.presign(method: "GET", path: "/test.txt", query: "",
                                                headers: [("Host", "examplebucket.s3.amazonaws.com")], expires: 86_400,
                                                date: Date(timeIntervalSince1970: 1_369_353_600))
        #expect(signature.signature == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
        #expect(query.hasSuffix("&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"))
        #expect(signature.authorization.isEmpty)
    }

    @Test func aPresignedPutStoresTheDeclaredBytesWithoutCredentials() async throws {
        let fake = try await S3Fake(arguments: ["--no-auth"])
        defer { fake.server.stop() }
        let r2 = R2Client(environment: CloudflareEnvironment(fake.environment, assumeConfigured: false), http: CurlClient(),
                          retrier: Retrier(backoff: Backoff(attempts: 1, baseDelay: 0, maxDelay: 0), clock: SystemClock(), gate: nil))
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try patternFile(200_000, in: dir, name: "notes.pdf")
            let key = "direct/\(UUID().uuidString.prefix(8))/notes 1.pdf"
            let url = r2.presignedPut(key: key, contentType: "application/pdf", bytes: 200_000, expires: 300)
            // R2 wants x-amz-content-sha256 on every request; a presigned PUT sends UNSIGNED-PAYLOAD there.
            let put = Curl.run(["-X", "PUT", "-H", "Content-Type: application/pdf", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                                "--data-binary", "@\(file.path)", url.absoluteString])
            #expect(put.status == 200, "\(put.body)")
            let stored = try #require(try await fake.objects()[key])
            #expect(stored["size"] == 200_000)
            #expect(stored["content_type"] == "application/pdf")
            #expect(stored["sha256"]?.string == (try sha256(of: file)))
            let logged = try #require(try await fake.server.log().last)
            #expect(logged["method"] == "PUT")
            #expect(logged["headers"]?["authorization"] == nil)
            #expect(logged["query"]?.string?.contains("X-Amz-Signature=") == true)
        }
    }

    /// The URL's query items, decoded.
    static func query(_ url: URL) -> [String: String] {
        var items: [String: String] = [:]
        for item in URLComponents(url: url, resolvingAgainstBaseURL: false)?.queryItems ?? [] { items[item.name] = item.value }
        return items
    }
}
