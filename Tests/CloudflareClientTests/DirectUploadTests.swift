import CloudflareClient
import Foundation
import HTTPTransport
import MediaPipeline
import TestSupport
import Testing

/// Direct creator upload URLs of Images and Stream against the local API fake: the client asks for
/// a one-time URL with the token, then curl (no token, as a browser would) sends the bytes there,
/// and the media is found in the fake's store. The fake checks expiries against the real time, so
/// these clients run on the real clock.
struct DirectUploadTests {
    static let hour: TimeInterval = 3600

    // MARK: Images

    @Test func anImagesDirectUploadURLTakesOneImageWithoutTheToken() async throws {
        let fake = try await CloudflareFake()
        let images = ImagesClient(api: fake.realTimeAPI())
        let file = try TestFiles.fixture("small.png")
        let wanted = "mp/direct/\(UUID().uuidString.prefix(8))"
        let expiry = Date().addingTimeInterval(Self.hour)
        let (id, uploadURL) = try await images.directUpload(id: wanted, metadata: ["owner": "course-7"], expiry: expiry)
        #expect(id == wanted)

        // A draft until the bytes come, with the expiry sent in RFC 3339.
        let draft = try #require(try await fake.state()["images"]?[id])
        #expect(draft["draft"] == true)
        #expect(draft["meta"]?["owner"] == "course-7")
        #expect(draft["expiry"]?.string == Self.rfc3339(expiry))
        let reserve = try #require(try await fake.server.log().first)
        #expect(reserve["path"]?.string?.hasSuffix("/images/v2/direct_upload") == true)
        #expect(reserve.logged("authorization") == "present")

        let sent = Curl.postFile(uploadURL, file: file, type: "image/png")
        #expect(sent.status == 200, "\(sent.body)")
        let stored = try #require(try await fake.state()["images"]?[id])
        #expect(stored["draft"] == false)
        #expect(stored["sha256"]?.string == (try sha256(of: file)))
        #expect(stored["content_type"] == "image/png")
        let upload = try #require(try await fake.server.log().last)
        #expect(upload["path"]?.string?.hasPrefix("/upload/") == true)
        #expect(upload.logged("authorization") == nil)
        #expect(try await images.image(id: id)?["draft"] == false)

        // One-time: a second image cannot replace the first.
        #expect(Curl.postFile(uploadURL, file: try TestFiles.fixture("big.png"), type: "image/png").status == 409)
        #expect(try await fake.state()["images"]?[id]?["sha256"]?.string == (try sha256(of: file)))
    }

    @Test func withoutAnIDImagesChoosesOne() async throws {
        let fake = try await CloudflareFake()
        let (id, uploadURL) = try await ImagesClient(api: fake.realTimeAPI()).directUpload(expiry: Date().addingTimeInterval(600))
        #expect(!id.isEmpty)
        #expect(uploadURL.hasSuffix("/\(id)"))
        #expect(try await fake.state()["images"]?[id]?["draft"] == true)
    }

    @Test("an expiry outside now+2 min … now+6 h is refused before anything is sent", arguments: [-60.0, 60, 21_660, 172_800])
    func anImagesExpiryOutsideTheWindowIsRefused(_ ahead: TimeInterval) async throws {
        let fake = try await CloudflareFake()
        let images = ImagesClient(api: fake.realTimeAPI())
        let error = await #expect(throws: SinkError.self) {
            _ = try await images.directUpload(expiry: Date().addingTimeInterval(ahead))
        }
        #expect(error?.severity == .rejected)
        #expect(error?.reason.code == .badRequest)
        #expect(error?.reason.detail.contains("2 minutes to 6 hours") == true)
        #expect(try await fake.server.log().isEmpty)
    }

    @Test("the fake refuses what Images refuses: an expiry out of the window, metadata over 1,024 bytes",
          arguments: [("expiry", 60.0), ("expiry", 25_200), ("metadata", 0)])
    func theFakeEnforcesImagesRules(_ field: String, _ ahead: TimeInterval) async throws {
        let fake = try await CloudflareFake()
        let value = field == "expiry" ? Self.rfc3339(Date().addingTimeInterval(ahead))
            : JSONValue.object([("note", .string(String(repeating: "x", count: 1100)))]).compactText
        let answer = Curl.run(["-X", "POST", "-H", "Authorization: Bearer \(fake.token)", "-F", "\(field)=\(value)",
                               fake.environment["CLOUDFLARE_API_BASE_URL", default: ""] + "/accounts/\(CloudflareFake.account)/images/v2/direct_upload"])
        #expect(answer.status == 400)
        #expect(try JSONValue.parse(Data(answer.body.utf8))["errors"]?.array.first?["code"] == 5400)
        #expect(try await fake.state()["images"]?.objectPairs.isEmpty == true)
    }

    @Test func imagesMetadataMustBeASmallObject() async throws {
        let fake = try await CloudflareFake()
        let images = ImagesClient(api: fake.realTimeAPI())
        for metadata: JSONValue in [["a", "b"], ["note": .string(String(repeating: "x", count: 1100))]] {
            let error = await #expect(throws: SinkError.self) {
                _ = try await images.directUpload(metadata: metadata, expiry: Date().addingTimeInterval(Self.hour))
            }
            #expect(error?.reason.code == .badRequest)
        }
        #expect(try await fake.server.log().isEmpty)
    }

    // MARK: Stream, basic

    @Test func aStreamDirectUploadURLTakesOneVideoWithoutTheToken() async throws {
        let fake = try await CloudflareFake(arguments: ["--ready-after", "0"])
        let stream = StreamClient(api: fake.realTimeAPI())
        let expiry = Date().addingTimeInterval(Self.hour)
        let (uid, uploadURL) = try await stream.directUpload(maxDurationSeconds: 600, expiry: expiry,
                                                             meta: ["course": "c7", "lesson": "01"])
        let pending = try #require(try await fake.state()["videos"]?[uid])
        #expect(pending["state"] == "pendingupload")
        #expect(pending["direct"] == "basic")
        #expect(pending["maxDurationSeconds"] == 600)
        #expect(pending["uploadExpiry"]?.string == Self.rfc3339(expiry))
        #expect(pending["meta"] == ["course": "c7", "lesson": "01"])
        let create = try #require(try await fake.server.log().first)
        #expect(create["path"]?.string?.hasSuffix("/stream/direct_upload") == true)
        #expect(create.logged("content-type") == "application/json")
        #expect(create.logged("authorization") == "present")

        try await TestFiles.withTemporaryDirectory { dir in
            let file = try patternFile(300_000, in: dir, name: "clip.mp4")
            let sent = Curl.postFile(uploadURL, file: file, type: "video/mp4")
            #expect(sent.status == 200, "\(sent.body)")
            let stored = try #require(try await fake.state()["videos"]?[uid])
            #expect(stored["sha256"]?.string == (try sha256(of: file)))
            #expect(stored["size"] == 300_000)
            #expect(stored["meta"]?["course"] == "c7")
            let video = try #require(try await stream.video(uid: uid))
            #expect(video["readyToStream"] == true)
            #expect(video["maxDurationSeconds"] == 600)
            let upload = try #require(try await fake.server.log().first { $0["path"]?.string?.hasPrefix("/upload/") == true })
            #expect(upload.logged("authorization") == nil)
            #expect(upload.logged("expect") == nil && upload.logged("transfer-encoding") == nil)

            // One-time: the URL takes no second file.
            #expect(Curl.postFile(uploadURL, file: file, type: "video/mp4").status == 409)
        }
    }

    @Test("maxDurationSeconds outside 1 … 21,600 and a past expiry are refused before anything is sent",
          arguments: [(0, 3600.0), (21_601, 3600), (-5, 3600), (60, -1)])
    func streamDirectUploadArgumentsAreChecked(_ seconds: Int, _ ahead: TimeInterval) async throws {
        let fake = try await CloudflareFake()
        let stream = StreamClient(api: fake.realTimeAPI())
        for tus in [false, true] {
            let error = await #expect(throws: SinkError.self) {
                let expiry = Date().addingTimeInterval(ahead)
                if tus {
                    _ = try await stream.directTusUpload(bytes: 1000, maxDurationSeconds: seconds, expiry: expiry, name: "x.mp4")
                } else {
                    _ = try await stream.directUpload(maxDurationSeconds: seconds, expiry: expiry, meta: [:])
                }
            }
            #expect(error?.severity == .rejected)
            #expect(error?.reason.code == .badRequest)
        }
        #expect(try await fake.server.log().isEmpty)
    }

    @Test("the fake refuses a direct upload without a valid maxDurationSeconds, as Stream does",
          arguments: [#"{}"#, #"{"maxDurationSeconds":0}"#, #"{"maxDurationSeconds":21601}"#, #"{"maxDurationSeconds":"ten"}"#])
    func theFakeEnforcesStreamRules(_ body: String) async throws {
        let fake = try await CloudflareFake()
        let answer = Curl.run(["-X", "POST", "-H", "Authorization: Bearer \(fake.token)", "-H", "Content-Type: application/json",
                               "--data-binary", body,
                               fake.environment["CLOUDFLARE_API_BASE_URL", default: ""] + "/accounts/\(CloudflareFake.account)/stream/direct_upload"])
        #expect(answer.status == 400)
        #expect(try await fake.state()["videos"]?.objectPairs.isEmpty == true)
    }

    // MARK: Stream, tus

    @Test func aDirectTusURLTakesChunksWithoutTheToken() async throws {
        let fake = try await CloudflareFake()
        let stream = StreamClient(api: fake.realTimeAPI())
        let chunk = Int(StreamClient.minChunk)
        let length = chunk + 700_000
        let expiry = Date().addingTimeInterval(2 * Self.hour)
        let (uid, uploadURL) = try await stream.directTusUpload(bytes: Int64(length), maxDurationSeconds: 3600, expiry: expiry,
                                                                name: "lesson 01.mp4")
        #expect(URL(string: uploadURL)?.lastPathComponent == uid)
        let pending = try #require(try await fake.state()["videos"]?[uid])
        #expect(pending["direct"] == "tus")
        #expect(pending["length"] == .int(length))
        #expect(pending["maxDurationSeconds"] == 3600)
        #expect(pending["uploadExpiry"]?.string == Self.rfc3339(expiry))
        #expect(pending["meta"] == ["name": "lesson 01.mp4"])
        // The metadata went base64-encoded, as tus wants it, and decodes to what was asked.
        let metadata = try #require(pending["upload_metadata"])
        #expect(metadata["maxDurationSeconds"] == "3600")
        #expect(metadata["expiry"]?.string == Self.rfc3339(expiry))
        #expect(metadata["name"] == "lesson 01.mp4")
        let create = try #require(try await fake.server.log().first)
        #expect(create["query"] == "direct_user=true")
        #expect(create["path"]?.string?.hasSuffix("/stream") == true)
        #expect(create.logged("tus-resumable") == "1.0.0")
        #expect(create.logged("upload-length") == "\(length)")
        #expect(create.logged("upload-metadata") == "maxDurationSeconds \(Self.base64("3600")),expiry \(Self.base64(Self.rfc3339(expiry))),"
            + "name \(Self.base64("lesson 01.mp4"))")
        #expect(create.logged("authorization") == "present")

        try await TestFiles.withTemporaryDirectory { dir in
            let file = try patternFile(length, in: dir, name: "lesson.mp4")
            let bytes = try Data(contentsOf: file)
            let first = dir.appendingPathComponent("chunk-1"), rest = dir.appendingPathComponent("chunk-2")
            try bytes.prefix(chunk).write(to: first)
            try bytes.dropFirst(chunk).write(to: rest)
            #expect(Curl.tus("PATCH", uploadURL, offset: 0, file: first).status == 204)
            let head = Curl.tus("HEAD", uploadURL)
            #expect(head.status == 200)
            #expect(head.headers["upload-offset"] == "\(chunk)")
            #expect(Curl.tus("PATCH", uploadURL, offset: chunk, file: rest).status == 204)

            let stored = try #require(try await fake.state()["videos"]?[uid])
            #expect(stored["offset"] == .int(length))
            #expect(stored["sha256"]?.string == (try sha256(of: file)))
            #expect(stored["chunk_violations"] == [])
            #expect(stored["state"] != "pendingupload")
            let sent = try await fake.server.log().dropFirst()
            #expect(sent.map { $0["method"]?.string ?? "" } == ["PATCH", "HEAD", "PATCH"])
            #expect(sent.allSatisfy { $0.logged("authorization") == nil && $0["path"]?.string?.hasPrefix("/upload/tus/") == true })
        }
    }

    @Test("a tus upload of no bytes or over 30 GB is refused before anything is sent", arguments: [Int64(0), -1, 30_000_000_001])
    func aDirectTusLengthOutOfRangeIsRefused(_ bytes: Int64) async throws {
        let fake = try await CloudflareFake()
        let error = await #expect(throws: SinkError.self) {
            _ = try await StreamClient(api: fake.realTimeAPI()).directTusUpload(bytes: bytes, maxDurationSeconds: 60,
                                                                              expiry: Date().addingTimeInterval(600), name: "x.mp4")
        }
        #expect(error?.reason.code == .badRequest)
        #expect(try await fake.server.log().isEmpty)
    }

    @Test func theFakeRefusesADirectTusCreationWithoutMaxDuration() async throws {
        let fake = try await CloudflareFake()
        let answer = Curl.run(["-X", "POST", "-H", "Authorization: Bearer \(fake.token)", "-H", "Tus-Resumable: 1.0.0",
                               "-H", "Upload-Length: 1000", "-H", "Upload-Metadata: name \(Self.base64("a.mp4"))",
                               fake.environment["CLOUDFLARE_API_BASE_URL", default: ""] + "/accounts/\(CloudflareFake.account)/stream?direct_user=true"])
        #expect(answer.status == 400)
        #expect(try await fake.state()["videos"]?.objectPairs.isEmpty == true)
    }

    // MARK: Helpers

    /// RFC 3339 as Python's `datetime` writes it, so the expectation does not come from the code under test.
    static func rfc3339(_ date: Date) -> String {
        let result = Shell.run("/usr/bin/env", ["python3", "-c", """
            import datetime, sys
            print(datetime.datetime.fromtimestamp(int(sys.argv[1]), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
            """, "\(Int(date.timeIntervalSince1970.rounded(.down)))"])
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
}

extension CloudflareFake {
    /// A client of this fake on the real clock (the fake checks expiries against the real time).
    func realTimeAPI() -> CloudflareAPI {
        let clock = SystemClock()
        return CloudflareAPI(environment: CloudflareEnvironment(environment, assumeConfigured: false), http: CurlClient(),
                             retrier: Retrier(backoff: Backoff(attempts: 2, baseDelay: 0.1, maxDelay: 1), clock: clock,
                                              gate: RequestGate(budget: 10_000, clock: clock)))
    }
}

fileprivate extension JSONValue {
    /// A header of a logged request (the fake logs names in lower case).
    func logged(_ name: String) -> String? { self["headers"]?[name]?.string }
}
