import Foundation
import MediaPipeline

/// A command's flags and options, and a parser that reads them strictly.
struct CommandSpec {
    struct Option {
        var name: String
        /// The value's placeholder (`FILE`, `N`), or nil for a flag.
        var value: String?
        var help: String
        /// True when the option may be given more than once (each value is kept, in order).
        var repeats = false
    }

    var name: String
    var usage: String
    var abstract: String
    var options: [Option]
    var discussion: String = ""

    var help: String {
        var lines = ["USAGE: media-pipeline \(usage)", "", abstract]
        if !discussion.isEmpty { lines += ["", discussion] }
        let all = options + [Option(name: "help", value: nil, help: "Show this help.")]
        lines += ["", "OPTIONS:"]
        for option in all {
            let left = "  --\(option.name)" + (option.value.map { " \($0)" } ?? "") + (option.repeats ? " …" : "")
            lines.append(left.padding(toLength: max(left.count + 2, 28), withPad: " ", startingAt: 0) + option.help)
        }
        return lines.joined(separator: "\n")
    }
}

/// What the parser read from the command line.
struct ParsedArguments {
    var flags: Set<String> = []
    var values: [String: String] = [:]
    /// Every value of each option, in the order given, for options that repeat.
    var lists: [String: [String]] = [:]
    var positional: [String] = []

    func flag(_ name: String) -> Bool { flags.contains(name) }
    func value(_ name: String) -> String? { values[name] }
    func all(_ name: String) -> [String] { lists[name] ?? [] }
}

/// A mistake on the command line: exit 2, with the command's help named.
struct UsageError: Error, CustomStringConvertible {
    var description: String
}

extension CommandSpec {
    func parse(_ arguments: [String]) throws(UsageError) -> ParsedArguments {
        var parsed = ParsedArguments()
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            if argument == "--" { parsed.positional += rest; break }
            guard argument.hasPrefix("--") else {
                if argument.hasPrefix("-"), argument.count > 1 {
                    throw UsageError(description: "unknown option '\(argument)'; see 'media-pipeline \(name) --help'")
                }
                parsed.positional.append(argument)
                continue
            }
            var name = String(argument.dropFirst(2))
            var inline: String?
            if let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            if name == "help" { parsed.flags.insert("help"); continue }
            guard let option = options.first(where: { $0.name == name }) else {
                let hint = DidYouMeanWord.closest(name, options.map(\.name)).map { "; did you mean '--\($0)'?" } ?? ""
                throw UsageError(description: "unknown option '--\(name)'\(hint) See 'media-pipeline \(self.name) --help'.")
            }
            if option.value == nil {
                if inline != nil { throw UsageError(description: "--\(name) takes no value") }
                parsed.flags.insert(name)
            } else {
                guard let value = inline ?? rest.popFirst() else {
                    throw UsageError(description: "--\(name) needs a value (\(option.value!))")
                }
                parsed.values[name] = value
                parsed.lists[name, default: []].append(value)
            }
        }
        return parsed
    }
}


/// The did-you-mean of pipeline.json, reused for command-line options.
enum DidYouMeanWord {
    static func closest(_ word: String, _ candidates: [String]) -> String? {
        DidYouMean.suggestion(for: word, among: candidates)
    }
}
