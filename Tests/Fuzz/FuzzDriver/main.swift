// media-pipeline-fuzz TARGET [ARGS…]
//
// Built with -DFUZZING and the sanitizer flags by bench/fuzz.sh, it hands ARGS to libFuzzer
// (corpus folders, -max_total_time, …) and feeds every input to TARGET. Built plainly, it runs
// each file named in ARGS through TARGET once and prints what the target made of it, to
// replay a crash input without the instrumented build.
import FuzzTargets
import Foundation

let arguments = CommandLine.arguments
guard arguments.count >= 2, let target = FuzzTarget.named(arguments[1]) else {
    let names = FuzzTarget.all.map { "  \($0.name): \($0.summary)" }.joined(separator: "\n")
    FileHandle.standardError.write(Data("usage: media-pipeline-fuzz TARGET [ARGS…]\ntargets:\n\(names)\n".utf8))
    exit(64)
}

#if FUZZING
/// libFuzzer's entry when the program keeps its own `main` (libclang_rt.fuzzer_no_main).
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzer(_ argc: UnsafeMutablePointer<Int32>,
               _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ body: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// The target libFuzzer's callback runs; set once, before libFuzzer starts.
enum Selected {
    nonisolated(unsafe) static var target: FuzzTarget?
}
Selected.target = target

// libFuzzer sees the program name and ARGS, not TARGET.
var cArguments: [UnsafeMutablePointer<CChar>?] = ([arguments[0]] + arguments.dropFirst(2)).map { strdup($0) } + [nil]
var count = Int32(cArguments.count - 1)
let status = cArguments.withUnsafeMutableBufferPointer { buffer in
    var argv = buffer.baseAddress
    return runFuzzer(&count, &argv) { bytes, size in
        let input = bytes.map { Data(bytes: $0, count: size) } ?? Data()
        _ = Selected.target?.run(input)
        return 0
    }
}
exit(status)
#else
var failed = false
for path in arguments.dropFirst(2) {
    guard let input = FileManager.default.contents(atPath: path) else {
        FileHandle.standardError.write(Data("media-pipeline-fuzz: cannot read \(path)\n".utf8))
        failed = true
        continue
    }
    print("\(path): \(target.run(input))")
}
exit(failed ? 1 : 0)
#endif
