import Foundation
import MediaPipeline
import TestSupport
import Testing

/// The network faults of the F section through a TCP fault proxy (`Tests/Fakes/fault_proxy.py`),
/// against every sink: the real binary talks to the proxy, the proxy forwards to the local fakes
/// and breaks the requests a test names. Each test checks the exit code, the manifest row, what
/// the fake behind the proxy holds and logged, and the proxy's own log.
// One case at a time: each starts its own servers (moto takes seconds of CPU), and 28 at once would
// crowd out the timing-sensitive suites running beside this one.
@Suite(.serialized)
struct FaultProxyTests {
    /// How a file leaves the tool, with what it takes to send one and to check that it arrived.
    enum Sink: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case images = "Images"
        case r2Put = "R2 single PUT"
        case r2Multipart = "R2 multipart"
        case streamTus = "Stream tus"

        var testDescription: String { rawValue }

        /// The request line of the request a fault is aimed at (the proxy's `match`): the one
        /// carrying the file, part 2 of a multipart upload, the first tus PATCH.
        var target: String {
            switch self {
            case .images: #"^POST /client/v4/accounts/[0-9a-f]+/images/v1 "#
            case .r2Put: #"^PUT /[^ ?]+ "#
            case .r2Multipart: #"^PUT /[^ ]+\?partNumber=2&"#
            case .streamTus: #"^PATCH /"#
            }
        }

        /// The requests carrying the file's bytes in a run without faults.
        var uploads: Int {
            switch self {
            case .images, .r2Put: 1
            case .r2Multipart, .streamTus: 3
            }
        }

        /// Where a reset cuts the target request, counted from its first byte: well inside its body.
        var resetAfter: Int {
            switch self {
            case .images: 20_000
            case .r2Put: 150_000
            case .r2Multipart, .streamTus: 2 * 1024 * 1024
            }
        }

        var usesCloudflare: Bool { self == .images || self == .streamTus }

        /// Whether a fake's log entry is a request carrying the file's bytes.
        func isUpload(_ entry: JSONValue) -> Bool {
            let method = entry["method"]?.text, path = entry["path"]?.text ?? "", query = entry["query"]?.text ?? ""
            switch self {
            case .images: return method == "POST" && path.hasSuffix("/images/v1")
            case .r2Put: return method == "PUT" && query.isEmpty
            case .r2Multipart: return method == "PUT" && query.contains("partNumber=")
            case .streamTus: return method == "PATCH"
            }
        }
    }

    /// The fakes, the proxy in front of the one the sink talks to, and a folder holding one file.
    struct Rig {
        let sink: Sink
        let cloudflare: CloudflareFake?
        let s3: S3Fake?
        let proxy: FaultProxy
        let dir: URL
        let input: URL
        let file: URL
        let manifest: URL
        let journal: URL

        init(_ sink: Sink, in dir: URL, tls: Bool = false) async throws {
            self.sink = sink
            self.dir = dir
            if sink.usesCloudflare {
                cloudflare = try await CloudflareFake()
                s3 = nil
            } else {
                cloudflare = nil
                // A bucket of its own: a request another test's process sends to a port this
                // server took over later names another bucket.
                s3 = try await S3Fake(arguments: ["--bucket", "fp-\(UUID().uuidString.prefix(8).lowercased())"])
            }
            proxy = try await FaultProxy(upstream: cloudflare?.server.base ?? s3?.server.base ?? "", tls: tls)
            input = dir.appendingPathComponent("in")
            try FileManager.default.createDirectory(at: input.appendingPathComponent("videos"), withIntermediateDirectories: true)
            switch sink {
            case .images:
                file = input.appendingPathComponent("cover.jpg")
                try FileManager.default.copyItem(at: try UploadTests.course().appendingPathComponent("images/cover.jpg"), to: file)
            case .r2Put:
                file = input.appendingPathComponent("notes.pdf")
                try ResumeTests().bigPDF(file, bytes: 300_000)
            case .r2Multipart:
                file = input.appendingPathComponent("reader.pdf")
                try ResumeTests().bigPDF(file, bytes: 2 * 5 * 1024 * 1024 + 123_457)
            case .streamTus:
                file = input.appendingPathComponent("videos/lecture.mp4")
                try ResumeTests().fakeMP4(file, bytes: 2 * 5 * 1024 * 1024 + 98_765)
            }
            manifest = dir.appendingPathComponent("manifest.jsonl")
            journal = dir.appendingPathComponent("journal.db")
        }

        /// The sink's variables, its endpoint replaced by the proxy's.
        var environment: [String: String] {
            var env = cloudflare?.environment ?? s3?.environment ?? [:]
            if cloudflare != nil { env["CLOUDFLARE_API_BASE_URL"] = proxy.endpoint + "/client/v4" }
            if s3 != nil { env["CLOUDFLARE_R2_ENDPOINT"] = proxy.endpoint }
            return env
        }

        /// Runs the binary on the one file (quick retries, parts and chunks of 5 MiB) and returns
        /// its result and the file's manifest row.
        func run(_ settings: [String] = []) async throws -> (result: Shell.Result, row: JSONValue) {
            let sizes = ["stages.r2.options.multipartThreshold=6MB", "stages.r2.options.partSize=5MiB",
                         "stages.stream.options.chunkSize=5MiB"]
            let pipeline = try UploadTests().pipeline(in: dir)
            let result = await CLITests().run(["run", input.path, "--pipeline", pipeline.path, "--manifest", manifest.path,
                                         "--journal", journal.path] + (sizes + settings).flatMap { ["--set", $0] },
                                        environment: environment)
            let rows = try UploadTests().rows(try String(contentsOf: manifest, encoding: .utf8))
            try #require(rows.count == 1, "manifest: \(rows), stderr: \(result.stderr)")
            return (result, rows[0])
        }

        /// Everything the fake behind the proxy logged (for R2, on keys of this test's bucket:
        /// the S3 server's own start-up checks list the bucket, and one of them can be logged
        /// just after its log was cleared).
        func upstreamLog() async throws -> [JSONValue] {
            if let cloudflare { return try await cloudflare.server.log() }
            guard let s3 else { return [] }
            let bucket = s3.environment["CLOUDFLARE_R2_BUCKET_NAME"] ?? ""
            return try await s3.server.log().filter { $0["path"]?.text?.hasPrefix("/\(bucket)/") == true }
        }

        /// The requests that carried the file's bytes to the fake, answered or not.
        func uploads() async throws -> [JSONValue] {
            try await upstreamLog().filter(sink.isUpload)
        }

        /// The file's sha256, computed here.
        var fileSHA256: String {
            String(Shell.run("/usr/bin/sha256sum", [file.path]).stdout.prefix(64))
        }

        /// The multipart ETag of the file cut in parts of `partSize`, computed here.
        func multipartETag(partSize: Int) -> String {
            let script = """
                import hashlib, sys
                data = open(sys.argv[1], 'rb').read(); size = int(sys.argv[2])
                parts = [data[i:i + size] for i in range(0, len(data), size)]
                print(hashlib.md5(b''.join(hashlib.md5(p).digest() for p in parts)).hexdigest() + '-%d' % len(parts))
                """
            return Shell.run("/usr/bin/python3", ["-c", script, file.path, String(partSize)]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }

        var fileSize: Int {
            ((try? FileManager.default.attributesOfItem(atPath: file.path)[.size]) as? Int) ?? -1
        }

        /// The provider holds exactly one copy, complete and with the right bytes, and no
        /// multipart upload is left open.
        func expectStored(_ row: JSONValue) async throws {
            #expect(row["status"] == "uploaded", "row: \(row)")
            switch sink {
            case .images:
                let images = try #require(try await cloudflare?.state()["images"])
                #expect(images.objectPairsCount == 1, "images: \(images)")
                let id = try #require(row["result"]?["id"]?.text)
                let image = try #require(images[id])
                // The fake hashes the bytes it stored; the metadata carries the tool's hash of the
                // prepared file, and the size is what the tool says it sent.
                #expect(image["sha256"] != nil && image["sha256"] == image["meta"]?["sha256"], "image: \(image)")
                #expect(image["size"] == row["result"]?["bytes"])
            case .r2Put, .r2Multipart:
                let objects = try #require(try await s3?.objects())
                #expect(objects.objectPairsCount == 1, "objects: \(objects)")
                let key = try #require(row["result"]?["key"]?.text)
                #expect(objects[key]?["sha256"]?.text == fileSHA256)
                #expect(objects[key]?["size"] == .number(Double(fileSize)))
                if sink == .r2Multipart {
                    // R2's multipart ETag: the MD5 of the parts' MD5s, then the part count.
                    #expect(objects[key]?["etag"]?.text?.trimmingCharacters(in: ["\""]) == multipartETag(partSize: 5 * 1024 * 1024))
                }
                #expect(try await s3?.server.control("/__fake/multipart") == .array([]), "a multipart upload was left open")
            case .streamTus:
                let videos = try #require(try await cloudflare?.state()["videos"])
                #expect(videos.objectPairsCount == 1, "videos: \(videos)")
                let uid = try #require(row["result"]?["id"]?.text)
                #expect(videos[uid]?["sha256"]?.text == fileSHA256)
                #expect(videos[uid]?["offset"] == .number(Double(fileSize)))
                #expect(videos[uid]?["length"] == .number(Double(fileSize)))
            }
        }
    }

    /// The proxy's log entries whose `end` is `end`.
    func ended(_ log: [JSONValue], _ end: String) -> [JSONValue] { log.filter { $0["end"] == .string(end) } }

    /// Whether the fake answered the request (0 or null: the connection went before an answer).
    func answered(_ entry: JSONValue) -> Bool {
        if case let .number(status)? = entry["status"] { return status >= 100 }
        return false
    }

    /// Whether a stalled connection lasted the 3 s idle timeout the stall tests set, and not
    /// much longer (the body goes out at once; libcurl reports progress about once a second).
    func heldForTheIdleTimeout(_ entry: JSONValue) -> Bool {
        guard let seconds = entry["seconds"]?.double else { return false }
        return seconds >= 3 && seconds < 7
    }

    /// The part numbers of the multipart requests among `uploads`, sorted.
    func partNumbers(_ uploads: [JSONValue]) -> [String] {
        uploads.compactMap { $0["query"]?.text?.firstMatch(of: /partNumber=(\d+)/).map { String($0.1) } }.sorted()
    }

    /// Scripts the proxy, runs the binary, and checks that the run got over the faults: exit 0,
    /// the retries they cost (nil: not counted), one complete copy stored. Returns the manifest row.
    func recovers(_ rig: Rig, from script: [JSONValue], settings: [String] = [], retries: Int?) async throws -> JSONValue {
        try await rig.proxy.script(script)
        let (result, row) = try await rig.run(settings)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        if let retries { #expect(row["result"]?["retries"] == .number(Double(retries)), "row: \(row)") }
        // The run's summary counts them per sink too.
        if let retries, retries > 0 {
            #expect(result.stderr.contains(retries == 1 ? ", 1 retry" : ", \(retries) retries"), "summary: \(result.stderr)")
        }
        try await rig.expectStored(row)
        return row
    }

    @Test("F1: a connection reset in the middle of the request body is retried; the file arrives whole, with one extra attempt",
          arguments: Sink.allCases)
    func aResetMidBodyIsRetried(_ sink: Sink) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let rig = try await Rig(sink, in: dir)
            _ = try await recovers(rig, from: [["match": .string(sink.target), "reset_after": .number(Double(sink.resetAfter))]], retries: 1)

            // The proxy cut exactly one connection, inside the target request.
            let log = try await rig.proxy.log()
            let resets = ended(log, "reset")
            #expect(resets.count == 1, "proxy log: \(log)")
            let cut = try #require(resets.first)
            #expect(cut["faults"]?[0]?["reset_after"] == .number(Double(sink.resetAfter)))
            #expect(cut["requests"]?.last?.text?.firstMatch(of: try Regex(sink.target)) != nil)
            #expect(try await rig.proxy.pending().isEmpty)

            // The fake saw the cut attempt unanswered and the rest answered once each.
            let uploads = try await rig.uploads()
            #expect(uploads.filter { !answered($0) }.count == 1, "uploads: \(uploads)")
            switch sink {
            case .images, .r2Put:
                // The log is in the order the fake finished with each request, and it may notice
                // the cut one only after it has answered the retry.
                #expect(uploads.count == 2, "uploads: \(uploads)")
            case .r2Multipart:
                // Only part 2 went twice; parts 1 and 3 once.
                #expect(partNumbers(uploads) == ["1", "2", "2", "3"], "uploads: \(uploads)")
            case .streamTus:
                // The PATCHes that were answered carried the rest from the server's offset, once:
                // the cut PATCH left at most what the proxy forwarded of it (the fake may keep
                // none of it: a reset can discard what it had not read yet).
                let sent = uploads.filter(answered).reduce(0) { $0 + ($1["bytes_in"]?.int ?? 0) }
                #expect(sent <= rig.fileSize && sent >= rig.fileSize - sink.resetAfter, "PATCH bytes after the cut: \(sent), \(uploads)")
                #expect(try await rig.upstreamLog().contains { $0["method"] == "HEAD" }, "the server's offset was never asked")
            }
        }
    }

    @Test("F7: the answer cut off after the fake committed is retried without a second copy; tus asks the offset and sends nothing twice",
          arguments: Sink.allCases)
    func aLostAnswerLeavesOneCopy(_ sink: Sink) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let rig = try await Rig(sink, in: dir)
            // 12 bytes of the answer get through ("HTTP/1.1 200"), then both sides are reset.
            let row = try await recovers(rig, from: [["match": .string(sink.target), "reset_after": 12, "direction": "down"]], retries: 1)

            let log = try await rig.proxy.log()
            let resets = ended(log, "reset")
            #expect(resets.count == 1 && resets.first?["detail"] == "after the scripted bytes server->client", "proxy log: \(log)")
            // Every request reached the fake whole. (The fake may log the cut one without a
            // status: the reset can reach it while it is still writing the answer.)
            let uploads = try await rig.uploads()
            #expect(uploads.allSatisfy { $0["bytes_in"]?.int == $0["headers"]?["content-length"]?.text.flatMap { Int($0) } },
                    "uploads: \(uploads)")
            switch sink {
            case .images:
                // The second POST found the first image (409) and the tool took it as its own.
                #expect(uploads.count == 2 && uploads.last?["status"] == 409, "uploads: \(uploads)")
                #expect(row["result"]?["existing"] == true)
            case .r2Put:
                #expect(uploads.count == 2)
            case .r2Multipart:
                #expect(partNumbers(uploads) == ["1", "2", "2", "3"], "uploads: \(uploads)")
            case .streamTus:
                // The first chunk was stored; the tool asked the offset and went on from there.
                #expect(uploads.count == sink.uploads, "PATCHes: \(uploads)")
                #expect(try await rig.upstreamLog().contains { $0["method"] == "HEAD" })
            }
        }
    }

    @Test("F2: 502 then 503 from the network path, then success; the fake sees the request once",
          arguments: Sink.allCases)
    func badGatewayThenUnavailableThenSuccess(_ sink: Sink) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let rig = try await Rig(sink, in: dir)
            _ = try await recovers(rig, from: [["match": .string(sink.target), "respond": 502],
                                               ["match": .string(sink.target), "respond": 503, "headers": ["Retry-After": "0"]]],
                                   retries: 2)

            let log = try await rig.proxy.log()
            let answeredByProxy = ended(log, "responded")
            #expect(answeredByProxy.map { $0["detail"] } == ["502", "503"], "proxy log: \(log)")
            // The scripted answers came after the whole request was read, and nothing of it went on.
            for entry in answeredByProxy { #expect((entry["dropped"]?.int ?? 0) > 0) }
            #expect(try await rig.proxy.pending().isEmpty)
            let uploads = try await rig.uploads()
            #expect(uploads.count == sink.uploads && uploads.allSatisfy(answered), "uploads: \(uploads)")
        }
    }

    @Test("a stall longer than limits.idleTimeout times out and is retried; the run succeeds once it clears",
          arguments: Sink.allCases)
    func aStallThatClearsIsRetried(_ sink: Sink) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let rig = try await Rig(sink, in: dir)
            // The proxy would hold the request for 60 s; the tool gives up after 3 s without a byte.
            _ = try await recovers(rig, from: [["match": .string(sink.target), "stall": 60]], settings: ["limits.idleTimeout=3s"], retries: 1)

            let log = try await rig.proxy.log()
            let stalled = log.filter { $0["faults"]?[0]?["stall"] != nil }
            #expect(stalled.count == 1, "proxy log: \(log)")
            // The tool hung up about 3 s after the last byte moved, long before the proxy would
            // have (libcurl's own speed check, averaged over seconds, used to wait 8 to 9 s).
            #expect(stalled.first?["end"] == "client_closed")
            #expect(stalled.allSatisfy(heldForTheIdleTimeout), "proxy log: \(log)")
            #expect((stalled.first?["dropped"]?.int ?? 0) > 0)
            // The stalled request never reached the fake.
            let uploads = try await rig.uploads()
            #expect(uploads.count == sink.uploads && uploads.allSatisfy(answered), "uploads: \(uploads)")
        }
    }

    @Test("a stall that never clears fails the file as timeout (exit 4) after every try; a rerun finishes it",
          arguments: Sink.allCases)
    func aStallThatNeverClearsFailsTheFile(_ sink: Sink) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let rig = try await Rig(sink, in: dir)
            try await rig.proxy.script([["match": .string(sink.target), "stall": true, "times": 3]])
            let (result, row) = try await rig.run(["limits.idleTimeout=3s", "limits.retry.attempts=3"])
            #expect(result.status == 4, "stderr: \(result.stderr)")
            #expect(row["status"] == "failed" && row["reason"] == "timeout", "row: \(row)")

            // Three tries, each held by the proxy until the tool hung up.
            let log = try await rig.proxy.log()
            let stalled = log.filter { $0["faults"]?[0]?["stall"] != nil }
            #expect(stalled.count == 3 && stalled.allSatisfy { $0["end"] == "client_closed" }, "proxy log: \(log)")
            #expect(stalled.allSatisfy(heldForTheIdleTimeout), "proxy log: \(log)")
            #expect(try await rig.proxy.pending().isEmpty)
            #expect(try await rig.uploads().filter { sink == .r2Multipart ? $0["query"]?.text?.contains("partNumber=2&") == true : true }.isEmpty)

            // Nothing complete is stored. Multipart and tus uploads stay open for the rerun to resume.
            switch sink {
            case .images:
                #expect(try await rig.cloudflare?.state()["images"]?.objectPairsCount == 0)
            case .r2Put:
                #expect(try await rig.s3?.objects().objectPairsCount == 0)
            case .r2Multipart:
                #expect(try await rig.s3?.objects().objectPairsCount == 0)
                #expect(try await rig.s3?.server.control("/__fake/multipart").arrayCount == 1, "the journaled upload is kept")
            case .streamTus:
                let videos = try #require(try await rig.cloudflare?.state()["videos"])
                #expect(videos.objectPairsCount == 1)
            }

            let (again, rerunRow) = try await rig.run(["limits.idleTimeout=3s"])
            #expect(again.status == 0, "stderr: \(again.stderr)")
            try await rig.expectStored(rerunRow)
        }
    }

    @Test("latency on every piece and answers dripped a few bytes at a time still deliver the right bytes",
          arguments: Sink.allCases)
    func latencyAndDripStillDeliver(_ sink: Sink) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let rig = try await Rig(sink, in: dir)
            // A slow transfer keeps moving, so even a short idle timeout does not cut it.
            _ = try await recovers(rig, from: [["latency": 0.005, "drip": 48, "interval": 0.01, "direction": "down", "times": 100]],
                                   settings: ["limits.idleTimeout=5s"], retries: nil)

            let log = try await rig.proxy.log()
            #expect(!log.isEmpty && log.allSatisfy { $0["faults"]?[0]?["drip"] == 48 }, "proxy log: \(log)")
            #expect(ended(log, "reset").isEmpty)
            let forwarded = log.reduce(0) { $0 + ($1["bytes_up"]?.int ?? 0) }
            #expect(forwarded > rig.fileSize)
            let uploads = try await rig.uploads()
            #expect(uploads.count == sink.uploads && uploads.allSatisfy(answered), "uploads: \(uploads)")
        }
    }

    @Test("F13: a certificate the tool does not trust is fatal (exit 3), with no retry, no insecure fallback and no request upstream",
          arguments: Sink.allCases)
    func anUntrustedCertificateIsFatal(_ sink: Sink) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let rig = try await Rig(sink, in: dir, tls: true)
            #expect(rig.proxy.endpoint.hasPrefix("https://"))
            let (result, row) = try await rig.run()
            #expect(result.status == 3, "stderr: \(result.stderr)")
            #expect(result.stderr.contains("certificate is not trusted (no insecure fallback)"), "stderr: \(result.stderr)")
            #expect(row["status"] == "failed" && row["reason"] == "tls_untrusted", "row: \(row)")

            // One handshake, refused by the tool; nothing went past the proxy.
            let log = try await rig.proxy.log()
            #expect(log.count == 1, "proxy log: \(log)")
            #expect(log.allSatisfy { $0["end"] == "tls_failed" && $0["upstream"] == false && $0["requests"] == .array([]) })
            #expect(log.first?["detail"]?.text?.lowercased().contains("unknown ca") == true, "proxy log: \(log)")
            let upstream = try await rig.upstreamLog()
            #expect(upstream.isEmpty, "reached the fake: \(upstream)")
        }
    }
}

extension JSONValue {
    var text: String? { if case let .string(s) = self { s } else { nil } }
    var int: Int? { if case let .number(n) = self { Int(n) } else { nil } }
    var double: Double? { if case let .number(n) = self { n } else { nil } }
    var arrayCount: Int { if case let .array(items) = self { items.count } else { -1 } }
    subscript(index: Int) -> JSONValue? {
        if case let .array(items) = self, items.indices.contains(index) { items[index] } else { nil }
    }
    var last: JSONValue? { if case let .array(items) = self { items.last } else { nil } }
}
