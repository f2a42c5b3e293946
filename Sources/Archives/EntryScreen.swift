package import MediaPipeline

/// What an entry is, from its header.
package enum EntryKind: Equatable {
    case file, directory, link, special

    /// The kind a Unix mode's type bits give (the values of `S_IF*`, also libarchive's `AE_IF*`,
    /// which Swift cannot import because of their casts). No type bits count as a regular file.
    package init(unixMode mode: UInt32) {
        switch mode & 0o170000 {
        case 0o100000, 0: self = .file
        case 0o040000: self = .directory
        case 0o120000: self = .link
        default: self = .special  // FIFO, character or block device, socket
        }
    }
}

/// Decides, entry by entry in archive order, what is handed out: the first of two equal names
/// wins, nothing is reached through a link, and only regular, unencrypted files with clean names
/// are files.
///
/// Noting an entry (in archive order) and judging it are two steps, so that a zip can note its
/// entries in central-directory order and judge them later in the order libarchive hands them
/// out. Per entry it keeps one `NameKey` (16 bytes), never the name; links, which are rare,
/// keep their comparison key.
package struct EntryScreen {
    /// What happens to one entry.
    package enum Verdict: Equatable {
        /// A directory: passed by without a word.
        case passBy
        /// A file that may be extracted, with its clean name.
        case file(name: String)
        /// Refused, with the name shown in printable form.
        case rejected(name: String, reason: Reason)
    }

    /// Keys of the comparison keys of every entry with a usable name so far, refused ones included.
    private var names: Set<NameKey> = []
    /// Comparison keys of the links among them, each with the `order` of its first link.
    private var links: [String: Int64] = [:]

    package init() {}

    /// Notes and judges the next entry of an archive read once, in order (tar). `order` grows
    /// from one entry to the next.
    package mutating func screen(raw: [UInt8], kind: EntryKind, encrypted: Bool, order: Int64) -> Verdict {
        let isFirst = note(raw: raw, kind: kind, order: order)
        return verdict(raw: raw, kind: kind, encrypted: encrypted, isFirst: isFirst, order: order)
    }

    /// Notes an entry's name and returns whether it is the first with its comparison key (true
    /// for directories and unusable names, which are not noted). Entries are noted in archive
    /// order, and `order` grows from one to the next.
    mutating func note(raw: [UInt8], kind: EntryKind, order: Int64) -> Bool {
        guard kind != .directory, case .success(let name) = EntryName.normalise(raw: raw) else { return true }
        let key = EntryName.comparisonKey(name)
        if kind == .link, links[key] == nil { links[key] = order }
        return names.insert(NameKey(key)).inserted
    }

    /// Forgets the names noted, once every entry is noted and only judging is left.
    mutating func forgetNames() { names = [] }

    /// What happens to a noted entry: `isFirst` is what `note` said, `order` what it was given.
    /// Only links noted with a smaller `order` can stand in its path.
    func verdict(raw: [UInt8], kind: EntryKind, encrypted: Bool, isFirst: Bool, order: Int64) -> Verdict {
        if kind == .directory { return .passBy }
        let name: String
        switch EntryName.normalise(raw: raw) {
        case .failure(let reason): return .rejected(name: EntryName.printable(raw: raw), reason: reason)
        case .success(let clean): name = clean
        }
        let shown = EntryName.printable(name)
        switch kind {
        case .link:
            return .rejected(name: shown, reason: Reason(.linkEntry, "it is a link; links are never created"))
        case .special:
            return .rejected(name: shown, reason: Reason(.specialEntry, "it is a FIFO, device or socket; those are never created"))
        case .file, .directory:
            break
        }
        if let link = linkOnTheWay(to: name, before: order) {
            return .rejected(name: shown, reason: Reason(.linkEntry, "its path goes through the link \(EntryName.printable(link))"))
        }
        if !isFirst {
            return .rejected(name: shown, reason: Reason(.duplicateName, "an earlier entry has the same name (compared in NFC, ignoring case)"))
        }
        if encrypted {
            return .rejected(name: shown, reason: Reason(.encrypted, "the entry is encrypted; no passphrase is ever asked for"))
        }
        return .file(name: name)
    }

    /// The first folder of `name` that an entry noted before `order` made a link, if any.
    private func linkOnTheWay(to name: String, before order: Int64) -> String? {
        guard !links.isEmpty else { return nil }
        let parts = name.split(separator: "/")
        for end in parts.indices.dropLast() {
            let folder = parts[...end].joined(separator: "/")
            if let linked = links[EntryName.comparisonKey(folder)], linked < order { return folder }
        }
        return nil
    }
}

/// A 128-bit digest of a comparison key, standing in for it in the set of names seen. Both
/// halves come from `Hasher`, which is seeded at random in every process, with different leading
/// salts: two different names meet by chance about once in 2^128, and no archive can be built to
/// make them meet.
struct NameKey: Hashable {
    let high: UInt64
    let low: UInt64

    init(_ key: String) {
        var first = Hasher(), second = Hasher()
        first.combine(UInt8(1))
        second.combine(UInt8(2))
        first.combine(key)
        second.combine(key)
        high = UInt64(UInt(bitPattern: first.finalize()))
        low = UInt64(UInt(bitPattern: second.finalize()))
    }
}
