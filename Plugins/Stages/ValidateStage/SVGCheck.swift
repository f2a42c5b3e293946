import Foundation

/// Finds active content in an SVG by reading it as text: nothing is parsed or expanded, so an
/// entity bomb or an external entity costs nothing.
enum SVGCheck {
    /// SVGs larger than this are not inspected but refused.
    static let maxBytes = 10_000_000

    /// A description of the first active content found, or nil for a clean SVG.
    static func activeContent(in file: URL) throws -> String? {
        let data = try Data(contentsOf: file)
        guard data.count <= maxBytes else { return "SVG over \(maxBytes / 1_000_000) MB is not inspected" }
        let text = String(decoding: data, as: UTF8.self).lowercased()
        if text.contains("<!doctype") || text.contains("<!entity") { return "contains a DOCTYPE or ENTITY declaration" }
        if text.contains("<script") { return "contains a <script> element" }
        if text.contains("<foreignobject") { return "contains a <foreignObject> element" }
        if text.range(of: #"\son[a-z]+\s*="#, options: .regularExpression) != nil { return "contains an event handler attribute (on…=)" }
        if text.contains("javascript:") { return "contains a javascript: URL" }
        // Only same-document references (href="#id") are allowed.
        if text.range(of: #"href\s*=\s*["'][^#]"#, options: .regularExpression) != nil { return "references an external resource (href)" }
        if text.range(of: #"url\(\s*['"]?[^#'"\s)]"#, options: .regularExpression) != nil { return "references an external resource (url())" }
        if text.contains("@import") { return "imports an external stylesheet" }
        return nil
    }
}
