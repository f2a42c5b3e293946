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

    public init(source: String, url: URL, relativePath: String, bytes: Int64 = 0) {
        self.source = source
        self.url = url
        self.relativePath = relativePath
        self.bytes = bytes
    }

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
                let size = (try? fm.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0
                out.append(InputFile(source: path, url: root, relativePath: relative, bytes: size))
                continue
            }
            let keys: [URLResourceKey] = [.isRegularFileKey, .isSymbolicLinkKey, .fileSizeKey]
            guard let walker = fm.enumerator(at: root, includingPropertiesForKeys: keys, options: [.skipsHiddenFiles]) else { continue }
            var found: [InputFile] = []
            let rootPath = root.standardizedFileURL.path
            for case let url as URL in walker {
                let values = try? url.resourceValues(forKeys: Set(keys))
                guard values?.isRegularFile == true, values?.isSymbolicLink != true else { continue }
                let full = url.standardizedFileURL.path
                let relative = full.hasPrefix(rootPath + "/") ? String(full.dropFirst(rootPath.count + 1)) : url.lastPathComponent
                let display = path.hasSuffix("/") ? path + relative : path + "/" + relative
                found.append(InputFile(source: display, url: url, relativePath: relative, bytes: Int64(values?.fileSize ?? 0)))
            }
            out += found.sorted { $0.relativePath < $1.relativePath }
        }
        return out
    }
}
