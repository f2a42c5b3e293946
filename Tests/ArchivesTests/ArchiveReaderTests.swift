import Archives
import Foundation
import MediaPipeline
import TestSupport
import Testing

/// Ordinary archives read back whole: names, bytes, dates, counts and the work files' names.
struct ArchiveReaderTests {
    @Test("the format comes from the name, in any case", arguments: [
        ("a.zip", ArchiveFormat.zip), ("A.ZIP", .zip), ("x/b.tar", .tar), ("c.tar.gz", .tar), ("d.TGZ", .tar),
    ])
    func formatFromName(path: String, format: ArchiveFormat) {
        #expect(ArchiveReader.format(ofPath: path) == format)
    }

    @Test("names that are not archives have no format", arguments: ["a.gz", "a.zip.txt", "tar", "a.7z", "a.tar.bz2"])
    func noFormat(path: String) {
        #expect(ArchiveReader.format(ofPath: path) == nil)
    }

    @Test(".tar.gz and .tgz: every file comes out with its bytes, date and clean name; directories pass by", arguments: ["course.tar.gz", "course.tgz"])
    func gzippedTarsAreRead(name: String) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            items = [("lessons", None, {"type": tarfile.DIRTYPE, "mode": 0o755}),
                     ("lessons/01/intro.MP4", b"video bytes", {"mtime": 1700000000}),
                     ("./lessons//02/notes.txt", b"notes", {"mtime": 1700000001}),
                     ("caf\\u00e9.jpg", b"\\xff\\xd8\\xff", {"mtime": 1700000002}),
                     ("empty.txt", b"", {"mtime": 1700000003}),
                     ("README", b"read me", {"mtime": 1700000004})]
            tar_files("\(name)", items, mode="w:gz")
            """)
            let reader = try ArchiveReader(path: layout.archive(name).path, workFolder: layout.work, limits: ArchiveLimits())
            #expect(reader.entryCount == 6)
            var seen: [ArchiveEntry] = []
            var bytes: [String: Data] = [:]
            while let entry = try reader.next() {
                seen.append(entry)
                if case .file(let name, _, _) = entry { bytes[name] = try Data(contentsOf: reader.extract()) }
            }
            let date = { (seconds: Int) in Date(timeIntervalSince1970: TimeInterval(seconds)) }
            #expect(seen == [.file(name: "lessons/01/intro.MP4", bytes: 11, modified: date(1_700_000_000)),
                             .file(name: "lessons/02/notes.txt", bytes: 5, modified: date(1_700_000_001)),
                             .file(name: "caf\u{E9}.jpg", bytes: 3, modified: date(1_700_000_002)),
                             .file(name: "empty.txt", bytes: 0, modified: date(1_700_000_003)),
                             .file(name: "README", bytes: 7, modified: date(1_700_000_004))])
            #expect(bytes == ["lessons/01/intro.MP4": Data("video bytes".utf8), "lessons/02/notes.txt": Data("notes".utf8),
                              "caf\u{E9}.jpg": Data([0xFF, 0xD8, 0xFF]), "empty.txt": Data(), "README": Data("read me".utf8)])
            // Work files are numbered by entry and keep only a plain lowercase extension.
            #expect(TestFiles.listing(layout.work) == ["entry-000002.mp4", "entry-000003.txt", "entry-000004.jpg",
                                                       "entry-000005.txt", "entry-000006"])
            #expect(workFilesAreSafe(layout.work))
        }
    }

    @Test("a Zip64 zip (Zip64 end records and sizes in every header) reads like any other")
    func zip64IsRead() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            zipfile.ZIP64_LIMIT = 16           # every size and offset over 16 goes to the Zip64 fields
            zipfile.ZIP_FILECOUNT_LIMIT = 1    # and the Zip64 end records are written
            zip_files("z64.zip", [("dir/", b""), ("a.txt", b"alpha" * 10), ("b.bin", bytes(range(256)) * 40)])
            """)
            let result = try extractAll(layout.archive("z64.zip"), into: layout.work)
            #expect(result.entryCount == 3)
            #expect(result.files == ["a.txt": Data(String(repeating: "alpha", count: 10).utf8),
                                     "b.bin": Data((0..<40).flatMap { _ in (0...255).map(UInt8.init) })])
        }
    }

    @Test("zips written to a stream (sizes in data descriptors after the data), stored or deflated, read whole",
          arguments: ["ZIP_STORED", "ZIP_DEFLATED"])
    func dataDescriptorsAreRead(method: String) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            class Stream(io.RawIOBase):
                def __init__(self, f): self.f = f
                def writable(self): return True
                def write(self, b): return self.f.write(b)
            with open("dd.zip", "wb") as raw:
                z = zipfile.ZipFile(Stream(raw), "w", zipfile.\(method))
                for name, data in [("notes/a.txt", b"alpha " * 400), ("notes/b.bin", bytes(range(256)) * 64), ("c.txt", b"c")]:
                    with z.open(name, "w") as w: w.write(data)
                z.close()
            assert all(i.flag_bits & 8 for i in zipfile.ZipFile("dd.zip").infolist())
            """)
            let result = try extractAll(layout.archive("dd.zip"), into: layout.work)
            #expect(result.entryCount == 3 && result.rejected.isEmpty && result.failed.isEmpty)
            #expect(result.files == ["notes/a.txt": Data(String(repeating: "alpha ", count: 400).utf8),
                                     "notes/b.bin": Data((0..<64).flatMap { _ in (0...255).map(UInt8.init) }), "c.txt": Data("c".utf8)])
        }
    }

    @Test("entries not extracted are skipped, and later entries still come out right")
    func skippingLeavesTheRestIntact() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            items = [("one.bin", bytes(300_000)), ("two.txt", b"two"), ("three.bin", os.urandom(200_000)), ("four.txt", b"four")]
            zip_files("skip.zip", items)
            tar_files("skip.tgz", [(n, d, {}) for n, d in items], mode="w:gz")
            """)
            for name in ["skip.zip", "skip.tgz"] {
                let work = layout.work.appendingPathComponent(name)
                try FileManager.default.createDirectory(at: work, withIntermediateDirectories: false)
                let reader = try ArchiveReader(path: layout.archive(name).path, workFolder: work, limits: ArchiveLimits())
                var kept: [String: Data] = [:]
                while let entry = try reader.next() {
                    if case .file(let name, _, _) = entry, name.hasSuffix(".txt") { kept[name] = try Data(contentsOf: reader.extract()) }
                }
                #expect(kept == ["two.txt": Data("two".utf8), "four.txt": Data("four".utf8)], "\(name)")
            }
        }
    }

    @Test("a file that is not the archive its name says is archive_corrupt", arguments: ["fake.zip", "fake.tar", "fake.tgz"])
    func wrongContentIsCorrupt(name: String) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try Data("this is plain text, not an archive of any kind, and long enough to be read".utf8).write(to: layout.archive(name))
            let error = #expect(throws: Reason.self) {
                let reader = try ArchiveReader(path: layout.archive(name).path, workFolder: layout.work, limits: ArchiveLimits())
                while try reader.next() != nil {}
            }
            #expect(error?.code == .archiveCorrupt)
        }
    }
}
