public import Foundation
public import MediaPipeline

/// An archive named on the command line as a sequence of inputs: each entry is extracted into
/// the work folder only when the runner is ready for it, and named `course.zip!/path/in/archive`.
public struct ArchiveInputs: InputSequence {
    private let path: String
    private let parentFolder: URL
    private let workFolder: URL
    private let limits: ArchiveLimits
    private var reader: ArchiveReader?
    private var failure: Reason?
    private var current: InputFile?

    /// Opens the archive (running its pre-scan); a whole-archive refusal becomes one rejected row.
    /// Entries are extracted into a new folder of their own under `workFolder`.
    public init(path: String, workFolder: URL, limits: ArchiveLimits) {
        self.path = path
        self.parentFolder = workFolder
        self.limits = limits
        self.workFolder = workFolder.appendingPathComponent("archive-\(UUID().uuidString.prefix(8).lowercased())")
        do {
            try FileManager.default.createDirectory(at: self.workFolder, withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o700])
            reader = try ArchiveReader(path: path, workFolder: self.workFolder, limits: limits)
        } catch {
            failure = error as? Reason ?? Reason(.archiveCorrupt, "\(error)")
        }
    }

    public var count: Int? { reader?.entryCount ?? 1 }
    public var bytes: Int64? { nil }

    public mutating func next() -> InputCandidate? {
        current = nil
        if let failure {
            self.failure = nil
            reader = nil
            return .rejected(source: path, reason: failure)
        }
        guard let reader else { return nil }
        do {
            guard let entry = try reader.next() else {
                self.reader = nil
                return nil
            }
            switch entry {
            case let .rejected(name, reason):
                return .rejected(source: "\(path)!/\(name)", reason: reason)
            case let .file(name, bytes, modified):
                let file = InputFile(source: "\(path)!/\(name)", url: workFolder.appendingPathComponent("not-extracted"), relativePath: name, bytes: bytes,
                                     modified: modified?.timeIntervalSince1970, container: path, temporary: true)
                current = file
                return .file(file)
            }
        } catch {
            // The rest of the archive cannot be read: say so once, and end it.
            self.reader = nil
            return .rejected(source: "\(path)!/…", reason: error as? Reason ?? Reason(.archiveCorrupt, "\(error)"))
        }
    }

    public func reopened() -> (any InputSequence)? {
        ArchiveInputs(path: path, workFolder: parentFolder, limits: limits)
    }

    public mutating func materialize() throws -> InputFile {
        guard var file = current, let reader else { throw Reason(.archiveCorrupt, "no entry to extract") }
        file.url = try reader.extract()
        current = nil
        return file
    }
}
