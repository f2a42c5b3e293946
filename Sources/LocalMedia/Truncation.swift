import Foundation

/// Tells whether an image file stops before its format says it ends, from the file's own bytes:
/// JPEG without its end-of-image marker, PNG without IEND, GIF without its trailer, WebP shorter
/// than its RIFF header declares.
enum Truncation {
    static func isCutShort(_ file: URL) -> Bool {
        guard let handle = try? FileHandle(forReadingFrom: file) else { return false }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 16), head.count >= 4,
              let end = try? handle.seekToEnd() else { return false }
        let tailLength = min(end, 64)
        guard (try? handle.seek(toOffset: end - tailLength)) != nil, let tail = try? handle.read(upToCount: Int(tailLength)) else {
            return false
        }
        let h = [UInt8](head), t = [UInt8](tail)
        // Writers may pad after the end marker, so the marker is looked for near the end, not at it.
        func tailContains(_ marker: [UInt8]) -> Bool {
            t.count >= marker.count && (0...(t.count - marker.count)).contains { t[$0..<$0 + marker.count].elementsEqual(marker) }
        }
        if h.starts(with: [0xFF, 0xD8, 0xFF]) { return !tailContains([0xFF, 0xD9]) }
        if h.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return !tailContains(Array("IEND".utf8)) }
        if h.starts(with: Array("GIF8".utf8)) { return t.last != 0x3B }
        if h.starts(with: Array("RIFF".utf8)), h.count >= 12, h[8..<12].elementsEqual("WEBP".utf8) {
            let declared = UInt64(h[4]) | UInt64(h[5]) << 8 | UInt64(h[6]) << 16 | UInt64(h[7]) << 24
            return end < declared + 8
        }
        return false
    }
}
