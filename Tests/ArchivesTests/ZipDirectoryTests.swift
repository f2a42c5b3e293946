import Archives
import Foundation
import MediaPipeline
import TestSupport
import Testing

/// The zip pre-scan on its own: what it reads from valid zips, and that hostile bytes only ever
/// make it return or throw a `Reason`.
struct ZipDirectoryTests {
    /// A few small, valid zips covering the layouts the parser knows: deflated and stored entries,
    /// a directory, a comment, Zip64 records, UTF-8 names, and overlapping entries.
    static func seeds(in layout: Layout) throws -> [[UInt8]] {
        try layout.python("""
        zip_files("plain.zip", [("a.txt", b"alpha" * 20), ("dir/", b""), ("caf\\u00e9.jpg", b"\\xff\\xd8"), ("s.bin", bytes(50))])
        zip_files("stored.zip", [("x", b"x"), ("y/z", b"yz")], compression=zipfile.ZIP_STORED)
        with zipfile.ZipFile("stored.zip", "a") as z:
            z.comment = b"a comment PK\\x05\\x06 inside"
        zipfile.ZIP64_LIMIT = 16
        zipfile.ZIP_FILECOUNT_LIMIT = 1
        zip_files("zip64.zip", [("big", bytes(100)), ("small", b"s")])
        overlap_zip("overlap.zip", 3, 100)
        """)
        return try ["plain.zip", "stored.zip", "zip64.zip", "overlap.zip"].map { [UInt8](try Data(contentsOf: layout.archive($0))) }
    }

    @Test("the pre-scan reads names, sizes, flags and the file order from valid zips")
    func readsValidZips() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let seeds = try Self.seeds(in: try Layout(dir))
            var seen: [[UInt8]] = []
            let plain = try ZipDirectory.read(ZipBuffer(seeds[0]), maxEntries: 10) { entry in
                seen.append(entry.rawName)
                return entry.rawName.first == UInt8(ascii: "c")
            }
            let names = [Array("a.txt".utf8), Array("dir/".utf8), Array("caf\u{E9}.jpg".utf8), Array("s.bin".utf8)]
            #expect(seen == names)
            let entries = try Self.entries(of: plain, in: ZipBuffer(seeds[0]))
            #expect(entries.map(\.entry.rawName) == names)
            #expect(entries.map(\.entry.uncompressedSize) == [100, 0, 2, 50])
            #expect(entries.map(\.marked) == [false, false, true, false])
            #expect(entries.allSatisfy { !$0.entry.isEncrypted && $0.entry.nameConflict == nil })
            let zip64 = try ZipDirectory.read(ZipBuffer(seeds[2]), maxEntries: 10)
            #expect(try Self.entries(of: zip64, in: ZipBuffer(seeds[2])).map(\.entry.uncompressedSize) == [100, 1])
            #expect(throws: Reason.self) { try ZipDirectory.read(ZipBuffer(seeds[0]), maxEntries: 3) }
            let overlap = #expect(throws: Reason.self) { try ZipDirectory.read(ZipBuffer(seeds[3]), maxEntries: 10) }
            #expect(overlap?.code == .archiveOverlap)
        }
    }

    @Test("20,000 mutated zips (flipped bytes, cuts, splices, extreme fields) only ever give a directory or a Reason")
    func hostileBytesNeverTrap() async throws {
        try await TestFiles.withTemporaryDirectory { dir in
            let seeds = try Self.seeds(in: try Layout(dir))
            var random = SplitMix64(seed: 0x5EED_2024)
            var read = 0
            var codes: [ReasonCode: Int] = [:]
            for _ in 0..<20_000 {
                var bytes = seeds[Int.random(in: 0..<seeds.count, using: &random)]
                for _ in 0...Int.random(in: 0...2, using: &random) { mutate(&bytes, seeds: seeds, using: &random) }
                do throws(Reason) {
                    let directory = try ZipDirectory.read(ZipBuffer(bytes), maxEntries: 100)
                    // Handed out in file order, each entry read again from a distinct record.
                    let entries = try Self.entries(of: directory, in: ZipBuffer(bytes))
                    #expect(zip(entries, entries.dropFirst()).allSatisfy { $0.entry.localHeaderOffset < $1.entry.localHeaderOffset })
                    #expect(Set(entries.map(\.entry.recordOffset)).count == directory.count)
                    read += 1
                } catch {
                    codes[error.code, default: 0] += 1
                }
            }
            #expect(Set(codes.keys).isSubset(of: [.archiveCorrupt, .archiveOverlap, .entryLimit]), "\(codes)")
            #expect(read > 100 && codes[.archiveCorrupt, default: 0] > 1_000, "read \(read), refused \(codes)")
        }
    }

    /// Every entry of a directory, read again in the order libarchive would hand them out.
    static func entries(of directory: ZipDirectory, in source: ZipBuffer) throws(Reason) -> [(entry: ZipDirectory.Entry, marked: Bool)] {
        var entries: [(entry: ZipDirectory.Entry, marked: Bool)] = []
        for index in 0..<directory.count { entries.append(try directory.entry(index, in: source)) }
        return entries
    }

    /// One random change: flip bytes, cut the end, copy a run from another seed over it, set a
    /// 2-, 4- or 8-byte field to an extreme, or insert or remove a run.
    func mutate(_ bytes: inout [UInt8], seeds: [[UInt8]], using random: inout SplitMix64) {
        guard !bytes.isEmpty else { return }
        let at = Int.random(in: 0..<bytes.count, using: &random)
        switch Int.random(in: 0..<5, using: &random) {
        case 0:
            for _ in 0..<Int.random(in: 1...8, using: &random) {
                bytes[Int.random(in: 0..<bytes.count, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
            }
        case 1:
            bytes.removeSubrange(at...)
        case 2:
            let donor = seeds[Int.random(in: 0..<seeds.count, using: &random)]
            let from = Int.random(in: 0..<donor.count, using: &random)
            let run = donor[from..<min(donor.count, from + Int.random(in: 1...64, using: &random))]
            bytes.replaceSubrange(at..<min(bytes.count, at + run.count), with: run)
        case 3:
            let width = [2, 4, 8].randomElement(using: &random)!
            let value: UInt64 = [0, 1, 0xFFFF, 0xFFFF_FFFF, .max, 1 << 31, UInt64(bytes.count)].randomElement(using: &random)!
            for i in 0..<width where at + i < bytes.count { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        default:
            if Bool.random(using: &random) {
                bytes.insert(contentsOf: (0..<Int.random(in: 1...32, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }, at: at)
            } else {
                bytes.removeSubrange(at..<min(bytes.count, at + Int.random(in: 1...32, using: &random)))
            }
        }
    }
}
