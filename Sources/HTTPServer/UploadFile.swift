import Foundation
import Glibc

/// A request body on its way to disk: created 0600 with a unique name, removed when its request ends.
final class UploadFile {
    let url: URL
    private var descriptor: Int32
    private var removed = false

    init(in directory: URL) throws(UploadError) {
        url = directory.appendingPathComponent("upload-\(UUID().uuidString)")
        descriptor = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw UploadError("cannot create \(url.path): \(String(cString: strerror(errno)))") }
    }

    /// Appends all `count` bytes, retrying short writes and interrupted calls.
    func append(_ bytes: UnsafeRawPointer, count: Int) throws(UploadError) {
        var offset = 0
        while offset < count {
            let written = write(descriptor, bytes + offset, count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw UploadError("cannot write \(url.path): \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }

    /// Closes the file so the handler reads everything written; a failing close loses data, so it throws.
    func finish() throws(UploadError) {
        guard descriptor >= 0 else { return }
        let result = close(descriptor)
        descriptor = -1
        if result != 0 { throw UploadError("cannot close \(url.path): \(String(cString: strerror(errno)))") }
    }

    func remove() {
        if descriptor >= 0 { close(descriptor); descriptor = -1 }
        if !removed { unlink(url.path); removed = true }
    }

    deinit { remove() }
}

/// Why a body could not be stored.
struct UploadError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
