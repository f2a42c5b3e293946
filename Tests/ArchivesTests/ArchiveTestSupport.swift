import Archives
import Foundation
import MediaPipeline
import Synchronization
import TestSupport

/// A test's folders under a fresh root: the archive goes in `in/`, extracted files in
/// `out/run/work/`, two levels down, so that a name climbing out with `../..` would still land
/// under the root, where `Snapshot` sees it.
struct Layout {
    let root: URL
    var input: URL { root.appendingPathComponent("in") }
    var work: URL { root.appendingPathComponent("out/run/work") }

    init(_ root: URL) throws {
        self.root = root
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }

    func archive(_ name: String) -> URL { input.appendingPathComponent(name) }

    /// Runs `script` with python3 after `Scripts.prelude`, with `in/` as its working folder.
    func python(_ script: String) throws {
        let result = Shell.run("/usr/bin/env", ["python3", "-c", Scripts.prelude + script], directory: input)
        guard result.status == 0 else {
            throw TestFiles.FixtureError(description: "python3 failed (\(result.status)): \(result.stderr)")
        }
    }
}

/// Everything one pass over an archive gave.
struct Extraction {
    /// Extracted files by entry name, with their bytes.
    var files: [String: Data] = [:]
    /// Entries `next()` refused, by printable name.
    var rejected: [String: ReasonCode] = [:]
    /// Files whose `extract()` threw, by name.
    var failed: [String: ReasonCode] = [:]
    /// Every name handed out, in order, file or not.
    var order: [String] = []
    var entryCount = 0
}

/// Reads every entry of `archive` and extracts every file.
func extractAll(_ archive: URL, into work: URL, limits: ArchiveLimits = ArchiveLimits()) throws -> Extraction {
    let reader = try ArchiveReader(path: archive.path, workFolder: work, limits: limits)
    var result = Extraction(entryCount: reader.entryCount)
    while let entry = try reader.next() {
        switch entry {
        case .rejected(let name, let reason):
            result.order.append(name)
            result.rejected[name] = reason.code
        case .file(let name, _, _):
            result.order.append(name)
            do {
                let url = try reader.extract()
                result.files[name] = try Data(contentsOf: url)
            } catch let reason as Reason {
                result.failed[name] = reason.code
            }
        }
    }
    return result
}

/// Every path under a root, and whether each absolute path an escape could reach exists.
struct Snapshot: Equatable {
    var paths: Set<String>
    var outside: [String: Bool]

    /// Paths outside the test root that the hostile archives aim at.
    static let targets = ["/tmp/abs_evil.txt", "/tmp/x.txt", "/tmp/y.txt", "/tmp/evil.txt", "/tmp/b.jpg"]

    init(_ root: URL) {
        paths = Set(TestFiles.listing(root))
        var facts = stat()
        outside = Dictionary(uniqueKeysWithValues: Self.targets.map { ($0, lstat($0, &facts) == 0) })
    }

    /// Paths that appeared since `before` outside the work folder (relative to the root).
    func newPaths(since before: Snapshot, outsideOf work: String = "out/run/work") -> [String] {
        paths.subtracting(before.paths).filter { $0 != work && !$0.hasPrefix(work + "/") }.sorted()
    }
}

/// The work folder holds only regular files named `entry-NNNNNN[.ext]`, each mode 0600.
func workFilesAreSafe(_ work: URL) -> Bool {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: work.path)) ?? []
    return names.allSatisfy { name in
        var facts = stat()
        guard lstat(work.appendingPathComponent(name).path, &facts) == 0 else { return false }
        return name.hasPrefix("entry-") && facts.st_mode & 0o170000 == 0o100000 && facts.st_mode & 0o7777 == 0o600
    }
}

/// Samples the largest file in a folder every half millisecond while it runs, to show that an
/// extraction never put more than its limit on disk.
final class PeakWatcher: Sendable {
    private let state = Mutex((peak: Int64(0), running: true))
    private let done = DispatchSemaphore(value: 0)

    init(_ folder: URL) {
        Thread { self.sample(folder) }.start()
    }

    private func sample(_ folder: URL) {
        while state.withLock({ $0.running }) {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [] {
                var facts = stat()
                if stat(folder.appendingPathComponent(name).path, &facts) == 0 {
                    state.withLock { $0.peak = max($0.peak, Int64(facts.st_size)) }
                }
            }
            usleep(500)
        }
        done.signal()
    }

    /// Stops sampling and returns the largest size seen.
    func stop() -> Int64 {
        state.withLock { $0.running = false }
        done.wait()
        return state.withLock { $0.peak }
    }
}

/// Python helpers the archive tests build their inputs with (bad-inputs.md's generator sketches
/// among them). Scripts run in the layout's `in/` folder.
enum Scripts {
    static let prelude = #"""
import io, os, struct, sys, tarfile, warnings, zipfile, zlib
warnings.simplefilter("ignore")  # zipfile warns about duplicate names, which D5 wants

def zip_files(path, items, compression=zipfile.ZIP_DEFLATED):
    """items: (name or ZipInfo, bytes)"""
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in items:
            z.writestr(name, data)

def unix_info(name, mode):
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info

def tar_files(path, items, mode="w"):
    """items: (name, bytes or None, dict of TarInfo fields)"""
    with tarfile.open(path, mode) as t:
        for name, data, fields in items:
            info = tarfile.TarInfo(name)
            for key, value in fields.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            else:
                t.addfile(info)

def patch_everywhere(path, old, new, count=2):
    b = open(path, "rb").read()
    assert b.count(old) == count, (old, b.count(old))
    open(path, "wb").write(b.replace(old, new))

def reorder_central(path, order):
    """Rewrites the central directory with its records in `order` (indices), data untouched."""
    b = open(path, "rb").read()
    end = b.rfind(b"PK\x05\x06")
    size, offset = struct.unpack_from("<II", b, end + 12)
    records, p = [], offset
    while p < offset + size:
        n, e, c = struct.unpack_from("<HHH", b, p + 28)
        records.append(b[p:p + 46 + n + e + c]); p += 46 + n + e + c
    open(path, "wb").write(b[:offset] + b"".join(records[i] for i in order) + b[end:])

# E2: after writing with zipfile, claim 100 bytes in both headers.
def lie_about_size(path):
    b = bytearray(open(path, "rb").read())
    struct.pack_into("<I", b, 22, 100)
    struct.pack_into("<I", b, b.find(b"PK\x01\x02") + 24, 100)
    open(path, "wb").write(bytes(b))

# E3: n central records share one local record.
def overlap_zip(path, n, size):
    data = b"\0" * size
    c = zlib.compressobj(9, zlib.DEFLATED, -15); comp = c.compress(data) + c.flush()
    crc, name = zlib.crc32(data) & 0xffffffff, b"kernel.bin"
    local = struct.pack("<IHHHHHIIIHH", 0x04034b50, 20, 0, 8, 0, 0, crc, len(comp), size, len(name), 0) + name + comp
    cd = b"".join(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 20, 20, 0, 8, 0, 0, crc, len(comp), size,
                              len(name), 0, 0, 0, 0, 0, 0) + name for _ in range(n))
    eocd = struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, n, n, len(cd), len(local), 0)
    open(path, "wb").write(local + cd + eocd)

# A zip written record by record: entries are (name, method, stream, crc, declared size).
def zip_records(path, entries):
    local, central, offset = b"", b"", 0
    for name, method, stream, crc, declared in entries:
        name = name.encode()
        header = struct.pack("<IHHHHHIIIHH", 0x04034b50, 20, 0, method, 0, 0x21, crc, len(stream), declared, len(name), 0)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 0x0314, 20, 0, method, 0, 0x21, crc, len(stream),
                               declared, len(name), 0, 0, 0, 0, 0o100644 << 16, offset) + name
        local += header + name + stream
        offset += len(header) + len(name) + len(stream)
    eocd = struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, len(entries), len(entries), len(central), offset, 0)
    open(path, "wb").write(local + central + eocd)

def stored(name, data):
    return (name, 0, data, zlib.crc32(data), len(data))

# E1: `mib` MiB of zeros, deflated. Each MiB is compressed once and flushed to a byte boundary
# with a fresh dictionary, so the same bytes repeat: the stream zipfile would write, in a second
# instead of the quarter minute zlib needs to deflate 1 GiB here.
def zeros(name, mib, declared=None):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(bytes(1 << 20), crc)
    return (name, 8, chunk * mib + c.flush(), crc, (mib << 20) if declared is None else declared)

# E5: n empty stored files, with the Zip64 end records a count over 65,535 needs.
def many_zip(path, n):
    local, central, offset = [], [], 0
    for i in range(n):
        name = b"f%06d" % i
        local.append(struct.pack("<IHHHHHIIIHH", 0x04034b50, 20, 0, 0, 0, 0x21, 0, 0, 0, len(name), 0) + name)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 20, 20, 0, 0, 0, 0x21, 0, 0, 0,
                                   len(name), 0, 0, 0, 0, 0, offset) + name)
        offset += 30 + len(name)
    cd = b"".join(central)
    record = struct.pack("<IQHHIIQQQQ", 0x06064b50, 44, 45, 45, 0, 0, n, n, len(cd), offset)
    locator = struct.pack("<IIQI", 0x07064b50, 0, offset + len(cd), 1)
    end = struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    open(path, "wb").write(b"".join(local) + cd + record + locator + end)

# E5: n empty files in a ustar, one header each (tarfile itself needs several seconds for this).
def many_tar(path, n):
    template = tarfile.TarInfo("f000000").tobuf(format=tarfile.USTAR_FORMAT)
    with open(path, "wb") as f:
        for i in range(n):
            h = bytearray(template)
            h[0:7] = b"f%06d" % i
            h[148:156] = b"        "
            h[148:156] = b"%06o\0 " % sum(h)
            f.write(h)
        f.write(bytes(1024))

"""#
}
