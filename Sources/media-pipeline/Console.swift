import Foundation
import MediaPipeline
import Synchronization

/// Where the CLI's text goes: people's text to stderr, `--json` events to stdout. Everything
/// passes through the redactor first.
final class Console: Sendable {
    let redactor: Redactor
    let level: LogLevel
    /// The status line now shown at the bottom of the terminal, if any.
    private let lock = Mutex<String?>(nil)

    init(redactor: Redactor, level: LogLevel) {
        self.redactor = redactor
        self.level = level
    }

    func err(_ text: String) { write(text, to: FileHandle.standardError) }
    func out(_ text: String) { write(text, to: FileHandle.standardOutput) }

    /// Whether stderr is a terminal (a status line can be redrawn in place).
    static var stderrIsTerminal: Bool { isatty(2) == 1 }

    private func write(_ text: String, to handle: FileHandle) {
        let line = redactor.redact(text) + "\n"
        lock.withLock { status in
            // A line for stderr goes above the status line, which is drawn again under it.
            guard let status, handle === FileHandle.standardError else {
                handle.write(Data(line.utf8))
                return
            }
            FileHandle.standardError.write(Data(("\r\u{1B}[2K" + line + status).utf8))
        }
    }

    /// Shows `text` as the status line on stderr, redrawn in place; nil clears it.
    func status(_ text: String?) {
        lock.withLock { status in
            guard text != nil || status != nil else { return }
            let shown = text.map(redactor.redact)
            status = shown
            FileHandle.standardError.write(Data(("\r\u{1B}[2K" + (shown ?? "")).utf8))
        }
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
