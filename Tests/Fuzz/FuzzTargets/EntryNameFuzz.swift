import Archives
import Foundation
import MediaPipeline

/// Archive entry names as the screen sees them in archive order: one a line, the first byte of
/// each giving its kind (`f` file, `d` directory, `l` link, `s` FIFO or device, `e` encrypted
/// file; any other byte is part of a file's name).
enum EntryNameFuzz {
    static func run(_ data: Data) -> String {
        var screen = EntryScreen()
        var files: Set<String> = []
        var last = "none"
        for (order, line) in data.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            let (kind, encrypted, raw) = entry(Array(line))
            check(raw)
            switch screen.screen(raw: raw, kind: kind, encrypted: encrypted, order: Int64(order)) {
            case .passBy:
                last = "pass_by"
            case let .file(name):
                FuzzCheck.require(EntryName.normalise(raw: raw) == .success(name), "a file's name is not its clean name")
                FuzzCheck.require(files.insert(EntryName.comparisonKey(name)).inserted, "two files share a name: \(name)")
                last = "file"
            case let .rejected(name, reason):
                FuzzCheck.require(isOneLine(name), "a refused name is shown with a control character")
                last = reason.code.rawValue
            }
        }
        return last
    }

    static func entry(_ line: [UInt8]) -> (EntryKind, Bool, [UInt8]) {
        switch line.first {
        case UInt8(ascii: "f"): (.file, false, Array(line.dropFirst()))
        case UInt8(ascii: "d"): (.directory, false, Array(line.dropFirst()))
        case UInt8(ascii: "l"): (.link, false, Array(line.dropFirst()))
        case UInt8(ascii: "s"): (.special, false, Array(line.dropFirst()))
        case UInt8(ascii: "e"): (.file, true, Array(line.dropFirst()))
        default: (.file, false, line)
        }
    }

    /// What must hold for any name: a clean name is relative, has no empty, `.` or `..` part and
    /// no backslash, and is its own clean name; every name prints on one line.
    static func check(_ raw: [UInt8]) {
        FuzzCheck.require(isOneLine(EntryName.printable(raw: raw)), "a name prints with a control character")
        guard case let .success(name) = EntryName.normalise(raw: raw) else { return }
        let parts = name.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
        FuzzCheck.require(!parts.contains { $0.isEmpty || $0 == "." || $0 == ".." }, "clean name \(name) has an empty, . or .. part")
        FuzzCheck.require(!name.contains("\\"), "clean name \(name) has a backslash")
        FuzzCheck.require(isOneLine(EntryName.printable(name)), "a clean name prints with a control character")
        // NFC can make a name longer, past the byte limit, which a second pass then refuses.
        if name.utf8.count <= EntryName.maxBytes {
            FuzzCheck.require(EntryName.normalise(raw: Array(name.utf8)) == .success(name), "clean name \(name) is not clean a second time")
        }
    }

    static func isOneLine(_ text: String) -> Bool {
        !text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0 == "\u{2028}" || $0 == "\u{2029}" }
    }
}
