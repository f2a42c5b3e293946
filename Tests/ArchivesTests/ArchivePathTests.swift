import Archives
import Foundation
import MediaPipeline
import Synchronization
import TestSupport
import Testing

/// bad-inputs.md "Archive paths and entry types" (D1–D10): each hostile entry is refused with its
/// reason, every other entry of the same archive still comes out with its bytes, and nothing
/// appears outside the work folder.
struct ArchivePathTests {
    /// Extracts everything and checks that nothing appeared outside the work folder, that no
    /// absolute target was touched, and that the work folder holds only safe files.
    func extractContained(_ layout: Layout, _ name: String) throws -> Extraction {
        let before = Snapshot(layout.root)
        let result = try extractAll(layout.archive(name), into: layout.work)
        let after = Snapshot(layout.root)
        #expect(after.newPaths(since: before) == [])
        #expect(after.outside == before.outside)
        #expect(workFilesAreSafe(layout.work))
        #expect(TestFiles.listing(layout.work).count == result.files.count)
        return result
    }

    @Test("D1: names that climb out are unsafe_path; the other entries come out; nothing lands outside", arguments: ["zip", "tar"])
    func traversalNamesAreRefused(format: String) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python(#"""
bad = ["../../evil.txt", "/tmp/abs_evil.txt", "..\\..\\win_evil.txt", "C:/x.jpg", "a/../../b.jpg"]
items = [(bad[0], b"evil"), ("good.txt", b"good")] + [(n, b"evil") for n in bad[1:]] + [("dir/ok.jpg", b"\xff\xd8ok")]
zip_files("d1.zip", items)
tar_files("d1.tar", [(n, d, {}) for n, d in items])
"""#)
            let result = try extractContained(layout, "d1.\(format)")
            #expect(result.rejected == ["../../evil.txt": .unsafePath, "/tmp/abs_evil.txt": .unsafePath,
                                        #"..\\..\\win_evil.txt"#: .unsafePath, "C:/x.jpg": .unsafePath,
                                        "a/../../b.jpg": .unsafePath])
            #expect(result.files == ["good.txt": Data("good".utf8), "dir/ok.jpg": Data([0xFF, 0xD8] + Array("ok".utf8))])
            #expect(result.failed.isEmpty)
        }
    }

    @Test("D2: tar symlinks, hard links and files reached through a link are link_entry; no link is created")
    func tarLinksAreRefused() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            tar_files("links.tar", [
                ("escape", None, {"type": tarfile.SYMTYPE, "linkname": "/tmp"}),
                ("escape/x.txt", b"through the link", {}),
                ("up", None, {"type": tarfile.SYMTYPE, "linkname": "../../"}),
                ("up/y.txt", b"up", {}),
                ("good.txt", b"good", {}),
                ("hard", None, {"type": tarfile.LNKTYPE, "linkname": "good.txt"}),
                ("after.txt", b"after", {}),
            ])
            """)
            let result = try extractContained(layout, "links.tar")
            #expect(result.rejected == ["escape": .linkEntry, "escape/x.txt": .linkEntry, "up": .linkEntry,
                                        "up/y.txt": .linkEntry, "hard": .linkEntry])
            #expect(result.files == ["good.txt": Data("good".utf8), "after.txt": Data("after".utf8)])
        }
    }

    @Test("D2: a zip symlink (external attributes 0o120777 << 16) and files through it are link_entry")
    func zipLinksAreRefused() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            zip_files("links.zip", [
                (unix_info("escape", 0o120777), b"/tmp"),
                ("escape/x.txt", b"through the link"),
                (unix_info("up", 0o120777), b"../../"),
                ("up/y.txt", b"up"),
                ("good.txt", b"good"),
            ])
            """)
            let result = try extractContained(layout, "links.zip")
            #expect(result.rejected == ["escape": .linkEntry, "escape/x.txt": .linkEntry, "up": .linkEntry, "up/y.txt": .linkEntry])
            #expect(result.files == ["good.txt": Data("good".utf8)])
        }
    }

    @Test("D5: a zip link stands in the path only of entries after it in central-directory order, not in the order of the data")
    func zipLinksFollowTheCentralDirectory() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            zip_files("link-order.zip", [
                ("escape/x.txt", b"listed after the link"),
                (unix_info("escape", 0o120777), b"/tmp"),
                ("escape/y.txt", b"listed before the link"),
            ])
            reorder_central("link-order.zip", [2, 1, 0])
            """)
            let result = try extractContained(layout, "link-order.zip")
            #expect(result.rejected == ["escape": .linkEntry, "escape/x.txt": .linkEntry])
            #expect(result.files == ["escape/y.txt": Data("listed before the link".utf8)])
            #expect(result.order == ["escape/x.txt", "escape", "escape/y.txt"])  // libarchive's order: where the data lies
        }
    }

    @Test("D4: FIFOs and devices are special_entry; setuid and sticky files are written 0600", arguments: ["zip", "tar"])
    func specialEntriesAreRefused(format: String) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            tar_files("special.tar", [
                ("pipe", None, {"type": tarfile.FIFOTYPE}),
                ("setuid.sh", b"#!/bin/sh\\n", {"mode": 0o4755}),
                ("null", None, {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}),
                ("disk", None, {"type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 0}),
                ("sticky.txt", b"sticky", {"mode": 0o1777}),
            ])
            zip_files("special.zip", [
                (unix_info("pipe", 0o010644), b""),
                (unix_info("setuid.sh", 0o104755), b"#!/bin/sh\\n"),
                (unix_info("null", 0o020644), b""),
                (unix_info("disk", 0o060644), b""),
                (unix_info("sticky.txt", 0o101777), b"sticky"),
            ])
            """)
            let result = try extractContained(layout, "special.\(format)")
            #expect(result.rejected == ["pipe": .specialEntry, "null": .specialEntry, "disk": .specialEntry])
            #expect(result.files == ["setuid.sh": Data("#!/bin/sh\n".utf8), "sticky.txt": Data("sticky".utf8)])
            // workFilesAreSafe (in extractContained) has checked every file is 0600.
        }
    }

    @Test("D5: the first of two equal names wins (same name, case, NFC/NFD); later ones are duplicate_name", arguments: ["zip", "tar"])
    func duplicateNamesAreRefused(format: String) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            items = [("dup.txt", b"first"), ("A.jpg", b"upper"), ("caf\\u00e9.jpg", b"nfc"), ("dup.txt", b"second"),
                     ("a.jpg", b"lower"), ("cafe\\u0301.jpg", b"nfd"), ("other.txt", b"other")]
            zip_files("dup.zip", items)
            tar_files("dup.tar", [(n, d, {}) for n, d in items])
            """)
            let result = try extractContained(layout, "dup.\(format)")
            #expect(result.rejected == ["dup.txt": .duplicateName, "a.jpg": .duplicateName, "caf\u{E9}.jpg": .duplicateName])
            #expect(result.files == ["dup.txt": Data("first".utf8), "A.jpg": Data("upper".utf8),
                                     "caf\u{E9}.jpg": Data("nfc".utf8), "other.txt": Data("other".utf8)])
            // The clean name is NFC whatever the archive stored.
            let cafe = result.order.first { $0.hasPrefix("caf") }
            #expect(cafe.map { Array($0.unicodeScalars) } == Array("caf\u{E9}.jpg".unicodeScalars))
        }
    }

    @Test("D5: in a zip the central directory's order decides which name is first, not the order of the data")
    func zipDuplicatesFollowTheCentralDirectory() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            zip_files("order.zip", [("A.jpg", b"upper"), ("a.jpg", b"lower"), ("z.txt", b"zed")])
            reorder_central("order.zip", [2, 1, 0])
            """)
            let result = try extractContained(layout, "order.zip")
            #expect(result.rejected == ["A.jpg": .duplicateName])
            #expect(result.files == ["a.jpg": Data("lower".utf8), "z.txt": Data("zed".utf8)])
            #expect(result.order == ["A.jpg", "a.jpg", "z.txt"])  // libarchive's order: where the data lies
        }
    }

    @Test("D6: a NUL inside a zip name (patched in both headers) is bad_name, shown escaped")
    func nulInZipNameIsRefused() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            zip_files("nul.zip", [("good.txt", b"good"), ("photo.phpX.jpg", b"<?php echo 1; ?>"), ("after.txt", b"after")])
            patch_everywhere("nul.zip", b"photo.phpX.jpg", b"photo.php\\0.jpg")
            """)
            let result = try extractContained(layout, "nul.zip")
            #expect(result.rejected == [#"photo.php\0.jpg"#: .badName])
            #expect(result.files == ["good.txt": Data("good".utf8), "after.txt": Data("after".utf8)])
        }
    }

    @Test("D6: a zip name that its local header or a Unicode-path field contradicts is bad_name (tools disagree on it)")
    func ambiguousZipNamesAreRefused() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            unicode = zipfile.ZipInfo("shown.jpg")
            other = "hidden.php".encode()
            unicode.extra = struct.pack("<HHBI", 0x7075, 5 + len(other), 1, zlib.crc32(b"shown.jpg")) + other
            zip_files("ambiguous.zip", [("good.txt", b"good"), ("local.jpg", b"jpeg?"), (unicode, b"<?php"), ("after.txt", b"after")])
            b = bytearray(open("ambiguous.zip", "rb").read())
            at = b.find(b"local.jpg")         # the local header's copy only
            b[at:at + 9] = b"local.php"
            open("ambiguous.zip", "wb").write(bytes(b))
            """)
            let result = try extractContained(layout, "ambiguous.zip")
            #expect(result.rejected == ["local.jpg": .badName, "shown.jpg": .badName])
            #expect(result.files == ["good.txt": Data("good".utf8), "after.txt": Data("after".utf8)])
        }
    }

    @Test("D7: bidi, control, zero-width and escape characters are bad_name; the shown name is one escaped line", arguments: ["zip", "tar"])
    func disguisingNamesAreRefused(format: String) async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try layout.python("""
            bad = ["\\u202egpj.exe", "new\\nline.jpg", "zero\\u200bwidth.jpg", "esc\\x1b[31mred.jpg", "bom\\ufeff.jpg", "sep\\u2028.jpg"]
            items = [("good.jpg", b"good")] + [(n, b"bad") for n in bad] + [("after.txt", b"after")]
            zip_files("names.zip", items)
            tar_files("names.tar", [(n, d, {}) for n, d in items])
            """)
            let result = try extractContained(layout, "names.\(format)")
            #expect(result.rejected == [#"\u{202E}gpj.exe"#: .badName, #"new\nline.jpg"#: .badName,
                                        #"zero\u{200B}width.jpg"#: .badName, #"esc\u{1B}[31mred.jpg"#: .badName,
                                        #"bom\u{FEFF}.jpg"#: .badName, #"sep\u{2028}.jpg"#: .badName])
            #expect(result.files == ["good.jpg": Data("good".utf8), "after.txt": Data("after".utf8)])
            for name in result.rejected.keys {
                #expect(name.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F }, "\(name)")
            }
        }
    }

    @Test("D10: an encrypted zip entry is encrypted, without ever reading standard input; the plain entry comes out")
    func encryptedEntryNeverPrompts() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let layout = try Layout(dir)
            try Data("secret".utf8).write(to: layout.input.appendingPathComponent("s.txt"))
            try Data("plain".utf8).write(to: layout.input.appendingPathComponent("plain.txt"))
            let encrypt = Shell.run("/usr/bin/zip", ["-q", "-P", "hunter2", "enc.zip", "s.txt"], directory: layout.input)
            let add = Shell.run("/usr/bin/zip", ["-q", "enc.zip", "plain.txt"], directory: layout.input)
            try #require(encrypt.status == 0 && add.status == 0, "\(encrypt.stderr) \(add.stderr)")
            let result = try withStandardInputThatBlocks {
                try extractAll(layout.archive("enc.zip"), into: layout.work)
            }
            #expect(result.rejected == ["s.txt": .encrypted])
            #expect(result.files == ["plain.txt": Data("plain".utf8)])
            #expect(TestFiles.listing(layout.work).count == 1)
        }
    }
}

/// Runs `body` on its own thread with standard input on a pipe nobody writes to, so that any read
/// of it (a passphrase prompt) would block; a body still running after 20 s fails the test and is
/// then unblocked.
func withStandardInputThatBlocks<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> T {
    var ends: [Int32] = [0, 0]
    try #require(pipe(&ends) == 0)
    let saved = dup(0)
    dup2(ends[0], 0)
    defer {
        dup2(saved, 0)
        close(saved)
        close(ends[0])
        close(ends[1])
    }
    let outcome = Mutex<Result<T, any Error>?>(nil)
    let finished = DispatchSemaphore(value: 0)
    Thread {
        let result = Result { try body() }
        outcome.withLock { $0 = result }
        finished.signal()
    }.start()
    if finished.wait(timeout: .now() + 20) == .timedOut {
        Issue.record("reading the archive blocked on standard input")
        _ = write(ends[1], "\n", 1)
        finished.wait()
    }
    return try outcome.withLock { $0! }.get()
}
