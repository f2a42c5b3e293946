package import MediaPipeline

/// Random access to the bytes of a zip file, for the pre-scan.
package protocol ZipSource {
    /// The file's length in bytes.
    var size: Int64 { get }
    /// Exactly `count` bytes from `offset`; throws `archive_corrupt` when they are not all there.
    func read(at offset: Int64, count: Int) throws(Reason) -> [UInt8]
}

/// Zip bytes already in memory.
package struct ZipBuffer: ZipSource {
    package var bytes: [UInt8]

    package init(_ bytes: [UInt8]) { self.bytes = bytes }

    package var size: Int64 { Int64(bytes.count) }

    package func read(at offset: Int64, count: Int) throws(Reason) -> [UInt8] {
        guard offset >= 0, count >= 0, offset <= size, Int64(count) <= size - offset else {
            throw ZipDirectory.corrupt("it ends before the \(count) bytes at offset \(offset)")
        }
        return Array(bytes[Int(offset)..<Int(offset) + count])
    }
}

/// The central directory of a zip file, read before libarchive extracts anything, without
/// trusting any of its bytes: every offset and length is checked, arithmetic cannot overflow, and
/// anything inconsistent throws `archive_corrupt` rather than trapping.
///
/// libarchive gives neither the directory's order and count before reading nor entry offsets,
/// and cuts names at a NUL byte, so this pre-scan is the source of truth for zip names, order,
/// types and overlap. It insists on the layout libarchive's seekable reader will also see: the
/// last end record in the file's tail, the directory exactly where that record says, and local
/// headers where the directory points.
///
/// What it keeps does not grow with the names: per entry, where its central record lies and one
/// byte of marks (9 bytes). An entry's name, sizes and attributes are read again from its
/// record when it is handed out (`entry(_:in:)`).
package struct ZipDirectory {
    /// One central-directory record, with what its local header told the pre-scan.
    package struct Entry: Equatable {
        /// Where the central record starts in the file; records lie in central-directory order.
        package var recordOffset: Int64
        /// The name's bytes as stored, NUL included. Names longer than `EntryName.maxBytes` are
        /// kept cut to one byte over it, which is enough to refuse them.
        package var rawName: [UInt8]
        /// Why the name is ambiguous (the local header or a Unicode-path field gives another
        /// one), or nil.
        package var nameConflict: NameConflict?
        /// General-purpose flags: bit 0 encrypted, bit 6 strong encryption, bit 11 UTF-8 name.
        package var flags: UInt16
        package var method: UInt16
        /// High byte: the system that wrote it (3 = Unix, whose mode is then in `externalAttributes` >> 16).
        package var versionMadeBy: UInt16
        package var externalAttributes: UInt32
        package var compressedSize: Int64
        package var uncompressedSize: Int64
        package var localHeaderOffset: Int64

        package var isEncrypted: Bool { flags & 0x41 != 0 }

        /// The entry's type, from the name and the external attributes, as libarchive reads them.
        package var kind: EntryKind {
            if rawName.last == UInt8(ascii: "/") { return .directory }
            switch versionMadeBy >> 8 {
            case 3: return EntryKind(unixMode: externalAttributes >> 16)
            case 0: return externalAttributes & 0x10 != 0 ? .directory : .file  // MS-DOS directory bit
            default: return .file
            }
        }
    }

    /// Why a name is ambiguous: tools disagree on which one they show.
    package enum NameConflict: UInt8, Equatable {
        case localName = 1, unicodePath = 2

        package var detail: String {
            switch self {
            case .localName: "its local header gives it another name"
            case .unicodePath: "its Unicode-path field gives it another name"
            }
        }
    }

    /// How many entries the directory lists.
    package var count: Int { recordOffsets.count }
    /// Where each entry's central record starts, in the order the entries' bytes lie in the file,
    /// which is the order libarchive's seekable reader hands them out.
    private var recordOffsets: [Int64]
    /// Per entry, in the same order: the name conflict's raw value in the low bits, `markBit`
    /// when the caller's `mark` said so.
    private var marks: [UInt8]
    /// Where the directory stops, the bound for reading a record again.
    private let directoryEnd: Int64

    private static let markBit: UInt8 = 0x80

    static let endSignature: UInt32 = 0x0605_4B50
    static let zip64LocatorSignature: UInt32 = 0x0706_4B50
    static let zip64EndSignature: UInt32 = 0x0606_4B50
    static let centralSignature: UInt32 = 0x0201_4B50
    static let localSignature: UInt32 = 0x0403_4B50

    static func corrupt(_ detail: String) -> Reason { Reason(.archiveCorrupt, detail) }

    /// Reads and checks the directory. Throws `entry_limit` when it lists more than `maxEntries`
    /// entries (decided from the end record, before reading them), `archive_overlap` when two
    /// entries share bytes, and `archive_corrupt` for anything else wrong.
    ///
    /// `mark` sees every entry once, in central-directory order, after its record and local
    /// header are checked; what it returns comes back with the entry from `entry(_:in:)`.
    package static func read(_ source: some ZipSource, maxEntries: Int,
                             mark: (Entry) -> Bool = { _ in false }) throws(Reason) -> ZipDirectory {
        let end = try findEnd(source)
        guard end.count <= Int64(maxEntries) else {
            throw Reason(.entryLimit, "its central directory lists \(end.count) entries; at most \(maxEntries) are allowed (limits.maxEntriesPerArchive)")
        }
        try checkCentralRecords(source, end)
        // Every record is sound: read them again, this time with their local headers, keeping
        // only where each one's bytes lie.
        var spans: [Span] = []
        spans.reserveCapacity(Int(end.count))
        var position = end.directoryOffset
        for number in stride(from: 1, through: Int(end.count), by: 1) {
            var (entry, length) = try centralRecord(source, at: position, limit: end.directoryEnd, number: number)
            let stop = try readLocalHeader(source, &entry, number: number, dataLimit: end.directoryOffset)
            let marked = mark(entry)
            spans.append(Span(start: entry.localHeaderOffset, end: stop, number: number, recordOffset: position,
                              marks: (entry.nameConflict?.rawValue ?? 0) | (marked ? markBit : 0)))
            position += length
        }
        spans.sort { $0.start < $1.start }
        for (a, b) in zip(spans, spans.dropFirst()) where b.start < a.end {
            throw Reason(.archiveOverlap, "entries \(a.number) and \(b.number) share bytes (a zip that inflates one payload many times)")
        }
        return ZipDirectory(recordOffsets: spans.map(\.recordOffset), marks: spans.map(\.marks), directoryEnd: end.directoryEnd)
    }

    /// The entry libarchive hands out at `index` (from 0), read again from its central record,
    /// and what `mark` said about it. Throws `archive_corrupt` when the record no longer reads.
    package func entry(_ index: Int, in source: some ZipSource) throws(Reason) -> (entry: Entry, marked: Bool) {
        var (entry, _) = try Self.centralRecord(source, at: recordOffsets[index], limit: directoryEnd, number: index + 1)
        entry.nameConflict = NameConflict(rawValue: marks[index] & ~Self.markBit)
        return (entry, marks[index] & Self.markBit != 0)
    }

    /// Where one entry's bytes lie, while the pre-scan looks for overlaps.
    private struct Span {
        var start: Int64
        var end: Int64
        /// Its place in the central directory, from 1.
        var number: Int
        var recordOffset: Int64
        var marks: UInt8
    }

    /// Where the directory is and how many entries it lists.
    struct End {
        var count: Int64
        var directoryOffset: Int64
        var directorySize: Int64
        /// Where the directory must stop: the Zip64 end record, or the end record.
        var directoryEnd: Int64
    }

    /// Finds the end record, the last one in the final 64 KiB + 22 bytes (libarchive also takes
    /// the last one, and refuses the file when it is not in the final 16 KiB), and the Zip64
    /// record when a locator precedes it.
    static func findEnd(_ source: some ZipSource) throws(Reason) -> End {
        guard source.size >= 22 else { throw corrupt("it is too short to be a zip (\(source.size) bytes)") }
        let tailStart = max(0, source.size - 22 - 65_535)
        let tail = try source.read(at: tailStart, count: Int(source.size - tailStart))
        let fields = Fields(tail)
        var at = tail.count - 22
        while at >= 0, try fields.u32(at) != endSignature { at -= 1 }
        guard at >= 0 else { throw corrupt("it has no end-of-central-directory record") }
        let record = Fields(Array(tail[at...]))
        let recordOffset = tailStart + Int64(at)
        guard recordOffset + 22 + Int64(try record.u16(20)) <= source.size else {
            throw corrupt("its end record's comment runs past the end of the file")
        }
        if recordOffset >= 20, try Fields(try source.read(at: recordOffset - 20, count: 4)).u32(0) == zip64LocatorSignature {
            return try findZip64End(source, locatorOffset: recordOffset - 20)
        }
        guard try record.u16(4) == 0, try record.u16(6) == 0, try record.u16(8) == record.u16(10) else {
            throw corrupt("it spans several disks")
        }
        return End(count: Int64(try record.u16(10)), directoryOffset: Int64(try record.u32(16)),
                   directorySize: Int64(try record.u32(12)), directoryEnd: recordOffset)
    }

    static func findZip64End(_ source: some ZipSource, locatorOffset: Int64) throws(Reason) -> End {
        let locator = Fields(try source.read(at: locatorOffset, count: 20))
        guard try locator.u32(4) == 0, try locator.u32(16) == 1 else { throw corrupt("it spans several disks (Zip64)") }
        let recordOffset = try locator.offset(8)
        let head = Fields(try source.read(at: recordOffset, count: 56))
        guard try head.u32(0) == zip64EndSignature else { throw corrupt("its Zip64 locator points at no Zip64 end record") }
        // Sizes libarchive accepts for this record: 56 bytes up to 16 KiB.
        let recordSize = try head.u64(4)
        guard recordSize >= 44, recordSize <= 16_384 - 12, recordOffset + 12 + Int64(recordSize) <= locatorOffset else {
            throw corrupt("its Zip64 end record has an impossible size")
        }
        guard try head.u32(16) == 0, try head.u32(20) == 0, try head.u64(24) == head.u64(32) else {
            throw corrupt("it spans several disks (Zip64)")
        }
        return End(count: try head.offset(32), directoryOffset: try head.offset(48), directorySize: try head.offset(40),
                   directoryEnd: recordOffset)
    }

    /// Walks the directory once, checking that its records fill it exactly, before any local
    /// header is read.
    static func checkCentralRecords(_ source: some ZipSource, _ end: End) throws(Reason) {
        let (directoryStop, overflow) = end.directoryOffset.addingReportingOverflow(end.directorySize)
        guard !overflow, directoryStop == end.directoryEnd else {
            throw corrupt("its central directory is not where the end record says (data before the zip, or damage)")
        }
        guard end.count <= end.directorySize / 46 else { throw corrupt("its central directory is too small for \(end.count) entries") }
        var position = end.directoryOffset
        for number in stride(from: 1, through: Int(end.count), by: 1) {
            position += try centralRecord(source, at: position, limit: end.directoryEnd, number: number).length
        }
        guard position == end.directoryEnd else { throw corrupt("its central directory holds more than the \(end.count) records its end record counts") }
    }

    /// The central record at `position`, which must end by `limit`, and its length in bytes.
    static func centralRecord(_ source: some ZipSource, at position: Int64, limit: Int64,
                              number: Int) throws(Reason) -> (entry: Entry, length: Int64) {
        guard position >= 0, limit - position >= 46 else { throw corrupt("its central directory ends inside record \(number)") }
        let header = Fields(try source.read(at: position, count: 46))
        guard try header.u32(0) == centralSignature else { throw corrupt("central record \(number) has no signature") }
        let nameLength = Int(try header.u16(28)), extraLength = Int(try header.u16(30)), commentLength = Int(try header.u16(32))
        let recordLength = Int64(46 + nameLength + extraLength + commentLength)
        guard limit - position >= recordLength else { throw corrupt("central record \(number) runs past the directory") }
        let variable = try source.read(at: position + 46, count: nameLength + extraLength)
        let name = Array(variable[..<nameLength]), extra = Array(variable[nameLength...])
        var compressed = Int64(try header.u32(20)), uncompressed = Int64(try header.u32(24))
        var offset = Int64(try header.u32(42))
        // Zip64: each field that is all ones is in the 0x0001 extra field, in this order.
        if uncompressed == 0xFFFF_FFFF || compressed == 0xFFFF_FFFF || offset == 0xFFFF_FFFF {
            guard let field = extraField(0x0001, in: extra) else { throw corrupt("central record \(number) lacks its Zip64 sizes") }
            let values = Fields(field)
            var at = 0
            if uncompressed == 0xFFFF_FFFF { uncompressed = try values.offset(at); at += 8 }
            if compressed == 0xFFFF_FFFF { compressed = try values.offset(at); at += 8 }
            if offset == 0xFFFF_FFFF { offset = try values.offset(at) }
        }
        let entry = Entry(
            recordOffset: position, rawName: Array(name.prefix(EntryName.maxBytes + 1)),
            nameConflict: unicodePathConflict(name: name, extra: extra),
            flags: try header.u16(8), method: try header.u16(10), versionMadeBy: try header.u16(4),
            externalAttributes: try header.u32(38), compressedSize: compressed, uncompressedSize: uncompressed,
            localHeaderOffset: offset)
        return (entry, recordLength)
    }

    /// Checks the local header an entry points at and returns where the entry's bytes end:
    /// local header, name, local extra field and data.
    static func readLocalHeader(_ source: some ZipSource, _ entry: inout Entry, number: Int, dataLimit: Int64) throws(Reason) -> Int64 {
        guard entry.localHeaderOffset <= dataLimit - 30 else { throw corrupt("entry \(number) points into its central directory") }
        let header = Fields(try source.read(at: entry.localHeaderOffset, count: 30))
        guard try header.u32(0) == localSignature else { throw corrupt("entry \(number) points at no local header") }
        let nameLength = Int(try header.u16(26)), extraLength = Int(try header.u16(28))
        let dataStart = entry.localHeaderOffset + 30 + Int64(nameLength + extraLength)
        let (end, overflow) = dataStart.addingReportingOverflow(entry.compressedSize)
        guard !overflow, end <= dataLimit else { throw corrupt("entry \(number)'s data runs into its central directory") }
        let variable = try source.read(at: entry.localHeaderOffset + 30, count: nameLength + extraLength)
        let localName = Array(variable[..<nameLength])
        if entry.nameConflict == nil, localName.prefix(EntryName.maxBytes + 1) != entry.rawName[...] {
            entry.nameConflict = .localName
        }
        if entry.nameConflict == nil {
            entry.nameConflict = unicodePathConflict(name: localName, extra: Array(variable[nameLength...]))
        }
        return end
    }

    /// An Info-ZIP Unicode-path field (0x7075) that names the entry differently from its header
    /// makes the name ambiguous: tools disagree on which one they show.
    static func unicodePathConflict(name: [UInt8], extra: [UInt8]) -> NameConflict? {
        guard let field = extraField(0x7075, in: extra) else { return nil }
        return field.count >= 5 && field[5...].elementsEqual(name) ? nil : .unicodePath
    }

    /// The data of the first extra field with this id, or nil (also when the fields are malformed).
    static func extraField(_ id: UInt16, in extra: [UInt8]) -> [UInt8]? {
        let fields = Fields(extra)
        var at = 0
        while at <= extra.count - 4 {
            guard let fieldID = try? fields.u16(at), let length = try? fields.u16(at + 2) else { return nil }
            guard extra.count - at - 4 >= Int(length) else { return nil }
            if fieldID == id { return Array(extra[(at + 4)..<(at + 4 + Int(length))]) }
            at += 4 + Int(length)
        }
        return nil
    }
}

/// Little-endian fields of a header read into memory; reading past its end throws instead of
/// trapping.
struct Fields {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func u16(_ at: Int) throws(Reason) -> UInt16 { UInt16(try value(at, 2)) }
    func u32(_ at: Int) throws(Reason) -> UInt32 { UInt32(try value(at, 4)) }
    func u64(_ at: Int) throws(Reason) -> UInt64 { try value(at, 8) }

    /// An unsigned 64-bit size or offset that must also fit an `Int64`.
    func offset(_ at: Int) throws(Reason) -> Int64 {
        let raw = try value(at, 8)
        guard raw <= UInt64(Int64.max) else { throw ZipDirectory.corrupt("a Zip64 size or offset is out of range") }
        return Int64(raw)
    }

    private func value(_ at: Int, _ width: Int) throws(Reason) -> UInt64 {
        guard at >= 0, at <= bytes.count - width else { throw ZipDirectory.corrupt("a header is cut short") }
        var result: UInt64 = 0
        for i in (0..<width).reversed() { result = result << 8 | UInt64(bytes[at + i]) }
        return result
    }
}
