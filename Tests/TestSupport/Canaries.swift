public import Foundation
import Synchronization
public import Testing

/// Canary credentials: random values given to the tool as its secrets (the fakes accept them), so
/// any of them found in what a run leaves behind is a leak. Every canary made or registered in
/// this test process is searched for in every CLI run's output and in every test's temporary
/// folder (manifests, journals, work folders, logs) before it is removed, in three forms: as is,
/// URL-encoded, and base64 at each of the three byte alignments (so it is found inside a longer
/// encoded text too).
public enum Canaries {
    private static let values = Mutex<Set<String>>([])

    /// A new canary, registered. It holds `/`, `+` and `=` so its URL-encoded form differs from it.
    public static func make(_ label: String) -> String {
        let value = "canary-\(label)-\(UUID().uuidString.prefix(13).lowercased())+/=z"
        register(value)
        return value
    }

    /// A new canary with only letters, digits and `-`, for places that take no other characters
    /// (an R2 access key id travels inside the SigV4 `Credential`).
    public static func makePlain(_ label: String) -> String {
        let value = "canary-\(label)-\(UUID().uuidString.prefix(13).lowercased())"
        register(value)
        return value
    }

    /// Adds a secret made elsewhere (e.g. a key a fake server created) to the searched ones.
    public static func register(_ value: String) {
        guard value.count >= 8 else { return }
        values.withLock { _ = $0.insert(value) }
    }

    /// The byte strings whose presence means `value` leaked.
    public static func forms(of value: String) -> [Data] {
        let raw = Data(value.utf8)
        var forms = [raw]
        if let encoded = value.addingPercentEncoding(withAllowedCharacters: .alphanumerics), encoded != value {
            forms.append(Data(encoded.utf8))
        }
        // Base64 of the value after 0, 1 or 2 other bytes: the characters that depend on the value
        // alone, which any base64 text containing the value at that alignment holds.
        for shift in 0..<3 {
            let text = (Data(repeating: 0, count: shift) + raw).base64EncodedString()
            let first = shift == 0 ? 0 : 4
            let usable = (shift + raw.count) / 3 * 4  // whole groups only: the last may mix in what follows
            if usable - first >= 12 {
                let start = text.index(text.startIndex, offsetBy: first), end = text.index(text.startIndex, offsetBy: usable)
                forms.append(Data(text[start..<end].utf8))
            }
        }
        return forms
    }

    /// The canaries (each shown by its label only) found in `data`.
    public static func found(in data: Data) -> [String] {
        values.withLock { $0 }.filter { value in forms(of: value).contains { data.range(of: $0) != nil } }
            .map { String($0.prefix(12)) + "…" }.sorted()
    }

    /// Records an issue for each canary in `text`, naming `place`.
    public static func expectNone(in text: String, _ place: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for leak in found(in: Data(text.utf8)) {
            Issue.record("a canary secret (\(leak)) appears in \(place)", sourceLocation: sourceLocation)
        }
    }

    /// Records an issue for each file under `folder` (recursively, links not followed) holding a
    /// canary. Files are read in pieces that overlap by the longest form, so a big one costs one
    /// piece of memory; the inputs tests make huge on purpose (over 1 GiB, sparse) are passed over.
    public static func expectNone(under folder: URL, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let walker = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: [.isRegularFileKey, .fileSizeKey]) else { return }
        let longest = values.withLock { $0 }.flatMap { forms(of: $0) }.map(\.count).max() ?? 0
        for case let file as URL in walker {
            guard let facts = try? file.resourceValues(forKeys: [.isRegularFileKey, .fileSizeKey]), facts.isRegularFile == true,
                  (facts.fileSize ?? 0) <= 1 << 30, let handle = try? FileHandle(forReadingFrom: file) else { continue }
            defer { try? handle.close() }
            var tail = Data(), leaks = Set<String>()
            while let piece = try? handle.read(upToCount: 4 << 20), !piece.isEmpty {
                let window = tail + piece
                leaks.formUnion(found(in: window))
                tail = window.suffix(max(longest - 1, 0))
            }
            for leak in leaks.sorted() {
                Issue.record("a canary secret (\(leak)) appears in \(file.path)", sourceLocation: sourceLocation)
            }
        }
    }
}
