import Foundation
import TestSupport
import Testing

/// The bad-inputs catalogue (sections A, B, C), each through the real binary in one batch:
/// every refusal names the file and its reason code, the good files still go through, and
/// nothing half-written is left in the work folder.
struct BadInputsTests {
    let cli = CLITests()

    static let expected: [String: Set<String>] = [
        "lesson.png": ["type_not_allowed"],                      // A1
        "photo.jpg.php": ["type_mismatch"], "SHELL.PHP": ["type_mismatch"],  // A2
        "script.svg": ["svg_not_allowed"], "xxe.svg": ["svg_not_allowed"], "laughs.svg": ["svg_not_allowed"],  // A6 default
        "ppm.jpg": ["type_not_allowed", "type_mismatch"], "pfm.jpg": ["type_not_allowed", "type_mismatch"],    // A7
        "fits.jpg": ["type_not_allowed", "type_mismatch"], "hdr.jpg": ["type_not_allowed", "type_mismatch"],
        "vips.jpg": ["type_not_allowed", "type_mismatch"], "csv.jpg": ["type_not_allowed", "type_mismatch"],
        "matrix.jpg": ["type_not_allowed", "type_mismatch"], "pdf.jpg": ["type_not_allowed", "type_mismatch"],
        "jp2.jpg": ["type_not_allowed", "type_mismatch"], "jxl.jpg": ["type_not_allowed", "type_mismatch"],
        "bomb-full.png": ["pixel_limit"], "bomb-header.png": ["pixel_limit"],  // B1, B2
        "frames.gif": ["frame_limit"],                                          // B3
        "truncated.jpg": ["truncated"], "truncated.png": ["truncated"],         // B5
        "empty.jpg": ["empty_file"],
    ]
    static let good = ["x.JpG", "poly.jpg", "photo.jpg", "rotated.jpg", "adobe.jpg"]

    @Test func everyBadInputIsRejectedWithItsReasonAndTheBatchGoesOn() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let names = Array(Self.expected.keys) + Self.good
            let present = names.filter { FileManager.default.fileExists(atPath: (try? TestFiles.fixture($0).path) ?? "") }
            #expect(present.count >= names.count - 2, "fixtures missing: \(Set(names).subtracting(present))")
            let input = try cli.folder(present, in: dir)
            let work = dir.appendingPathComponent("work"), manifest = dir.appendingPathComponent("m.jsonl")
            // One worker: libvips keeps one error text per process, so each failure's words stay its own.
            let result = cli.run(["run", input.path, "--dry-run", "--assume-configured", "--concurrency", "1",
                                  "--work-dir", work.path, "--manifest", manifest.path])
            #expect(result.status == 1)
            let rows = try cli.rows(try String(contentsOf: manifest, encoding: .utf8))
            #expect(rows.count == present.count)
            for row in rows {
                let name = (row["source"] as! String).components(separatedBy: "/").last!
                if let codes = Self.expected[name] {
                    #expect(row["status"] as? String == "rejected", "\(name)")
                    #expect(codes.contains(row["reason"] as? String ?? "-"), "\(name): \(row["reason"] ?? "nil")")
                    let line = "rejected \(input.path)/\(name) — \(row["reason"] as? String ?? "")"
                    #expect(result.stderr.contains(line), "\(name)")
                } else {
                    #expect(row["status"] as? String == "planned", "\(name): \(row["reason"] ?? "nil")")
                }
            }
            // Only the prepared outputs of the good images remain: no partial or rejected output.
            let left = TestFiles.listing(work)
            #expect(left.count == Self.good.count, "\(left)")
            #expect(left.allSatisfy { !$0.contains(".part") })
            // A5: the polyglot's output has neither the appended zip nor the script comment. C1: no GPS.
            for row in rows where ["poly.jpg", "photo.jpg"].contains((row["source"] as! String).components(separatedBy: "/").last!) {
                let path = try #require((row["result"] as? [String: Any])?["path"] as? String)
                let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
                #expect(bytes.range(of: Data("PK\u{3}\u{4}".utf8)) == nil && bytes.range(of: Data("<script".utf8)) == nil)
                #expect(!Shell.exifTags(URL(fileURLWithPath: path)).keys.contains { $0.contains("GPS") })
            }
        }
    }

    @Test func withSVGAllowedActiveContentIsRejectedAndCleanSVGPassesUntouched() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let svgs = ["script.svg", "onload.svg", "foreign.svg", "href.svg", "xxe.svg", "laughs.svg", "drawing.svg"]
            let input = try cli.folder(svgs, in: dir)
            let pipeline = dir.appendingPathComponent("svg.json")
            let text = try String(contentsOf: TestFiles.repoRoot.appendingPathComponent("pipeline.json"), encoding: .utf8)
                .replacingOccurrences(of: "\"allowSVG\": false", with: "\"allowSVG\": true")
            try text.write(to: pipeline, atomically: true, encoding: .utf8)
            let manifest = dir.appendingPathComponent("m.jsonl")
            let result = cli.run(["run", input.path, "--pipeline", pipeline.path, "--dry-run", "--assume-configured", "--manifest", manifest.path])
            #expect(result.status == 1)
            for row in try cli.rows(try String(contentsOf: manifest, encoding: .utf8)) {
                let name = (row["source"] as! String).components(separatedBy: "/").last!
                if name == "drawing.svg" {
                    #expect(row["sink"] as? String == "cloudflare-images")
                    // Never loaded by libvips: the upload is the original file.
                    #expect((row["result"] as? [String: Any])?["path"] as? String == input.appendingPathComponent(name).path)
                } else {
                    #expect(row["reason"] as? String == "svg_active_content", "\(name)")
                }
            }
        }
    }
}
