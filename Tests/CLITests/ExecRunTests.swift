import Foundation
import TestSupport
import Testing

/// `exec` stages through the real binary: the example PDF check, a batch of misbehaving programs,
/// and the environment a program gets.
struct ExecRunTests {
    let cli = CLITests()

    /// A small valid PDF with `pages` pages; `catalog` is added to its catalog dictionary.
    static func pdf(pages: Int, catalog: String = "") -> Data {
        var objects = ["<< /Type /Catalog /Pages 2 0 R \(catalog)>>",
                       "<< /Type /Pages /Kids [\((0..<pages).map { "\($0 + 3) 0 R" }.joined(separator: " "))] /Count \(pages) >>"]
        objects += Array(repeating: "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>", count: pages)
        var text = "%PDF-1.4\n"
        var offsets: [Int] = []
        for (i, body) in objects.enumerated() {
            offsets.append(text.utf8.count)
            text += "\(i + 1) 0 obj\n\(body)\nendobj\n"
        }
        let xref = text.utf8.count
        text += "xref\n0 \(objects.count + 1)\n0000000000 65535 f \n"
        text += offsets.map { String(repeating: "0", count: 10 - String($0).count) + "\($0) 00000 n \n" }.joined()
        text += "trailer\n<< /Size \(objects.count + 1) /Root 1 0 R >>\nstartxref\n\(xref)\n%%EOF\n"
        return Data(text.utf8)
    }

    /// True once the process is gone or a zombie (it runs no more).
    static func isGone(_ pid: Int) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(close, offsetBy: 2)] == "Z"
    }

    @Test func theExamplePDFCheckCountsPagesAndRefusesScriptsThroughTheBinary() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let input = try cli.folder(["doc.pdf", "photo.jpg"], in: dir)
            try Self.pdf(pages: 3).write(to: input.appendingPathComponent("handout.pdf"))
            try Self.pdf(pages: 1, catalog: "/OpenAction << /S /JavaScript /JS (app.alert\\(1\\)) >> ").write(to: input.appendingPathComponent("quiz.pdf"))
            try Self.pdf(pages: 1, catalog: "/OpenAction << /S /Launch /F (calc.exe) >> ").write(to: input.appendingPathComponent("launch.pdf"))
            let manifest = dir.appendingPathComponent("manifest.jsonl")
            let pipeline = "examples/stages/pipeline.exec.json"
            #expect(await cli.run(["validate", pipeline]).status == 0)
            let result = await cli.run(["run", input.path, "--pipeline", pipeline, "--dry-run", "--assume-configured", "--no-journal",
                                  "--manifest", manifest.path])
            #expect(result.status == 1, "stderr: \(result.stderr)")
            let rows = try cli.rows(try String(contentsOf: manifest, encoding: .utf8))
            let byName = Dictionary(uniqueKeysWithValues: rows.map { (($0["source"] as! String).components(separatedBy: "/").last!, $0) })
            #expect(byName.count == 5)
            #expect(byName["doc.pdf"]?["status"] as? String == "planned" && byName["doc.pdf"]?["sink"] as? String == "r2")
            #expect((byName["doc.pdf"]?["variables"] as? [String: String])?["pages"] == "1")
            #expect((byName["handout.pdf"]?["variables"] as? [String: String])?["pages"] == "3")
            for refused in ["quiz.pdf", "launch.pdf"] {
                #expect(byName[refused]?["status"] as? String == "rejected")
                #expect(byName[refused]?["reason"] as? String == "pdf_active_content")
            }
            #expect(result.stderr.contains("rejected \(input.path)/quiz.pdf — pdf_active_content: the PDF holds /JavaScript"))
            #expect(result.stderr.contains("[pdf-check] \(input.path)/launch.pdf: refused, it holds /Launch"))
            // Images pass by the check (its `when` is documents) and go on as before.
            #expect(byName["photo.jpg"]?["sink"] as? String == "cloudflare-images" && byName["photo.jpg"]?["variables"] == nil)
        }
    }

    /// A program that misbehaves according to each file's name.
    static let misbehaving = """
        import json, os, sys, time
        with open(os.environ["PIDS"], "a") as f:
            f.write("%d\\n" % os.getpid())
        sys.stdin.readline()
        print(json.dumps({"type": "ready"}), flush=True)
        for line in sys.stdin:
            a = json.loads(line)
            name = os.path.basename(a["source"])
            print("working on " + name, file=sys.stderr, flush=True)
            if name == "crash.txt":
                sys.exit(4)
            elif name == "hang.txt":
                time.sleep(300)
            elif name == "garbage.txt":
                print("oops, not json", flush=True)
            elif name == "outside.txt":
                print(json.dumps({"type": "continue", "id": a["id"], "replace": "/etc/passwd"}), flush=True)
            elif name == "skip.txt":
                print(json.dumps({"type": "skip", "id": a["id"], "code": "not_for_us", "reason": "drafts stay local"}), flush=True)
            else:
                print(json.dumps({"type": "continue", "id": a["id"], "variables": {"checked": "yes"}}), flush=True)

        """

    func pipeline(_ script: URL, options: String) -> String {
        """
        {"version": 1, "stages": [
          {"name": "classify", "kind": "classify"},
          {"name": "probe", "kind": "exec", "options": {"command": ["python3", "\(script.path)"], \(options)}},
          {"name": "route", "kind": "route", "options": {"rules": [{"to": ["r2"]}]}},
          {"name": "r2", "kind": "cloudflare.r2"}]}
        """
    }

    @Test func crashesHangsAndGarbageRefuseOneFileEachAndTheBatchGoesOn() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let input = dir.appendingPathComponent("in")
            try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
            let names = ["a.txt", "crash.txt", "b.txt", "hang.txt", "c.txt", "garbage.txt", "d.txt", "outside.txt", "skip.txt", "e.txt"]
            for name in names { try "notes for \(name)\n".write(to: input.appendingPathComponent(name), atomically: true, encoding: .utf8) }
            let script = dir.appendingPathComponent("misbehaving.py")
            try Self.misbehaving.write(to: script, atomically: true, encoding: .utf8)
            let pids = dir.appendingPathComponent("pids.txt")
            let file = dir.appendingPathComponent("pipeline.json")
            try pipeline(script, options: #""timeout": "1s", "environment": {"PIDS": "\#(pids.path)"}"#).write(to: file, atomically: true, encoding: .utf8)
            let manifest = dir.appendingPathComponent("manifest.jsonl")
            let started = ContinuousClock.now
            let result = await cli.run(["run", input.path, "--pipeline", file.path, "--dry-run", "--assume-configured", "--no-journal",
                                  "--concurrency", "1", "--manifest", manifest.path])
            #expect(ContinuousClock.now - started < .seconds(90))  // the hang is killed after its 1 s timeout, never waited out
            #expect(result.status == 1, "stderr: \(result.stderr)")
            let rows = try cli.rows(try String(contentsOf: manifest, encoding: .utf8))
            let byName = Dictionary(uniqueKeysWithValues: rows.map { (($0["source"] as! String).components(separatedBy: "/").last!, $0) })
            #expect(byName.count == names.count)
            #expect(byName["crash.txt"]?["reason"] as? String == "stage_crashed")
            #expect(byName["hang.txt"]?["reason"] as? String == "stage_timeout")
            #expect(byName["garbage.txt"]?["reason"] as? String == "stage_protocol")
            #expect(byName["outside.txt"]?["reason"] as? String == "stage_output_outside")
            #expect(byName["skip.txt"]?["status"] as? String == "skipped" && byName["skip.txt"]?["reason"] as? String == "not_for_us")
            for name in ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt"] {
                #expect(byName[name]?["status"] as? String == "planned", "\(name)")
                #expect((byName[name]?["variables"] as? [String: String])?["checked"] == "yes", "\(name)")
            }
            #expect(result.stderr.contains("rejected \(input.path)/crash.txt — stage_crashed: stage 'probe': the program exited with status 4"))
            #expect(result.stderr.contains("rejected \(input.path)/hang.txt — stage_timeout: stage 'probe': no answer within 1s"))
            #expect(result.stderr.contains("[probe] working on a.txt"))
            // Restarted after each failure, and nothing left running once the run is over.
            let programs = try String(contentsOf: pids, encoding: .utf8).split(separator: "\n").compactMap { Int($0) }
            #expect(programs.count >= 2 && programs.count <= 4, "\(programs)")
            #expect(programs.allSatisfy(Self.isGone), "still running: \(programs)")
        }
    }

    @Test func theProgramGetsOnlyTheListedVariablesNeverTheCredentials() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let input = dir.appendingPathComponent("in")
            try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
            try "hello\n".write(to: input.appendingPathComponent("a.txt"), atomically: true, encoding: .utf8)
            let script = dir.appendingPathComponent("env.py")
            try """
                import json, sys
                raw = open("/proc/self/environ", "rb").read()
                names = sorted(v.split(b"=", 1)[0].decode() for v in raw.split(b"\\0") if v)
                sys.stdin.readline()
                print(json.dumps({"type": "ready"}), flush=True)
                for line in sys.stdin:
                    a = json.loads(line)
                    leaked = any(word in raw for word in (b"canary", b"CLOUDFLARE"))
                    print(json.dumps({"type": "continue", "id": a["id"],
                                      "variables": {"names": ",".join(names), "leaked": leaked}}), flush=True)

                """.write(to: script, atomically: true, encoding: .utf8)
            let file = dir.appendingPathComponent("pipeline.json")
            try pipeline(script, options: #""environment": {"GREETING": "${GREETING}"}"#).write(to: file, atomically: true, encoding: .utf8)
            let manifest = dir.appendingPathComponent("manifest.jsonl")
            let result = await cli.run(["run", input.path, "--pipeline", file.path, "--dry-run", "--no-journal", "--manifest", manifest.path],
                                 environment: CLITests.canaries.merging(["GREETING": "hello", "CLOUDFLARE_R2_BUCKET_NAME": "media"]) { a, _ in a })
            #expect(result.status == 0, "stderr: \(result.stderr)")
            let manifestText = try String(contentsOf: manifest, encoding: .utf8)
            let row = try #require(try cli.rows(manifestText).first)
            let variables = try #require(row["variables"] as? [String: String])
            #expect(variables["names"] == "GREETING,PATH")
            #expect(variables["leaked"] == "false")
            cli.assertNoSecret([result.stdout, result.stderr, manifestText])
        }
    }
}
