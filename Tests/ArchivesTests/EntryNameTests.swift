import Archives
import MediaPipeline
import Testing

/// The name rules as a table: what passes and in which form, what is refused and with which code.
struct EntryNameTests {
    @Test("clean names come out relative, without . or empty parts, in NFC", arguments: [
        ("a/b.jpg", "a/b.jpg"), ("./a//b/./c.jpg", "a/b/c.jpg"), ("cafe\u{301}.jpg", "caf\u{E9}.jpg"),
        ("...", "..."), ("..a/b..", "..a/b.."), ("ab:c.txt", "ab:c.txt"), ("dir/", "dir"), ("日本/写真.jpg", "日本/写真.jpg"),
    ])
    func cleanNames(raw: String, clean: String) throws {
        let name = try EntryName.normalise(raw: Array(raw.utf8)).get()
        #expect(Array(name.unicodeScalars) == Array(clean.unicodeScalars))
    }

    @Test("names that leave the folder are unsafe_path", arguments: [
        "../x", "a/../../b", "a/..", "/etc/passwd", "C:/x.jpg", "c:x", #"a\b"#, #"..\..\x"#, "./../x",
    ])
    func unsafeNames(raw: String) {
        #expect(throws: Reason.self) { try EntryName.normalise(raw: Array(raw.utf8)).get() }
        #expect((try? EntryName.normalise(raw: Array(raw.utf8)).get()) == nil)
        if case .failure(let reason) = EntryName.normalise(raw: Array(raw.utf8)) { #expect(reason.code == .unsafePath, "\(raw)") }
    }

    @Test("names with controls, bidi, zero-width marks, bad UTF-8 or no content are bad_name", arguments: [
        Array("a\0b".utf8), Array("\u{202E}gpj.exe".utf8), Array("x\u{200B}y".utf8), Array("x\u{85}".utf8),
        Array("\u{1B}[31m".utf8), Array("x\u{7F}".utf8), Array("\u{FEFF}x".utf8), Array("a\u{2066}b".utf8),
        [0xC3, 0x28], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [], Array("./.".utf8), Array(repeating: UInt8(ascii: "a"), count: 1025),
    ])
    func badNames(raw: [UInt8]) {
        guard case .failure(let reason) = EntryName.normalise(raw: raw) else { Issue.record("accepted \(raw)"); return }
        #expect(reason.code == .badName)
    }

    @Test("the printable form escapes what could split or disguise a line", arguments: [
        (Array("new\nline".utf8), #"new\nline"#), (Array("\u{202E}gpj.exe".utf8), #"\u{202E}gpj.exe"#),
        (Array("a\0b".utf8), #"a\0b"#), ([0x66, 0xFF, 0x5C], #"f\x{FF}\\"#), (Array(#"a\b"#.utf8), #"a\\b"#),
        (Array("tab\there".utf8), #"tab\there"#), (Array("caf\u{E9}".utf8), "caf\u{E9}"),
    ])
    func printableNames(raw: [UInt8], shown: String) {
        #expect(EntryName.printable(raw: raw) == shown)
    }

    @Test("names are compared in NFC and without case")
    func comparison() {
        #expect(EntryName.comparisonKey("A.jpg") == EntryName.comparisonKey("a.jpg"))
        #expect(EntryName.comparisonKey("cafe\u{301}.jpg").unicodeScalars.elementsEqual(EntryName.comparisonKey("CAF\u{C9}.JPG").unicodeScalars))
        #expect(EntryName.comparisonKey("Straße") == EntryName.comparisonKey("STRASSE"))
        #expect(EntryName.comparisonKey("a.jpg") != EntryName.comparisonKey("b.jpg"))
    }
}
