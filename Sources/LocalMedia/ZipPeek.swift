public import Foundation

/// Just enough of the zip format to tell what kind of document a zip is. It reads untrusted
/// bytes, so every offset is checked against what was actually read, and sizes are capped.
public enum ZipPeek {
    /// The central directory is read only when it is at most this big.
    static let maxDirectoryBytes = 4 << 20

    static func u16(_ b: [UInt8], _ i: Int) -> Int { i + 2 <= b.count ? Int(b[i]) | Int(b[i + 1]) << 8 : 0 }
    static func u32(_ b: [UInt8], _ i: Int) -> Int {
        i + 4 <= b.count ? Int(b[i]) | Int(b[i + 1]) << 8 | Int(b[i + 2]) << 16 | Int(b[i + 3]) << 24 : 0
    }

    /// The text of a first entry named `mimetype` stored without compression (EPUB, OpenDocument).
    public static func leadingMimetype(_ head: Data) -> String? {
        let b = [UInt8](head.prefix(256))
        guard b.count >= 30, u32(b, 0) == 0x0403_4B50, u16(b, 8) == 0 else { return nil }
        let nameLength = u16(b, 26), extraLength = u16(b, 28), size = u32(b, 18)
        guard nameLength == 8, 30 + nameLength <= b.count,
              String(decoding: b[30..<38], as: UTF8.self) == "mimetype", size > 0, size < 100 else { return nil }
        let start = 30 + nameLength + extraLength
        guard start + size <= b.count else { return nil }
        let text = String(decoding: b[start..<start + size], as: UTF8.self)
        return text.allSatisfy { $0.isASCII && !$0.isWhitespace } ? text : nil
    }

    /// The entry names listed in the central directory, or nil when it cannot be found or is too big.
    public static func centralDirectoryNames(handle: FileHandle) -> Set<String>? {
        guard let end = try? handle.seekToEnd(), end >= 22 else { return nil }
        let tailLength = UInt64(min(Int(end), 22 + 65_535))
        guard (try? handle.seek(toOffset: end - tailLength)) != nil,
              let tail = try? handle.read(upToCount: Int(tailLength)) else { return nil }
        let t = [UInt8](tail)
        // The end-of-central-directory record is the last "PK\5\6" in the tail.
        var i = t.count - 22
        while i >= 0, u32(t, i) != 0x0605_4B50 { i -= 1 }
        guard i >= 0 else { return nil }
        let size = u32(t, i + 12), offset = u32(t, i + 16)
        guard size > 0, size <= maxDirectoryBytes, UInt64(offset) + UInt64(size) <= end,
              (try? handle.seek(toOffset: UInt64(offset))) != nil,
              let directory = try? handle.read(upToCount: size) else { return nil }
        let d = [UInt8](directory)
        var names = Set<String>()
        var p = 0
        while p + 46 <= d.count, u32(d, p) == 0x0201_4B50 {
            let nameLength = u16(d, p + 28), extraLength = u16(d, p + 30), commentLength = u16(d, p + 32)
            guard p + 46 + nameLength <= d.count else { break }
            names.insert(String(decoding: d[(p + 46)..<(p + 46 + nameLength)], as: UTF8.self))
            p += 46 + nameLength + extraLength + commentLength
        }
        return names
    }
}
