import CloudflareClient
import Foundation
import HTTPTransport
import MediaPipeline

/// Request signing on keys and query strings nobody checked: the R2 client's own request
/// builder (S3 rules), and the generic signer that normalises the path.
enum SigV4Fuzz {
    struct FixedClock: RetryClock {
        func now() -> Date { Date(timeIntervalSince1970: 1_767_225_600) }
        func sleep(seconds: Double) async {}
    }

    static let r2 = R2Client(
        environment: CloudflareEnvironment([CloudflareEnvironment.r2Endpoint: "http://127.0.0.1:9000/emulator",
                                            CloudflareEnvironment.r2Bucket: "course-media"], assumeConfigured: true),
        http: CurlClient(), retrier: Retrier(backoff: Backoff(), clock: FixedClock(), gate: nil))

    static let generic = SigV4Signer(credentials: .init(accessKeyID: "AKID", secretAccessKey: "secret"),
                                     region: "auto", service: "execute-api", s3Rules: false)

    static func run(_ data: Data) -> String {
        let fields = data.fields(3).map { String(decoding: $0, as: UTF8.self) }
        let key = fields[0]
        let query = fields.count > 1 ? fields[1] : ""
        let value = fields.count > 2 ? fields[2] : "course"

        let request = r2.request("PUT", key: key, query: query, headers: [("x-amz-meta-course", value)])
        FuzzCheck.require(request.url.hasPrefix("http://127.0.0.1:9000/emulator/course-media/"), "the key left the bucket: \(request.url)")
        FuzzCheck.require(request.headers.contains { $0.name == "authorization" }, "an R2 request went unsigned")

        let canonical = SigV4Signer.canonicalQuery(query)
        FuzzCheck.require(SigV4Signer.canonicalQuery(canonical) == canonical, "the canonical query of \(query) is not canonical")
        FuzzCheck.require(isPlain(canonical), "the canonical query holds a byte that must be encoded")

        let signature = generic.sign(method: "GET", path: "/" + key, query: query,
                                     headers: [("host", "example.com"), ("x-amz-meta-course", value)],
                                     payloadHash: SigV4Signer.unsignedPayload, date: FixedClock().now())
        let lines = signature.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)
        FuzzCheck.require(lines.count >= 6 && lines[1].hasPrefix("/") && isPlain(lines[1]) && lines[2] == canonical,
                          "the canonical request's path or query line is off")
        FuzzCheck.require(signature.signature.count == 64, "a signature that is not 32 bytes of hex")
        return canonical.isEmpty ? "no_query" : "query"
    }

    /// Only bytes SigV4 leaves unencoded, `%` escapes, and the separators of the part.
    static func isPlain(_ text: some StringProtocol) -> Bool {
        text.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || "-._~%/=&".utf8.contains(byte)
        }
    }
}
