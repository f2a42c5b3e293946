import CloudflareClient
import Foundation
import HTTPTransport
import MediaPipeline
import TestSupport
import Testing

/// Cloudflare Images against the local API fake, which enforces the real rules.
struct ImagesTests {
    func upload(_ file: URL, id: String?, signed: Bool = false, mime: String = "image/png") throws -> ImagesClient.Upload {
        let bytes = Int64(try Data(contentsOf: file).count)
        return .init(path: file.path, bytes: bytes, mime: mime, filename: file.lastPathComponent, sha256: try sha256(of: file),
                     source: "course/\(file.lastPathComponent)", id: id, requireSignedURLs: signed)
    }

    @Test func aPublicImageGoesUpUnderItsContentIDWithMetadataAndVariants() async throws {
        let fake = try await CloudflareFake()
        let images = ImagesClient(api: fake.api())
        let file = try TestFiles.fixture("small.png")
        let id = "mp/thumbnail/\(try sha256(of: file))"
        let result = try await images.upload(try upload(file, id: id))
        #expect(result["id"] == .string(id))
        #expect(result["variants"]?.array.count == 2)
        #expect(result["url"]?.string?.hasPrefix("https://imagedelivery.net/") == true)
        let stored = try #require(try await fake.state()["images"]?[id])
        #expect(stored["sha256"] == .string(try sha256(of: file)))
        #expect(stored["meta"]?["sha256"] == .string(try sha256(of: file)))
        #expect(stored["content_type"] == "image/png")
        // The request went out with an exact length, no chunking and no Expect.
        let post = try #require(try await fake.server.log().first { $0["method"] == "POST" })
        #expect(post["headers"]?["transfer-encoding"] == nil)
        #expect(post["headers"]?["expect"] == nil)
        #expect(post["headers"]?["content-length"]?.string == post["bytes_in"].map { "\(Int($0.number ?? -1))" })
    }

    @Test("F7: the answer is lost after Images stored the image; the retry finds it, no second image")
    func aLostAnswerDoesNotDuplicate() async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "POST", "path": "/images/v1$", "actions": [["commit_then_drop": true]]]])
        let images = ImagesClient(api: fake.api())
        let file = try TestFiles.fixture("small.png")
        let id = "mp/avatar/\(try sha256(of: file))"
        let count = RetryCount()
        let result = try await images.upload(try upload(file, id: id), retries: count)
        #expect(result["id"] == .string(id))
        #expect(result["existing"] == true)
        #expect(count.value == 1)
        #expect(try await fake.state()["images"]?.objectPairs.count == 1)
        // And a second run of the same file is also one image.
        _ = try await images.upload(try upload(file, id: id))
        #expect(try await fake.state()["images"]?.objectPairs.count == 1)
    }

    @Test func anIDTakenByOtherContentIsRefused() async throws {
        let fake = try await CloudflareFake()
        let images = ImagesClient(api: fake.api())
        _ = try await images.upload(try upload(try TestFiles.fixture("small.png"), id: "mp/x/taken"))
        await #expect {
            _ = try await images.upload(try upload(try TestFiles.fixture("big.png"), id: "mp/x/taken"))
        } throws: { ($0 as? SinkError)?.severity == .rejected }
    }

    @Test func aSignedImageReservesItsIDFirstThenUploadsWithoutTheToken() async throws {
        let fake = try await CloudflareFake()
        let images = ImagesClient(api: fake.api())
        let file = try TestFiles.fixture("small.png")
        var reserved: String?
        let result = try await images.upload(try upload(file, id: nil, signed: true), reserved: { reserved = $0 })
        let id = try #require(reserved)
        #expect(result["id"] == .string(id))
        let stored = try #require(try await fake.state()["images"]?[id])
        #expect(stored["requireSignedURLs"] == true)
        #expect(stored["draft"] == false)
        let log = try await fake.server.log()
        let direct = try #require(log.first { $0["path"]?.string?.hasPrefix("/upload/") == true })
        #expect(direct["headers"]?["authorization"] == nil)
        #expect(log.contains { $0["path"]?.string?.hasSuffix("/images/v2/direct_upload") == true })
    }

    @Test("G3: a signed image whose saved reserved id is there (not a draft) is done: one GET, no upload")
    func aSavedSignedImageThatIsThereIsDone() async throws {
        let fake = try await CloudflareFake()
        let images = ImagesClient(api: fake.api())
        let file = try TestFiles.fixture("small.png")
        let checkpoints = Checkpoints()
        let first = checkpoints.checkpoint()
        let uploaded = try await images.upload(try upload(file, id: nil, signed: true)) { id throws(SinkError) in
            try await first.save(["id": .string(id)])
        }
        let saved = try #require(checkpoints.saved.first?["id"]?.string)
        #expect(uploaded["id"] == .string(saved))
        let before = try await fake.server.log().count

        let result = try await images.upload(try upload(file, id: nil, signed: true), resume: saved) { _ throws(SinkError) in
            Issue.record("nothing should be reserved")
        }
        #expect(result["id"] == .string(saved))
        #expect(result["existing"] == true)
        #expect(result["variants"] == uploaded["variants"])
        let later = Array(try await fake.server.log().dropFirst(before))
        #expect(later.map { $0["method"]?.string ?? "" } == ["GET"])
        #expect(try await fake.state()["images"]?.objectPairs.count == 1)
    }

    @Test("G3: a saved id that is still a draft (its one-time URL is lost) is deleted, and a new id reserved, saved and filled")
    func aSavedDraftIsReplaced() async throws {
        let fake = try await CloudflareFake()
        // The first run reserves an id, then its upload to the one-time URL is refused.
        try await fake.server.faults([["method": "POST", "path": "^/upload/", "actions": [["status": 400]]]])
        let images = ImagesClient(api: fake.api())
        let file = try TestFiles.fixture("small.png")
        let checkpoints = Checkpoints()
        let first = checkpoints.checkpoint()
        await #expect(throws: SinkError.self) {
            _ = try await images.upload(try upload(file, id: nil, signed: true)) { id throws(SinkError) in
                try await first.save(["id": .string(id)])
            }
        }
        let draft = try #require(checkpoints.saved.first?["id"]?.string)
        #expect(try await fake.state()["images"]?[draft]?["draft"] == true)

        let second = checkpoints.checkpoint(["id": .string(draft)])
        let result = try await images.upload(try upload(file, id: nil, signed: true), resume: draft) { id throws(SinkError) in
            try await second.save(["id": .string(id)])
        }
        let id = try #require(result["id"]?.string)
        #expect(id != draft)
        #expect(checkpoints.saved.compactMap { $0["id"]?.string } == [draft, id])
        let stored = try #require(try await fake.state()["images"])
        #expect(stored.objectPairs.map(\.key) == [id])
        #expect(stored[id]?["draft"] == false)
        #expect(stored[id]?["sha256"] == .string(try sha256(of: file)))
    }

    @Test("provider refusals are permanent: rejected, provider_rejected, not retried")
    func refusalsAreNotRetried() async throws {
        let fake = try await CloudflareFake()
        let images = ImagesClient(api: fake.api())
        // The fake parses the header: a PNG over 12,000 px on a side is refused.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mp-img-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let wide = try TestFiles.fixture("small.png")
        var data = try Data(contentsOf: wide)
        data.replaceSubrange(16..<20, with: [0, 0, 0x2F, 0x00])  // IHDR width 12,032
        let file = dir.appendingPathComponent("wide.png")
        try data.write(to: file)
        await #expect {
            _ = try await images.upload(try upload(file, id: "mp/t/wide"))
        } throws: { error in
            guard let error = error as? SinkError else { return false }
            return error.severity == .rejected && error.reason.code == .providerRejected
        }
        #expect(try await fake.server.log().filter { $0["method"] == "POST" }.count == 1)
    }

    @Test("F5: a refused token is fatal and names the variable, never its value", arguments: [401, 403])
    func refusedTokenIsFatal(_ status: Int) async throws {
        let fake = try await CloudflareFake()
        try await fake.server.faults([["method": "POST", "path": "/images/v1$", "actions": [["status": .int(status), "echo_headers": true]]]])
        let images = ImagesClient(api: fake.api())
        do {
            _ = try await images.upload(try upload(try TestFiles.fixture("small.png"), id: "mp/t/a"))
            Issue.record("expected a fatal error")
        } catch let error as SinkError {
            #expect(error.severity == .fatal)
            #expect(error.reason.code == .authFailed)
            #expect(error.reason.detail.contains("CLOUDFLARE_API_TOKEN needs Images Write and Stream Edit"))
            #expect(!error.reason.detail.contains(CloudflareFake.token))
        }
        #expect(try await fake.server.log().count == 1)
    }

    @Test func deleteRemovesAndReportsAnAlreadyGoneImage() async throws {
        let fake = try await CloudflareFake()
        let images = ImagesClient(api: fake.api())
        _ = try await images.upload(try upload(try TestFiles.fixture("small.png"), id: "mp/t/del"))
        #expect(try await images.delete(id: "mp/t/del") == true)
        #expect(try await images.delete(id: "mp/t/del") == false)
        #expect(try await fake.state()["images"]?.objectPairs.isEmpty == true)
    }
}
