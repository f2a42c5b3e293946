import Foundation
import MediaPipeline

/// `${VAR}`, `${VAR:-default}`, `${VAR:?message}` and `$${`, on a string alone and inside a
/// JSON document, which must agree.
enum InterpolationFuzz {
    static func run(_ data: Data) -> String {
        let fields = data.fields(2)
        var environment = ["HOME": "/home/course", "EMPTY": "", "CLOUDFLARE_API_TOKEN": "token"]
        if fields.count == 2 {
            for line in String(decoding: fields[0], as: UTF8.self).split(separator: "\n") {
                guard let equals = line.firstIndex(of: "=") else { continue }
                environment[String(line[..<equals])] = String(line[line.index(after: equals)...])
            }
        }
        let text = String(decoding: fields[fields.count - 1], as: UTF8.self)
        let interpolation = Interpolation(environment: environment)
        let result = interpolation.resolve(text)
        let supplied = interpolation.variables(suppliedTo: text)
        FuzzCheck.require(supplied.allSatisfy { environment[$0] != nil }, "a variable not in the environment was supplied")
        if !text.contains("$") { FuzzCheck.require(result == .success(text), "text without '$' changed") }

        var diagnostics = Diagnostics()
        let document = JSONValue.object([("stages", .array([.string(text)]))])
        let resolved = interpolation.resolve(document, path: "", diagnostics: &diagnostics)
        switch result {
        case let .success(value):
            FuzzCheck.require(!diagnostics.hasErrors, "the string resolves but the document does not")
            FuzzCheck.require(resolved == .object([("stages", .array([.string(value)]))]), "the document resolves differently")
            return "resolved"
        case let .failure(failure):
            FuzzCheck.require(diagnostics.hasErrors, "the string fails but the document does not")
            FuzzCheck.require(!failure.message.isEmpty && !failure.hint.isEmpty, "a failure without words")
            return "refused"
        }
    }
}
