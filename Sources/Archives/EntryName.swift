import Foundation
package import MediaPipeline

/// The rules for an archive entry's name: what it may not hold, the one clean form it is used in,
/// the form two names are compared in, and the form it is shown in.
package enum EntryName {
    /// Longer names are refused (`bad_name`): no course file needs more, and it bounds the work
    /// done on each name.
    package static let maxBytes = 1024

    /// The name as a clean relative path in NFC, or why it cannot be used: `bad_name` for bytes
    /// that are not UTF-8 or characters that could disguise it, `unsafe_path` for anything that
    /// would leave the archive's folder if it were ever used as a path.
    package static func normalise(raw: [UInt8]) -> Result<String, Reason> {
        guard raw.count <= maxBytes else { return .failure(Reason(.badName, "the name is longer than \(maxBytes) bytes")) }
        guard let text = String(validating: raw, as: UTF8.self) else {
            return .failure(Reason(.badName, "the name is not valid UTF-8"))
        }
        if let bad = text.unicodeScalars.first(where: isForbidden) {
            return .failure(Reason(.badName, "the name contains \(escaped(bad))"))
        }
        if text.contains("\\") { return .failure(Reason(.unsafePath, "the name contains a backslash")) }
        if text.hasPrefix("/") { return .failure(Reason(.unsafePath, "the name is an absolute path")) }
        if startsWithDriveLetter(text) { return .failure(Reason(.unsafePath, "the name starts with a drive letter")) }
        // Split on the byte `/` (not on characters, which may glue a combining mark to it), after
        // NFC, which never creates or removes a `/` or a `.`.
        let nfc = text.precomposedStringWithCanonicalMapping
        let parts = nfc.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true)
            .map { String(decoding: $0, as: UTF8.self) }
            .filter { $0 != "." }
        if parts.contains("..") { return .failure(Reason(.unsafePath, "the name climbs out with `..`")) }
        guard !parts.isEmpty else { return .failure(Reason(.badName, "the name is empty")) }
        // Dropping `.` parts can bring a drive to the front: `./C:/x` is `C:/x`.
        if startsWithDriveLetter(parts[0]) { return .failure(Reason(.unsafePath, "the name starts with a drive letter")) }
        return .success(parts.joined(separator: "/"))
    }

    /// The form two names are compared in: case-folded and NFC, so `A.jpg` meets `a.jpg` and an
    /// NFD `café` meets an NFC one, as they would on a case-insensitive or normalising disk.
    package static func comparisonKey(_ name: String) -> String {
        name.folding(options: [.caseInsensitive], locale: nil).precomposedStringWithCanonicalMapping
    }

    /// Raw name bytes as one printable line. Bytes that are not UTF-8 are shown as `\x{..}`.
    package static func printable(raw: [UInt8]) -> String {
        if let text = String(validating: raw, as: UTF8.self) { return printable(text) }
        return raw.map { byte in
            if byte == UInt8(ascii: "\\") { return "\\\\" }
            if byte >= 0x20 && byte < 0x7F { return String(UnicodeScalar(byte)) }
            return "\\x{" + String(byte, radix: 16, uppercase: true) + "}"
        }.joined()
    }

    /// A name as one printable line: controls, bidi and zero-width marks, line separators and
    /// other invisible format characters shown as escapes, and `\` doubled so escapes stay
    /// unambiguous.
    package static func printable(_ text: String) -> String {
        var shown = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": shown += "\\\\"
            case "\0": shown += "\\0"
            case "\n": shown += "\\n"
            case "\r": shown += "\\r"
            case "\t": shown += "\\t"
            default:
                let category = scalar.properties.generalCategory
                if isForbidden(scalar) || [.control, .format, .lineSeparator, .paragraphSeparator].contains(category) {
                    shown += escaped(scalar)
                } else {
                    shown.unicodeScalars.append(scalar)
                }
            }
        }
        return shown
    }

    /// Characters no entry name may hold: C0 and C1 controls, DEL, bidi controls, zero-width
    /// characters and line separators. Each can hide an extension, reverse what a reader sees
    /// or split a log line.
    static func isForbidden(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true                                   // controls
        case 0x202A...0x202E, 0x2066...0x2069, 0x200E, 0x200F, 0x061C: true   // bidi
        case 0x200B...0x200D, 0x2060, 0xFEFF: true                            // zero-width
        case 0x2028, 0x2029: true                                             // line and paragraph separators
        default: false
        }
    }

    static func escaped(_ scalar: Unicode.Scalar) -> String {
        "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
    }

    /// `C:` or `c:…` at the start: a Windows drive, even with `/` as the separator.
    static func startsWithDriveLetter(_ text: String) -> Bool {
        let bytes = Array(text.utf8.prefix(2))
        guard bytes.count == 2 else { return false }
        let letter = bytes[0] | 0x20
        return letter >= UInt8(ascii: "a") && letter <= UInt8(ascii: "z") && bytes[1] == UInt8(ascii: ":")
    }
}
