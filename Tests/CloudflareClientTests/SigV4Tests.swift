import CloudflareClient
import Digests
import Foundation
import Testing

// MARK: - The AWS SigV4 test suite (header signing, generic rules)

/// The AWS SigV4 test suite (from aws-c-auth) shared at `../shared/reference/sigv4-test-suite`
/// next to the package root; `SIGV4_TEST_SUITE_DIR` overrides the location.
///
/// Every case folder is run: all 38 have header-*.txt expectations and all are header signing.
/// Nothing is excluded. Per-case switches come from `context.json`:
/// - `normalize: false` (the `*-unnormalized` cases) sets `normalizesPath = false`;
/// - `omit_session_token: true` (`post-sts-header-after`) sets `signsSessionToken = false`: the token is
///   sent but not signed;
/// - `sign_body: true` adds an `x-amz-content-sha256` header, which the generic rules do not add by themselves.
/// The `query-*.txt` files are presigned-URL expectations and are out of scope.
enum SuiteCases {
    static let directory: URL = {
        if let override = ProcessInfo.processInfo.environment["SIGV4_TEST_SUITE_DIR"], !override.isEmpty {
            return URL(fileURLWithPath: override, isDirectory: true)
        }
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }   // Tests/CloudflareClientTests/SigV4Tests.swift
        return root.appendingPathComponent("../shared/reference/sigv4-test-suite", isDirectory: true).standardizedFileURL
    }()

    static let missingMarker = "<sigv4-test-suite missing>"

    /// The case folder names, or a single marker that makes the parameterized test fail when the
    /// suite is not there (an empty argument list would pass silently).
    static let names: [String] = {
        let fm = FileManager.default
        guard let entries = try? fm.contentsOfDirectory(atPath: directory.path) else { return [missingMarker] }
        let cases = entries.filter { name in
            var isDirectory: ObjCBool = false
            return fm.fileExists(atPath: directory.appendingPathComponent(name).path, isDirectory: &isDirectory)
                && isDirectory.boolValue
        }.sorted()
        return cases.isEmpty ? [missingMarker] : cases
    }()
}

/// One `request.txt`: request line, headers (folded lines joined), body.
struct SuiteRequest {
    var method: String
    var path: String
    var query: String
    var headers: [(name: String, value: String)]
    var body: Data

    init(_ data: Data) throws {
        let bytes = [UInt8](data)
        // The head ends at the first empty line; everything after it is the body, byte for byte.
        var headEnd = bytes.count, bodyStart = bytes.count
        var index = 0
        while index < bytes.count {
            if bytes[index] == 0x0A {
                let next = index + 1
                if next < bytes.count, bytes[next] == 0x0A { headEnd = index; bodyStart = next + 1; break }
                if next + 1 < bytes.count, bytes[next] == 0x0D, bytes[next + 1] == 0x0A {
                    headEnd = index; bodyStart = next + 2; break
                }
            }
            index += 1
        }
        body = Data(bytes[bodyStart...])
        let head = String(decoding: bytes[..<headEnd], as: UTF8.self)
        var lines = head.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
        }
        while lines.last == "" { lines.removeLast() }
        guard !lines.isEmpty else { throw SuiteError("request.txt has no request line") }

        // "GET /example space/ HTTP/1.1": the target may itself contain spaces.
        let requestLine = lines.removeFirst()
        guard let firstSpace = requestLine.firstIndex(of: " "), let lastSpace = requestLine.lastIndex(of: " "),
              firstSpace < lastSpace else { throw SuiteError("bad request line: \(requestLine)") }
        method = String(requestLine[..<firstSpace])
        let target = requestLine[requestLine.index(after: firstSpace)..<lastSpace]
        if let question = target.firstIndex(of: "?") {
            path = String(target[..<question])
            query = String(target[target.index(after: question)...])
        } else {
            path = String(target)
            query = ""
        }

        headers = []
        for line in lines {
            if line.first == " " || line.first == "\t" {
                // obs-fold: the line break becomes one space; the continuation's own whitespace is kept
                // so the signer's whitespace collapsing is what makes it canonical.
                guard !headers.isEmpty else { throw SuiteError("continuation line before any header") }
                headers[headers.count - 1].value += " " + line
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { throw SuiteError("bad header line: \(line)") }
            headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
        }
    }
}

struct SuiteContext: Decodable {
    struct Credentials: Decodable {
        var access_key_id: String
        var secret_access_key: String
        var token: String?
    }
    var credentials: Credentials
    var region: String
    var service: String
    var timestamp: String
    var normalize: Bool
    var sign_body: Bool?
    var omit_session_token: Bool?
}

struct SuiteError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

@Suite("SigV4 test suite, header signing")
struct SigV4SuiteTests {
    @Test("The shared suite is present and complete")
    func suiteIsPresent() {
        let names = SuiteCases.names.filter { $0 != SuiteCases.missingMarker }
        #expect(!names.isEmpty, "SigV4 test suite not found at \(SuiteCases.directory.path)")
        #expect(names.count >= 38, "expected the 38 cases of the SigV4 suite, found \(names.count) in \(SuiteCases.directory.path)")
    }

    @Test("Suite case", arguments: SuiteCases.names)
    func suiteCase(_ name: String) throws {
        guard name != SuiteCases.missingMarker else {
            Issue.record("SigV4 test suite not found at \(SuiteCases.directory.path) (set SIGV4_TEST_SUITE_DIR or provide ../shared/reference/sigv4-test-suite next to the package)")
            return
        }
        let folder = SuiteCases.directory.appendingPathComponent(name, isDirectory: true)
        func text(_ file: String) throws -> String {
            try String(decoding: Data(contentsOf: folder.appendingPathComponent(file)), as: UTF8.self)
        }

        let request = try SuiteRequest(Data(contentsOf: folder.appendingPathComponent("request.txt")))
        let context = try JSONDecoder().decode(SuiteContext.self, from: Data(contentsOf: folder.appendingPathComponent("context.json")))
        let date = try #require(ISO8601DateFormatter().date(from: context.timestamp), "bad timestamp \(context.timestamp)")

        var signer = SigV4Signer(
            credentials: .init(accessKeyID: context.credentials.access_key_id,
                               secretAccessKey: context.credentials.secret_access_key,
                               sessionToken: context.credentials.token),
            region: context.region, service: context.service, s3Rules: false)
        signer.normalizesPath = context.normalize
        signer.signsSessionToken = !(context.omit_session_token ?? false)

        let payloadHash = Digest.sha256Hex(request.body)
        var headers = request.headers
        if context.sign_body ?? false { headers.append(("X-Amz-Content-Sha256", payloadHash)) }

        let signature = signer.sign(method: request.method, path: request.path, query: request.query,
                                    headers: headers, payloadHash: payloadHash, date: date)
        #expect(signature.canonicalRequest == (try text("header-canonical-request.txt")))
        #expect(signature.stringToSign == (try text("header-string-to-sign.txt")))
        #expect(signature.signature == (try text("header-signature.txt")))

        // The signed request: the same headers (any order, names in any case) plus what the signer adds.
        let added = signer.signedHeaders(method: request.method, path: request.path, query: request.query,
                                         headers: headers, payloadHash: payloadHash, date: date)
        let expected = try SuiteRequest(Data(contentsOf: folder.appendingPathComponent("header-signed-request.txt")))
        func normalized(_ list: [(name: String, value: String)]) -> [String] {
            list.map { $0.name.lowercased() + ":" + $0.value }.sorted()
        }
        #expect(normalized(headers + added) == normalized(expected.headers))
        #expect(added.last?.name == "authorization" && added.last?.value == signature.authorization)
    }
}

// MARK: - S3 rules

@Suite("SigV4 with S3 rules")
struct SigV4S3Tests {
    static let docsCredentials = SigV4Signer.Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE",
                                                         secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    static let docsDate = Date(timeIntervalSince1970: 1_369_353_600)   // 2013-05-24T00:00:00Z
    static let docsSigner = SigV4Signer(credentials: docsCredentials, region: "us-east-1", service: "s3", s3Rules: true)

    /// The S3 API reference's "Example: GET Object" (sig-v4-header-based-auth).
    @Test func documentationGetObject() {
        let signature = Self.docsSigner.sign(
            method: "GET", path: "/test.txt", query: "",
            headers: [("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9")],
            payloadHash: SigV4Signer.emptyPayloadHash, date: Self.docsDate)
        #expect(signature.canonicalRequest == """
            GET
            /test.txt

            host:examplebucket.s3.amazonaws.com
            range:bytes=0-9
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            x-amz-date:20130524T000000Z

            host;range;x-amz-content-sha256;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        #expect(signature.stringToSign == """
            AWS4-HMAC-SHA256
            20130524T000000Z
            20130524/us-east-1/s3/aws4_request
            7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972
            """)
        #expect(signature.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(signature.authorization == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    /// The S3 API reference's "Example: PUT Object". The object key in that example is `test$file.text`
    /// (sent as `/test%24file.text`); the body is "Welcome to Amazon S3.".
    @Test func documentationPutObject() {
        let body = Data("Welcome to Amazon S3.".utf8)
        let payloadHash = Digest.sha256Hex(body)
        #expect(payloadHash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let path = "/" + SigV4Signer.uriEncode("test$file.text", encodeSlash: false)
        #expect(path == "/test%24file.text")
        let signature = Self.docsSigner.sign(
            method: "PUT", path: path, query: "",
            headers: [("Host", "examplebucket.s3.amazonaws.com"), ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                      ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
            payloadHash: payloadHash, date: Self.docsDate)
        #expect(signature.canonicalRequest == """
            PUT
            /test%24file.text

            date:Fri, 24 May 2013 00:00:00 GMT
            host:examplebucket.s3.amazonaws.com
            x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072
            x-amz-date:20130524T000000Z
            x-amz-storage-class:REDUCED_REDUNDANCY

            date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class
            44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072
            """)
        #expect(signature.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    static let r2Signer = SigV4Signer(
        credentials: .init(accessKeyID: "R2KEYID", secretAccessKey: "r2-secret"),
        region: "auto", service: "s3", s3Rules: true)
    static let r2Date = Date(timeIntervalSince1970: 1_704_164_645)   // 2024-01-02T03:04:05Z

    @Test func keyWithSpacesPlusAndNonASCIIIsEncodedOnce() {
        let key = "lessons/01 intro+notes/caf\u{E9} \u{FC}.pdf"
        let path = "/media/" + SigV4Signer.uriEncode(key, encodeSlash: false)
        #expect(path == "/media/lessons/01%20intro%2Bnotes/caf%C3%A9%20%C3%BC.pdf")

        let signature = Self.r2Signer.sign(
            method: "PUT", path: path, query: "",
            headers: [("host", "account.r2.cloudflarestorage.com")],
            payloadHash: SigV4Signer.unsignedPayload, date: Self.r2Date)
        let lines = signature.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[1] == "/media/lessons/01%20intro%2Bnotes/caf%C3%A9%20%C3%BC.pdf")
        #expect(!signature.canonicalRequest.contains("%25"))
        #expect(signature.stringToSign.split(separator: "\n")[2] == "20240102/auto/s3/aws4_request")
        #expect(signature.authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=R2KEYID/20240102/auto/s3/aws4_request, "))
        #expect(signature.canonicalRequest.hasSuffix("\nUNSIGNED-PAYLOAD"))

        // The generic rules would encode the sent path again; S3 must not.
        let generic = SigV4Signer(credentials: .init(accessKeyID: "R2KEYID", secretAccessKey: "r2-secret"),
                                  region: "auto", service: "s3", s3Rules: false)
        let doubled = generic.sign(method: "PUT", path: path, query: "", headers: [("host", "h")],
                                   payloadHash: SigV4Signer.unsignedPayload, date: Self.r2Date)
        #expect(doubled.canonicalRequest.split(separator: "\n")[1] == "/media/lessons/01%2520intro%252Bnotes/caf%25C3%25A9%2520%25C3%25BC.pdf")
    }

    @Test func s3PathIsNotNormalized() {
        let signature = Self.r2Signer.sign(method: "GET", path: "/bucket//a/./b/../c", query: "",
                                           headers: [("host", "h")], payloadHash: SigV4Signer.emptyPayloadHash,
                                           date: Self.r2Date)
        #expect(signature.canonicalRequest.split(separator: "\n")[1] == "/bucket//a/./b/../c")
    }

    @Test func s3QueryIsCanonical() {
        let signature = Self.r2Signer.sign(method: "PUT", path: "/bucket/key", query: "uploadId=a%2Fb+c&partNumber=2&uploads",
                                           headers: [("host", "h")], payloadHash: SigV4Signer.emptyPayloadHash,
                                           date: Self.r2Date)
        #expect(signature.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[2]
                == "partNumber=2&uploadId=a%2Fb%2Bc&uploads=")
    }

    @Test func signedHeadersAddsContentSHA256AndSignsIt() throws {
        let hash = Digest.sha256Hex(Data("part".utf8))
        let headers: [(name: String, value: String)] = [("Host", "account.r2.cloudflarestorage.com"), ("Content-Length", "4")]
        let added = Self.r2Signer.signedHeaders(method: "PUT", path: "/media/a.bin", query: "partNumber=1&uploadId=x",
                                                headers: headers, payloadHash: hash, date: Self.r2Date)
        #expect(added.map(\.name) == ["x-amz-date", "x-amz-content-sha256", "authorization"])
        #expect(added[0].value == "20240102T030405Z")
        #expect(added[1].value == hash)
        let authorization = try #require(added.last?.value)
        #expect(authorization.contains("SignedHeaders=content-length;host;x-amz-content-sha256;x-amz-date, "))

        // Already supplied headers are neither repeated nor signed twice.
        let again = Self.r2Signer.signedHeaders(method: "PUT", path: "/media/a.bin", query: "partNumber=1&uploadId=x",
                                                headers: headers + [("X-Amz-Content-SHA256", hash)],
                                                payloadHash: hash, date: Self.r2Date)
        #expect(again.map(\.name) == ["x-amz-date", "authorization"])
        #expect(again.last?.value == authorization)
    }

    @Test func sessionTokenIsReturnedAndSigned() throws {
        var signer = Self.r2Signer
        signer.credentials.sessionToken = "TOKEN"
        let added = signer.signedHeaders(method: "GET", path: "/", query: "", headers: [("host", "h")],
                                         payloadHash: SigV4Signer.emptyPayloadHash, date: Self.r2Date)
        #expect(added.map(\.name) == ["x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "authorization"])
        #expect(added[2].value == "TOKEN")
        let authorization = try #require(added.last?.value)
        #expect(authorization.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, "))
        #expect(!"\(signer.credentials)".contains("r2-secret") && !"\(signer)".contains("TOKEN"))
    }

    @Test func emptyBodyHash() {
        #expect(Digest.sha256Hex(Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Digest.sha256Hex("") == SigV4Signer.emptyPayloadHash)
        #expect(SigV4Signer.emptyPayloadHash == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test(arguments: [
        (1_369_353_600.0, "20130524T000000Z"),
        (1_440_938_160.0, "20150830T123600Z"),
        (1_709_251_199.999, "20240229T235959Z"),   // leap day, fraction dropped, never rounded up
        (0.0, "19700101T000000Z"),
        (-1.0, "19691231T235959Z"),
        (4_102_444_800.0, "21000101T000000Z"),
        (951_782_400.0, "20000229T000000Z"),
    ])
    func amzDate(seconds: Double, expected: String) {
        #expect(SigV4Signer.amzDate(Date(timeIntervalSince1970: seconds)) == expected)
    }
}

// MARK: - Digests

@Suite("Digest helpers")
struct DigestTests {
    @Test func hmacRFC4231Case2() {
        let mac = Digest.hmacSHA256(key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8))
        #expect(Digest.hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        // Empty key and data are valid HMAC inputs.
        #expect(Digest.hex(Digest.hmacSHA256(key: [], data: []))
                == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    }

    @Test func md5() {
        #expect(Digest.md5Base64(Data()) == "1B2M2Y8AsgTpgAmY7PhCfg==")
        #expect(Digest.hex(Digest.md5(Data("abc".utf8))) == "900150983cd24fb0d6963f7d28e17f72")
    }

    @Test func streamingMD5MatchesOneShotAndStartsAfreshOnEachTry() {
        let data = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        let streaming = MD5Observer()
        data.prefix(5_000).withUnsafeBytes { streaming.consume($0) }  // a try that broke off
        streaming.begin()
        var offset = 0
        for size in [0, 1, 4095, 65_536, 7, 100_000] {
            let end = min(offset + size, data.count)
            data[offset..<end].withUnsafeBytes { streaming.consume($0) }
            offset = end
        }
        #expect(streaming.digest == Digest.md5(data))
        #expect(Data(streaming.digest).base64EncodedString() == Digest.md5Base64(data))

        #expect(Data(MD5Observer().digest).base64EncodedString() == "1B2M2Y8AsgTpgAmY7PhCfg==")
    }
}
