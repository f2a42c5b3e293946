import Foundation
import LocalMedia
import MediaPipeline
import StandardStages
import Synchronization
import CloudflareR2Stage
import CloudflareStreamStage
import TestSupport
import Testing

struct RouteTests {
    static let images = ["CLOUDFLARE_ACCOUNT_ID": "acct", "CLOUDFLARE_API_TOKEN": "tok"]
    static let r2 = ["CLOUDFLARE_ACCOUNT_ID": "acct", "CLOUDFLARE_R2_ACCESS_KEY_ID": "ak", "CLOUDFLARE_R2_SECRET_ACCESS_KEY": "sk",
                     "CLOUDFLARE_R2_BUCKET_NAME": "course-media"]

    func pipeline(_ environment: [String: String]) throws -> Pipeline {
        let data = try Data(contentsOf: TestFiles.repoRoot.appendingPathComponent("pipeline.json"))
        return try Pipeline.load(data, registry: StandardStages.registry, environment: environment)
    }

    /// The default pipeline over one fixture file, returning its report.
    func route(_ file: String, as relativePath: String? = nil, environment: [String: String]) async throws -> AssetReport {
        try await TestFiles.withTemporaryDirectory { dir in
            let runner = Runner(pipeline: try pipeline(environment), inspector: LocalInspector(), logger: MemoryLogger())
            let input = InputFile(source: file, url: try TestFiles.fixture(file), relativePath: relativePath ?? file)
            let box = ReportBox()
            _ = await runner.run([input], options: .init(dryRun: true, concurrency: 1, workDirectory: dir)) { box.report = $0 }
            return try #require(box.report)
        }
    }

    @Test func imagesGoToImagesWhenItIsConfigured() async throws {
        let report = try await route("photo.jpg", environment: Self.images.merging(Self.r2) { a, _ in a })
        #expect(report.status == .planned)
        #expect(report.sink == "cloudflare-images")
        #expect(report.result?["endpoint"] == "https://api.cloudflare.com/client/v4/accounts/acct/images/v1")
    }

    @Test func imagesFallBackToR2WhenImagesIsNotConfigured() async throws {
        let report = try await route("photo.jpg", as: "images/thumbnails/a.jpg", environment: Self.r2)
        #expect(report.sink == "r2")
        #expect(report.purpose == "thumbnail")
        let key = try #require(report.result?["key"]?.stringValue)
        #expect(key == "thumbnails/\(report.sha256!).jpg")
        #expect(report.result?["endpoint"] == .string("https://acct.r2.cloudflarestorage.com/course-media/\(key)"))
    }

    @Test func anImageTooBigForImagesGoesToR2() async throws {
        let sinks = try pipeline(Self.images.merging(Self.r2) { a, _ in a }).sinks
        let huge = PreparedFile(url: URL(fileURLWithPath: "/x.png"), bytes: 11_000_000, mime: "image/png",
                                image: ImageHeader(format: "png", width: 4000, height: 3000))
        #expect(sinks["cloudflare-images"]?.refusal(for: huge)?.contains("10 MB") == true)
        #expect(sinks["r2"]?.refusal(for: huge) == nil)
        let wide = PreparedFile(url: URL(fileURLWithPath: "/x.png"), bytes: 1000, mime: "image/png",
                                image: ImageHeader(format: "png", width: 13_000, height: 10))
        #expect(sinks["cloudflare-images"]?.refusal(for: wide)?.contains("12,000") == true)
    }

    @Test func videosGoToStreamAndDocumentsToR2() async throws {
        let all = Self.images.merging(Self.r2) { a, _ in a }
        let video = try await route("clip.mp4", as: "videos/01.mp4", environment: all)
        #expect(video.sink == "stream" && video.purpose == "lesson-video")
        #expect(video.result?["protocol"] == "basic")
        let pdf = try await route("doc.pdf", environment: all)
        #expect(pdf.sink == "r2")
        #expect(pdf.result?["contentDisposition"] == "attachment")
    }

    @Test("with nothing configured a file is rejected no_sink, naming the variables to set", arguments: [
        ("photo.jpg", ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_R2_BUCKET_NAME"]),
        ("doc.pdf", ["CLOUDFLARE_R2_ACCESS_KEY_ID", "CLOUDFLARE_R2_SECRET_ACCESS_KEY"]),
        ("clip.mp4", ["CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN"]),
    ])
    func nothingConfiguredIsNoSink(_ file: String, _ variables: [String]) async throws {
        let report = try await route(file, environment: [:])
        #expect(report.status == .rejected)
        #expect(report.reason?.code == .noSink)
        for name in variables { #expect(report.reason?.detail.contains(name) == true, "\(report.reason?.detail ?? "")") }
    }

    @Test func partAndChunkSizesFollowTheProviderRules() {
        let mib: Int64 = 1024 * 1024
        #expect(CloudflareR2Stage.partSize(for: 500_000_000, smallest: 8 * mib) == 8 * mib)
        let part = CloudflareR2Stage.partSize(for: 200_000_000_000, smallest: 8 * mib)
        #expect(part * CloudflareR2Stage.maxParts >= 200_000_000_000 && part % mib == 0 && part > 8 * mib)
        #expect(CloudflareStreamStage.tusChunk(52_428_800) == 52_428_800)
        #expect(CloudflareStreamStage.tusChunk(1) == 5_242_880)
        #expect(CloudflareStreamStage.tusChunk(300_000_000) == 209_715_200)
        #expect(CloudflareStreamStage.tusChunk(6_000_000) == 5_767_168)
    }
}

/// Keeps the one report a single-file run produces.
final class ReportBox: Sendable {
    private let stored = Mutex<AssetReport?>(nil)
    var report: AssetReport? {
        get { stored.withLock { $0 } }
        set { stored.withLock { $0 = newValue } }
    }
}
