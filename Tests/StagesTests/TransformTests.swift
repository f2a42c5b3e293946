import Foundation
import ImageTransformStage
import LocalMedia
import MediaPipeline
import TestSupport
import Testing

struct TransformTests {
    /// Tags that must never survive: location, camera, people, editing history.
    static let forbidden = ["GPS", "Make", "Model", "Artist", "Creator", "By-line", "Orientation", "Comment", "Copyright",
                            "XMP", "IPTC", "Software", "DateTimeOriginal"]

    func transform(_ file: String, to format: ImageFormat, box: Int = 1600, keepICC: Bool = true, in dir: URL) throws -> URL {
        let out = dir.appendingPathComponent("\(file)-out.\(format.fileExtension)")
        _ = try Vips.transform(try TestFiles.fixture(file), to: out, VipsTransform(width: box, height: box, keepICC: keepICC, format: format, quality: 82))
        return out
    }

    @Test("every output format is free of GPS, camera, XMP and IPTC metadata", arguments: ImageFormat.allCases, [true, false])
    func metadataIsGone(_ format: ImageFormat, _ keepICC: Bool) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let source = format == .webp ? "photo.webp" : "photo.jpg"
            let before = Shell.exifTags(try TestFiles.fixture(source))
            #expect(before.keys.contains { $0.contains("GPS") }, "the fixture must carry GPS to prove anything")
            let tags = Shell.exifTags(try transform(source, to: format, keepICC: keepICC, in: dir))
            // The kept sRGB profile describes colour, not the photo; libvips writes Orientation only as "normal".
            let leaks = tags.filter { key, value in
                !key.hasPrefix("ICC_Profile:") && Self.forbidden.contains { key.contains($0) }
                    && !(key == "EXIF:Orientation" && value == "Horizontal (normal)")
            }
            #expect(leaks.isEmpty, "\(format) kept \(leaks)")
        }
    }

    @Test func orientationSixComesOutUpright() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let out = try transform("rotated.jpg", to: .png, in: dir)
            let header = try Vips.header(of: out)
            #expect(header.width == 40 && header.height == 80)
            #expect(header.orientation == 1)
            #expect(Shell.exifTags(out)["EXIF:Orientation"] == nil)
            // The fixture is red on the left, blue on the right; turned 90° clockwise, red is on top.
            let top = Shell.run("/usr/bin/vips", ["getpoint", out.path, "20", "5"]).stdout.split(separator: " ").compactMap { Double($0) }
            let bottom = Shell.run("/usr/bin/vips", ["getpoint", out.path, "20", "75"]).stdout.split(separator: " ").compactMap { Double($0) }
            #expect((top.first ?? 0) > 150 && (top.dropFirst(2).first ?? 255) < 100, "top pixel \(top)")
            #expect((bottom.first ?? 255) < 100 && (bottom.dropFirst(2).first ?? 0) > 150, "bottom pixel \(bottom)")
        }
    }

    @Test func adobeRGBIsConvertedToSRGB() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let out = try transform("adobe.jpg", to: .png, keepICC: false, in: dir)
            let pixel = Shell.run("/usr/bin/vips", ["getpoint", out.path, "32", "32"]).stdout.split(separator: " ").compactMap { Double($0) }
            // Stored (202,30,30) in Adobe RGB is about (234,24,23) in sRGB; read as sRGB without conversion it stays 202.
            #expect(pixel.count >= 3)
            #expect((pixel.first ?? 0) > 225, "red channel \(pixel)")
        }
    }

    @Test func smallImagesAreNotUpscaledAndLargeOnesFitTheBox() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let small = try Vips.header(of: try transform("small.png", to: .png, in: dir))
            #expect(small.width == 100 && small.height == 80)
            let big = try Vips.header(of: try transform("big.png", to: .jpeg, in: dir))
            #expect(big.width == 1600 && big.height == 1067)
        }
    }

    @Test func aPolyglotLosesItsAppendedArchiveAndComment() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let out = try transform("poly.jpg", to: .jpeg, in: dir)
            let bytes = try Data(contentsOf: out)
            #expect(bytes.range(of: Data("PK\u{3}\u{4}".utf8)) == nil)
            #expect(bytes.range(of: Data("script".utf8)) == nil)
        }
    }

    @Test func aTruncatedImageFailsAndLeavesNothingBehind() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let stage = try #require(imageStage())
            let asset = Asset(source: "truncated.jpg", file: try TestFiles.fixture("truncated.jpg"), relativePath: "truncated.jpg",
                              purpose: nil, inspector: LocalInspector())
            let context = StageContext(logger: MemoryLogger(), dryRun: true, workDirectory: dir, purposes: [:], sinks: [:])
            await #expect(throws: Reason.self) { _ = try await stage.run(asset, context: context) }
            do { _ = try await stage.run(asset, context: context) } catch let reason as Reason { #expect(reason.code == .truncated) }
            #expect(TestFiles.listing(dir).isEmpty)
        }
    }

    @Test func anAvatarPresetCropsToASquare() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let stage = try #require(imageStage())
            let asset = Asset(source: "photo.jpg", file: try TestFiles.fixture("photo.jpg"), relativePath: "avatars/me.jpg",
                              purpose: "avatar", inspector: LocalInspector())
            let avatar = Purpose(name: "avatar", prefix: "avatars/", image: ImagePreset(fit: .cover, width: 128, height: 128))
            let context = StageContext(logger: MemoryLogger(), dryRun: true, workDirectory: dir, purposes: ["avatar": avatar], sinks: [:])
            #expect(try await stage.run(asset, context: context) == .proceed)
            let prepared = try #require(asset.prepared)
            #expect(prepared.image?.width == 128 && prepared.image?.height == 128)
            #expect(try Vips.header(of: prepared.url).width == 128)
        }
    }

    func imageStage() -> (any Stage)? {
        var options = OptionsReader(nil, path: "options")
        guard case let .stage(stage)? = ImageTransformStage.factory.build(&options, FactoryContext(environment: [:], assumeConfigured: false))
        else { return nil }
        return stage
    }
}
