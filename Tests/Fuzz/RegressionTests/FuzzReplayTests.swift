import Foundation
import FuzzTargets
import Testing

/// Every seed and every input the fuzzer ever found, run through the same target bodies as
/// `bench/fuzz.sh` uses, in the normal build: what was found once stays fixed.
struct FuzzReplayTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

    static func inputs(_ folder: String, _ target: String) -> [URL] {
        let directory = root.appendingPathComponent(folder).appendingPathComponent(target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { directory.appendingPathComponent($0) }
    }

    @Test("every target has seeds, and every seed and regression input runs", arguments: FuzzTarget.all.map(\.name))
    func replaysSeedsAndRegressions(name: String) throws {
        let target = try #require(FuzzTarget.named(name))
        let seeds = Self.inputs("Seeds", name)
        #expect(seeds.count >= 3, "Tests/Fuzz/Seeds/\(name) needs a few meaningful seeds")
        var outcomes: Set<String> = []
        for file in seeds + Self.inputs("Regressions", name) {
            outcomes.insert(target.run(try Data(contentsOf: file)))
        }
        // Seeds are there to reach different branches, not to repeat one.
        #expect(outcomes.count >= 2, "the seeds of \(name) all end the same way: \(outcomes)")
    }

    /// Seeds written for one branch and inputs the fuzzer found, with the word the target must
    /// answer for them.
    @Test("a seed or found input reaches the branch it was kept for", arguments: [
        ("pipeline", "minimal.json", "loaded"),
        ("pipeline", "bundled.json", "loaded"),
        ("pipeline", "unclosed.json", "syntax_error"),
        ("pipeline", "unknown-key.json", "load_refused"),
        ("pipeline", "overlay-and-set.bin", "loaded"),
        ("interpolation", "default.txt", "resolved"),
        ("interpolation", "unterminated.txt", "refused"),
        ("interpolation", "environment.bin", "resolved"),
        ("entry-names", "climb.txt", "unsafe_path"),
        ("entry-names", "absolute.txt", "unsafe_path"),
        ("entry-names", "bidi.bin", "bad_name"),
        ("entry-names", "case-duplicate.txt", "duplicate_name"),
        ("entry-names", "through-link.txt", "link_entry"),
        ("entry-names", "clean.txt", "file"),
        ("entry-names", "dot-then-drive-letter.txt", "unsafe_path"),
        ("zip-directory", "two-files.zip", "entries"),
        ("zip-directory", "empty.zip", "entries"),
        ("zip-directory", "overlap.zip", "archive_overlap"),
        ("zip-directory", "cut-short.zip", "archive_corrupt"),
        ("classify", "tiny.png", "image:png"),
        ("classify", "tiny.gif", "image:gif"),
        ("classify", "tiny.jpg", "image:jpeg"),
        ("classify", "text.txt", "document"),
        ("sigv4", "query.bin", "query"),
        ("tus-response", "created.txt", "created"),
        ("tus-response", "head.txt", "no_location"),
        ("tus-response", "negative-offset.txt", "no_location"),
        ("s3-response", "initiate.txt", "upload_id"),
        ("s3-response", "list-parts.txt", "parts"),
        ("s3-response", "slow-down.txt", "error"),
        ("api-response", "success.txt", "success"),
        ("api-response", "refused.txt", "refused"),
        ("api-response", "html.txt", "not_json"),
        ("api-response", "huge-retry-after.txt", "not_json"),
        ("s3-response", "infinite-retry-after.txt", "error"),
    ])
    func inputReachesItsBranch(name: String, seed: String, expected: String) throws {
        let target = try #require(FuzzTarget.named(name))
        let file = try #require(Self.inputs("Seeds", name).first { $0.lastPathComponent == seed }
                                ?? Self.inputs("Regressions", name).first { $0.lastPathComponent == seed })
        let outcome = target.run(try Data(contentsOf: file))
        #expect(outcome == expected)
    }
}
