import Archives
import Foundation
import MediaPipeline
import TestSupport
import Testing

/// bad-inputs.md "Decompression and resource bombs" (E1–E5), with limits scaled down so each case
/// takes a second or two.
struct ArchiveBombTests {
    @Test("E1: 1 GiB of zeros is archive_bomb, refused from its header or stopped at the limit; the partial file is gone")
    func zeroBombStopsAtTheEntryLimit() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            zip_records("zeros.zip", [stored("small.txt", b"hello"), zeros("zeros.bin", 1024), stored("after.txt", b"world")])
            # The same bomb declaring exactly the limit, so that only counting the real output stops it.
            zip_records("liar.zip", [stored("small.txt", b"hello"), zeros("zeros.bin", 1024, declared=64 << 20),
                                     stored("after.txt", b"world")])
            """)
            var limits = ArchiveLimits()
            limits.maxEntryBytes = 64 << 20
            for name in ["zeros.zip", "liar.zip"] {
                let work = layout.work.appendingPathComponent(name + ".work")
                try FileManager.default.createDirectory(at: work, withIntermediateDirectories: false)
                let watcher = PeakWatcher(work)
                let result = try extractAll(layout.archive(name), into: work, limits: limits)
                let peak = watcher.stop()
                #expect(result.failed == ["zeros.bin": .archiveBomb], "\(name)")
                #expect(result.files == ["small.txt": Data("hello".utf8), "after.txt": Data("world".utf8)], "\(name)")
                #expect(peak <= limits.maxEntryBytes + (64 << 10), "\(name): \(peak) bytes on disk")
                #expect(TestFiles.listing(work).count == 2, "\(name): the partial file must be gone")
            }
        }
    }

    @Test("E1: a tar.gz entry inflating more than 200:1 is stopped once it passes ratioFloor")
    func tarRatioBombStopsEarly() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            tar_files("zeros.tar.gz", [("small.txt", b"hello", {}), ("zeros.bin", bytes(32 << 20), {}),
                                       ("after.txt", b"world", {})], mode="w:gz")
            """)
            var limits = ArchiveLimits()
            limits.ratioFloor = 1 << 20
            let watcher = PeakWatcher(layout.work)
            let result = try extractAll(layout.archive("zeros.tar.gz"), into: layout.work, limits: limits)
            let peak = watcher.stop()
            #expect(result.failed == ["zeros.bin": .archiveBomb])
            #expect(result.files == ["small.txt": Data("hello".utf8), "after.txt": Data("world".utf8)])
            #expect(peak < 32 << 20, "\(peak) bytes on disk")
            #expect(TestFiles.listing(layout.work).count == 2)
        }
    }

    @Test("E1: all entries together stop at maxArchiveBytes")
    func archiveTotalIsLimited() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            zip_files("three.zip", [("a.bin", bytes(1 << 20)), ("b.bin", bytes(1 << 20)), ("c.bin", bytes(1 << 20)), ("d.txt", b"")])
            """)
            var limits = ArchiveLimits()
            limits.maxArchiveBytes = (5 << 20) / 2
            let result = try extractAll(layout.archive("three.zip"), into: layout.work, limits: limits)
            #expect(result.failed == ["c.bin": .archiveBomb])
            #expect(result.files == ["a.bin": Data(count: 1 << 20), "b.bin": Data(count: 1 << 20), "d.txt": Data()])
        }
    }

    @Test("E2: a header claiming 100 bytes over 20 MiB of data is size_mismatch, with nothing left on disk")
    func lyingSizeIsRefused() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            zip_files("lie.zip", [("big.bin", bytes(20 << 20)), ("ok.txt", b"fine")])
            lie_about_size("lie.zip")
            """)
            let reader = try ArchiveReader(path: layout.archive("lie.zip").path, workFolder: layout.work, limits: ArchiveLimits())
            let first = try reader.next()
            guard case .file("big.bin", 100, _) = first else { Issue.record("\(String(describing: first))"); return }
            #expect(throws: Reason(.sizeMismatch, "it holds more than the 100 bytes its header declares")) { try reader.extract() }
            #expect(TestFiles.listing(layout.work).isEmpty)
            guard case .file("ok.txt", 4, _) = try reader.next() else { Issue.record("ok.txt missing"); return }
            #expect(try Data(contentsOf: reader.extract()) == Data("fine".utf8))
            #expect(try reader.next() == nil)
        }
    }

    @Test("E3: zip entries sharing one 10 MB payload are archive_overlap from init, before anything is extracted")
    func overlappingEntriesRefuseTheArchive() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("overlap_zip(\"overlap.zip\", 200, 10_000_000)")
            let error = #expect(throws: Reason.self) {
                try ArchiveReader(path: layout.archive("overlap.zip").path, workFolder: layout.work, limits: ArchiveLimits())
            }
            #expect(error?.code == .archiveOverlap)
            #expect(TestFiles.listing(layout.work).isEmpty)
        }
    }

    @Test("E4: nested zips (3 levels × 10 copies) come out as plain files, never expanded")
    func nestedArchivesAreFiles() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            zip_files("level0.zip", [("payload.txt", b"deep")])
            for level in (1, 2, 3):
                inner = open("level%d.zip" % (level - 1), "rb").read()
                zip_files("level%d.zip" % level, [("copy%d.zip" % i, inner) for i in range(10)])
            """)
            let inner = try Data(contentsOf: layout.archive("level2.zip"))
            let result = try extractAll(layout.archive("level3.zip"), into: layout.work)
            #expect(result.entryCount == 10)
            #expect(result.files == Dictionary(uniqueKeysWithValues: (0..<10).map { ("copy\($0).zip", inner) }))
            #expect(result.rejected.isEmpty && result.failed.isEmpty)
            #expect(TestFiles.listing(layout.work) == (1...10).map { "entry-0000\($0 < 10 ? "0" : "")\($0).zip" })
        }
    }

    @Test("E5: 100,000 empty files are entry_limit from init (zip: central directory; tar: past 10,000 headers)", arguments: ["zip", "tar"])
    func entryCountBombRefusesTheArchive(format: String) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python(format == "zip" ? "many_zip(\"many.zip\", 100_000)" : "many_tar(\"many.tar\", 100_000)")
            var limits = ArchiveLimits()
            if format == "tar" { limits.maxEntries = 10_000 }
            let error = #expect(throws: Reason.self) {
                try ArchiveReader(path: layout.archive("many.\(format)").path, workFolder: layout.work, limits: limits)
            }
            #expect(error?.code == .entryLimit)
            #expect(TestFiles.listing(layout.work).isEmpty)
        }
    }
}
