import Archives
import Foundation
import MediaPipeline

/// The zip pre-scan over a whole file in memory: the end record, every central record and local
/// header, the overlap check, then each entry read again and screened as the reader would.
enum ZipDirectoryFuzz {
    static func run(_ data: Data) -> String {
        let source = ZipBuffer(Array(data))
        do {
            let directory = try ZipDirectory.read(source, maxEntries: 1000) { $0.isEncrypted }
            var screen = EntryScreen()
            for index in 0..<directory.count {
                let (entry, encrypted) = try directory.entry(index, in: source)
                FuzzCheck.require(entry.isEncrypted == encrypted, "entry \(index) came back with another mark")
                FuzzCheck.require(entry.localHeaderOffset >= 0 && entry.localHeaderOffset < source.size,
                                  "entry \(index) starts outside the file")
                _ = screen.screen(raw: entry.rawName, kind: entry.kind, encrypted: encrypted, order: Int64(index))
            }
            return "entries"
        } catch {
            return error.code.rawValue
        }
    }
}
