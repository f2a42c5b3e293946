package import Foundation

/// One parser of untrusted input, fed arbitrary bytes: by libFuzzer in the instrumented build
/// (`bench/fuzz.sh`), and by the seed and regression tests in the normal one.
///
/// `run` returns a short word on what the parser made of the input (`loaded`, `unsafe_path`, …)
/// so the tests can check that a seed still reaches the branch it was written for. A broken
/// invariant traps (`FuzzCheck.require`), which libFuzzer reports as a crash.
package struct FuzzTarget: Sendable {
    /// The name used on the command line and as the seed folder, e.g. `entry-names`.
    package var name: String
    /// What the target feeds and how it splits the input.
    package var summary: String
    package var run: @Sendable (Data) -> String

    /// Every target, in the order `bench/fuzz.sh` runs them.
    package static let all: [FuzzTarget] = [
        FuzzTarget(name: "pipeline", summary: "pipeline.json, NUL, an overlay, NUL, --set lines: parse, merge, load",
                   run: PipelineFuzz.run),
        FuzzTarget(name: "interpolation", summary: "NAME=VALUE lines, NUL, a string with ${VAR} references",
                   run: InterpolationFuzz.run),
        FuzzTarget(name: "entry-names", summary: "archive entry names, one a line, each led by its kind (f d l s e)",
                   run: EntryNameFuzz.run),
        FuzzTarget(name: "zip-directory", summary: "a whole zip file for the central-directory pre-scan",
                   run: ZipDirectoryFuzz.run),
        FuzzTarget(name: "classify", summary: "a whole file for libmagic, our refinements and the libvips header",
                   run: ClassifyFuzz.run),
        FuzzTarget(name: "sigv4", summary: "an object key, NUL, a query string, NUL, a header value: R2 request signing",
                   run: SigV4Fuzz.run),
        FuzzTarget(name: "tus-response", summary: "an HTTP answer (status line, headers, body) to a tus creation, HEAD or PATCH",
                   run: ResponseFuzz.tus),
        FuzzTarget(name: "s3-response", summary: "an HTTP answer with an S3 XML body (InitiateMultipartUpload, ListParts, Error)",
                   run: ResponseFuzz.s3),
        FuzzTarget(name: "api-response", summary: "an HTTP answer with a Cloudflare API v4 JSON envelope",
                   run: ResponseFuzz.api),
    ]

    /// The target with this name, if any.
    package static func named(_ name: String) -> FuzzTarget? {
        all.first { $0.name == name }
    }
}

/// Invariants the targets check beyond "does not crash".
enum FuzzCheck {
    /// Traps with `message` when `condition` is false, so the fuzzer keeps the input.
    static func require(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fatalError("fuzz invariant broken: \(message())") }
    }
}

extension Data {
    /// The input cut at NUL bytes into at most `count` fields (the last keeps any further NULs).
    func fields(_ count: Int) -> [Data] {
        split(separator: 0, maxSplits: count - 1, omittingEmptySubsequences: false).map { Data($0) }
    }
}
