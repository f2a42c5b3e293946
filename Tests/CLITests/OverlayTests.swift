import Foundation
import TestSupport
import Testing

/// `--pipeline` repeated (a base and overlays) and `--set`, through the real binary.
struct OverlayTests {
    let cli = CLITests()
    static let overlay = "examples/overlays/school-a.json"

    /// The manifest row of the file named `name`.
    func row(_ name: String, manifest: URL) throws -> [String: Any] {
        let rows = try cli.rows(try String(contentsOf: manifest, encoding: .utf8))
        return try #require(rows.first { ($0["source"] as? String)?.hasSuffix("/\(name)") == true })
    }

    func width(_ path: String) -> Int? {
        Int(Shell.run("/usr/bin/vipsheader", ["-f", "width", path]).stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// A dry-run of big.png (3000x2000) with these extra arguments; returns its plan.
    func plan(_ extra: [String], in dir: URL) async throws -> [String: Any] {
        let input = try cli.folder(["big.png"], in: dir.appendingPathComponent(UUID().uuidString))
        let manifest = dir.appendingPathComponent("\(UUID().uuidString).jsonl")
        let work = dir.appendingPathComponent("work-\(UUID().uuidString)")
        let result = await cli.run(["run", input.path, "--dry-run", "--assume-configured", "--manifest", manifest.path, "--work-dir", work.path,
                              "--pipeline", "pipeline.json", "--pipeline", Self.overlay] + extra)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let row = try row("big.png", manifest: manifest)
        #expect(row["status"] as? String == "planned")
        return try #require(row["result"] as? [String: Any])
    }

    @Test func anOverlayAndSetChangeWhatADryRunPrepares() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let original = try #require((try FileManager.default.attributesOfItem(atPath: try TestFiles.fixture("big.png").path)[.size] as? NSNumber)?.intValue)
            // The overlay's thumbnail preset: 2048 px WebP.
            let thumbnail = try await plan(["--purpose", "thumbnail"], in: dir)
            let webp = try #require(thumbnail["path"] as? String)
            #expect(webp.hasSuffix(".webp"))
            #expect(width(webp) == 2048)
            // The overlay caps the images stage at 2048 px; --set, applied after it, wins.
            let capped = try await plan([], in: dir)
            #expect(width(try #require(capped["path"] as? String)) == 2048)
            let set = try await plan(["--set", "stages.images.options.maxDimension=1000"], in: dir)
            #expect(width(try #require(set["path"] as? String)) == 1000)
            // A disabled stage is not applied: the original bytes are planned.
            let off = try await plan(["--set", "stages.images.enabled=false"], in: dir)
            #expect(off["bytes"] as? Int == original)
            #expect(width(try #require(off["path"] as? String)) == 3000)
        }
    }

    @Test func explainOriginsNamesTheFileLineTheEnvironmentAndSet() async {
        let result = await cli.run(["explain", "--pipeline", "pipeline.json", "--pipeline", Self.overlay, "--origins",
                              "--set", "limits.uploads=3", "--set", "purposes.avatar.prefix=${SCHOOL}/avatars/",
                              "--set", "purposes.lesson-video.prefix=${CLOUDFLARE_API_TOKEN}/"],
                             environment: CLITests.canaries.merging(["SCHOOL": "school-a"]) { a, _ in a })
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        func line(_ start: String) -> String? { lines.first { $0.hasPrefix(start + " ") } }
        #expect(line("stages[2].options.maxDimension = 2048")?.hasSuffix("   \(Self.overlay):8") == true, "\(lines)")
        #expect(line("stages[2].options.format = \"keep\"")?.hasSuffix("   pipeline.json:27") == true)
        #expect(line("purposes.thumbnail.image.format = \"webp\"")?.hasSuffix("   \(Self.overlay):5") == true)
        #expect(line("limits.maxEntriesPerArchive = 50000")?.hasSuffix("   pipeline.json:4") == true)
        #expect(line("stages[2].name = \"images\"")?.hasSuffix("   pipeline.json:26") == true)  // the overlay's name only matched it
        #expect(line("limits.uploads = 3")?.hasSuffix("   --set") == true)
        #expect(line("purposes.avatar.prefix = \"school-a/avatars/\"")?.hasSuffix("   env SCHOOL (--set)") == true)
        #expect(line("purposes.lesson-video.prefix = \"****/\"")?.hasSuffix("   env CLOUDFLARE_API_TOKEN (--set)") == true)
        #expect(lines.contains("stage images (image.transform)"))
        cli.assertNoSecret([result.stdout, result.stderr])
        // Without --origins the document is printed as before, merged.
        let plain = await cli.run(["explain", "pipeline.json", "--pipeline", Self.overlay])
        #expect(plain.status == 0 && plain.stdout.contains(#""format": "webp""#))
    }

    @Test func mergeProblemsNameBothFilesAndExitTwo() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            func file(_ name: String, _ text: String) throws -> String {
                let url = dir.appendingPathComponent(name)
                try Data(text.utf8).write(to: url)
                return url.path
            }
            // A route rule naming a sink an overlay turned off: the loader's error says which file did.
            let off = try file("no-r2.json", #"{"stages": [{"name": "r2", "enabled": false}]}"#)
            let routed = await cli.run(["validate", "--pipeline", "pipeline.json", "--pipeline", off])
            #expect(routed.status == 2)
            #expect(routed.stderr.contains("pipeline.json:30: error: stages[3].options.rules[0].to[1]: 'r2' is not the name of a sink stage"),
                    "stderr: \(routed.stderr)")
            #expect(routed.stderr.contains("stage 'r2' was disabled by \(off):1"))
            let kind = try file("kind.json", "{\n  \"stages\": [ { \"name\": \"images\", \"kind\": \"route\" } ]\n}")
            let changed = await cli.run(["run", "Tests", "--dry-run", "--pipeline", "pipeline.json", "--pipeline", kind])
            #expect(changed.status == 2)
            #expect(changed.stderr.contains("\(kind): error: stages[0].kind: changes the kind of stage 'images' from 'image.transform' (pipeline.json:26) to 'route'"),
                    "stderr: \(changed.stderr)")
            let unknown = await cli.run(["explain", "--set", "stages.imgs.options.maxDimension=1"])
            #expect(unknown.status == 2 && unknown.stderr.contains("no stage named 'imgs' (did you mean 'images'?)"), "stderr: \(unknown.stderr)")
            let valid = await cli.run(["validate", "--pipeline", "pipeline.json", "--pipeline", Self.overlay, "--set", "stages.classify.enabled=false"])
            #expect(valid.status == 0 && valid.stdout.contains("pipeline.json + \(Self.overlay): OK, 6 stages"), "\(valid.stderr)")
        }
    }
}
