import Foundation
public import HTTPTransport

/// A `multipart/form-data` body whose file part is read from disk as it is sent.
public struct FormData: Sendable {
    public let boundary: String
    public private(set) var pieces: [BodyPiece] = []

    public init() {
        boundary = "media-pipeline-" + UUID().uuidString.lowercased()
    }

    public var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    public mutating func field(_ name: String, _ value: String) {
        pieces.append(.bytes(Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(Self.quoted(name))\"\r\n\r\n\(value)\r\n".utf8)))
    }

    public mutating func file(_ name: String, filename: String, contentType: String, path: String, length: Int64) {
        pieces.append(.bytes(Data(("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(Self.quoted(name))\"; filename=\"\(Self.quoted(filename))\"\r\n"
            + "Content-Type: \(contentType)\r\n\r\n").utf8)))
        pieces.append(.file(path: path, offset: 0, length: length))
        pieces.append(.bytes(Data("\r\n".utf8)))
    }

    /// The body with its closing boundary.
    public var body: [BodyPiece] { pieces + [.bytes(Data("--\(boundary)--\r\n".utf8))] }

    /// Quotes and line breaks cannot end the header; non-ASCII names are kept as UTF-8.
    static func quoted(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "%22")
            .replacingOccurrences(of: "\r", with: "%0D").replacingOccurrences(of: "\n", with: "%0A")
    }
}
