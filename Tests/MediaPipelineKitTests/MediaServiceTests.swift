import Foundation
import MediaPipeline
import MediaPipelineKit
import TestSupport
import Testing

/// The embedding API against the local Cloudflare fake and the S3 server: the same rows the
/// manifest carries, delete by reference, live inputs, and decisions on declared files.
struct MediaServiceTests {
    static let pipelineText = """
        {"version": 1,
         "limits": {"apiRequestsPer5Min": 100000, "retry": {"baseDelay": "20ms", "maxDelay": "100ms"}},
         "purposes": {"avatar": {"prefix": "avatars/", "image": {"fit": "cover", "width": 64, "height": 64}},
                      "attachment": {"prefix": "attachments/"}},
         "purposeRules": [{"match": "**", "purpose": "attachment"}],
         "stages": [
           {"name": "validate", "kind": "validate", "options": {"maxBytes": {"image": "20MB", "document": "100MB"}}},
           {"name": "classify", "kind": "classify"},
           {"name": "images", "kind": "image.transform", "when": {"kind": "image"}},
           {"name": "route", "kind": "route", "options": {"rules": [
              {"when": {"kind": "image"}, "to": ["cloudflare-images", "r2"]}, {"when": {"kind": "video"}, "to": ["stream"]}, {"to": ["r2"]}]}},
           {"name": "cloudflare-images", "kind": "cloudflare.images"},
           {"name": "r2", "kind": "cloudflare.r2", "options": {"keyTemplate": "{purposePrefix}{sha256}{ext}"}},
           {"name": "stream", "kind": "cloudflare.stream"}]}
        """

    func service(_ environment: [String: String]) throws -> MediaService {
        try MediaService(pipelineJSON: Data(Self.pipelineText.utf8), environment: environment)
    }

    func fakes() async throws -> (CloudflareFake, S3Fake, [String: String]) {
        let cloudflare = try await CloudflareFake()
        let s3 = try await S3Fake()
        return (cloudflare, s3, cloudflare.environment.merging(s3.environment) { a, _ in a })
    }

    @Test("a pipeline with problems is refused with every problem listed")
    func loadErrors() throws {
        let bad = Data(#"{"version": 1, "stages": [{"name": "v", "kind": "validat"}, {"name": "r", "kind": "route", "options": {"rules": []}}]}"#.utf8)
        #expect(throws: PipelineLoadError.self) { try MediaService(pipelineJSON: bad, environment: [:]) }
        do {
            _ = try MediaService(pipelineJSON: bad, environment: [:])
        } catch {
            #expect(error.problems.count >= 2, "\(error.problems)")
            #expect(error.problems.contains { $0.contains("validat") })
        }
        #expect(throws: PipelineLoadError.self) { try MediaService(pipelineFile: URL(fileURLWithPath: "/nonexistent/pipeline.json")) }
    }

    @Test("process: an image lands in Images resized for its purpose, a PDF in R2; the rows are the manifest's")
    func processRows() async throws {
        let (cloudflare, s3, env) = try await fakes()
        let media = try service(env)
        let photo = try TestFiles.fixture("photo.jpg")
        let row = await media.process(file: photo, filename: "me.jpg", purpose: "avatar")
        #expect(row.status == .uploaded && row.sink == "cloudflare-images", "\(row.json.compactText)")
        let ref = try #require(MediaRef(sink: row.sink, result: row.result))
        #expect(ref.provider == .images)
        let stored = try #require(try await cloudflare.state()["images"]?[ref.id])
        #expect(stored["width"] == .number(64) && stored["height"] == .number(64), "the avatar preset is a 64×64 cover crop: \(stored)")
        // The row has exactly the manifest's keys.
        guard case let .object(pairs) = row.json else { Issue.record("not an object"); return }
        #expect(pairs.map(\.key) == ["source", "sha256", "bytes", "mime", "kind", "purpose", "status", "sink", "result", "reason", "ms"])

        let pdf = await media.process(file: try TestFiles.fixture("doc.pdf"), filename: "notes.pdf", purpose: nil)
        #expect(pdf.status == .uploaded && pdf.sink == "r2" && pdf.purpose == "attachment", "\(pdf.json.compactText)")
        let key = try #require(MediaRef(sink: pdf.sink, result: pdf.result)).id
        #expect(key.hasPrefix("attachments/") && key.hasSuffix(".pdf"))
        #expect(try await s3.objects()[key] != nil)

        let unknown = await media.process(file: photo, filename: "me.jpg", purpose: "avatr")
        #expect(unknown.status == .rejected && unknown.reason?.code == .unknownPurpose)
        let missing = await media.process(file: URL(fileURLWithPath: "/nonexistent/x.jpg"), filename: "x.jpg", purpose: nil)
        #expect(missing.status == .rejected)

        // Delete by reference: true, then false once gone.
        #expect(try await media.delete(ref) == true)
        #expect(try await cloudflare.state()["images"]?[ref.id] == nil)
        #expect(try await media.delete(ref) == false)
        #expect(try await media.delete(MediaRef("r2:\(key)")!) == true)
        #expect(try await s3.objects()[key] == nil)
        await media.finish()
    }

    @Test("twenty calls at once all finish, each with its own row")
    func concurrentCalls() async throws {
        let (cloudflare, s3, env) = try await fakes()
        let media = try service(env)
        try await TestFiles.withTemporaryDirectory { dir in
            var files: [URL] = []
            for n in 0..<20 {
                let file = dir.appendingPathComponent("note-\(n).txt")
                try Data("note \(n)\n".utf8).write(to: file)
                files.append(file)
            }
            let rows = await withTaskGroup(of: AssetReport.self) { group in
                for file in files { group.addTask { await media.process(file: file, filename: file.lastPathComponent, purpose: nil) } }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(rows.count == 20 && rows.allSatisfy { $0.status == .uploaded && $0.sink == "r2" })
            #expect(Set(rows.map(\.source)).count == 20)
            #expect(try await s3.objects().objectCount == 20)
            #expect(try await cloudflare.server.log().isEmpty)
        }
    }

    @Test("declared files: the same size, type and routing rules decide, and nothing is asked of a provider")
    func checkDeclared() async throws {
        let (cloudflare, _, env) = try await fakes()
        let media = try service(env)
        let image = await media.check(DeclaredFile(filename: "me.jpg", bytes: 2_000_000, mime: "image/jpeg"), purpose: "avatar")
        #expect(image.status == .planned && image.sink == "cloudflare-images" && image.result == nil)
        // Over Images' 10 MB, under the pipeline's 20 MB: R2 takes it, as for a real file.
        let large = await media.check(DeclaredFile(filename: "big.jpg", bytes: 15_000_000, mime: "image/jpeg"), purpose: nil)
        #expect(large.status == .planned && large.sink == "r2")
        let huge = await media.check(DeclaredFile(filename: "huge.jpg", bytes: 30_000_000, mime: "image/jpeg"), purpose: nil)
        #expect(huge.status == .rejected && huge.reason?.code == .tooLarge)
        let mismatch = await media.check(DeclaredFile(filename: "cv.pdf", bytes: 1000, mime: "image/png"), purpose: nil)
        #expect(mismatch.status == .rejected && mismatch.reason?.code == .typeMismatch)
        let video = await media.check(DeclaredFile(filename: "talk.mp4", bytes: 900_000_000, mime: "video/mp4"), purpose: nil)
        #expect(video.status == .planned && video.sink == "stream")
        let empty = await media.check(DeclaredFile(filename: "e.txt", bytes: 0, mime: "text/plain"), purpose: nil)
        #expect(empty.status == .rejected && empty.reason?.code == .emptyFile)
        #expect(try await cloudflare.server.log().isEmpty)
    }

    @Test("live inputs: create with keys, list, delete")
    func liveInputs() async throws {
        let (cloudflare, s3, env) = try await fakes()
        let media = try service(env)
        defer { withExtendedLifetime((cloudflare, s3)) {} }
        let input = try await media.createLiveInput(name: "Office hours", recording: true)
        guard case let .string(uid)? = input["uid"] else { Issue.record("no uid: \(input)"); return }
        #expect(input["rtmps"]?["streamKey"] != nil)
        #expect(try await media.liveInputs().contains { $0["uid"] == .string(uid) })
        #expect(try await media.deleteLiveInput(uid: uid) == true)
        #expect(try await media.deleteLiveInput(uid: uid) == false)
    }

    @Test("references parse and come from rows")
    func references() {
        #expect(MediaRef("images:abc") == MediaRef(provider: .images, id: "abc"))
        #expect(MediaRef("r2:a/b/c.pdf")?.id == "a/b/c.pdf")
        #expect(MediaRef("stream:") == nil && MediaRef("photos:1") == nil && MediaRef("nocolon") == nil)
        #expect(MediaRef(sink: "r2", result: .object([("key", .string("k"))]))?.description == "r2:k")
        #expect(MediaRef(sink: "stream", result: .object([("key", .string("k"))])) == nil)
    }
}

extension JSONValue {
    var objectCount: Int { if case let .object(pairs) = self { pairs.count } else { -1 } }
}
