import Foundation
import TestSupport
import Testing
import Synchronization

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
            let result = await cli.run(["run", input.path, "--dry-run", "--assume-configured", "--concurrency", "1",
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

    @Test("B10: a decoder that crashes or hangs costs that one file, and the batch goes on with fresh workers")
    func aCrashingOrHangingDecoderCostsOneFile() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let good = ["photo.jpg", "rotated.jpg", "adobe.jpg"]
            let input = try cli.folder(good, in: dir)
            for name in ["crash-me.jpg", "hang-me.png", "crash-me-too.jpg"] {
                try FileManager.default.copyItem(at: try TestFiles.fixture(name.hasSuffix(".png") ? "small.png" : "photo.jpg"),
                                              to: input.appendingPathComponent(name))
            }
            let work = dir.appendingPathComponent("work"), manifest = dir.appendingPathComponent("m.jsonl")
            let marker = "run-\(UUID().uuidString.prefix(8))"  // names this run's workers in their environment
            // 20 s: long enough that a good file never times out while a loaded machine starts workers.
            let run = try Spawned(["run", input.path, "--dry-run", "--assume-configured", "--set", "limits.decodeTimeout=20s",
                                   "--work-dir", work.path, "--manifest", manifest.path],
                                  environment: CLITests.canaries.merging(["MEDIA_PIPELINE_TEST_DECODER_FAULT": "crash:crash-me,hang:hang-me,crash:\(marker)"]) { a, _ in a },
                                  in: dir)
            // The workers' environments, read while the run goes on (on a thread of its own, so a busy
            // test process cannot miss them): libvips' variables and PATH, no credential.
            let seen = Mutex<[String]>([])
            let pid = run.process.processIdentifier
            let watcher = Thread {
                let end = Date().addingTimeInterval(150)
                while kill(pid, 0) == 0, Date() < end {
                    for worker in Self.children(of: pid, named: "__decoder-worker") {
                        if let data = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(worker)/environ")) {
                            seen.withLock { $0.append(String(decoding: data, as: UTF8.self)) }
                        }
                    }
                    usleep(20_000)
                }
            }
            watcher.start()
            let status = await run.wait(timeout: 120)
            let workerEnvironments = seen.withLock { $0 }
            #expect(!workerEnvironments.isEmpty, "no decoder worker seen")
            for environment in workerEnvironments {
                #expect(!environment.contains("canary") && !environment.contains("CLOUDFLARE"), "a worker got a credential")
            }
            #expect(status == 1, "\(run.errors)")
            let rows = try cli.rows(try String(contentsOf: manifest, encoding: .utf8))
            #expect(rows.count == good.count + 3)
            for row in rows {
                let name = (row["source"] as! String).components(separatedBy: "/").last!
                let expected: String? = name.hasPrefix("crash-me") ? "decoder_crashed" : name.hasPrefix("hang-me") ? "timeout" : nil
                if let expected {
                    #expect(row["status"] as? String == "rejected" && row["reason"] as? String == expected, "\(name): \(row)")
                    #expect(run.errors.contains("rejected \(input.path)/\(name) — \(expected): "), "\(name)")
                } else {
                    #expect(row["status"] as? String == "planned", "\(name): \(row["reason"] ?? "nil")")
                }
            }
            #expect(run.errors.contains("decoder worker ended (killed by signal 11"))
            // Only the good images' outputs remain, nothing partial.
            let left = TestFiles.listing(work)
            #expect(left.count == good.count && left.allSatisfy { !$0.contains(".part") }, "\(left)")
            // Every worker has gone: the crashed ones, the hung one (killed), the idle ones (their input ended).
            var leftBehind: [Int32] = []
            for _ in 0..<100 {
                leftBehind = Self.processes(named: "__decoder-worker").filter { pid in
                    (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))).map { String(decoding: $0, as: UTF8.self).contains(marker) } ?? false
                }
                if leftBehind.isEmpty { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(leftBehind.isEmpty, "decoder workers left running: \(leftBehind)")
            cli.assertNoSecret([run.output, run.errors])
        }
    }

    @Test("E8: a file over the size limit is refused from stat, before a byte of it is read")
    func anOversizedFileIsRefusedBeforeReading() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let input = try cli.folder(["clip.mp4", "photo.jpg"], in: dir)
            // A real MP4 header, then a hole: 11 GB that cost no disk.
            let big = input.appendingPathComponent("big.mp4")
            try FileManager.default.copyItem(at: try TestFiles.fixture("clip.mp4"), to: big)
            let handle = try FileHandle(forWritingTo: big)
            try handle.truncate(atOffset: 11_000_000_000)
            try handle.close()
            let overlay = dir.appendingPathComponent("limit.json")
            try #"{"stages": [{"name": "validate", "options": {"maxBytes": {"video": "10GB"}}}]}"#.write(to: overlay, atomically: true, encoding: .utf8)
            let work = dir.appendingPathComponent("work"), manifest = dir.appendingPathComponent("m.jsonl")
            let result = await cli.run(["run", input.path, "--dry-run", "--assume-configured", "--pipeline", "pipeline.json", "--pipeline", overlay.path,
                                  "--work-dir", work.path, "--manifest", manifest.path])
            #expect(result.status == 1, "\(result.stderr)")
            #expect(result.stderr.contains("rejected \(input.path)/big.mp4 — too_large: 11.00 GB is over the 10.00 GB limit"), "\(result.stderr)")
            let rows = try cli.rows(try String(contentsOf: manifest, encoding: .utf8))
            let row = try #require(rows.first { ($0["source"] as? String)?.hasSuffix("/big.mp4") == true })
            #expect(row["status"] as? String == "rejected" && row["reason"] as? String == "too_large")
            // Never read: no digest and no sniffed type.
            #expect(row["sha256"] is NSNull && row["mime"] is NSNull, "\(row)")
            #expect(rows.filter { $0["status"] as? String == "planned" }.count == 2)
            #expect(!TestFiles.listing(work).contains { $0.contains("big") || $0.contains(".part") })
        }
    }

    /// Process ids whose command line contains `name`.
    static func processes(named name: String) -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { pid in
            let line = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))).map { String(decoding: $0, as: UTF8.self) } ?? ""
            return line.contains(name)
        }
    }

    /// Children of `parent` whose command line contains `name`.
    static func children(of parent: Int32, named name: String) -> [Int32] {
        processes(named: name).filter { pid in
            let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            return status.split(separator: "\n").contains { $0 == "PPid:\t\(parent)" }
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
            let result = await cli.run(["run", input.path, "--pipeline", pipeline.path, "--dry-run", "--assume-configured", "--manifest", manifest.path])
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
