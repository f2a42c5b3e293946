import MediaPipeline

/// What an entry is, from its header.
enum EntryKind: Equatable {
    case file, directory, link, special

    /// The kind a Unix mode's type bits give (the values of `S_IF*`, also libarchive's `AE_IF*`,
    /// which Swift cannot import because of their casts). No type bits count as a regular file.
    init(unixMode mode: UInt32) {
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
/// are files. It keeps the names seen, which is the only thing kept per entry.
struct EntryScreen {
    /// What happens to one entry.
    enum Verdict: Equatable {
        /// A directory: passed by without a word.
        case passBy
        /// A file that may be extracted, with its clean name.
        case file(name: String)
        /// Refused, with the name shown in printable form.
        case rejected(name: String, reason: Reason)
    }

    /// Comparison keys of every entry with a usable name so far, refused ones included.
    private var names: Set<String> = []
    /// Comparison keys of the links among them.
    private var links: Set<String> = []

    mutating func screen(raw: [UInt8], kind: EntryKind, encrypted: Bool) -> Verdict {
        if kind == .directory { return .passBy }
        let name: String
        switch EntryName.normalise(raw: raw) {
        case .failure(let reason): return .rejected(name: EntryName.printable(raw: raw), reason: reason)
        case .success(let clean): name = clean
        }
        let shown = EntryName.printable(name)
        let key = EntryName.comparisonKey(name)
        let isFirst = names.insert(key).inserted
        switch kind {
        case .link:
            links.insert(key)
            return .rejected(name: shown, reason: Reason(.linkEntry, "it is a link; links are never created"))
        case .special:
            return .rejected(name: shown, reason: Reason(.specialEntry, "it is a FIFO, device or socket; those are never created"))
        case .file, .directory:
            break
        }
        if let link = linkOnTheWay(to: name) {
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

    /// The first folder of `name` that an earlier entry made a link, if any.
    private func linkOnTheWay(to name: String) -> String? {
        guard !links.isEmpty else { return nil }
        let parts = name.split(separator: "/")
        for end in parts.indices.dropLast() {
            let folder = parts[...end].joined(separator: "/")
            if links.contains(EntryName.comparisonKey(folder)) { return folder }
        }
        return nil
    }
}
