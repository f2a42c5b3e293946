import Foundation
import LocalMedia
import MediaPipeline
import Synchronization
import TestSupport
import Testing

struct ClassifyTests {
    static let table: [(file: String, mime: String, kind: AssetKind)] = [
        ("photo.jpg", "image/jpeg", .image),
        ("small.png", "image/png", .image),
        ("photo.webp", "image/webp", .image),
        ("anim.gif", "image/gif", .image),
        ("drawing.svg", "image/svg+xml", .image),
        ("data.xml", "text/xml", .other),
        ("doc.pdf", "application/pdf", .document),
        ("doc.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", .document),
        ("sheet.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", .document),
        ("slides.pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation", .document),
        ("text.odt", "application/vnd.oasis.opendocument.text", .document),
        ("book.epub", "application/epub+zip", .document),
        ("plain.zip", "application/zip", .archive),
        ("clip.mp4", "video/mp4", .video),
        ("clip.webm", "video/webm", .video),
        ("sound.mp3", "audio/mpeg", .audio),
        ("notes.txt", "text/plain", .document),
        ("lesson.png", "text/html", .other),
        ("really-a-pdf.jpg", "application/pdf", .document),
    ]

    @Test("the type comes from the content, container-aware", arguments: table)
    func sniffsContent(_ file: String, _ mime: String, _ kind: AssetKind) throws {
        let url = try TestFiles.fixture(file)
        let sniffed = try LocalInspector().sniffMIME(of: url)
        #expect(sniffed == mime)
        #expect(AssetKind(mime: sniffed) == kind)
    }

    @Test func heicBrandsAreRecognised() throws {
        let url = try TestFiles.fixture("heic.heic")
        try #require(FileManager.default.fileExists(atPath: url.path), "heif-enc (libheif-examples) makes this fixture")
        #expect(try LocalInspector().sniffMIME(of: url) == "image/heic")
        // The brand decides it even when libmagic would not know it.
        var ftyp = Data([0, 0, 0, 24]) + Data("ftypmif1".utf8) + Data([0, 0, 0, 0]) + Data("mif1heic".utf8)
        ftyp += Data(repeating: 0, count: 16)
        #expect(ContentSniffer.isoBrand(ftyp) == "image/heic")
    }

    @Test func theHeaderIsReadWithoutDecodingAndFactsAreCachedOnce() throws {
        let inspector = CountingInspector()
        let asset = Asset(source: "rotated.jpg", file: try TestFiles.fixture("rotated.jpg"), relativePath: "rotated.jpg",
                          purpose: nil, inspector: inspector)
        let header = try #require(try asset.imageHeader())
        #expect(header.format == "jpeg")
        #expect(header.width == 80 && header.height == 40)
        #expect(header.orientation == 6)
        _ = try asset.imageHeader()
        _ = try asset.mime()
        #expect(inspector.calls == 2)  // one sniff, one header
        let expected = Shell.run("/usr/bin/sha256sum", [asset.file.path]).stdout.prefix(64)
        #expect(try asset.sha256() == String(expected))
    }

    @Test func aPixelBombHeaderIsReadCheaply() throws {
        let header = try #require(try LocalInspector().imageHeader(of: try TestFiles.fixture("bomb-header.png"), mime: "image/png"))
        #expect(header.width == 60_000 && header.height == 60_000)
        let frames = try #require(try LocalInspector().imageHeader(of: try TestFiles.fixture("frames.gif"), mime: "image/gif"))
        #expect(frames.pages == 500)
    }

    @Test func untrustedLoadersAreAllBlocked() throws {
        let operations = try Vips.untrustedOperations()
        let names = Set(operations.map(\.name))
        // Read from libvips at run time; these are among the ones 8.14 flags.
        #expect(names.isSuperset(of: ["ppmload", "svgload", "csvload", "vipsload", "radload", "pdfload"]), "\(names)")
        #expect(operations.allSatisfy { $0.blocked }, "not blocked: \(operations.filter { !$0.blocked }.map(\.name))")
        #expect(throws: VipsError.self) { try Vips.header(of: try TestFiles.fixture("vips.jpg")) }
    }
}

/// The standard inspector, counting sniff and header calls.
final class CountingInspector: AssetInspector {
    let inner = LocalInspector()
    private let count = Mutex(0)
    var calls: Int { count.withLock { $0 } }
    func sniffMIME(of file: URL) throws -> String { count.withLock { $0 += 1 }; return try inner.sniffMIME(of: file) }
    func imageHeader(of file: URL, mime: String) throws -> ImageHeader? { count.withLock { $0 += 1 }; return try inner.imageHeader(of: file, mime: mime) }
    func sha256(of file: URL) throws -> String { try inner.sha256(of: file) }
}

struct UntrustedLoaderTests {
    @Test("a format only an untrusted loader reads is blocked if it ever reaches libvips", arguments: ["ppm.jpg", "vips.jpg", "hdr.jpg", "pdf.jpg"])
    func blockedLoaderIsReported(_ file: String) throws {
        do {
            _ = try LocalInspector().imageHeader(of: try TestFiles.fixture(file), mime: "image/jpeg")
            Issue.record("\(file) was opened")
        } catch let reason as Reason {
            #expect(reason.code == .loaderBlocked, "\(reason)")
        }
    }
}
