import Archives
import Foundation
import MediaPipeline

/// The paths named on the command line as input sequences: files and folders (large files first),
/// then each archive, whose entries are extracted under `work` one at a time.
struct Inputs {
    var files: [InputFile]
    var archives: [String]

    /// Sorts the paths into archives (by name, when they are files) and the rest, and lists the
    /// files of the rest. Throws for a path that does not exist.
    init(_ paths: [String]) throws {
        var plain: [String] = []
        archives = []
        for path in paths {
            var isFolder: ObjCBool = false
            if ArchiveReader.format(ofPath: path) != nil, FileManager.default.fileExists(atPath: path, isDirectory: &isFolder),
               !isFolder.boolValue {
                archives.append(path)
            } else {
                plain.append(path)
            }
        }
        files = try InputFile.expand(plain)
    }

    func sequences(work: URL, limits: PipelineLimits) -> [any InputSequence] {
        var archiveLimits = ArchiveLimits()
        archiveLimits.maxEntries = limits.maxEntriesPerArchive
        return [InputList(Runner.bigFilesFirst(files))]
            + archives.map { ArchiveInputs(path: $0, workFolder: work, limits: archiveLimits) }
    }

    /// The bytes of every input, when known before reading (not for archives).
    var bytes: Int64? { archives.isEmpty ? files.reduce(0) { $0 + $1.bytes } : nil }
}
