import Foundation

/// Byte sizes and pixel counts as written in pipeline.json: `50MB`, `1.5GiB`, `250MP`, or a plain number.
public enum Quantity {
    private static let byteUnits: [(suffix: String, factor: Double)] = [
        ("KiB", 1024), ("MiB", 1024 * 1024), ("GiB", 1024 * 1024 * 1024), ("TiB", 1024 * 1024 * 1024 * 1024),
        ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("B", 1),
    ]

    /// Bytes from `"50MB"` (decimal), `"50MiB"` (binary) or a whole number.
    public static func bytes(_ text: String) -> Int64? {
        parse(text, units: byteUnits)
    }

    /// Pixels from `"250MP"` (10^6 pixels each) or a whole number.
    public static func pixels(_ text: String) -> Int64? {
        parse(text, units: [("MP", 1e6)])
    }

    /// Seconds from `"250ms"`, `"2s"`, `"5min"`, `"1h"` or a plain number of seconds.
    public static func seconds(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        for (suffix, factor) in [("ms", 0.001), ("min", 60.0), ("h", 3600.0), ("s", 1.0)] where trimmed.hasSuffix(suffix) {
            guard let value = Double(trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), value >= 0, value.isFinite
            else { return nil }
            return value * factor
        }
        guard let value = Double(trimmed), value >= 0, value.isFinite else { return nil }
        return value
    }

    private static func parse(_ text: String, units: [(suffix: String, factor: Double)]) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        for unit in units where trimmed.hasSuffix(unit.suffix) {
            let number = trimmed.dropLast(unit.suffix.count).trimmingCharacters(in: .whitespaces)
            guard let value = Double(number), value >= 0, value.isFinite else { return nil }
            let result = (value * unit.factor).rounded()
            return result < 9.2e18 ? Int64(result) : nil
        }
        guard let value = Int64(trimmed), value >= 0 else { return nil }
        return value
    }

    /// A short human form of a byte count: `812 KB`, `4.5 MB`.
    public static func describe(bytes: Int64) -> String {
        let b = Double(bytes)
        if b < 1e3 { return "\(bytes) B" }
        if b < 1e6 { return String(format: "%.0f KB", b / 1e3) }
        if b < 1e9 { return String(format: "%.1f MB", b / 1e6) }
        return String(format: "%.2f GB", b / 1e9)
    }

    /// A short human form of a duration: `800ms`, `12s`, `5min`, `72h`.
    public static func describe(seconds: Double) -> String {
        if seconds < 1 { return String(format: "%.0fms", seconds * 1000) }
        if seconds < 120 { return String(format: seconds == seconds.rounded() ? "%.0fs" : "%.1fs", seconds) }
        if seconds < 7200 { return String(format: "%.0fmin", seconds / 60) }
        return String(format: "%.0fh", seconds / 3600)
    }
}
