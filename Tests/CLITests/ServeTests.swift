import Foundation
import MediaPipeline
import TestSupport
import Testing

/// `media-pipeline serve` started on a free port with the Cloudflare fake and the S3 server
/// behind it, spoken to over real HTTP: curl for well-behaved requests, a raw-socket client for
/// the misbehaving ones.
final class Served: @unchecked Sendable {
    let spawned: Spawned
    let port: Int
    let token: String
    let temporary: URL

    /// Starts the server and waits for the line that names its port.
    init(_ extra: [String], environment: [String: String], in dir: URL, token: String? = CLITests.canaries["MEDIA_PIPELINE_TOKEN"]) async throws {
        temporary = dir.appendingPathComponent("server-tmp-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
        var env = environment
        env["TMPDIR"] = temporary.path
        if let token { env["MEDIA_PIPELINE_TOKEN"] = token }
        self.token = token ?? ""
        spawned = try Spawned(["serve", "--listen", "127.0.0.1:0"] + extra, environment: env, in: dir)
        let spawned = spawned
        let line = await Served.onThread { () -> String? in
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, spawned.process.isRunning {
                if let line = spawned.errors.split(separator: "\n").first(where: { $0.hasPrefix("serving on http://127.0.0.1:") }) { return String(line) }
                usleep(20_000)
            }
            return nil
        }
        guard let line, let port = Int(line.dropFirst("serving on http://127.0.0.1:".count).prefix { $0.isNumber }) else {
            throw TestFiles.FixtureError(description: "serve did not start: \(spawned.errors)")
        }
        self.port = port
    }

    deinit { if spawned.process.isRunning { spawned.signal(SIGKILL) } }

    var base: String { "http://127.0.0.1:\(port)" }

    struct Answer {
        var status: Int
        var headers: [String: String]
        var body: String
        var json: JSONValue? { try? JSONValue.parse(Data(body.utf8)) }
    }

    /// One request through curl. `token: nil` sends no Authorization header.
    func request(_ method: String, _ path: String, file: URL? = nil, json: String? = nil, token: String?? = .none) async -> Answer {
        let bearer: String? = switch token { case .none: self.token; case let .some(value): value }
        let out = temporary.deletingLastPathComponent().appendingPathComponent("answer-\(UUID().uuidString.prefix(8))")
        var arguments = ["-sS", "-X", method, "-o", out.path, "-D", out.path + ".h", "-w", "%{http_code}", "--max-time", "120"]
        if let bearer { arguments += ["-H", "Authorization: Bearer \(bearer)"] }
        if let file { arguments += ["-H", "Content-Type: application/octet-stream", "--data-binary", "@\(file.path)"] }
        if let json { arguments += ["-H", "Content-Type: application/json", "--data-binary", json] }
        let result = await Shell.runOnThread("/usr/bin/curl", arguments + [base + path])
        defer { try? FileManager.default.removeItem(at: out); try? FileManager.default.removeItem(atPath: out.path + ".h") }
        var headers: [String: String] = [:]
        for line in ((try? String(contentsOfFile: out.path + ".h", encoding: .utf8)) ?? "").split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Answer(status: Int(result.stdout) ?? 0, headers: headers, body: (try? String(contentsOf: out, encoding: .utf8)) ?? "")
    }

    /// One run of Tests/Harness/http_client.py.
    func client(_ mode: String, _ arguments: [String]) async -> JSONValue? {
        let script = TestFiles.repoRoot.appendingPathComponent("Tests/Harness/http_client.py").path
        let result = await Shell.runOnThread("/usr/bin/python3", [script, mode, "--port", String(port)] + arguments)
        return try? JSONValue.parse(Data(result.stdout.utf8))
    }

    /// SIGTERM, then the exit status.
    func stop() async -> Int32? {
        spawned.signal(SIGTERM)
        return await spawned.wait(timeout: 120)
    }

    /// Files the server left in its temporary folder (bodies, work folders).
    var leftovers: [String] { (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? [] }

    static func onThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in Thread { continuation.resume(returning: work()) }.start() }
    }
}

@Suite(.serialized)
struct ServeTests {
    let cli = CLITests()
    let upload = UploadTests()

    func string(_ value: JSONValue?) -> String? { upload.string(value) }
    func number(_ value: JSONValue?) -> Double? { if case let .number(n)? = value { n } else { nil } }

    func fakes() async throws -> (CloudflareFake, S3Fake, [String: String]) {
        let cloudflare = try await CloudflareFake()
        let s3 = try await S3Fake()
        return (cloudflare, s3, cloudflare.environment.merging(s3.environment) { a, _ in a })
    }

    @Test("every kind of file posted to /v1/assets lands where the routing table says; refused files get 422 with the reason; delete by ref")
    func everyKindLandsWhereTheRulesSay() async throws {
        let (cloudflare, s3, env) = try await fakes()
        try await TestFiles.withTemporaryDirectory { dir in
            let course = try UploadTests.course()
            let server = try await Served(["--pipeline", try upload.pipeline(in: dir).path], environment: env, in: dir)
            // An avatar: resized to the purpose's 512×512 and stored in Images.
            let avatar = await server.request("POST", "/v1/assets?purpose=avatar&filename=me.jpg",
                                              file: course.appendingPathComponent("avatars/instructor.jpg"))
            #expect(avatar.status == 201, "\(avatar.body)")
            let avatarRow = try #require(avatar.json)
            #expect(avatarRow["sink"] == "cloudflare-images" && avatarRow["status"] == "uploaded" && avatarRow["purpose"] == "avatar")
            let imageID = try #require(string(avatarRow["result"]?["id"]))
            #expect(avatarRow["ref"] == .string("images:\(imageID)"))
            #expect(try await cloudflare.state()["images"]?[imageID] != nil)
            #expect(avatar.headers["location"] == "/v1/assets/images:\(imageID.replacingOccurrences(of: "/", with: "%2F"))")
            // A PDF attached to a message: R2, under the purpose's prefix.
            let pdf = await server.request("POST", "/v1/assets?purpose=message-attachment&filename=notes.pdf",
                                           file: course.appendingPathComponent("attachments/notes.pdf"))
            #expect(pdf.status == 201, "\(pdf.body)")
            let key = try #require(string(pdf.json?["result"]?["key"]))
            #expect(pdf.json?["sink"] == "r2" && key.hasPrefix("attachments/"))
            #expect(try await s3.objects()[key] != nil)
            // A document with no purpose named: the path rules pick one from the name.
            let docx = await server.request("POST", "/v1/assets?filename=handout.docx",
                                            file: course.appendingPathComponent("lessons/01-intro/handout.docx"))
            #expect(docx.status == 201 && docx.json?["sink"] == "r2" && docx.json?["purpose"] == "course-material", "\(docx.body)")
            // A lesson video: Stream.
            let video = await server.request("POST", "/v1/assets?purpose=lesson-video&filename=intro.mp4",
                                             file: course.appendingPathComponent("videos/01-intro.mp4"))
            #expect(video.status == 201, "\(video.body)")
            let uid = try #require(string(video.json?["result"]?["id"]))
            #expect(video.json?["sink"] == "stream" && video.json?["ref"] == .string("stream:\(uid)"))
            #expect(try await cloudflare.state()["videos"]?[uid] != nil)

            // HTML saved as .png: refused for good, with the manifest's reason code, nothing stored.
            let imagesBefore = try await cloudflare.state()["images"]?.objectPairsCount
            let bad = await server.request("POST", "/v1/assets?purpose=thumbnail&filename=not-really.png",
                                           file: course.appendingPathComponent("bad/not-really.png"))
            #expect(bad.status == 422 && bad.headers["content-type"] == "application/problem+json", "\(bad.body)")
            #expect(bad.json?["reason"] == "type_not_allowed" && bad.json?["status"] == .number(422))
            #expect(string(bad.json?["type"])?.hasSuffix("type_not_allowed") == true && bad.json?["detail"] != nil)
            #expect(bad.json?["asset"]?["status"] == "rejected")
            #expect(try await cloudflare.state()["images"]?.objectPairsCount == imagesBefore)
            // An unknown purpose.
            let purpose = await server.request("POST", "/v1/assets?purpose=avatr&filename=me.jpg",
                                               file: course.appendingPathComponent("avatars/instructor.jpg"))
            #expect(purpose.status == 422 && purpose.json?["reason"] == "unknown_purpose")

            // Delete by ref: gone from the provider; a second delete is 404.
            let encoded = "images:" + imageID.replacingOccurrences(of: "/", with: "%2F")
            #expect(await server.request("DELETE", "/v1/assets/\(encoded)").status == 204)
            #expect(try await cloudflare.state()["images"]?[imageID] == nil)
            #expect(await server.request("DELETE", "/v1/assets/\(encoded)").status == 404)
            #expect(await server.request("DELETE", "/v1/assets/r2:\(key.replacingOccurrences(of: "/", with: "%2F"))").status == 204)
            #expect(try await s3.objects()[key] == nil)
            #expect(await server.request("DELETE", "/v1/assets/nonsense").status == 400)

            // Metrics: the files by status and sink, bytes, the latency histogram, in flight.
            let metrics = await server.request("GET", "/metrics")
            #expect(metrics.status == 200 && metrics.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
            #expect(metrics.body.contains(#"media_pipeline_assets_total{status="uploaded",sink="cloudflare-images"} 1"#))
            #expect(metrics.body.contains(#"media_pipeline_assets_total{status="uploaded",sink="r2"} 2"#))
            #expect(metrics.body.contains(#"media_pipeline_assets_total{status="rejected",sink="none"} 1"#))
            #expect(metrics.body.contains(#"media_pipeline_http_request_duration_seconds_count{route="/v1/assets"} 6"#), "\(metrics.body)")
            #expect(metrics.body.contains("media_pipeline_http_requests_in_flight 0"))
            #expect(metrics.body.contains(#"media_pipeline_uploaded_bytes_total{sink="stream"}"#))
            #expect(await server.request("GET", "/healthz").json?["status"] == "ok")

            #expect(await server.stop() == 0)
            #expect(server.leftovers.isEmpty, "left behind: \(server.leftovers)")
            // The access log: one JSON line per request, without the token.
            let log = server.spawned.errors.split(separator: "\n").compactMap { try? JSONValue.parse(Data($0.utf8)) }.filter { $0["event"] == "request" }
            #expect(log.count == 12, "\(log.count) access-log lines")
            #expect(log.contains { $0["method"] == "POST" && $0["status"] == .number(201) && string($0["path"])?.hasPrefix("/v1/assets") == true })
            #expect(!server.spawned.errors.contains(server.token))
        }
    }

    @Test("provider trouble after every retry is 503 with Retry-After; nothing stored")
    func providerTroubleIs503() async throws {
        let (cloudflare, s3, env) = try await fakes()
        defer { withExtendedLifetime(s3) {} }
        try await TestFiles.withTemporaryDirectory { dir in
            let course = try UploadTests.course()
            try await cloudflare.server.faults([.object([("method", "POST"), ("path", "/images/v1"),
                                                         ("actions", .array(Array(repeating: .object([("status", .number(503))]), count: 50)))])])
            let server = try await Served(["--pipeline", try upload.pipeline(in: dir).path], environment: env, in: dir)
            let answer = await server.request("POST", "/v1/assets?purpose=avatar&filename=me.jpg", file: course.appendingPathComponent("avatars/instructor.jpg"))
            #expect(answer.status == 503, "\(answer.body)")
            #expect(answer.json?["reason"] == "provider_unavailable" && answer.headers["retry-after"] != nil)
            #expect(try await cloudflare.state()["images"]?.objectPairsCount == 0)
            #expect(await server.stop() == 0)
        }
    }

    @Test("no token or a wrong one is 401; a 10 GB Content-Length is 413 before the body is read; bad names are 422")
    func badRequests() async throws {
        let (cloudflare, s3, env) = try await fakes()
        defer { withExtendedLifetime((cloudflare, s3)) {} }
        try await TestFiles.withTemporaryDirectory { dir in
            let server = try await Served(["--pipeline", try upload.pipeline(in: dir).path], environment: env, in: dir)
            let none = await server.request("GET", "/healthz", token: .some(nil))
            #expect(none.status == 401 && none.headers["www-authenticate"] == "Bearer" && none.json?["reason"] == "unauthorized")
            #expect(await server.request("GET", "/healthz", token: "wrong-\(server.token)").status == 401)
            #expect(await server.request("GET", "/metrics", token: String(server.token.dropLast())).status == 401)
            #expect(await server.request("GET", "/healthz").status == 200)

            // 10 GB declared, 256 KiB sent: the answer comes at once and the server never stored the bytes.
            let huge = try #require(await server.client("big-length", ["--token", server.token, "--length", "10000000000", "--send", "262144",
                                                                        "--path", "/v1/assets?purpose=lesson-video&filename=big.mp4"]))
            #expect(huge["status"] == .number(413), "\(huge)")
            #expect((number(huge["seconds"]) ?? 99) < 10)
            #expect(string(huge["body"])?.contains("too_large") == true)
            // Over the rules' limit for the kind the name declares (images: 50 MB), under the server's.
            let image = try #require(await server.client("big-length", ["--token", server.token, "--length", "60000000", "--send", "0",
                                                                         "--path", "/v1/assets?purpose=avatar&filename=big.jpg"]))
            #expect(image["status"] == .number(413) && string(image["body"])?.contains("limit for image files") == true, "\(image)")
            // Unauthenticated with a body: refused before reading it.
            let sneaky = try #require(await server.client("big-length", ["--length", "10000000000", "--send", "262144"]))
            #expect(sneaky["status"] == .number(401))

            let file = dir.appendingPathComponent("a.txt")
            try Data("hello\n".utf8).write(to: file)
            for (name, reason) in [("..%2F..%2Fetc%2Fpasswd", "unsafe_path"), ("a%0Ab.txt", "bad_name"), ("%2Fabs.txt", "unsafe_path"),
                                   ("a%E2%80%AEtxt.exe", "bad_name")] {
                let answer = await server.request("POST", "/v1/assets?filename=\(name)", file: file)
                #expect(answer.status == 422 && answer.json?["reason"] == .string(reason), "\(name): \(answer.body)")
            }
            #expect(await server.request("POST", "/v1/assets", file: file).status == 400)
            #expect(await server.request("GET", "/v1/nothing").status == 404)
            #expect(await server.request("GET", "/v1/assets").status == 405)
            #expect(await server.stop() == 0)
            #expect(server.leftovers.isEmpty, "left behind: \(server.leftovers)")
        }
    }

    @Test("headers sent one byte a second are cut off by the header deadline; a body cut mid-way leaves no file")
    func slowAndVanishingClients() async throws {
        let (cloudflare, s3, env) = try await fakes()
        defer { withExtendedLifetime((cloudflare, s3)) {} }
        try await TestFiles.withTemporaryDirectory { dir in
            let server = try await Served(["--pipeline", try upload.pipeline(in: dir).path, "--header-deadline", "2", "--idle-timeout", "30"],
                                          environment: env, in: dir)
            let slow = try #require(await server.client("slow-headers", ["--token", server.token, "--interval", "1", "--max", "20"]))
            let closed = try #require(number(slow["closed_after"]), "never closed: \(slow)")
            #expect(closed >= 1.5 && closed < 10, "closed after \(closed) s")
            #expect(await server.request("GET", "/healthz").status == 200)

            _ = await server.client("disconnect", ["--token", server.token, "--length", "5000000", "--send", "1000000",
                                                   "--path", "/v1/assets?purpose=message-attachment&filename=x.pdf"])
            // The server notices the reset and removes the partial body.
            var left = server.leftovers
            for _ in 0..<100 where !left.isEmpty {
                try await Task.sleep(for: .milliseconds(50))
                left = server.leftovers
            }
            #expect(left.isEmpty, "left behind: \(left)")
            #expect(await server.request("GET", "/healthz").status == 200)
            #expect(await server.stop() == 0)
            #expect(server.spawned.errors.contains("header deadline"))
        }
    }

    @Test("200 uploads at once with 16 in flight: the rest get 503 with Retry-After, none is lost or half stored")
    func boundedConcurrency() async throws {
        let (cloudflare, s3, env) = try await fakes()
        defer { withExtendedLifetime(s3) {} }
        try await TestFiles.withTemporaryDirectory { dir in
            // Each upload takes a moment at the provider, so the first sixteen are still in flight.
            let delays = JSONValue.array(Array(repeating: .object([("delay", .number(0.3))]), count: 400))
            try await cloudflare.server.faults([.object([("method", "POST"), ("path", "/images/v1"), ("actions", delays)])])
            let files = dir.appendingPathComponent("pngs")
            try FileManager.default.createDirectory(at: files, withIntermediateDirectories: true)
            let made = await Shell.runOnThread("/usr/bin/python3", ["-c", Self.pngMaker, files.path, "200"])
            #expect(made.status == 0, "\(made.stderr)")
            let server = try await Served(["--pipeline", try upload.pipeline(in: dir).path, "--max-in-flight", "16"], environment: env, in: dir)
            let result = try #require(await server.client("concurrent", ["--token", server.token, "--files", files.path,
                                                                         "--path", "/v1/assets?purpose=thumbnail"]))
            guard case let .array(answers)? = result["answers"] else { Issue.record("no answers: \(String(describing: result))"); return }
            #expect(answers.count == 200)
            let stored = answers.filter { $0["status"] == .number(201) }, busy = answers.filter { $0["status"] == .number(503) }
            #expect(stored.count + busy.count == 200, "other answers: \(answers.filter { $0["status"] != .number(201) && $0["status"] != .number(503) }.prefix(3))")
            #expect(stored.count >= 16 && busy.count > 0, "\(stored.count) stored, \(busy.count) busy")
            #expect(busy.allSatisfy { $0["retry_after"] != nil && $0["retry_after"] != .null })
            // Every 201 is in Images, and nothing else is: no 503 left a half-stored file.
            let ids = try stored.map { answer -> String in
                let row = try JSONValue.parse(Data((string(answer["body"]) ?? "").utf8))
                return try #require(string(row["result"]?["id"]))
            }
            let images = try await cloudflare.state()["images"]
            #expect(Set(ids).count == stored.count)
            #expect(images?.objectPairsCount == stored.count)
            #expect(ids.allSatisfy { images?[$0] != nil })
            // The refused ones go through when sent again.
            let again = await server.request("POST", "/v1/assets?purpose=thumbnail&filename=\(string(busy.first?["file"]) ?? "")",
                                             file: files.appendingPathComponent(string(busy.first?["file"]) ?? ""))
            #expect(again.status == 201, "\(again.body)")
            #expect(await server.stop() == 0)
            #expect(server.leftovers.isEmpty, "left behind: \(server.leftovers)")
        }
    }

    @Test("SIGTERM: the request in flight finishes with its answer, new connections are refused, exit 0")
    func gracefulStop() async throws {
        let (cloudflare, s3, env) = try await fakes()
        defer { withExtendedLifetime(s3) {} }
        try await TestFiles.withTemporaryDirectory { dir in
            let delays = JSONValue.array([.object([("delay", .number(8))])])
            try await cloudflare.server.faults([.object([("method", "POST"), ("path", "/images/v1"), ("actions", delays)])])
            let server = try await Served(["--pipeline", try upload.pipeline(in: dir).path], environment: env, in: dir)
            let course = try UploadTests.course()
            async let slow = server.request("POST", "/v1/assets?purpose=avatar&filename=me.jpg", file: course.appendingPathComponent("avatars/instructor.jpg"))
            // Wait until the upload has reached the provider, then stop.
            for _ in 0..<200 {
                if try await cloudflare.server.log().contains(where: { $0["method"] == "POST" }) { break }
                try await Task.sleep(for: .milliseconds(25))
            }
            server.spawned.signal(SIGTERM)
            // Once the server says it is stopping, new connections are refused while the upload
            // is still going (the server cannot exit before answering it).
            let spawned = server.spawned, base = server.base
            let refusedWhileDraining = await Served.onThread { () -> Bool in
                let deadline = Date().addingTimeInterval(20)
                while Date() < deadline, !spawned.errors.contains("stopping on SIGTERM") { usleep(20_000) }
                while Date() < deadline {
                    let probe = Shell.run("/usr/bin/curl", ["-sS", "--max-time", "2", "-o", "/dev/null", "-w", "%{http_code}",
                                                           "-H", "Authorization: Bearer \(CLITests.canaries["MEDIA_PIPELINE_TOKEN"] ?? "")", base + "/healthz"])
                    if probe.stdout == "000" { return spawned.process.isRunning }
                    usleep(50_000)
                }
                return false
            }
            #expect(refusedWhileDraining, "new connections were not refused while the request in flight finished")
            let answer = await slow
            #expect(answer.status == 201, "\(answer.body)")
            #expect(await server.spawned.wait(timeout: 60) == 0)
            #expect(server.spawned.errors.contains("stopping on SIGTERM"))
        }
    }

    @Test("direct uploads: the same rules choose Images, Stream (form or tus) or an R2 presigned PUT; the browser's upload needs no token")
    func directUploads() async throws {
        let cloudflare = try await CloudflareFake()
        // moto cannot check query signatures, so R2 is a server with its checks off; the
        // signature is checked against botocore's below.
        let s3 = try await S3Fake(arguments: ["--no-auth"])
        let env = cloudflare.environment.merging(s3.environment) { a, _ in a }
        try await TestFiles.withTemporaryDirectory { dir in
            let course = try UploadTests.course()
            let server = try await Served(["--pipeline", try upload.pipeline(in: dir).path, "--url-expiry", "600"], environment: env, in: dir)
            func ask(_ purpose: String, _ name: String, _ bytes: Int64, _ mime: String) async -> Served.Answer {
                await server.request("POST", "/v1/direct-uploads",
                                     json: #"{"purpose":"\#(purpose)","filename":"\#(name)","bytes":\#(bytes),"mime":"\#(mime)"}"#)
            }
            func size(_ url: URL) throws -> Int64 { (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.int64Value ?? 0 }

            // An image: Images' direct creator upload; the browser posts the form without a token.
            let cover = course.appendingPathComponent("images/cover.jpg")
            let image = await ask("thumbnail", "cover.jpg", try size(cover), "image/jpeg")
            #expect(image.status == 201, "\(image.body)")
            #expect(image.json?["sink"] == "cloudflare-images" && image.json?["method"] == "POST" && image.json?["protocol"] == "form")
            let imageID = try #require(string(image.json?["id"]))
            #expect(image.json?["ref"] == .string("images:\(imageID)") && image.json?["expiresAt"] != nil)
            let imageURL = try #require(string(image.json?["url"]))
            let posted = await Shell.runOnThread("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-F", "file=@\(cover.path)", imageURL])
            #expect(posted.stdout == "200", "\(posted.stderr)")
            #expect(try await cloudflare.state()["images"]?[imageID] != nil)

            // A short video: Stream's basic direct upload, one form POST.
            let clip = course.appendingPathComponent("videos/01-intro.mp4")
            let video = await ask("lesson-video", "intro.mp4", try size(clip), "video/mp4")
            #expect(video.status == 201 && video.json?["sink"] == "stream" && video.json?["protocol"] == "form", "\(video.body)")
            let uid = try #require(string(video.json?["id"]))
            let videoURL = try #require(string(video.json?["url"]))
            let sent = await Shell.runOnThread("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-F", "file=@\(clip.path)", videoURL])
            #expect(sent.stdout == "200", "\(sent.stderr)")
            #expect(try await cloudflare.state()["videos"]?[uid] != nil)
            // A long one (declared 900 MB): a one-time tus URL made with direct_user=true.
            let long = await ask("lesson-video", "lecture.mp4", 900_000_000, "video/mp4")
            #expect(long.status == 201 && long.json?["protocol"] == "tus", "\(long.body)")
            let tusUID = try #require(string(long.json?["id"]))
            #expect(try await cloudflare.state()["videos"]?[tusUID]?["direct"] == "tus")
            #expect(string(long.json?["url"])?.contains("/upload/tus/\(tusUID)") == true)

            // A PDF: an R2 presigned PUT bound to the declared type and length.
            let notes = course.appendingPathComponent("attachments/notes.pdf")
            let pdf = await ask("message-attachment", "notes.pdf", try size(notes), "application/pdf")
            #expect(pdf.status == 201 && pdf.json?["sink"] == "r2" && pdf.json?["method"] == "PUT", "\(pdf.body)")
            let key = try #require(string(pdf.json?["id"]))
            #expect(key.hasPrefix("attachments/upload-") && key.hasSuffix(".pdf"))
            let urlText = try #require(string(pdf.json?["url"]))
            let url = try #require(URL(string: urlText))
            #expect(pdf.json?["headers"]?["Content-Type"] == "application/pdf")
            #expect(pdf.json?["headers"]?["Content-Length"] == .string(String(try size(notes))))
            // The same URL from botocore, at the URL's own time: an independent SigV4 query signature.
            var query: [String: String] = [:]
            for item in URLComponents(url: url, resolvingAgainstBaseURL: false)?.queryItems ?? [] { query[item.name] = item.value }
            #expect(query["X-Amz-SignedHeaders"] == "content-length;content-type;host")
            #expect(query["X-Amz-Expires"] == "600")
            let formatter = DateFormatter()
            formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
            formatter.timeZone = TimeZone(identifier: "UTC")
            let time = try #require(formatter.date(from: query["X-Amz-Date"] ?? ""))
            let expected = try Botocore.presignedPut(endpoint: env["CLOUDFLARE_R2_ENDPOINT"] ?? "", bucket: env["CLOUDFLARE_R2_BUCKET_NAME"] ?? "",
                                                     key: key, contentType: "application/pdf", bytes: try size(notes), expires: 600, time: time,
                                                     keys: (env["CLOUDFLARE_R2_ACCESS_KEY_ID"] ?? "", env["CLOUDFLARE_R2_SECRET_ACCESS_KEY"] ?? ""))
            #expect(url.absoluteString == expected)
            // The browser's PUT, with the headers the answer names and no credentials.
            let put = await Shell.runOnThread("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
                                                                "-H", "Content-Type: application/pdf", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                                                                "--data-binary", "@\(notes.path)", url.absoluteString])
            #expect(put.stdout == "200", "\(put.stderr)")
            #expect(try await s3.objects()[key]?["size"] == .number(Double(try size(notes))))

            // The rules refuse what they would refuse for the file itself.
            let huge = await ask("thumbnail", "huge.jpg", 60_000_000, "image/jpeg")
            #expect(huge.status == 422 && huge.json?["reason"] == "too_large", "\(huge.body)")
            let svg = await ask("thumbnail", "logo.svg", 2000, "image/svg+xml")
            #expect(svg.status == 422 && (svg.json?["reason"] == "svg_not_allowed" || svg.json?["reason"] == "needs_content"))
            let mismatch = await ask("message-attachment", "cv.pdf", 2000, "image/png")
            #expect(mismatch.status == 422 && mismatch.json?["reason"] == "type_mismatch")
            let name = await ask("message-attachment", "../../x.pdf", 2000, "application/pdf")
            #expect(name.status == 422 && name.json?["reason"] == "unsafe_path")
            #expect(await server.request("POST", "/v1/direct-uploads", json: "{}").status == 400)
            let metrics = await server.request("GET", "/metrics")
            #expect(metrics.body.contains(#"media_pipeline_direct_uploads_total{sink="stream",status="planned"} 2"#), "\(metrics.body)")
            #expect(await server.stop() == 0)
        }
    }

    @Test("live inputs: create (keys only in the answer), list, delete")
    func liveInputs() async throws {
        let (cloudflare, s3, env) = try await fakes()
        defer { withExtendedLifetime((cloudflare, s3)) {} }
        try await TestFiles.withTemporaryDirectory { dir in
            let server = try await Served(["--pipeline", try upload.pipeline(in: dir).path], environment: env, in: dir)
            let created = await server.request("POST", "/v1/live-inputs", json: #"{"name":"Office hours","recording":true}"#)
            #expect(created.status == 201, "\(created.body) \(server.spawned.errors)")
            let uid = try #require(string(created.json?["uid"]))
            let key = try #require(string(created.json?["rtmps"]?["streamKey"]))
            let listed = await server.request("GET", "/v1/live-inputs")
            #expect(listed.status == 200 && listed.body.contains(uid))
            #expect(await server.request("DELETE", "/v1/live-inputs/\(uid)").status == 204)
            #expect(await server.request("DELETE", "/v1/live-inputs/\(uid)").status == 404)
            #expect(await server.request("POST", "/v1/live-inputs", json: "{}").status == 400)
            #expect(await server.stop() == 0)
            #expect(!server.spawned.errors.contains(key), "an ingest key reached the log")
        }
    }

    @Test("serve refuses to start without a token unless told to run unauthenticated on loopback")
    func startRules() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let pipeline = try upload.pipeline(in: dir).path
            let none = await cli.run(["serve", "--pipeline", pipeline], environment: ["MEDIA_PIPELINE_TOKEN": "", "CLOUDFLARE_ACCOUNT_ID": ""])
            #expect(none.status == 2 && none.stderr.contains("MEDIA_PIPELINE_TOKEN"))
            let open = await cli.run(["serve", "--pipeline", pipeline, "--unauthenticated", "--listen", "0.0.0.0:0"],
                                     environment: ["MEDIA_PIPELINE_TOKEN": "", "CLOUDFLARE_ACCOUNT_ID": ""])
            #expect(open.status == 2 && open.stderr.contains("loopback"))
            let short = await cli.run(["serve", "--pipeline", pipeline], environment: ["MEDIA_PIPELINE_TOKEN": "abc", "CLOUDFLARE_ACCOUNT_ID": ""])
            #expect(short.status == 2 && short.stderr.contains("too short"))
            let server = try await Served(["--pipeline", pipeline, "--unauthenticated"], environment: [:], in: dir, token: nil)
            #expect(await server.request("GET", "/healthz", token: .some(nil)).status == 200)
            #expect(server.spawned.errors.contains("no authentication"))
            #expect(await server.stop() == 0)
            let help = await cli.run(["serve", "--help"])
            #expect(help.status == 0 && help.stdout.contains("--listen") && help.stdout.contains("/v1/direct-uploads"))
        }
    }

    /// Writes N distinct 8×8 PNGs (python3 -c SCRIPT DIR N).
    static let pngMaker = """
        import os, struct, sys, zlib
        out, n = sys.argv[1], int(sys.argv[2])
        def chunk(kind, data):
            return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
        for i in range(n):
            raw = b''.join(b'\\x00' + b''.join(bytes(((x * 31 + y * 17 + i) % 256, (i // 256) % 256, (i * 7 + x) % 256)) for x in range(8)) for y in range(8))
            png = b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 8, 8, 8, 2, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')
            open(os.path.join(out, 'thumb-%03d.png' % i), 'wb').write(png)
        """
}
