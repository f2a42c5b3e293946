import Foundation
import MediaPipeline
import TestSupport
import Testing

/// Archives named on the command line, through the real binary.
struct ArchiveRunTests {
    let cli = CLITests()
    let upload = UploadTests()

    /// The example course as an archive, built beside the folder by make-course.sh.
    func courseZip() throws -> URL {
        let course = try UploadTests.course()
        return course.deletingLastPathComponent().appendingPathComponent(course.lastPathComponent + ".zip")
    }

    func python(_ script: String, _ arguments: [String]) throws {
        let result = Shell.run("/usr/bin/python3", ["-c", script] + arguments)
        guard result.status == 0 else { throw TestFiles.FixtureError(description: "python failed: \(result.stderr)") }
    }

    @Test("a dry-run of the example course archive plans every entry, named archive!/path, with the same purposes as the folder")
    func dryRunOfTheCourseArchive() async throws {
        let zip = try courseZip()
        let fromZip = await cli.run(["run", zip.path, "--dry-run", "--assume-configured", "--json"])
        let fromFolder = await cli.run(["run", try UploadTests.course().path, "--dry-run", "--assume-configured", "--json"])
        #expect(fromZip.status == 1, "stderr: \(fromZip.stderr)")
        let zipRows = try upload.rows(fromZip.stdout).filter { $0["event"] == "asset" }
        let folderRows = try upload.rows(fromFolder.stdout).filter { $0["event"] == "asset" }
        #expect(zipRows.count == folderRows.count && zipRows.count == 12)
        #expect(zipRows.allSatisfy { upload.string($0["source"])?.hasPrefix(zip.path + "!/") == true })
        func byPath(_ rows: [JSONValue], _ prefix: String) -> [String: [String?]] {
            Dictionary(uniqueKeysWithValues: rows.map { row in
                (String(upload.string(row["source"])!.dropFirst(prefix.count)),
                 [upload.string(row["purpose"]), upload.string(row["status"]), upload.string(row["sink"]), upload.string(row["sha256"])])
            })
        }
        #expect(byPath(zipRows, zip.path + "!/") == byPath(folderRows, try UploadTests.course().path + "/"))
        #expect(fromZip.stderr.contains("rejected \(zip.path)!/bad/not-really.png"))

        // explain --inputs reads the entries' names without extracting them.
        let explained = await cli.run(["explain", "--inputs", zip.path])
        #expect(explained.status == 0)
        #expect(explained.stdout.split(separator: "\n").count == 12)
        #expect(explained.stdout.contains("videos/01-intro.mp4 → lesson-video  (purposeRules[0]"))
    }

    @Test("the course archive imports for real: every entry lands, and extracted files are removed as they finish")
    func realImportOfTheCourseArchive() async throws {
        let cloudflare = try await CloudflareFake()
        let s3 = try await S3Fake()
        try await TestFiles.withTemporaryDirectory { dir in
            let env = cloudflare.environment.merging(s3.environment) { a, _ in a }
            let work = dir.appendingPathComponent("work")
            let result = await cli.run(["run", try courseZip().path, "--pipeline", try upload.pipeline(in: dir).path, "--json",
                                  "--work-dir", work.path], environment: env)
            #expect(result.status == 1, "stderr: \(result.stderr)")
            let rows = try upload.rows(result.stdout).filter { $0["event"] == "asset" }
            #expect(rows.filter { $0["status"] == "uploaded" }.count == 11)
            #expect(rows.filter { $0["status"] == "rejected" }.count == 1)
            // Extracted entries do not pile up: each is removed once its file is done (prepared
            // images stay, since --work-dir asks to keep them).
            let left = TestFiles.listing(work).filter { $0.contains("entry-") }
            #expect(left.isEmpty, "extracted entries left: \(left)")
            #expect(TestFiles.listing(work).contains { $0.hasPrefix("archive-") })
        }
    }

    @Test("D1 D2 D4 D6 D7 E4 through the CLI: each bad entry rejected with its code, the good ones imported, nothing written outside the work folder")
    func hostileArchivesInOneBatch() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let zip = dir.appendingPathComponent("hostile.zip"), tar = dir.appendingPathComponent("hostile.tar.gz")
            try python("""
                import io, sys, tarfile, zipfile
                z = zipfile.ZipFile(sys.argv[1], "w")
                for name in ["../../evil.txt", "/tmp/abs_evil.txt", "..\\\\..\\\\win_evil.txt", "C:/x.jpg", "a/../../b.jpg",
                             "\\u202egpj.exe", "new\\nline.txt", "zero\\u200bwidth.txt", "good/readme.txt"]:
                    z.writestr(name, "text for " + name)
                inner = io.BytesIO()
                with zipfile.ZipFile(inner, "w") as i: i.writestr("x.txt", "x")
                z.writestr("nested/inner.zip", inner.getvalue())
                link = zipfile.ZipInfo("escape"); link.create_system = 3; link.external_attr = 0o120777 << 16
                z.writestr(link, "/tmp")
                z.close()
                t = tarfile.open(sys.argv[2], "w:gz")
                def add(info, data=b""):
                    info.size = len(data); t.addfile(info, io.BytesIO(data))
                s = tarfile.TarInfo("escape"); s.type = tarfile.SYMTYPE; s.linkname = "/tmp"; t.addfile(s)
                add(tarfile.TarInfo("escape/x.txt"), b"through the link")
                f = tarfile.TarInfo("fifo"); f.type = tarfile.FIFOTYPE; t.addfile(f)
                c = tarfile.TarInfo("dev"); c.type = tarfile.CHRTYPE; c.devmajor = 1; c.devminor = 3; t.addfile(c)
                su = tarfile.TarInfo("tools/setuid.txt"); su.mode = 0o4755; add(su, b"plain text, setuid bit in the archive")
                add(tarfile.TarInfo("good/notes.txt"), b"a good file")
                t.close()
                """, [zip.path, tar.path])
            // Where a traversal or a link could land: the folders above the work folder, and /tmp.
            let watched = [dir, dir.deletingLastPathComponent(), dir.deletingLastPathComponent().deletingLastPathComponent(),
                           URL(fileURLWithPath: "/tmp")]
            func shallow(_ folder: URL) -> Set<String> { Set((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []) }
            let before = watched.map(shallow)
            let work = dir.appendingPathComponent("work"), manifest = dir.appendingPathComponent("m.jsonl")
            let result = await cli.run(["run", zip.path, tar.path, "--dry-run", "--assume-configured", "--work-dir", work.path,
                                  "--manifest", manifest.path])
            #expect(result.status == 1, "stderr: \(result.stderr)")
            let rows = try upload.rows(try String(contentsOf: manifest, encoding: .utf8))
            func code(_ suffix: String) -> String? {
                rows.first { upload.string($0["source"])?.hasSuffix(suffix) == true }.flatMap { upload.string($0["reason"]) }
            }
            for name in ["../../evil.txt", "/tmp/abs_evil.txt", "C:/x.jpg", "a/../../b.jpg"] { #expect(code("!/" + name) == "unsafe_path", "\(name)") }
            #expect(rows.contains { upload.string($0["source"])?.contains("win_evil") == true && $0["reason"] == "unsafe_path" })
            #expect(rows.filter { $0["reason"] == "bad_name" }.count == 3)
            #expect(rows.filter { $0["reason"] == "link_entry" }.count >= 2)
            #expect(rows.filter { $0["reason"] == "special_entry" }.count == 2)
            #expect(code("!/nested/inner.zip") == "nested_archive")
            for good in ["hostile.zip!/good/readme.txt", "hostile.tar.gz!/good/notes.txt", "hostile.tar.gz!/tools/setuid.txt"] {
                #expect(rows.first { upload.string($0["source"])?.hasSuffix(good) == true }?["status"] == "planned", "\(good)")
            }
            // The rejection lines show escapes, so one cannot split the log.
            #expect(result.stderr.contains("\\u{202E}") || result.stderr.contains("\\u202e") || result.stderr.contains("\\u{202e}"))
            #expect(!result.stderr.contains("\u{202E}"))
            // Nothing appeared outside the work folder but the manifest; other tests may add their own
            // folders to the shared temporary folders meanwhile, so only names from the archives count.
            let after = watched.map(shallow)
            #expect(after[0].subtracting(before[0]) == ["work", "m.jsonl"])
            let names = ["evil.txt", "abs_evil.txt", "win_evil.txt", "x.jpg", "b.jpg", "x.txt", "escape", "up", "fifo", "dev"]
            for (old, new) in Swift.zip(before, after).dropFirst() {
                #expect(new.subtracting(old).intersection(names).isEmpty, "\(new.subtracting(old))")
            }
        }
    }
}
