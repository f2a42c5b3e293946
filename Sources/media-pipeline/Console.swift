import Foundation
import MediaPipeline
import Synchronization

/// Where the CLI's text goes: people's text to stderr, `--json` events to stdout. Everything
/// passes through the redactor first.
final class Console: Sendable {
    let redactor: Redactor
    let level: LogLevel
    private let lock = Mutex(())

    init(redactor: Redactor, level: LogLevel) {
        self.redactor = redactor
        self.level = level
    }

    func err(_ text: String) { write(text, to: FileHandle.standardError) }
    func out(_ text: String) { write(text, to: FileHandle.standardOutput) }

    private func write(_ text: String, to handle: FileHandle) {
        let line = redactor.redact(text) + "\n"
        lock.withLock { _ in handle.write(Data(line.utf8)) }
    }

    /// Shows a name from a file system or archive safely: control, bidi and invisible characters
    /// become escapes, so a name can neither forge a log line nor hide its real extension.
    static func escape(_ name: String) -> String {
        var out = ""
        for scalar in name.unicodeScalars {
            let v = scalar.value
            let unsafe = v < 0x20 || v == 0x7F || (0x80...0x9F).contains(v) || (0x200B...0x200F).contains(v)
                || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v) || v == 0xFEFF || v == 0x2028 || v == 0x2029
            out += unsafe ? String(format: "\\u{%04X}", v) : String(scalar)
        }
        return out
    }
}

/// Stage messages to stderr, at or above the chosen level.
struct ConsoleLogger: Logger {
    let console: Console

    func log(_ level: LogLevel, _ message: String) {
        guard level >= console.level else { return }
        let tag = level == .debug ? "debug" : level == .info ? "info" : level == .warning ? "warning" : "error"
        console.err("\(tag): \(Console.escape(message))")
    }
}
