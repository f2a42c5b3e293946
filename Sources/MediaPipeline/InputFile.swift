public import Foundation

/// One source file named on the command line or found in a folder.
public struct InputFile: Sendable, Equatable {
    /// The name people see and the manifest records.
    public var source: String
    public var url: URL
    /// The path inside the folder given (or the file name), matched by purpose rules.
    public var relativePath: String
    /// The size seen when the inputs were listed (for ordering and progress; stages stat again).
    public var bytes: Int64
    /// The modification time seen when listed (seconds since 1970), when known.
    public var modified: Double?
    /// The archive the file came out of, for entries of an archive named on the command line.
    public var container: String?
    /// True when the file was made for this run (an extracted archive entry): removed once done.
    public var temporary: Bool

    public init(source: String, url: URL, relativePath: String, bytes: Int64 = 0, modified: Double? = nil,
                container: String? = nil, temporary: Bool = false) {
        self.source = source
        self.url = url
        self.relativePath = relativePath
        self.bytes = bytes
        self.modified = modified
        self.container = container
        self.temporary = temporary
    }

    /// What the journal compares to tell whether the file changed since it was imported.
    public var stamp: SourceStamp { SourceStamp(bytes: bytes, modified: modified) }

    /// A problem with a path named on the command line.
    public struct NotFound: Error, CustomStringConvertible {
        public var path: String
        public var description: String { "\(path): no such file or folder" }
    }

    /// Files under each path: a file is itself, a folder is every regular file below it, in name order.
    /// Symbolic links are not followed, and hidden files (`.name`) are passed by.
    public static func expand(_ paths: [String]) throws -> [InputFile] {
        var out: [InputFile] = []
        let fm = FileManager.default
        for path in paths {
            var isFolder: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isFolder) else { throw NotFound(path: path) }
            let root = URL(fileURLWithPath: path)
            guard isFolder.boolValue else {
                // A relative path keeps its folders, so purpose rules like `videos/**` see them.
                let relative = path.hasPrefix("/") ? root.lastPathComponent
                    : path.replacingOccurrences(of: "^(\\./)+", with: "", options: .regularExpression)
                let attributes = try? fm.attributesOfItem(atPath: path)
                let size = (attributes?[.size] as? NSNumber)?.int64Value ?? 0
                let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970
                out.append(InputFile(source: path, url: root, relativePath: relative, bytes: size, modified: modified))
                continue
            }
            let keys: [URLResourceKey] = [.isRegularFileKey, .isSymbolicLinkKey, .fileSizeKey, .contentModificationDateKey]
            guard let walker = fm.enumerator(at: root, includingPropertiesForKeys: keys, options: [.skipsHiddenFiles]) else { continue }
            var found: [InputFile] = []
            let rootPath = root.standardizedFileURL.path
            for case let url as URL in walker {
                let values = try? url.resourceValues(forKeys: Set(keys))
                guard values?.isRegularFile == true, values?.isSymbolicLink != true else { continue }
                let full = url.standardizedFileURL.path
                let relative = full.hasPrefix(rootPath + "/") ? String(full.dropFirst(rootPath.count + 1)) : url.lastPathComponent
                let display = path.hasSuffix("/") ? path + relative : path + "/" + relative
                found.append(InputFile(source: display, url: url, relativePath: relative, bytes: Int64(values?.fileSize ?? 0),
                                       modified: values?.contentModificationDate?.timeIntervalSince1970))
            }
            out += found.sorted { $0.relativePath < $1.relativePath }
        }
        return out
    }
}

/// Inputs read one at a time: a list of files, or an archive's entries, each extracted only when
/// the runner is ready for it. The runner reads a sequence from one task.
public protocol InputSequence {
    /// How many inputs, when known before reading (for progress).
    var count: Int? { get }
    /// Their bytes together, when known before reading.
    var bytes: Int64? { get }
    /// The next input, or nil at the end. A `.file`'s content may not be on disk until `materialize()`.
    mutating func next() -> InputCandidate?
    /// Puts the current input's content on disk and returns the file with its final `url`.
    /// Throws `Reason` when the content cannot be had (an archive entry over a limit).
    mutating func materialize() throws -> InputFile
    /// The same inputs from the start, for a second pass over entries another worker held
    /// (nil when the inputs are files already on disk).
    func reopened() -> (any InputSequence)?
}

extension InputSequence {
    public func reopened() -> (any InputSequence)? { nil }
}

/// One item of an input sequence.
public enum InputCandidate: Sendable, Equatable {
    case file(InputFile)
    /// Refused before it became a file (an unsafe archive entry name, a whole archive over a limit).
    case rejected(source: String, reason: Reason)
}

/// Files already on disk, in the order given.
public struct InputList: InputSequence {
    private var files: ArraySlice<InputFile>
    private var current: InputFile?

    public init(_ files: [InputFile]) { self.files = files[...] }

    public var count: Int? { files.count + (current == nil ? 0 : 1) }
    public var bytes: Int64? { files.reduce(0) { $0 + $1.bytes } }

    public mutating func next() -> InputCandidate? {
        current = files.popFirst()
        return current.map(InputCandidate.file)
    }

    public mutating func materialize() throws -> InputFile { current! }
}
