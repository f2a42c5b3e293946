import CloudflareClient
import Digests
import Foundation
import HTTPTransport
import MediaPipeline
import TestSupport
import Testing

/// R2 over its S3 API against moto (signatures really checked) behind the R2-rules proxy.
/// Every outcome is read back from what moto stored and from the proxy's request log.
/// moto takes seconds of CPU to start, so the suite shares one and runs its tests one at a time,
/// each after a reset of the proxy's log and faults and under keys of its own.
@Suite(.serialized, SharedS3())
struct R2Tests {
    static let mib = 1 << 20
    /// Multipart files are 11–12 MiB cut into 5 MiB parts: three parts, the last one short.
    static let partSize = 5 * mib
    static let threshold = Int64(6 * mib)

    // MARK: Single PUT

    @Test func aSmallFileIsOnePutAndIdenticalBytesAreNotSentAgain() async throws {
        let harness = try await Harness()
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(300_000, in: dir, name: "notes.pdf")
            let key = harness.key("lessons/01/notes.pdf")
            #expect(try await harness.upload(file, key: key, contentType: "application/pdf",
                                             disposition: "attachment; filename=\"notes.pdf\""))
            let stored = try #require(try await harness.stored(key))
            #expect(stored["content_type"] == "application/pdf")
            #expect(stored["content_disposition"] == "attachment; filename=\"notes.pdf\"")
            #expect(stored["etag"]?.string == "\"\(try PartFacts(file, partSize: 1 << 30).md5Hex[0])\"")
            try await expectStored(harness, key, is: file)
            let log = try await harness.log()
            #expect(log.map(\.method).sorted() == ["HEAD", "PUT"])
            let put = try #require(log.first { $0.method == "PUT" })
            #expect(put.header("content-length") == "\(put.bytesIn)")
            // Signed with the file's SHA-256, which R2 checks against the body it gets.
            #expect(put.header("x-amz-content-sha256") == (try sha256(of: file)))
            expectOnlyWhatR2Implements(log)

            // The same bytes again: the HEAD finds them and nothing is sent.
            #expect(try await harness.upload(file, key: key, contentType: "application/pdf") == false)
            let again = try await harness.log().dropFirst(log.count)
            #expect(again.map(\.method) == ["HEAD"])
            #expect(again.first?.status == 200)

            // Other bytes of the same size under the same key replace the object.
            let changed = try noiseFile(300_000, seed: 7, in: dir, name: "notes-v2.pdf")
            #expect(try await harness.upload(changed, key: key, contentType: "application/pdf"))
            try await expectStored(harness, key, is: changed)
            #expect(try await harness.stored(key)?["content_disposition"] == .null)
            #expect(try await harness.keys() == [key])
            #expect(try await harness.log().filter { $0.method == "PUT" }.count == 2)
        }
    }

    @Test("keys with spaces, +, %, =, parentheses and non-ASCII are signed right and stored under the exact key")
    func awkwardKeysRoundTrip() async throws {
        let harness = try await Harness()
        let keys = ["lessons/01 intro+notes/café (1) 50%.pdf", "a=b&c/x;y,z@[1]!$'*.txt", "日本語/ファイル 名.mp4",
                    "tilde~dash-under_dot./%2F is no slash.bin", "emoji 🎬/Ünïcödé decomposed e\u{301}.txt"].map(harness.key)
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(10_000, in: dir)
            for key in keys { #expect(try await harness.upload(file, key: key)) }
            // Sent as SigV4 wants it: every byte but A-Z a-z 0-9 - _ . ~ and the slashes percent-encoded.
            let bucket = try #require(harness.fake.environment["CLOUDFLARE_R2_BUCKET_NAME"])
            #expect(Set(try await harness.log().filter { $0.method == "PUT" }.map(\.path))
                == Set(try uriEncoded(keys).map { "/\(bucket)/\($0)" }))
            // Compared as bytes: Swift's String equality would hide a change of Unicode normalization.
            #expect(Set(try await harness.keys().map { Array($0.utf8) }) == Set(keys.map { Array($0.utf8) }))
            for key in keys { try await expectStored(harness, key, is: file) }
            // The HEAD of each finds it (a wrongly encoded HEAD would get a 403 or a 404).
            for key in keys { #expect(try await harness.upload(file, key: key) == false) }
            #expect(try await harness.log().filter { $0.method == "PUT" }.count == keys.count)
        }
    }

    // MARK: Multipart

    @Test("multipart: equal 5 MiB parts and a short last one, each with Content-MD5, final ETag md5-of-md5s-N")
    func aLargeFileGoesUpInEqualParts() async throws {
        let harness = try await Harness()
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(12 * Self.mib + 12_345, in: dir, name: "lecture.mp4")
            let facts = try PartFacts(file, partSize: Self.partSize)
            #expect(facts.sizes == [Self.partSize, Self.partSize, 2 * Self.mib + 12_345])
            let key = harness.key("video/lecture 01.mp4")
            #expect(try await harness.upload(file, key: key, contentType: "video/mp4", disposition: "inline"))

            let stored = try #require(try await harness.stored(key))
            #expect(stored["etag"]?.string == "\"\(facts.etag)\"")
            #expect(stored["content_type"] == "video/mp4")
            #expect(stored["content_disposition"] == "inline")
            try await expectStored(harness, key, is: file)
            #expect(try await harness.openUploads().isEmpty)

            let log = try await harness.log()
            #expect(log.filter(\.isCreate).count == 1)
            #expect(log.filter(\.isComplete).map(\.status) == [200])
            let parts = log.filter { $0.partNumber != nil }.sorted { $0.partNumber! < $1.partNumber! }
            #expect(parts.map(\.partNumber) == [1, 2, 3])
            #expect(parts.map(\.bytesIn) == facts.sizes)
            #expect(parts.map { $0.header("content-md5") ?? "none" } == facts.md5Base64)
            // Each part's payload hash is its SHA-256 or, with Content-MD5 guarding the bytes, UNSIGNED-PAYLOAD.
            for (part, sha) in zip(parts, facts.sha256Hex) {
                #expect([sha, "UNSIGNED-PAYLOAD"].contains(part.header("x-amz-content-sha256") ?? "none"))
            }
            #expect(parts.allSatisfy { $0.status == 200 })
            #expect(!log.contains { $0.method == "DELETE" })
            expectOnlyWhatR2Implements(log)
        }
    }

    @Test("F1: a connection reset in the middle of part 2 retries part 2 alone")
    func aResetPartIsRetriedAlone() async throws {
        let harness = try await Harness()
        try await harness.faults([["method": "PUT", "query": "^partNumber=2&", "actions": [["reset_after_bytes": .int(Self.mib)]]]])
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(11 * Self.mib, in: dir)
            let key = harness.key("f1/reset.bin")
            let count = RetryCount()
            #expect(try await harness.upload(file, key: key, retries: count))
            // libcurl never resends a body by itself: the retry loop counts the one retry.
            #expect(count.value == 1)
            let parts = try await harness.log().filter { $0.partNumber != nil }
            #expect(parts.filter { $0.partNumber == 1 }.count == 1)
            #expect(parts.filter { $0.partNumber == 2 }.count == 2)
            #expect(parts.filter { $0.partNumber == 3 }.count == 1)
            let reset = try #require(parts.first { $0.fault != nil })
            #expect(reset.partNumber == 2)
            #expect(reset.status == nil)  // never answered
            #expect(reset.bytesIn < Self.partSize)
            try await expectStored(harness, key, is: file)
            #expect(try await harness.stored(key)?["etag"]?.string == "\"\(try PartFacts(file, partSize: Self.partSize).etag)\"")
            #expect(try await harness.openUploads().isEmpty)
        }
    }

    @Test("F2: UploadPart answered 503 SlowDown, then 500, then stored: two retries")
    func transientPartFailuresAreRetried() async throws {
        let harness = try await Harness()
        try await harness.faults([["method": "PUT", "query": "^partNumber=2&",
                                   "actions": [["status": 503, "code": "SlowDown"], ["status": 500]]]])
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(11 * Self.mib, in: dir)
            let key = harness.key("f2/parts.bin")
            let count = RetryCount()
            #expect(try await harness.upload(file, key: key, retries: count))
            #expect(count.value == 2)
            // Full jitter under the ceiling base·2ⁿ, capped at 2 s.
            #expect(harness.clock.sleeps.count == 2)
            for (n, wait) in harness.clock.sleeps.enumerated() { #expect(wait >= 0 && wait <= min(2, 0.2 * pow(2, Double(n)))) }
            #expect(try await harness.log().filter { $0.partNumber == 2 }.map(\.code).sorted() == [200, 500, 503])
            try await expectStored(harness, key, is: file)
        }
    }

    @Test("F2: CompleteMultipartUpload answered 200 with an <Error> body is retried",
          arguments: [nil, "ServiceFailure"] as [String?])
    func anErrorInsideA200IsRetried(_ code: String?) async throws {
        let harness = try await Harness()
        // nil: the fake's InternalError; an unknown code is retried for the 200-with-<Error> alone.
        var action: JSONValue = ["error_body": true]
        if let code { action = action.adding("code", .string(code)) }
        try await harness.faults([["method": "POST", "query": "^uploadId=", "actions": [action]]])
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(11 * Self.mib, in: dir)
            let key = harness.key("f2/complete.bin")
            let count = RetryCount()
            #expect(try await harness.upload(file, key: key, retries: count))
            #expect(count.value == 1)
            let completes = try await harness.log().filter(\.isComplete)
            #expect(completes.map(\.status) == [200, 200])
            #expect(completes.filter { $0.fault != nil }.count == 1)
            try await expectStored(harness, key, is: file)
            #expect(try await harness.openUploads().isEmpty)
        }
    }

    // MARK: Lost answers (F7)

    @Test("F7: a PUT stored but unanswered is sent again; one object, the right bytes")
    func aLostPutAnswerIsRetried() async throws {
        let harness = try await Harness()
        try await harness.faults([["method": "PUT", "actions": [["commit_then_drop": true]]]])
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(200_000, in: dir)
            let key = harness.key("f7/one.bin")
            let count = RetryCount()
            #expect(try await harness.upload(file, key: key, retries: count))
            #expect(count.value == 1)
            let puts = try await harness.log().filter { $0.method == "PUT" }
            #expect(puts.count == 2)
            let dropped = try #require(puts.first { $0.fault != nil })
            #expect(dropped.status == nil)
            #expect(dropped.entry["upstream_status"]?.number == 200)  // moto had stored it
            #expect(try await harness.keys() == [key])
            try await expectStored(harness, key, is: file)
        }
    }

    /// moto, like S3, answers a repeated CompleteMultipartUpload with 200; R2 answers NoSuchUpload,
    /// so the fake plays R2 for the retry.
    @Test("F7: CompleteMultipartUpload done but unanswered; the retry's NoSuchUpload and a matching HEAD make it a success")
    func aLostCompleteAnswerIsASuccess() async throws {
        let harness = try await Harness()
        try await harness.faults([["method": "POST", "query": "^uploadId=",
                                   "actions": [["commit_then_drop": true], ["status": 404, "code": "NoSuchUpload"]]]])
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(11 * Self.mib, in: dir)
            let key = harness.key("f7/multi part.bin")
            let count = RetryCount()
            #expect(try await harness.upload(file, key: key, retries: count))
            #expect(count.value == 1)
            let log = try await harness.log()
            let completes = log.filter(\.isComplete)
            #expect(completes.count == 2)
            let dropped = try #require(completes.first { $0.fault?["commit_then_drop"] == true })
            #expect(dropped.status == nil)
            #expect(dropped.entry["upstream_status"]?.number == 200)
            #expect(completes.contains { $0.status == 404 && $0.fault?["code"] == "NoSuchUpload" })
            // The HEAD before the upload, and the one after the NoSuchUpload that found the object.
            #expect(log.filter { $0.method == "HEAD" }.map(\.status) == [404, 200])
            #expect(!log.contains { $0.method == "DELETE" })
            #expect(try await harness.keys() == [key])
            try await expectStored(harness, key, is: file)
            #expect(try await harness.stored(key)?["etag"]?.string == "\"\(try PartFacts(file, partSize: Self.partSize).etag)\"")
            #expect(try await harness.openUploads().isEmpty)
        }
    }

    @Test("F7: NoSuchUpload while the key holds other bytes is no success; the old object stays")
    func noSuchUploadWithOtherBytesIsAFailure() async throws {
        let harness = try await Harness()
        try await TestFiles.withTemporaryDirectory { dir in
            let key = harness.key("f7/other.bin")
            let old = try noiseFile(1_000, seed: 3, in: dir, name: "old.bin")
            #expect(try await harness.upload(old, key: key))
            try await harness.faults([["method": "POST", "query": "^uploadId=", "actions": [["status": 404, "code": "NoSuchUpload"]]]])
            let file = try noiseFile(11 * Self.mib, in: dir)
            await #expect {
                _ = try await harness.upload(file, key: key)
            } throws: { error in
                (error as? SinkError)?.reason.detail.contains("NoSuchUpload") == true
            }
            try await expectStored(harness, key, is: old)
            #expect(try await harness.openUploads().isEmpty)
            #expect(try await harness.log().contains { $0.method == "DELETE" && $0.status == 204 })
        }
    }

    // MARK: Resume (G1)

    @Test("G1: a rerun lists the parts an interrupted upload left (every page), sends only the missing one and completes",
          arguments: zip([1000, 1], [1, 2]))
    func aRerunSendsOnlyTheMissingParts(pageSize: Int, pages: Int) async throws {
        let harness = try await Harness()
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(12 * Self.mib + 12_345, in: dir)
            let object = try harness.object(file, key: harness.key("g1/resume.bin"))
            var r2 = harness.client()
            // The interrupted run: the upload created and saved, parts 1 and 2 sent, then the process is gone.
            let uploadID = try await r2.createMultipart(object, retries: nil)
            for number in [1, 2] { try await sendPart(r2, object, uploadID, number) }
            let saved: JSONValue = ["uploadId": .string(uploadID), "key": .string(object.key), "partSize": .int(Self.partSize)]
            let before = try await harness.log().count

            r2.partsPerListPage = pageSize
            let checkpoints = Checkpoints()
            let outcome = try await r2.upload(object, multipartThreshold: Self.threshold, partSize: Int64(Self.partSize),
                                              checkpoint: checkpoints.checkpoint(saved))
            #expect(outcome.sent)
            #expect(outcome.resumedParts == 2)
            #expect(checkpoints.saved.isEmpty)
            let log = Array(try await harness.log().dropFirst(before))
            let lists = log.filter { $0.method == "GET" }
            #expect(lists.count == pages)
            #expect(lists.allSatisfy { $0.query.contains("max-parts=\(pageSize)") && $0.query.contains("uploadId=") && $0.status == 200 })
            #expect(lists.dropFirst().allSatisfy { $0.query.contains("part-number-marker=") })
            #expect(log.filter { $0.partNumber != nil }.map(\.partNumber) == [3])
            #expect(log.filter(\.isComplete).map(\.status) == [200])
            #expect(!log.contains { $0.isCreate })
            #expect(!log.contains { $0.method == "DELETE" })
            try await expectStored(harness, object.key, is: file)
            #expect(try await harness.stored(object.key)?["etag"]?.string == "\"\(try PartFacts(file, partSize: Self.partSize).etag)\"")
            #expect(try await harness.openUploads().isEmpty)
            expectOnlyWhatR2Implements(log)
        }
    }

    @Test("G1: a saved upload id R2 no longer knows (NoSuchUpload) starts a new upload, saved before its first part")
    func aForgottenUploadStartsAfresh() async throws {
        let harness = try await Harness()
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(11 * Self.mib, in: dir)
            let object = try harness.object(file, key: harness.key("g1/forgotten.bin"))
            let saved: JSONValue = ["uploadId": "no-such-upload", "key": .string(object.key), "partSize": .int(Self.partSize)]
            let fake = harness.fake
            let checkpoints = Checkpoints { _ in
                // Saved before the first part goes.
                let log = try await fake.server.log()
                #expect(log.allSatisfy { Request(entry: $0).partNumber == nil })
            }
            let outcome = try await harness.client().upload(object, multipartThreshold: Self.threshold, partSize: Int64(Self.partSize),
                                                            checkpoint: checkpoints.checkpoint(saved))
            #expect(outcome.sent && outcome.resumedParts == 0)
            let log = try await harness.log()
            #expect(log.filter { $0.method == "GET" }.map(\.status) == [404])
            #expect(log.filter(\.isCreate).count == 1)
            #expect(log.filter { $0.partNumber != nil }.map(\.partNumber).sorted { $0! < $1! } == [1, 2, 3])
            // First the intent (key and part size, before the upload is created), then the new id.
            #expect(checkpoints.saved.count == 2)
            #expect(checkpoints.saved.first == ["key": .string(object.key), "partSize": .int(Self.partSize)])
            let new = try #require(checkpoints.saved.last)
            #expect(new["uploadId"]?.string?.isEmpty == false && new["uploadId"] != "no-such-upload")
            #expect(new["key"] == .string(object.key))
            #expect(new["partSize"] == .int(Self.partSize))
            try await expectStored(harness, object.key, is: file)
            #expect(try await harness.openUploads().isEmpty)
        }
    }

    @Test("G1: a listed part whose ETag is not the MD5 of our bytes is sent again; the matching one is kept")
    func aListedPartWithOtherBytesIsSentAgain() async throws {
        let harness = try await Harness()
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(11 * Self.mib, in: dir)
            let other = try noiseFile(11 * Self.mib, seed: 5, in: dir, name: "other.bin")
            let key = harness.key("g1/other part.bin")
            let object = try harness.object(file, key: key)
            let r2 = harness.client()
            let uploadID = try await r2.createMultipart(object, retries: nil)
            // Part 1 holds other bytes of the right size; part 2 is ours.
            try await sendPart(r2, try harness.object(other, key: key), uploadID, 1)
            try await sendPart(r2, object, uploadID, 2)
            let saved: JSONValue = ["uploadId": .string(uploadID), "key": .string(key), "partSize": .int(Self.partSize)]
            let before = try await harness.log().count

            let outcome = try await r2.upload(object, multipartThreshold: Self.threshold, partSize: Int64(Self.partSize),
                                              checkpoint: Checkpoints().checkpoint(saved))
            #expect(outcome.resumedParts == 1)
            let log = Array(try await harness.log().dropFirst(before))
            #expect(log.filter { $0.partNumber != nil }.map(\.partNumber).sorted { $0! < $1! } == [1, 3])
            #expect(log.filter(\.isComplete).map(\.status) == [200])
            try await expectStored(harness, key, is: file)
            #expect(try await harness.stored(key)?["etag"]?.string == "\"\(try PartFacts(file, partSize: Self.partSize).etag)\"")
        }
    }

    @Test("G3: only the intent was saved (the run stopped before it heard the id): the uploads R2 holds open for the key are found, one resumed, the others aborted")
    func anUploadCreatedButNeverJournaledIsFound() async throws {
        let harness = try await Harness()
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(11 * Self.mib, in: dir)
            let key = harness.key("g3/created unseen.bin")
            let object = try harness.object(file, key: key)
            let r2 = harness.client()
            // Two uploads a stopped run created without journaling their ids; the first holds part 1 of our bytes.
            let first = try await r2.createMultipart(object, retries: nil)
            try await sendPart(r2, object, first, 1)
            _ = try await r2.createMultipart(object, retries: nil)
            let before = try await harness.log().count
            let checkpoints = Checkpoints()
            let saved: JSONValue = ["key": .string(key), "partSize": .int(Self.partSize)]

            let outcome = try await r2.upload(object, multipartThreshold: Self.threshold, partSize: Int64(Self.partSize),
                                              checkpoint: checkpoints.checkpoint(saved))
            #expect(outcome.resumedParts == 1)
            let log = Array(try await harness.log().dropFirst(before))
            #expect(log.filter(\.isCreate).isEmpty, "a new upload was created")
            #expect(log.filter { $0.method == "DELETE" }.count == 1)
            #expect(log.filter { $0.partNumber != nil }.map(\.partNumber).sorted { $0! < $1! } == [2, 3])
            #expect(checkpoints.saved.last?["uploadId"] == .string(first))
            try await expectStored(harness, key, is: file)
            #expect(try await harness.openUploads().isEmpty)
        }
    }

    @Test("G1: transient trouble after every retry leaves a journaled upload open; the rerun resumes it")
    func aTransientFailureLeavesTheJournaledUploadForTheRerun() async throws {
        let harness = try await Harness()
        try await harness.faults([["method": "PUT", "query": "^partNumber=3&", "actions": .array(Array(repeating: ["status": 503], count: 5))]])
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(11 * Self.mib, in: dir)
            let object = try harness.object(file, key: harness.key("g1/transient.bin"))
            var r2 = harness.client()
            r2.partsInFlight = 1
            let checkpoints = Checkpoints()
            do {
                _ = try await r2.upload(object, multipartThreshold: Self.threshold, partSize: Int64(Self.partSize),
                                        checkpoint: checkpoints.checkpoint())
                Issue.record("part 3 should have failed")
            } catch let error as SinkError {
                #expect(error.severity == .failed)
            }
            #expect(!(try await harness.log()).contains { $0.method == "DELETE" })
            let open = try await harness.openUploads()
            #expect(open.count == 1)
            let saved = try #require(checkpoints.saved.last)
            #expect(checkpoints.saved.count == 2)
            #expect(saved["uploadId"] == open.first?["uploadId"])

            let before = try await harness.log().count
            let outcome = try await r2.upload(object, multipartThreshold: Self.threshold, partSize: Int64(Self.partSize),
                                              checkpoint: checkpoints.checkpoint(saved))
            #expect(outcome.resumedParts == 2)
            #expect(Array(try await harness.log().dropFirst(before)).filter { $0.partNumber != nil }.map(\.partNumber) == [3])
            try await expectStored(harness, object.key, is: file)
            #expect(try await harness.openUploads().isEmpty)
        }
    }

    // MARK: Integrity (F9)

    @Test("F9: part 2's ETag is wrong twice: integrity_mismatch, the upload aborted, no object")
    func aPersistentlyWrongETagAbortsTheUpload() async throws {
        let harness = try await Harness()
        try await harness.faults([["method": "PUT", "query": "^partNumber=2&", "actions": [["lie_etag": true], ["lie_etag": true]]]])
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(11 * Self.mib, in: dir)
            let key = harness.key("f9/lies.bin")
            do {
                _ = try await harness.upload(file, key: key)
                Issue.record("expected an integrity failure")
            } catch let error as SinkError {
                #expect(error.severity == .failed)
                #expect(error.reason.code.rawValue == "integrity_mismatch")
            }
            let log = try await harness.log()
            #expect(log.filter { $0.partNumber == 2 }.count == 2)
            #expect(!log.contains { $0.isComplete })
            let abort = try #require(log.first { $0.method == "DELETE" })
            #expect(abort.query.hasPrefix("uploadId="))
            #expect(abort.status == 204)
            #expect(try await harness.openUploads().isEmpty)
            #expect(try await harness.stored(key) == nil)
            #expect(try await harness.keys().isEmpty)
        }
    }

    @Test("F9: part 2's ETag is wrong once: that part is sent once more and the upload succeeds")
    func aWrongETagOnceIsRetried() async throws {
        let harness = try await Harness()
        try await harness.faults([["method": "PUT", "query": "^partNumber=2&", "actions": [["lie_etag": true]]]])
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(11 * Self.mib, in: dir)
            let key = harness.key("f9/once.bin")
            let count = RetryCount()
            #expect(try await harness.upload(file, key: key, retries: count))
            #expect(count.value == 1)
            let parts = try await harness.log().filter { $0.partNumber != nil }
            #expect(parts.filter { $0.partNumber == 2 }.count == 2)
            #expect(parts.count == 4)
            try await expectStored(harness, key, is: file)
            #expect(try await harness.stored(key)?["etag"]?.string == "\"\(try PartFacts(file, partSize: Self.partSize).etag)\"")
        }
    }

    /// moto does not check Content-MD5, so the flipped bytes are stored and the ETag (their MD5)
    /// gives them away; R2 itself would answer BadDigest (next test). Either way: one more PUT.
    @Test("F9: a byte flipped on the way is caught and the PUT sent once more")
    func aFlippedByteIsCaughtAndResent() async throws {
        let harness = try await Harness()
        try await harness.faults([["method": "PUT", "actions": [["flip_byte": true]]]])
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(300_000, in: dir)
            let key = harness.key("f9/flip.bin")
            let count = RetryCount()
            #expect(try await harness.upload(file, key: key, retries: count))
            #expect(count.value == 1)
            let puts = try await harness.log().filter { $0.method == "PUT" }
            #expect(puts.count == 2)
            #expect(puts.filter { $0.fault != nil }.count == 1)
            #expect(puts.map(\.status) == [200, 200])
            try await expectStored(harness, key, is: file)
        }
    }

    @Test("F9: R2 refusing the bytes it got is retried once", arguments: ["BadDigest", "XAmzContentSHA256Mismatch"])
    func aDigestRefusalIsRetriedOnce(_ code: String) async throws {
        let harness = try await Harness()
        try await harness.faults([["method": "PUT", "actions": [["status": 400, "code": .string(code)]]]])
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(50_000, in: dir)
            let key = harness.key("f9/digest.bin")
            let count = RetryCount()
            #expect(try await harness.upload(file, key: key, retries: count))
            #expect(count.value == 1)
            #expect(try await harness.log().filter { $0.method == "PUT" }.map(\.status) == [400, 200])
            try await expectStored(harness, key, is: file)
        }
    }

    // MARK: Credentials (F5)

    @Test("F5: a wrong secret is fatal, names the variables and never shows the secret")
    func aWrongSecretIsFatal() async throws {
        let harness = try await Harness()
        let wrong = "wrong-secret-\(UUID().uuidString)"
        let right = try #require(harness.fake.environment["CLOUDFLARE_R2_SECRET_ACCESS_KEY"])
        let r2 = harness.client(["CLOUDFLARE_R2_SECRET_ACCESS_KEY": wrong])
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(1_000, in: dir)
            do {
                _ = try await harness.upload(file, key: harness.key("f5/secret.bin"), via: r2)
                Issue.record("expected a fatal error")
            } catch let error as SinkError {
                #expect(error.severity == .fatal)
                #expect(error.reason.code.rawValue == "auth_failed")
                #expect(error.reason.detail.contains("CLOUDFLARE_R2_ACCESS_KEY_ID"))
                #expect(error.reason.detail.contains("CLOUDFLARE_R2_SECRET_ACCESS_KEY"))
                #expect(!error.reason.detail.contains(wrong))
                #expect(!right.isEmpty && !error.reason.detail.contains(right))
            }
        }
        let log = try await harness.log()
        #expect(log.map(\.status) == [403])  // moto refused the signature of the first request, nothing more was sent
        #expect(try await harness.keys().isEmpty)
    }

    @Test("F5: InvalidAccessKeyId is fatal at once, not retried")
    func anUnknownKeyIsNotRetried() async throws {
        let harness = try await Harness()
        try await harness.faults([["method": "PUT", "actions": [["status": 403, "code": "InvalidAccessKeyId"]]]])
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(1_000, in: dir)
            await #expect {
                _ = try await harness.upload(file, key: harness.key("f5/key.bin"))
            } throws: { error in
                guard let error = error as? SinkError else { return false }
                return error.severity == .fatal && error.reason.code == .authFailed
                    && error.reason.detail.contains("InvalidAccessKeyId")
            }
        }
        #expect(try await harness.log().filter { $0.method == "PUT" }.map(\.status) == [403])
        #expect(harness.clock.sleeps.isEmpty)
        #expect(try await harness.keys().isEmpty)
    }

    // MARK: Delete and bucket check

    @Test func deleteRemovesTheObjectAndAMissingOneIsFine() async throws {
        let harness = try await Harness()
        let r2 = harness.client()
        let key = harness.key("lessons/01 intro+notes/café (1) 50%.pdf")
        let kept = harness.key("keep.bin")
        try await TestFiles.withTemporaryDirectory { dir in
            let file = try noiseFile(5_000, in: dir)
            #expect(try await harness.upload(file, key: key, via: r2))
            #expect(try await harness.upload(file, key: kept, via: r2))
        }
        try await r2.delete(key: key)
        #expect(try await harness.keys() == [kept])
        #expect(try await r2.head(key: key).exists == false)
        try await r2.delete(key: key)  // S3 answers 204 for a key that is not there
        #expect(try await harness.log().filter { $0.method == "DELETE" }.map(\.status) == [204, 204])
    }

    @Test func headBucketIs200ForTheBucketAnd404ForAnother() async throws {
        let harness = try await Harness()
        #expect(try await harness.client().headBucket() == 200)
        #expect(try await harness.client(["CLOUDFLARE_R2_BUCKET_NAME": "no-such-bucket"]).headBucket() == 404)
        #expect(try await harness.log().map(\.code).sorted() == [200, 404])
    }
}

// MARK: - Helpers

extension R2Tests {
    /// The suite's fake with a fresh log and no faults, and clients that retry on a clock that never sleeps.
    struct Harness {
        let fake: S3Fake
        /// Every key of the test starts with it, so objects left by earlier tests never count.
        let prefix = "t-\(UUID().uuidString.prefix(8))/"
        let clock = RecordingClock()

        init() async throws {
            if let shared = SharedS3.current { fake = shared } else { fake = try await S3Fake() }
            try await fake.server.post("/__fake/reset")
        }

        func key(_ name: String) -> String { prefix + name }

        func client(_ overrides: [String: String] = [:]) -> R2Client {
            R2Client(environment: CloudflareEnvironment(fake.environment.merging(overrides) { $1 }, assumeConfigured: false),
                     http: CurlClient(),
                     retrier: Retrier(backoff: Backoff(attempts: 5, baseDelay: 0.2, maxDelay: 2), clock: clock, gate: nil))
        }

        func upload(_ file: URL, key: String, contentType: String = "application/octet-stream",
                    disposition: String? = nil, retries: RetryCount? = nil, via r2: R2Client? = nil) async throws -> Bool {
            try await (r2 ?? client()).upload(object(file, key: key, contentType: contentType, disposition: disposition),
                                              multipartThreshold: R2Tests.threshold, partSize: Int64(R2Tests.partSize),
                                              retries: retries).sent
        }

        func object(_ file: URL, key: String, contentType: String = "application/octet-stream",
                    disposition: String? = nil) throws -> R2Client.Object {
            R2Client.Object(key: key, path: file.path, bytes: Int64(try Data(contentsOf: file).count), contentType: contentType,
                            contentDisposition: disposition, sha256: try sha256(of: file))
        }

        func faults(_ rules: [JSONValue]) async throws { try await fake.server.faults(rules) }

        /// What moto holds under `key`.
        func stored(_ key: String) async throws -> JSONValue? { try await fake.objects()[key] }

        /// This test's keys in moto.
        func keys() async throws -> [String] { try await fake.objects().objectPairs.map(\.key).filter { $0.hasPrefix(prefix) } }

        /// The proxy's log. It adds an entry only once the answer is out, so the request answered
        /// last may be missing for a moment: read until two reads 50 ms apart agree.
        func log() async throws -> [Request] {
            var entries = try await fake.server.log()
            for _ in 0..<40 {
                try await Task.sleep(for: .milliseconds(50))
                let again = try await fake.server.log()
                if again.count == entries.count { break }
                entries = again
            }
            return entries.map(Request.init)
        }

        /// This test's multipart uploads moto still holds open.
        func openUploads() async throws -> [JSONValue] {
            try await fake.server.control("/__fake/multipart").array.filter { $0["key"]?.string?.hasPrefix(prefix) == true }
        }
    }

    /// One entry of the proxy's log.
    struct Request {
        let entry: JSONValue
        var method: String { entry["method"]?.string ?? "" }
        /// The path as sent, still percent-encoded.
        var path: String { entry["path"]?.string ?? "" }
        var query: String { entry["query"]?.string ?? "" }
        /// What the proxy answered; nil when the connection was dropped instead.
        var status: Int? { entry["status"]?.number.map { Int($0) } }
        /// `status`, 0 for a dropped connection.
        var code: Int { status ?? 0 }
        var bytesIn: Int { Int(entry["bytes_in"]?.number ?? -1) }
        /// The scripted fault this request met, nil when none.
        var fault: JSONValue? {
            guard let fault = entry["fault"], fault != .null else { return .none }
            return fault
        }
        func header(_ name: String) -> String? { entry["headers"]?[name]?.string }
        var headerNames: [String] { entry["headers"]?.objectPairs.map(\.key) ?? [] }

        /// `partNumber` of an UploadPart, nil for every other request.
        var partNumber: Int? {
            guard method == "PUT" else { return nil }
            return query.split(separator: "&").first { $0.hasPrefix("partNumber=") }.flatMap { Int($0.dropFirst(11)) }
        }
        var isComplete: Bool { method == "POST" && query.hasPrefix("uploadId=") }
        var isCreate: Bool { method == "POST" && query == "uploads" }
    }

    /// Sends part `number` of `object` (cut into `partSize` parts) to an open multipart upload.
    func sendPart(_ r2: R2Client, _ object: R2Client.Object, _ uploadID: String, _ number: Int) async throws {
        let offset = Int64((number - 1) * Self.partSize)
        _ = try await r2.uploadPart(object, uploadID: uploadID, number: number, offset: offset,
                                    length: min(Int64(Self.partSize), object.bytes - offset), retries: nil)
    }

    /// Part sizes, part MD5s and the multipart ETag of `file` cut into `partSize` parts, computed by
    /// Python's hashlib so that no expectation comes from the code under test.
    struct PartFacts {
        var sizes: [Int]
        var md5Base64: [String]
        var md5Hex: [String]
        var sha256Hex: [String]
        var etag: String

        init(_ file: URL, partSize: Int) throws {
            let script = """
            import base64, hashlib, json, sys
            data = open(sys.argv[1], "rb").read()
            size = int(sys.argv[2])
            parts = [data[i:i + size] for i in range(0, len(data), size)]
            digests = [hashlib.md5(p).digest() for p in parts]
            print(json.dumps({"sizes": [len(p) for p in parts],
                              "md5": [base64.b64encode(d).decode() for d in digests],
                              "hex": [d.hex() for d in digests],
                              "sha256": [hashlib.sha256(p).hexdigest() for p in parts],
                              "etag": hashlib.md5(b"".join(digests)).hexdigest() + "-%d" % len(parts)}))
            """
            let result = Shell.run("/usr/bin/env", ["python3", "-c", script, file.path, "\(partSize)"])
            try #require(result.status == 0, "\(result.stderr)")
            let json = try JSONValue.parse(Data(result.stdout.utf8))
            sizes = json["sizes"]?.array.compactMap { $0.number.map { Int($0) } } ?? []
            md5Base64 = json["md5"]?.array.compactMap(\.string) ?? []
            md5Hex = json["hex"]?.array.compactMap(\.string) ?? []
            sha256Hex = json["sha256"]?.array.compactMap(\.string) ?? []
            etag = json["etag"]?.string ?? "?"
        }
    }

    /// Each key percent-encoded by Python's `urllib.parse.quote` (RFC 3986 unreserved and `/` kept,
    /// UTF-8, upper-case hex), the encoding SigV4 prescribes for S3 paths.
    func uriEncoded(_ keys: [String]) throws -> [String] {
        let script = "import json, sys, urllib.parse; print(json.dumps([urllib.parse.quote(k, safe='/') for k in json.loads(sys.argv[1])]))"
        let result = Shell.run("/usr/bin/env", ["python3", "-c", script, JSONValue.array(keys.map(JSONValue.string)).compactText])
        try #require(result.status == 0, "\(result.stderr)")
        return try JSONValue.parse(Data(result.stdout.utf8)).array.compactMap(\.string)
    }

    /// `count` bytes of xorshift noise written a machine word at a time (`patternFile`'s byte loop
    /// takes seconds per 10 MiB in a debug build); another seed gives other bytes.
    func noiseFile(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15, in dir: URL, name: String = "data.bin") throws -> URL {
        var x = seed | 1
        let words = [UInt64](unsafeUninitializedCapacity: (count + 7) / 8) { buffer, initialized in
            for i in 0..<buffer.count {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17
                buffer[i] = x
            }
            initialized = buffer.count
        }
        let url = dir.appendingPathComponent(name)
        try words.withUnsafeBytes { try Data($0.prefix(count)).write(to: url) }
        return url
    }

    /// Nothing R2 does not implement: no chunked body, no Expect, no flexible checksums, no streaming
    /// signature; the payload hash on every request, and every body guarded by a signed SHA-256 or a Content-MD5.
    func expectOnlyWhatR2Implements(_ log: [Request]) {
        #expect(!log.isEmpty)
        for request in log {
            let what = "\(request.method) ?\(request.query)"
            #expect(request.header("transfer-encoding") == nil, "\(what)")
            #expect(request.header("expect") == nil, "\(what)")
            #expect(!request.headerNames.contains { $0.hasPrefix("x-amz-checksum-") || $0 == "x-amz-sdk-checksum-algorithm" }, "\(what)")
            let sha = request.header("x-amz-content-sha256") ?? "none"
            let signed = sha.count == 64 && sha.allSatisfy(\.isHexDigit)
            #expect(signed || sha == "UNSIGNED-PAYLOAD", "\(what): \(sha)")
            if request.bytesIn > 0 { #expect(signed || request.header("content-md5") != nil, "\(what): an unguarded body") }
            #expect(request.entry["refused"] == .null, "\(what)")
        }
    }

    /// The object under `key` is exactly `file`: size, bytes (moto's own SHA-256) and the metadata SHA-256.
    func expectStored(_ harness: Harness, _ key: String, is file: URL) async throws {
        let stored = try #require(try await harness.stored(key), "no object under \(key)")
        let digest = try sha256(of: file)
        #expect(stored["size"]?.number == Double(try Data(contentsOf: file).count))
        #expect(stored["sha256"]?.string == digest)
        #expect(stored["metadata"]?["sha256"]?.string == digest)
    }
}

/// Starts one S3 fake around the whole suite and stops it by PID after the last test.
struct SharedS3: SuiteTrait, TestScoping {
    @TaskLocal static var current: S3Fake?

    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let fake = try await S3Fake()
        defer { fake.server.stop() }
        try await Self.$current.withValue(fake) { try await function() }
    }
}
