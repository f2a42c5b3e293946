#!/usr/bin/env python3
"""Writes the fuzz seeds under Tests/Fuzz/Seeds/<target>/: small, hand-made inputs, each aimed
at one branch of its parser. Binary seeds are built here so the bytes can be read as code;
run it again after changing it and commit the result (it rewrites every seed)."""
import io
import os
import shutil
import struct
import zipfile
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Seeds")


def put(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def response(head, body=""):
    """An HTTP answer as the transport sees it: CRLF header lines, a blank line, the body."""
    return "\r\n".join(head) + "\r\n\r\n" + body


# pipeline: base file, NUL, overlay file, NUL, --set lines
MINIMAL = '{\n  "version": 1,\n  "stages": [\n    {"kind": "validate"}\n  ]\n}\n'


def pipeline():
    put("pipeline", "minimal.json", MINIMAL)
    with open(os.path.join(ROOT, "..", "..", "..", "pipeline.json"), "rb") as f:
        put("pipeline", "bundled.json", f.read())
    put("pipeline", "unclosed.json", '{"version": 1, "stages": [{"kind": "validate"}\n')
    put("pipeline", "unknown-key.json", '{"version": 1, "stagez": []}\n')
    put("pipeline", "wrong-version.json", '{"version": 2}')
    put("pipeline", "bom-and-escapes.json", "\ufeff" + '{"version": 1, "purposes": {"caf\\u00e9": {}}, "stages": []}')
    put("pipeline", "deep.json", '{"version": 1, "limits": ' + "[" * 40 + "]" * 40 + "}")
    overlay = '{"stages": [{"name": "thumbs", "kind": "classify", "after": "validate", "options": {"hash": false}}]}'
    put("pipeline", "overlay-and-set.bin", MINIMAL + "\0" + overlay + "\0" + "stages.thumbs.options.hash=true\nlimits\n")
    put("pipeline", "disabled-stage.bin",
        '{"version": 1, "stages": [{"kind": "validate"}, {"name": "r2", "kind": "cloudflare-r2", "options": {"prefix": "${R2_PREFIX}"}}]}'
        + "\0" + '{"stages": [{"name": "r2", "enabled": false}]}')


def interpolation():
    put("interpolation", "default.txt", "${COURSE:-intro}/${HOME}/lesson")
    put("interpolation", "unterminated.txt", "prefix ${COURSE")
    put("interpolation", "required.txt", "${MISSING:?set MISSING to the course id}")
    put("interpolation", "escaped.txt", "literal $${HOME} and $ alone and ${EMPTY:-fallback}")
    put("interpolation", "bad-name.txt", "${1COURSE} ${A-B}")
    put("interpolation", "environment.bin", "COURSE=intro\nEMPTY=\nR2_PREFIX=courses/${COURSE}\n\0${R2_PREFIX}/${COURSE}")


def entry_names():
    put("entry-names", "clean.txt", "dlessons/\nflessons/01/intro.mp4\nfimages/thumb.png")
    put("entry-names", "climb.txt", "fimages/a.png\nf../x")
    put("entry-names", "absolute.txt", "f/etc/passwd")
    put("entry-names", "backslash.txt", "f..\\..\\windows\\x.txt\nfC:notes.txt")
    put("entry-names", "bidi.bin", "finvoice\u202egnp.exe".encode())
    put("entry-names", "not-utf8.bin", b"fcaf\xe9.txt\nf\xc0\xaf.txt")
    put("entry-names", "case-duplicate.txt", "fA.jpg\nfa.JPG")
    put("entry-names", "nfd-duplicate.bin", "fcafe\u0301.txt\nfcaf\u00e9.txt".encode())
    put("entry-names", "through-link.txt", "lshared\nfshared/secret.txt")
    put("entry-names", "kinds.txt", "sfifo\nefile.enc\nd./\nf./lessons//./a.txt\nf")


def local_header(name, data):
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, zlib.crc32(data), len(data), len(data),
                       len(name), 0) + name + data


def central(name, data, offset, made_by=0x031E, attributes=0o100644 << 16):
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, made_by, 20, 0, 0, 0, 0, zlib.crc32(data), len(data),
                       len(data), len(name), 0, 0, 0, 0, attributes, offset) + name


def end(count, size, offset):
    return struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, size, offset, 0)


def zips():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        z.writestr("lessons/01/intro.txt", "hello\n")
        z.writestr("images/a.png", b"\x89PNG\r\n\x1a\n")
    two = buffer.getvalue()
    put("zip-directory", "two-files.zip", two)
    put("zip-directory", "empty.zip", end(0, 0, 0))
    put("zip-directory", "cut-short.zip", two[:-30])
    # Two central records pointing at one local header: one payload handed out twice.
    body = local_header(b"a.txt", b"AAAA")
    records = central(b"a.txt", b"AAAA", 0) + central(b"b.txt", b"AAAA", 0)
    put("zip-directory", "overlap.zip", body + records + end(2, len(records), len(body)))
    # Names the screen must refuse, with a directory and a symlink by their Unix modes.
    entries = [(b"../escape.txt", 0o100644), (b"dir/", 0o040755), (b"link", 0o120777), (b"x\x00.png", 0o100644)]
    body, records = b"", b""
    for name, mode in entries:
        records += central(name, b"z", len(body), attributes=mode << 16)
        body += local_header(name, b"z")
    put("zip-directory", "odd-names.zip", body + records + end(len(entries), len(records), len(body)))
    # An end record whose directory lies past the end of the file.
    put("zip-directory", "bad-offset.zip", end(1, 46, 4096))


def png(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\0" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def jpeg(orientation=None):
    """An 8×8 grey baseline JPEG, all one colour, with the standard luminance Huffman tables."""
    def segment(marker, data):
        return bytes([0xFF, marker]) + struct.pack(">H", len(data) + 2) + data
    out = b"\xff\xd8" + segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0")
    if orientation:
        tiff = b"MM\0\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + b"\0\0\0\0"
        out += segment(0xE1, b"Exif\0\0" + tiff)
    out += segment(0xDB, b"\0" + bytes([1] * 64))
    out += segment(0xC0, b"\x08" + struct.pack(">HH", 8, 8) + b"\x01\x01\x11\x00")
    dc_counts = bytes([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    out += segment(0xC4, b"\x00" + dc_counts + bytes(range(12)))
    ac_counts = bytes([0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D])
    ac_values = bytes.fromhex(
        "01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa")
    out += segment(0xC4, b"\x10" + ac_counts + ac_values)
    out += segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + b"\x2b" + b"\xff\xd9"
    return out


def classify():
    put("classify", "tiny.png", png(3, 2))
    put("classify", "tiny.gif", b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
                                b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
    put("classify", "tiny.jpg", jpeg())
    put("classify", "rotated.jpg", jpeg(orientation=6))
    put("classify", "cut-short.png", png(64, 64)[:60])
    put("classify", "text.txt", "Lesson notes\nline two\n")
    put("classify", "drawing.svg", '<?xml version="1.0"?>\n<!-- a comment -->\n<!DOCTYPE svg [<!ENTITY x "y">]>\n'
                                   '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>\n')
    put("classify", "heic-brand.bin", struct.pack(">I", 24) + b"ftypmif1\0\0\0\0mif1heic")
    put("classify", "webp-header.bin", b"RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0\x2f\0\0\0\x10\x07\x10\x11\x11\x88\x88\xfe\x07\0")
    put("classify", "tiff-header.bin", b"II*\0\x08\0\0\0\0\0")
    put("classify", "pdf.pdf", "%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<document/>")
    put("classify", "office.docx", buffer.getvalue())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("META-INF/container.xml", "<container/>")
    put("classify", "book.epub", buffer.getvalue())


def sigv4():
    put("sigv4", "plain-key.txt", "lessons/01/intro.mp4")
    put("sigv4", "query.bin", "lessons/a b+c.png\0uploadId=abc%2Fdef&partNumber=3&x&=v&uploads\0caf\u00e9  two  spaces")
    put("sigv4", "dots.txt", "a/./b/../../c//d/")
    put("sigv4", "unicode-key.bin", "images/caf\u00e9/\u65e5\u672c.png\0max-parts=1000&part-number-marker=7%zz")


def tus():
    put("tus-response", "created.txt", response(["HTTP/1.1 201 Created", "Location: https://upload.videodelivery.net/tus/abc123?tusv2=true",
                                                 "stream-media-id: abc123", "Tus-Resumable: 1.0.0"]))
    put("tus-response", "relative-location.txt", response(["HTTP/2 201", "location: /client/v4/accounts/account/stream/def456"]))
    put("tus-response", "head.txt", response(["HTTP/1.1 200 OK", "Upload-Offset: 1048576", "Upload-Length: 5242880",
                                              "Tus-Resumable: 1.0.0"]))
    put("tus-response", "continue-then-patch.txt", response(["HTTP/1.1 100 Continue", "", "HTTP/1.1 204 No Content",
                                                             "Upload-Offset: 5242880"]))
    put("tus-response", "rate-limited.txt", response(["HTTP/1.1 429 Too Many Requests", "Retry-After: 120"],
                                                     '{"success": false, "errors": [{"code": 971, "message": "slow down"}]}'))
    put("tus-response", "retry-date.txt", response(["HTTP/1.1 503 Service Unavailable", "Retry-After: Fri, 01 Jan 2027 00:01:00 GMT"]))


def s3():
    xml = '<?xml version="1.0" encoding="UTF-8"?>\n'
    put("s3-response", "initiate.txt", response(["HTTP/1.1 200 OK", "Content-Type: application/xml"],
        xml + "<InitiateMultipartUploadResult><Bucket>course-media</Bucket><Key>a.mp4</Key>"
              "<UploadId>2~abc&amp;def</UploadId></InitiateMultipartUploadResult>"))
    put("s3-response", "list-parts.txt", response(["HTTP/1.1 200 OK"],
        xml + "<ListPartsResult><PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>2</NextPartNumberMarker>"
              "<IsTruncated>true</IsTruncated>"
              "<Part><PartNumber>1</PartNumber><ETag>&quot;0CC175B9C0F1B6A831C399E269772661&quot;</ETag><Size>5242880</Size></Part>"
              "<Part><PartNumber>2</PartNumber><ETag>\"92eb5ffee6ae2fec3ad71c777531578f\"</ETag><Size>17</Size></Part>"
              "<Part><PartNumber>x</PartNumber></Part></ListPartsResult>"))
    put("s3-response", "slow-down.txt", response(["HTTP/1.1 503 Slow Down", "Retry-After: 3"],
        xml + "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"))
    put("s3-response", "complete.txt", response(["HTTP/1.1 200 OK", "ETag: \"3858f62230ac3c915f300c664312c11f-2\""],
        xml + "<CompleteMultipartUploadResult><ETag>&quot;3858f62230ac3c915f300c664312c11f-2&quot;</ETag></CompleteMultipartUploadResult>"))
    put("s3-response", "error-in-200.txt", response(["HTTP/1.1 200 OK"],
        "<Error><Code>InternalError</Code><Message>Authorization: AWS4 secret; please retry</Message></Error>"))
    put("s3-response", "no-such-upload.txt", response(["HTTP/1.1 404 Not Found"],
        "<Error><Code>NoSuchUpload</Code><Message><nested>&lt;b&gt;</nested></Message></Error>"))


def api():
    put("api-response", "success.txt", response(["HTTP/1.1 200 OK", "Content-Type: application/json"],
        '{"success": true, "errors": [], "result": {"uid": "abc", "readyToStream": true, "playback": {"hls": "https://x/y.m3u8"}}}'))
    put("api-response", "refused.txt", response(["HTTP/1.1 413 Payload Too Large"],
        '{"success": false, "errors": [{"code": 5413, "message": "Image too large, Bearer abc.def"}], "result": null}'))
    put("api-response", "transient.txt", response(["HTTP/1.1 200 OK"],
        '{"success": false, "errors": [{"code": 10001, "message": "try again"}, {"code": 1e400, "message": 7}]}'))
    put("api-response", "html.txt", response(["HTTP/1.1 502 Bad Gateway", "Content-Type: text/html"],
        "<html><body>bad gateway</body></html>"))
    put("api-response", "auth.txt", response(["HTTP/1.1 403 Forbidden"],
        '{"success": false, "errors": [{"code": 10000, "message": "Authentication error"}]}'))


if __name__ == "__main__":
    shutil.rmtree(ROOT, ignore_errors=True)
    for make in (pipeline, interpolation, entry_names, zips, classify, sigv4, tus, s3, api):
        make()
