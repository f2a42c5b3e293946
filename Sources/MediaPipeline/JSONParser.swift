import Foundation

/// Reads JSON text into a `JSONValue`, noting the line each object key and array item starts on,
/// so a value in a merged pipeline can be traced back to `file:line`.
struct JSONParser {
    /// The text is not JSON; `offset` is the byte where reading stopped.
    struct Failure: Error, CustomStringConvertible {
        var message: String
        var offset: Int
        var description: String { "\(message) at byte \(offset)" }
    }

    private let bytes: [UInt8]
    private var index = 0
    private var line = 1
    private let nestingLimit = 512
    /// JSON path (`stages[2].options.maxDimension`) → 1-based line of its key or item.
    private(set) var lines: [String: Int] = [:]

    init(_ data: Data) {
        bytes = Array(data)
    }

    /// The whole text as one value; anything but whitespace after it is an error.
    mutating func parseDocument() throws(Failure) -> JSONValue {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }  // a UTF-8 byte order mark
        let value = try parseValue(path: "", depth: 0)
        skipSpace()
        guard index == bytes.count else { throw fail("unexpected text after the JSON value") }
        return value
    }

    private func fail(_ message: String) -> Failure { Failure(message: message, offset: index) }

    private mutating func skipSpace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x0A: line += 1; index += 1
            case 0x20, 0x09, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func parseValue(path: String, depth: Int) throws(Failure) -> JSONValue {
        skipSpace()
        guard depth < nestingLimit else { throw fail("nested too deeply") }
        guard index < bytes.count else { throw fail("unexpected end of text") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject(path: path, depth: depth)
        case UInt8(ascii: "["): return try parseArray(path: path, depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default: return .number(try parseNumber())
        }
    }

    private mutating func literal(_ word: String) throws(Failure) {
        let utf8 = Array(word.utf8)
        guard bytes[index...].starts(with: utf8) else { throw fail("unexpected character") }
        index += utf8.count
    }

    private mutating func expect(_ byte: UInt8) -> Bool {
        skipSpace()
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    private mutating func parseObject(path: String, depth: Int) throws(Failure) -> JSONValue {
        index += 1
        var pairs: [String: JSONValue] = [:]
        if !expect(UInt8(ascii: "}")) {
            repeat {
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a quoted key") }
                let keyLine = line
                let key = try parseString()
                guard expect(UInt8(ascii: ":")) else { throw fail("expected ':' after a key") }
                let child = JSONPath.child(path, key)
                lines[child] = keyLine
                pairs[key] = try parseValue(path: child, depth: depth + 1)
            } while expect(UInt8(ascii: ","))
            guard expect(UInt8(ascii: "}")) else { throw fail("expected ',' or '}'") }
        }
        // Keys come out sorted so diagnostics are stable; a repeated key keeps its last value.
        return .object(pairs.keys.sorted().map { ($0, pairs[$0]!) })
    }

    private mutating func parseArray(path: String, depth: Int) throws(Failure) -> JSONValue {
        index += 1
        var items: [JSONValue] = []
        if !expect(UInt8(ascii: "]")) {
            repeat {
                skipSpace()
                let child = JSONPath.index(path, items.count)
                lines[child] = line
                items.append(try parseValue(path: child, depth: depth + 1))
            } while expect(UInt8(ascii: ","))
            guard expect(UInt8(ascii: "]")) else { throw fail("expected ',' or ']'") }
        }
        return .array(items)
    }

    private mutating func parseString() throws(Failure) -> String {
        index += 1
        var out: [UInt8] = []
        while true {
            guard index < bytes.count else { throw fail("unterminated string") }
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: out, as: UTF8.self) else { throw fail("a string is not valid UTF-8") }
                return text
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { throw fail("unterminated string") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"): out += try unicodeEscape()
                default: throw fail("unknown escape '\\\(Character(Unicode.Scalar(escape)))'")
                }
            case 0x00..<0x20:
                throw fail("a control character inside a string (write it as an escape)")
            default:
                out.append(byte)
            }
        }
    }

    /// The UTF-8 bytes of `\uXXXX`, joining a surrogate pair when one follows.
    private mutating func unicodeEscape() throws(Failure) -> [UInt8] {
        var unit = try hex4()
        if (0xD800..<0xDC00).contains(unit) {
            guard bytes[index...].starts(with: [UInt8(ascii: "\\"), UInt8(ascii: "u")]) else { throw fail("a lone surrogate escape") }
            index += 2
            let low = try hex4()
            guard (0xDC00..<0xE000).contains(low) else { throw fail("a lone surrogate escape") }
            unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00..<0xE000).contains(unit) {
            throw fail("a lone surrogate escape")
        }
        guard let scalar = Unicode.Scalar(unit) else { throw fail("an invalid \\u escape") }
        return Array(String(Character(scalar)).utf8)
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        let digits = bytes[index..<min(index + 4, bytes.count)]
        guard digits.count == 4, digits.allSatisfy({ Character(Unicode.Scalar($0)).isHexDigit }),
              let value = UInt32(String(decoding: digits, as: UTF8.self), radix: 16)
        else { throw fail("expected four hex digits after \\u") }
        index += 4
        return value
    }

    private mutating func parseNumber() throws(Failure) -> Double {
        let start = index
        func digits(_ parser: inout JSONParser) -> Int {
            let from = parser.index
            while parser.index < parser.bytes.count, (0x30...0x39).contains(parser.bytes[parser.index]) { parser.index += 1 }
            return parser.index - from
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        let integer = digits(&self)
        guard integer > 0 else { index = start; throw fail("unexpected character") }
        if integer > 1, bytes[index - integer] == UInt8(ascii: "0") { throw fail("a number with a leading zero") }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits(&self) > 0 else { throw fail("expected digits after '.'") }
        }
        if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits(&self) > 0 else { throw fail("expected digits in the exponent") }
        }
        guard let value = Double(String(decoding: bytes[start..<index], as: UTF8.self)), value.isFinite
        else { throw fail("a number out of range") }
        return value
    }
}
