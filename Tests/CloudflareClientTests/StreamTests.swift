import CloudflareClient
import Foundation
import HTTPTransport
import MediaPipeline
import TestSupport
import Testing

/// Cloudflare Stream against the local API fake, which enforces tus's chunk rules and keeps every
/// byte that arrives: tus uploads and their F12 edge cases, basic uploads, polling, deletes, live inputs.
struct StreamTests {
    static let mib: Int64 = 1_048_576
    /// The chunk size the tus tests configure.
    static let chunk: Int64 = 5 * mib
    /// About 12.4 MiB: two full chunks, then a short last one that is no multiple of 256 KiB.
    static let length = 13_000_000
    static let sizes: [Int64] = [chunk, chunk, Int64(length) - 2 * chunk]
    /// A fault action that lets its request through untouched, so the next action hits a later one.
    static let pass: JSONValue = ["delay": 0]

    /// What one `uploadTus` call returned and what its `created` callback heard.
    struct Tus {
        var uid: String
        var resumedFrom: Int64
        var created: [(uid: String, url: String)]
    }

    func tus(_ stream: StreamClient, _ file: URL, resume: (uid: String, url: String)? = nil,
             retries: RetryCount? = nil) async throws -> Tus {
        var created: [(uid: String, url: String)] = []
        let upload = try await stream.uploadTus(path: file.path, bytes: Int64(Self.length), metadata: [("name", file.lastPathComponent)],
                                                chunkSize: Self.chunk, resume: resume, retries: retries) { created.append(($0, $1)) }
        return Tus(uid: upload.uid, resumedFrom: upload.resumedFrom, created: created)
    }

    /// The video as the fake holds it, checked: every byte arrived, the digest is the file's, no chunk was refused.
    @discardableResult
    func expectComplete(_ fake: CloudflareFake, _ uid: String, _ file: URL) async throws -> JSONValue {
        let video = try #require(try await fake.state()["videos"]?[uid])
        #expect(video["offset"] == .int(Self.length))
        #expect(video["length"] == .int(Self.length))
        #expect(video["sha256"]?.string == (try sha256(of: file)))
        #expect(video["chunk_violations"] == [])
        return video
    }

    func videoCount(_ fake: CloudflareFake) async throws -> Int {
        try await fake.state()["videos"]?.objectPairs.count ?? -1
    }

    // MARK: tus

    @Test func aTusUploadGoesUpInWholeChunksWithExactLengthsAndItsName() async throws {
        let fake = try await CloudflareFake()
        let stream = StreamClient(api: fake.api())
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(Self.length, in: dir, name: "lesson 01.mp4")
            let upload = try await tus(stream, file)
            // The uid is the one the creation answered with (stream-media-id), heard before any byte went.
            #expect(upload.created.map(\.uid) == [upload.uid])
            #expect(upload.created.first?.url.hasSuffix("/stream/tus/\(upload.uid)") == true)
            #expect(try await videoCount(fake) == 1)
            let video = try await expectComplete(fake, upload.uid, file)
            #expect(video["patch_sizes"] == .array(Self.sizes.map { .int($0) }))
            #expect(video["meta"]?["name"] == "lesson 01.mp4")

            let log = try await fake.server.log()
            for entry in log {
                #expect(entry.logged("transfer-encoding") == nil)
                #expect(entry.logged("expect") == nil)
                #expect(entry.logged("tus-resumable") == "1.0.0")
            }
            #expect(log.filter(\.isCreation).count == 1)
            #expect(log.first?.logged("upload-length") == "\(Self.length)")
            let patches = log.filter(\.isPatch)
            #expect(patches.map(\.uploadOffset) == [0, Self.chunk, 2 * Self.chunk])
            #expect(patches.map { $0.logged("content-length") } == Self.sizes.map { "\($0)" })
            #expect(patches.map(\.bytesIn) == Self.sizes)
            #expect(patches.allSatisfy { $0.logged("content-type") == "application/offset+octet-stream" })
            #expect(patches.allSatisfy { $0.logged("authorization") == "present" })
        }
    }

    @Test("the effective chunk: clamp(roundDown(configured, 256 KiB), 5 MiB, 200 MiB)")
    func chunkSizeIsClampedAndRounded() {
        #expect(StreamClient.chunkSize(0) == 5 * Self.mib)
        #expect(StreamClient.chunkSize(1 * Self.mib) == 5 * Self.mib)
        #expect(StreamClient.chunkSize(5 * Self.mib + 1) == 5 * Self.mib)
        #expect(StreamClient.chunkSize(50 * Self.mib) == 50 * Self.mib)
        #expect(StreamClient.chunkSize(50 * Self.mib + 262_143) == 50 * Self.mib)
        #expect(StreamClient.chunkSize(200 * Self.mib) == 200 * Self.mib)
        #expect(StreamClient.chunkSize(300 * Self.mib) == 200 * Self.mib)
    }

    @Test("F12 property: all chunks but the last are multiples of 256 KiB within [5 MiB, 200 MiB]; the last is no larger; they add up",
          arguments: [0, 1 << 20, 5 << 20, (5 << 20) + 1, 21 * 262_144 + 12_345, 50 << 20, 200 << 20, 300 << 20] as [Int64])
    func chunksFollowCloudflareRules(_ configured: Int64) {
        let size = StreamClient.chunkSize(configured)
        let gib: Int64 = 1 << 30
        var random = SplitMix64(seed: UInt64(configured) &+ 0x5EED)
        let lengths: [Int64] = [1, 262_143, 262_144, 5 * Self.mib - 1, 5 * Self.mib, 5 * Self.mib + 1, 10 * Self.mib,
                                50 * Self.mib + 1, 200 * Self.mib, 200 * Self.mib + 1, 2 * gib]
            + (0..<250).map { _ in Int64.random(in: 1...2 * gib, using: &random) }
        var problems: [String] = []
        for length in lengths {
            var chunks: [Int64] = []
            var offset: Int64 = 0
            while offset < length {
                let next = StreamClient.chunk(at: offset, of: length, size: size)
                guard next > 0 else { problems.append("\(length): a chunk of \(next) at \(offset)"); break }
                chunks.append(next)
                offset += next
            }
            if chunks.reduce(0, +) != length { problems.append("\(length): chunks add up to \(chunks.reduce(0, +))") }
            if let bad = chunks.dropLast().first(where: { $0 % 262_144 != 0 || $0 < 5_242_880 || $0 > 209_715_200 }) {
                problems.append("\(length): a non-final chunk of \(bad)")
            }
            if let last = chunks.last, last > 209_715_200 || chunks.dropLast().contains(where: { $0 < last }) {
                problems.append("\(length): a last chunk of \(last) after \(chunks.dropLast().min() ?? 0)")
            }
        }
        #expect(problems.isEmpty, "\(problems.count) lengths break the rules, e.g. \(problems.prefix(3))")
    }

    @Test("F12: a PATCH reset after N bytes: HEAD, then continue from the server's offset, re-sending under one chunk")
    func aResetPatchContinuesFromTheServerOffset() async throws {
        let fake = try await CloudflareFake()
        let kept: Int64 = 1_234_567  // no multiple of 256 KiB
        try await fake.server.faults([["method": "PATCH", "path": "/stream/tus/", "actions": [Self.pass, ["reset_after_bytes": .int(kept)]]]])
        let clock = RecordingClock()
        let stream = StreamClient(api: fake.api(clock: clock))
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(Self.length, in: dir)
            let count = RetryCount()
            let upload = try await tus(stream, file, retries: count)
            try await expectComplete(fake, upload.uid, file)
            #expect(count.value == 1)
            #expect(clock.sleeps.count == 1)

            let log = try await fake.server.log()
            #expect(log.filter(\.isCreation).count == 1)
            let dropped = log.filter { $0["dropped"] == true }
            #expect(dropped.map(\.uploadOffset) == [Self.chunk])
            #expect(dropped.map(\.bytesIn) == [kept])
            // After the reset the client asked, and went on from the server's offset, not its own.
            let head = try #require(log.lastIndex { $0["method"] == "HEAD" })
            #expect(log[head].statusCode == 200)
            #expect(log[(head + 1)...].map(\.uploadOffset) == [Self.chunk + kept, 2 * Self.chunk + kept])
            #expect(log.filter { $0.isPatch && $0.statusCode == 204 }.map(\.uploadOffset) == [0, Self.chunk + kept, 2 * Self.chunk + kept])
            // What the server read twice is at most one chunk.
            #expect(log.filter(\.isPatch).map(\.bytesIn).reduce(0, +) - Int64(Self.length) <= Self.chunk)
        }
    }

    @Test("F12: PATCH → 409: HEAD, then resume at the server's offset")
    func aConflictAsksTheServerForItsOffset() async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "PATCH", "path": "/stream/tus/", "actions": [Self.pass, ["status": 409]]]])
        let clock = RecordingClock()
        let stream = StreamClient(api: fake.api(clock: clock))
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(Self.length, in: dir)
            let upload = try await tus(stream, file)
            let video = try await expectComplete(fake, upload.uid, file)
            #expect(video["patch_sizes"] == .array(Self.sizes.map { .int($0) }))
            let log = try await fake.server.log()
            #expect(log.map { $0["method"]?.string ?? "" } == ["POST", "PATCH", "PATCH", "HEAD", "PATCH", "PATCH"])
            #expect(log[2].statusCode == 409)
            #expect(log.filter(\.isPatch).map(\.uploadOffset) == [0, Self.chunk, Self.chunk, 2 * Self.chunk])
            #expect(clock.sleeps.count == 1)
        }
    }

    @Test("F12: PATCH → 460 (checksum mismatch): the same chunk goes again, without a HEAD")
    func aChecksumMismatchResendsTheSameChunk() async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "PATCH", "path": "/stream/tus/", "actions": [Self.pass, ["status": 460]]]])
        let stream = StreamClient(api: fake.api(clock: RecordingClock()))
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(Self.length, in: dir)
            let upload = try await tus(stream, file)
            try await expectComplete(fake, upload.uid, file)
            let log = try await fake.server.log()
            let patches = log.filter(\.isPatch)
            #expect(patches.map(\.uploadOffset) == [0, Self.chunk, Self.chunk, 2 * Self.chunk])
            #expect(patches.map(\.statusCode) == [204, 460, 204, 204])
            #expect(patches[1].logged("content-length") == patches[2].logged("content-length"))
            #expect(!log.contains { $0["method"] == "HEAD" })
        }
    }

    @Test("F12: the upload URL answers 404/410: a new upload is created (and heard) and the file goes up from 0",
          arguments: [404, 410])
    func aVanishedUploadStartsANewOne(_ status: Int) async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "PATCH", "path": "/stream/tus/", "actions": [Self.pass, ["status": .int(status)]]]])
        let stream = StreamClient(api: fake.api(clock: RecordingClock()))
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(Self.length, in: dir)
            let upload = try await tus(stream, file)
            #expect(upload.created.count == 2)
            #expect(Set(upload.created.map(\.uid)).count == 2)
            #expect(upload.uid == upload.created.last?.uid)
            let video = try await expectComplete(fake, upload.uid, file)
            #expect(video["patch_sizes"] == .array(Self.sizes.map { .int($0) }))
            let log = try await fake.server.log()
            #expect(log.filter(\.isCreation).count == 2)
            let second = log.filter { $0.isPatch && $0["path"]?.string?.hasSuffix(upload.uid) == true }
            #expect(second.map(\.uploadOffset) == [0, Self.chunk, 2 * Self.chunk])
        }
    }

    @Test("F12: HEAD → 502 twice after a reset: the HEAD is retried, no new upload")
    func aFailingHeadIsRetriedNotReplaced() async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "PATCH", "path": "/stream/tus/", "actions": [Self.pass, ["reset_after_bytes": 300_000]]],
                                      ["method": "HEAD", "path": "/stream/tus/", "actions": [["status": 502], ["status": 502]]]])
        let clock = RecordingClock()
        let stream = StreamClient(api: fake.api(clock: clock))
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(Self.length, in: dir)
            let upload = try await tus(stream, file)
            #expect(upload.created.map(\.uid) == [upload.uid])
            try await expectComplete(fake, upload.uid, file)
            let log = try await fake.server.log()
            #expect(log.filter(\.isCreation).count == 1)
            #expect(log.filter { $0["method"] == "HEAD" }.map(\.statusCode) == [502, 502, 200])
            #expect(log.filter { $0.isPatch && $0.statusCode == 204 }.map(\.uploadOffset) == [0, Self.chunk + 300_000, 2 * Self.chunk + 300_000])
            #expect(try await videoCount(fake) == 1)
            #expect(clock.sleeps.count == 3)
        }
    }

    @Test("F12: resuming an interrupted upload: the server's offset (ahead of what the client saw confirmed) counts")
    func aResumedUploadContinuesFromTheServerOffset() async throws {
        let fake = try await CloudflareFake()
        // The second PATCH breaks after 777,777 bytes, and the first call has no tries to spare.
        try await fake.server.faults([["method": "PATCH", "path": "/stream/tus/", "actions": [Self.pass, ["reset_after_bytes": 777_777]]]])
        let kept: Int64 = 777_777
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(Self.length, in: dir)
            var created: [(uid: String, url: String)] = []
            do {
                _ = try await StreamClient(api: fake.api(attempts: 1)).uploadTus(
                    path: file.path, bytes: Int64(Self.length), metadata: [("name", "a.mp4")], chunkSize: Self.chunk) { created.append(($0, $1)) }
                Issue.record("the first call should have failed")
            } catch let error as SinkError {
                #expect(error.severity == .failed)
            }
            let journal = try #require(created.first)
            #expect(created.count == 1)
            let before = try await fake.server.log().count

            let upload = try await tus(StreamClient(api: fake.api()), file, resume: journal)
            #expect(upload.uid == journal.uid)
            #expect(upload.resumedFrom == Self.chunk + kept)
            #expect(upload.created.isEmpty)
            try await expectComplete(fake, upload.uid, file)
            let later = Array(try await fake.server.log().dropFirst(before))
            #expect(later.map { $0["method"]?.string ?? "" } == ["HEAD", "PATCH", "PATCH"])
            #expect(later.filter(\.isPatch).map(\.uploadOffset) == [Self.chunk + kept, 2 * Self.chunk + kept])
            #expect(try await videoCount(fake) == 1)
        }
    }

    @Test("G2: the uid and URL are saved before any PATCH; a rerun from the saved checkpoint sends only the rest")
    func aRerunFromTheCheckpointSendsOnlyTheRest() async throws {
        let fake = try await CloudflareFake()
        // The first run dies 1,000,000 bytes into its second chunk (about 48 %); the server keeps them.
        let kept: Int64 = 1_000_000
        try await fake.server.faults([["method": "PATCH", "path": "/stream/tus/", "actions": [Self.pass, ["reset_after_bytes": .int(kept)]]]])
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(Self.length, in: dir)
            let checkpoints = Checkpoints { _ in
                let log = try await fake.server.log()
                #expect(log.allSatisfy { !$0.isPatch })
            }
            /// One run as the Stream sink makes it: resume what `checkpoint` holds, save each new upload.
            func run(_ stream: StreamClient, _ checkpoint: UploadCheckpoint) async throws(SinkError) -> (uid: String, resumedFrom: Int64) {
                var resume: (uid: String, url: String)?
                if let uid = checkpoint.saved?["uid"]?.string, let url = checkpoint.saved?["url"]?.string { resume = (uid, url) }
                return try await stream.uploadTus(path: file.path, bytes: Int64(Self.length), metadata: [("name", "a.mp4")],
                                                  chunkSize: Self.chunk, resume: resume) { uid, url throws(SinkError) in
                    try await checkpoint.save(["uid": .string(uid), "url": .string(url)])
                }
            }
            do {
                _ = try await run(StreamClient(api: fake.api(attempts: 1)), checkpoints.checkpoint())
                Issue.record("the first run should have been cut off")
            } catch let error as SinkError {
                #expect(error.severity == .failed)
            }
            let saved = try #require(checkpoints.saved.first)
            #expect(checkpoints.saved.count == 1)
            let before = try await fake.server.log().count

            let upload = try await run(StreamClient(api: fake.api()), checkpoints.checkpoint(saved))
            #expect(upload.uid == saved["uid"]?.string)
            #expect(upload.resumedFrom == Self.chunk + kept)
            #expect(checkpoints.saved.count == 1)
            try await expectComplete(fake, upload.uid, file)
            let later = Array(try await fake.server.log().dropFirst(before))
            #expect(later.first?["method"] == "HEAD")
            let remainder = Int64(Self.length) - upload.resumedFrom
            let sent = later.filter(\.isPatch).map(\.bytesIn).reduce(0, +)
            #expect(sent == remainder)
            #expect(sent <= remainder + Self.chunk)
            #expect(try await videoCount(fake) == 1)
        }
    }

    @Test("F12: resuming an upload the server no longer has starts a new one")
    func resumingAVanishedUploadStartsOver() async throws {
        let fake = try await CloudflareFake()
        let stream = StreamClient(api: fake.api())
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(Self.length, in: dir)
            let gone = "\(stream.api.environment.accountBase)/stream/tus/0123456789abcdef0123456789abcdef"
            let upload = try await tus(stream, file, resume: ("0123456789abcdef0123456789abcdef", gone))
            #expect(upload.created.map(\.uid) == [upload.uid])
            #expect(upload.uid != "0123456789abcdef0123456789abcdef")
            #expect(upload.resumedFrom == 0)
            try await expectComplete(fake, upload.uid, file)
            let log = try await fake.server.log()
            #expect(log.first?["method"] == "HEAD")
            #expect(log.first?.statusCode == 404)
        }
    }

    /// The fake's videos that are still waiting for their bytes, by uid, with the fingerprint in their `meta`.
    func pending(_ fake: CloudflareFake) async throws -> [String: String] {
        var found: [String: String] = [:]
        for (uid, video) in try await fake.state()["videos"]?.objectPairs ?? [] where video["state"] == "pendingupload" {
            found[uid] = video["meta"]?[StreamClient.fingerprintKey]?.string ?? ""
        }
        return found
    }

    /// One journaled tus upload of `file`, as the Stream sink makes it.
    func journaled(_ stream: StreamClient, _ file: URL, _ checkpoint: UploadCheckpoint) async throws(SinkError) -> (uid: String, resumedFrom: Int64) {
        try await stream.uploadTus(path: file.path, bytes: Int64(Self.length), metadata: [("name", "a.mp4")], chunkSize: Self.chunk,
                                   checkpoint: checkpoint)
    }

    @Test("G3: only the fingerprint was saved (the run stopped before it heard the uid): the pending uploads carrying it are found page by page and deleted, others are kept")
    func uploadsCreatedButNeverJournaledAreDeleted() async throws {
        // Two videos a page, so the listing has to page to find everything.
        let fake = try await CloudflareFake(arguments: ["--stream-page", "2"])
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(Self.length, in: dir)
            // Stream creates each upload but its answer is lost: the calls fail having created 1, then 2 uploads.
            try await fake.server.faults([["method": "POST", "path": "/stream$",
                                           "actions": [["commit_then_drop": true], ["commit_then_drop": true], ["commit_then_drop": true]]]])
            let other = Checkpoints()
            await #expect(throws: SinkError.self) { try await journaled(StreamClient(api: fake.api(attempts: 1)), file, other.checkpoint()) }
            let ours = Checkpoints()
            await #expect(throws: SinkError.self) { try await journaled(StreamClient(api: fake.api(attempts: 2)), file, ours.checkpoint()) }
            let intent = try #require(ours.saved.last)
            #expect(ours.saved.count == 1)
            let fingerprint = try #require(intent["fingerprint"]?.string)
            #expect(intent == ["fingerprint": .string(fingerprint)])
            let othersPrint = try #require(other.saved.last?["fingerprint"]?.string)
            #expect(othersPrint != fingerprint)
            let basic = try #require(try await StreamClient(api: fake.api()).uploadBasic(path: file.path, bytes: Int64(Self.length),
                                                                                         filename: "b.mp4", mime: "video/mp4")["uid"]?.string)
            let orphans = try await pending(fake).filter { $0.value == fingerprint }.map { $0.key }.sorted()
            #expect(orphans.count == 2)
            let othersUpload = try #require(try await pending(fake).first { $0.value == othersPrint }?.key)
            #expect(try await pending(fake).count == 3)
            let stream = StreamClient(api: fake.api())
            #expect(try await stream.pendingUploads(fingerprint: fingerprint).sorted() == orphans)
            let before = try await fake.server.log().count

            let upload = try await journaled(stream, file, ours.checkpoint(intent))
            #expect(upload.resumedFrom == 0)
            try await expectComplete(fake, upload.uid, file)
            let later = Array(try await fake.server.log().dropFirst(before))
            let listings = later.filter { $0["method"] == "GET" && $0["path"]?.string?.hasSuffix("/stream") == true }
            #expect(listings.count >= 3, "three pending uploads at two a page need more than one listing")
            #expect(listings.allSatisfy { $0["query"]?.string?.contains("status=pendingupload") == true })
            #expect(later.filter { $0["method"] == "DELETE" }.compactMap { $0["path"]?.string?.split(separator: "/").last.map(String.init) }.sorted() == orphans)
            #expect(later.filter(\.isCreation).count == 1)
            // Every request of the cleanup comes before the one creation.
            let creation = try #require(later.firstIndex { $0.isCreation })
            #expect(later.prefix(creation).allSatisfy { $0["method"] == "GET" || $0["method"] == "DELETE" })
            // The intent again before the new creation (same fingerprint), then the new upload.
            #expect(ours.saved.count == 3)
            #expect(ours.saved.dropLast().allSatisfy { $0 == intent })
            #expect(ours.saved.last?["uid"] == .string(upload.uid) && ours.saved.last?["fingerprint"] == .string(fingerprint))
            #expect(try await pending(fake) == [othersUpload: othersPrint], "another rendition's pending upload must stay")
            let videos = try await fake.state()["videos"]?.objectPairs.map { $0.key } ?? []
            #expect(Set(videos) == [upload.uid, basic, othersUpload])
            #expect(videos.count == 3)
            #expect(try await stream.pendingUploads(fingerprint: fingerprint).isEmpty)
        }
    }

    @Test("a creation retried after its answer was lost: the upload the lost answer named is deleted once the new one is saved")
    func aRetriedCreationLeavesNoPendingUpload() async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "POST", "path": "/stream$", "actions": [["commit_then_drop": true]]]])
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(Self.length, in: dir)
            let checkpoints = Checkpoints()
            let upload = try await journaled(StreamClient(api: fake.api()), file, checkpoints.checkpoint())
            try await expectComplete(fake, upload.uid, file)
            let log = try await fake.server.log()
            #expect(log.filter(\.isCreation).count == 2)
            #expect(log.filter { $0["method"] == "DELETE" }.count == 1)
            #expect(try await pending(fake).isEmpty)
            #expect(try await videoCount(fake) == 1)
            #expect(checkpoints.saved.map { $0["uid"]?.string } == [nil, upload.uid])
        }
    }

    @Test("F7: the last PATCH is stored but its answer is lost: the HEAD shows offset = length, done, one video")
    func aLostLastAnswerIsFoundByTheHead() async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "PATCH", "path": "/stream/tus/",
                                       "actions": [Self.pass, Self.pass, ["commit_then_drop": true]]]])
        let count = RetryCount()
        let stream = StreamClient(api: fake.api(clock: RecordingClock()))
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(Self.length, in: dir)
            let upload = try await tus(stream, file, retries: count)
            try await expectComplete(fake, upload.uid, file)
            #expect(count.value == 1)
            #expect(try await videoCount(fake) == 1)
            let log = try await fake.server.log()
            #expect(log.filter(\.isCreation).count == 1)
            #expect(log.filter { $0["dropped"] == true }.map(\.uploadOffset) == [2 * Self.chunk])
            #expect(log.filter { $0.isPatch && $0.statusCode == 204 }.map(\.uploadOffset) == [0, Self.chunk])
            // The HEAD that found the upload complete is the last request: nothing more was sent.
            #expect(log.last?["method"] == "HEAD")
            #expect(log.last?.statusCode == 200)
        }
    }

    @Test("F2: PATCH → 503, 504, then success: two retries, waits within [0, min(cap, base·2ⁿ)]")
    func transientPatchFailuresAreRetried() async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "PATCH", "path": "/stream/tus/", "actions": [Self.pass, ["status": 503], ["status": 504]]]])
        let clock = RecordingClock()
        let count = RetryCount()
        let stream = StreamClient(api: fake.api(clock: clock))
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(Self.length, in: dir)
            let upload = try await tus(stream, file, retries: count)
            let video = try await expectComplete(fake, upload.uid, file)
            #expect(video["patch_sizes"] == .array(Self.sizes.map { .int($0) }))
            #expect(count.value == 2)
            #expect(clock.sleeps.count == 2)
            for (n, wait) in clock.sleeps.enumerated() { #expect(wait >= 0 && wait <= min(8, 0.5 * pow(2, Double(n)))) }
            let patches = try await fake.server.log().filter(\.isPatch)
            #expect(patches.map(\.statusCode) == [204, 503, 504, 204, 204])
            #expect(patches.map(\.uploadOffset) == [0, Self.chunk, Self.chunk, Self.chunk, 2 * Self.chunk])
        }
    }

    @Test("a PATCH refused for good (400) is a rejection: no new upload, no retries")
    func aRefusedPatchIsRejected() async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "PATCH", "path": "/stream/tus/", "actions": [Self.pass, ["status": 400]]]])
        let clock = RecordingClock()
        let stream = StreamClient(api: fake.api(clock: clock))
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(Self.length, in: dir)
            await #expect {
                _ = try await tus(stream, file)
            } throws: { error in
                guard let error = error as? SinkError else { return false }
                return error.severity == .rejected && error.reason.code == .providerRejected
            }
            let log = try await fake.server.log()
            #expect(log.filter(\.isCreation).count == 1)
            #expect(log.filter(\.isPatch).count == 2)
            #expect(clock.sleeps.isEmpty)
        }
    }

    @Test("creating a tus upload: 400 is a rejection, not retried")
    func aRefusedCreationIsRejected() async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "POST", "path": "/stream$", "actions": [["status": 400]]]])
        let stream = StreamClient(api: fake.api(clock: RecordingClock()))
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(Self.length, in: dir)
            do {
                _ = try await tus(stream, file)
                Issue.record("expected a rejection")
            } catch let error as SinkError {
                #expect(error.severity == .rejected)
                #expect(error.reason.code.rawValue == "provider_rejected")
            }
            #expect(try await fake.server.log().count == 1)
            #expect(try await videoCount(fake) == 0)
        }
    }

    @Test("F5: a refused token on tus creation is fatal and names the variable, never its value", arguments: [401, 403])
    func aRefusedTokenIsFatal(_ status: Int) async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "POST", "path": "/stream$", "actions": [["status": .int(status), "echo_headers": true]]]])
        let stream = StreamClient(api: fake.api(clock: RecordingClock()))
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(Self.length, in: dir)
            do {
                _ = try await tus(stream, file)
                Issue.record("expected a fatal error")
            } catch let error as SinkError {
                #expect(error.severity == .fatal)
                #expect(error.reason.code.rawValue == "auth_failed")
                #expect(error.reason.detail.contains("CLOUDFLARE_API_TOKEN"))
                // The fake echoes every request header, Authorization included: not even a piece of it shows.
                #expect(!error.reason.detail.contains(CloudflareFake.token))
                #expect(!error.reason.detail.contains("Bearer"))
            }
            #expect(try await fake.server.log().count == 1)
        }
    }

    // MARK: basic uploads, videos, live inputs

    @Test func aBasicUploadReturnsTheVideoAndItsReport() async throws {
        let fake = try await CloudflareFake()
        let stream = StreamClient(api: fake.api())
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try patternFile(300_000, in: dir, name: "clip.mp4")
            let video = try await stream.uploadBasic(path: file.path, bytes: 300_000, filename: "clip.mp4", mime: "video/mp4")
            let uid = try #require(video["uid"]?.string)
            let stored = try #require(try await fake.state()["videos"]?[uid])
            #expect(stored["kind"] == "basic")
            #expect(stored["sha256"]?.string == (try sha256(of: file)))
            #expect(stored["meta"]?["name"] == "clip.mp4")
            let report = StreamClient.report(video, uid: uid, bytes: 300_000)
            #expect(report["id"] == .string(uid))
            #expect(report["url"]?.string?.hasSuffix("/\(uid)/manifest/video.m3u8") == true)
            #expect(report["url"] == video["playback"]?["hls"])
            #expect(report["bytes"] == 300_000)
            let post = try #require(try await fake.server.log().first)
            #expect(post["headers"]?["content-length"]?.string == post["bytes_in"].map { "\(Int($0.number ?? -1))" })
            #expect(post.logged("transfer-encoding") == nil && post.logged("expect") == nil)
        }
    }

    @Test func waitingPollsUntilTheVideoIsReady() async throws {
        let fake = try await CloudflareFake(arguments: ["--ready-after", "2"])
        let clock = RecordingClock()
        let stream = StreamClient(api: fake.api(clock: clock))
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try patternFile(100_000, in: dir, name: "clip.mp4")
            let uploaded = try await stream.uploadBasic(path: file.path, bytes: 100_000, filename: "clip.mp4", mime: "video/mp4")
            #expect(uploaded["readyToStream"] == false)
            let uid = try #require(uploaded["uid"]?.string)
            let video = try await stream.waitUntilReady(uid: uid, timeout: 60)
            #expect(video["readyToStream"] == true)
            #expect(video["status"]?["state"] == "ready")
            #expect(clock.sleeps == [1])
            #expect(try await fake.server.log().filter { $0["method"] == "GET" }.count == 2)
        }
    }

    @Test func waitingGivesUpAtTheTimeoutWithBackedOffPolls() async throws {
        let fake = try await CloudflareFake(arguments: ["--ready-after", "100"])
        let clock = RecordingClock()
        let stream = StreamClient(api: fake.api(clock: clock))
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try patternFile(100_000, in: dir)
            let uid = try #require(try await stream.uploadBasic(path: file.path, bytes: 100_000, filename: "a.mp4", mime: "video/mp4")["uid"]?.string)
            await #expect {
                _ = try await stream.waitUntilReady(uid: uid, timeout: 10)
            } throws: { error in
                (error as? SinkError)?.severity == .failed && (error as? SinkError)?.reason.code == .timeout
            }
            #expect(clock.sleeps == [1, 2, 4, 8])
        }
    }

    @Test func videosAreFoundAndDeletedOnce() async throws {
        let fake = try await CloudflareFake()
        let stream = StreamClient(api: fake.api())
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try patternFile(50_000, in: dir)
            let uid = try #require(try await stream.uploadBasic(path: file.path, bytes: 50_000, filename: "a.mp4", mime: "video/mp4")["uid"]?.string)
            #expect(try await stream.video(uid: uid)?["uid"] == .string(uid))
            #expect(try await stream.delete(uid: uid) == true)
            #expect(try await stream.delete(uid: uid) == false)
            #expect(try await stream.video(uid: uid) == nil)
            #expect(try await videoCount(fake) == 0)
        }
    }

    @Test func liveInputsAreCreatedListedWithoutKeysAndDeletedOnce() async throws {
        let fake = try await CloudflareFake()
        let stream = StreamClient(api: fake.api())
        let input = try await stream.createLiveInput(name: "weekly class", recording: true)
        let uid = try #require(input["uid"]?.string)
        #expect(input["rtmps"]?["url"]?.string?.hasPrefix("rtmps://") == true)
        #expect(input["rtmps"]?["streamKey"]?.string?.isEmpty == false)
        #expect(input["srt"]?["url"]?.string?.hasPrefix("srt://") == true)
        #expect(input["meta"]?["name"] == "weekly class")
        #expect(input["recording"]?["mode"] == "automatic")

        let listed = try await stream.liveInputs()
        #expect(listed.compactMap { $0["uid"]?.string } == [uid])
        #expect(!JSONValue.array(listed).compactText.contains("streamKey"))
        #expect(!JSONValue.array(listed).compactText.contains(try #require(input["rtmps"]?["streamKey"]?.string)))

        #expect(try await stream.deleteLiveInput(uid: uid) == true)
        #expect(try await stream.deleteLiveInput(uid: uid) == false)
        #expect(try await stream.liveInputs().isEmpty)
    }
}

/// `count` bytes of xorshift noise (offsets matter, no chunk repeats another), written in 8-byte
/// words: `patternFile`'s byte-at-a-time loop takes seconds for 13 MB in a debug build.
fileprivate func noiseFile(_ count: Int, in dir: URL, name: String = "video.bin") throws -> URL {
    let url = dir.appendingPathComponent(name)
    var words = [UInt64](repeating: 0, count: (count + 7) / 8)
    var x: UInt64 = 0x2545_F491_4F6C_DD1D
    words.withUnsafeMutableBufferPointer { buffer in
        for i in buffer.indices {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            buffer[i] = x
        }
    }
    try words.withUnsafeBytes { try Data($0.prefix(count)).write(to: url) }
    return url
}

fileprivate extension JSONValue {
    /// A header of a logged request (the fake logs names in lower case).
    func logged(_ name: String) -> String? { self["headers"]?[name]?.string }
    var isPatch: Bool { self["method"] == "PATCH" }
    /// A tus creation: `POST …/stream`.
    var isCreation: Bool { self["method"] == "POST" && self["path"]?.string?.hasSuffix("/stream") == true }
    var uploadOffset: Int64? { logged("upload-offset").flatMap { Int64($0) } }
    var statusCode: Int? { self["status"]?.number.map { Int($0) } }
    var bytesIn: Int64 { Int64(self["bytes_in"]?.number ?? -1) }
}
