#!/usr/bin/env python3
"""Binary builders for media-pipeline test inputs and the example course.

Python stdlib only, plus the `vips` command for `photo` and `ffmpeg` for
`video` and `tone`. Every builder is deterministic: fixed zip timestamps,
no dates in documents, seeded noise, bit-exact ffmpeg output.

Used by Tests/Fixtures/make-fixtures.sh and examples/make-course.sh:

    python3 fixtures.py COMMAND OUT [ARGS...] [+ COMMAND OUT [ARGS...]]...

'+' chains several commands in one Python start. Run without arguments
for the list of commands.
"""

import os
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from xml.sax.saxutils import escape

# Fixed timestamp for every zip entry, so rebuilt archives are byte-identical.
ZIP_TIME = (2024, 1, 1, 0, 0, 0)


# --------------------------------------------------------------------------
# Zip containers


def write_zip(path, entries):
    """entries: list of (name, bytes|str, stored?) kept in this order.

    Order matters: ODT/EPUB need `mimetype` first and uncompressed, and
    `file` recognises OOXML from the names of the first three entries.
    """
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, stored in entries:
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # Unix, whatever the host
            zf.writestr(info, data)


XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
DOC_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
OOXML_CT = "application/vnd.openxmlformats-officedocument."


def _rels(*targets):
    """Relationships part; targets are (type suffix, target path)."""
    rows = "".join(
        f'<Relationship Id="rId{i}" Type="{DOC_REL}/{kind}" Target="{target}"/>'
        for i, (kind, target) in enumerate(targets, 1))
    return f'{XML_DECL}<Relationships xmlns="{REL_NS}">{rows}</Relationships>'


def write_ooxml(path, main_part, parts):
    """Office Open XML package: [Content_Types].xml, _rels/.rels, then parts.

    parts: list of (name, xml, content type or None for .rels files); the
    first one is the main document the package relationship points at.
    """
    overrides = "".join(
        f'<Override PartName="/{name}" ContentType="{OOXML_CT}{ctype}"/>'
        for name, _, ctype in parts if ctype)
    types = (f'{XML_DECL}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
             '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
             f'<Default Extension="xml" ContentType="application/xml"/>{overrides}</Types>')
    entries = [("[Content_Types].xml", types, False),
               ("_rels/.rels", _rels(("officeDocument", main_part)), False)]
    entries += [(name, xml, False) for name, xml, _ in parts]
    write_zip(path, entries)


W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx(path, *paragraphs):
    paragraphs = paragraphs or ("Hello from media-pipeline.",)
    body = "".join(f"<w:p><w:r><w:t>{escape(p)}</w:t></w:r></w:p>" for p in paragraphs)
    doc = f'{XML_DECL}<w:document xmlns:w="{W_NS}"><w:body>{body}</w:body></w:document>'
    write_ooxml(path, "word/document.xml", [
        ("word/document.xml", doc, "wordprocessingml.document.main+xml")])


S_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def xlsx(path):
    rows = [("Lesson", "Minutes"), ("Intro", "12"), ("Basics", "25")]
    cells = ""
    for r, row in enumerate(rows, 1):
        cs = "".join(
            f'<c r="{col}{r}"><v>{v}</v></c>' if v.isdigit() else
            f'<c r="{col}{r}" t="inlineStr"><is><t>{escape(v)}</t></is></c>'
            for col, v in zip("AB", row))
        cells += f'<row r="{r}">{cs}</row>'
    sheet = f'{XML_DECL}<worksheet xmlns="{S_NS}"><sheetData>{cells}</sheetData></worksheet>'
    book = (f'{XML_DECL}<workbook xmlns="{S_NS}" xmlns:r="{DOC_REL}"><sheets>'
            '<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>')
    write_ooxml(path, "xl/workbook.xml", [
        ("xl/workbook.xml", book, "spreadsheetml.sheet.main+xml"),
        ("xl/_rels/workbook.xml.rels", _rels(("worksheet", "worksheets/sheet1.xml")), None),
        ("xl/worksheets/sheet1.xml", sheet, "spreadsheetml.worksheet+xml")])


A_NS = "http://schemas.openxmlformats.org/drawingml/2006/main"
P_NS = "http://schemas.openxmlformats.org/presentationml/2006/main"
P_ROOT = f'xmlns:a="{A_NS}" xmlns:r="{DOC_REL}" xmlns:p="{P_NS}"'
# An empty shape tree: every slide, layout and master needs one.
SP_TREE_HEAD = ('<p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr>'
                '<p:grpSpPr/>')


def _theme():
    """Smallest theme PowerPoint accepts: 12 colours, fonts, 3 of each style."""
    names = ["dk1", "lt1", "dk2", "lt2"] + [f"accent{i}" for i in range(1, 7)] + ["hlink", "folHlink"]
    hexes = ["000000", "FFFFFF", "1F497D", "EEECE1", "4F81BD", "C0504D", "9BBB59",
             "8064A2", "4BACC6", "F79646", "0000FF", "800080"]
    colours = "".join(f'<a:{n}><a:srgbClr val="{h}"/></a:{n}>' for n, h in zip(names, hexes))
    font = '<a:latin typeface="Calibri"/><a:ea typeface=""/><a:cs typeface=""/>'
    fill = '<a:solidFill><a:schemeClr val="phClr"/></a:solidFill>'
    line = f'<a:ln w="9525">{fill}</a:ln>'
    effect = "<a:effectStyle><a:effectLst/></a:effectStyle>"
    return (f'{XML_DECL}<a:theme xmlns:a="{A_NS}" name="Plain"><a:themeElements>'
            f'<a:clrScheme name="Plain">{colours}</a:clrScheme>'
            f'<a:fontScheme name="Plain"><a:majorFont>{font}</a:majorFont>'
            f'<a:minorFont>{font}</a:minorFont></a:fontScheme>'
            f'<a:fmtScheme name="Plain"><a:fillStyleLst>{fill * 3}</a:fillStyleLst>'
            f'<a:lnStyleLst>{line * 3}</a:lnStyleLst>'
            f'<a:effectStyleLst>{effect * 3}</a:effectStyleLst>'
            f'<a:bgFillStyleLst>{fill * 3}</a:bgFillStyleLst></a:fmtScheme>'
            '</a:themeElements></a:theme>')


def pptx(path, title="media-pipeline"):
    text_box = ('<p:sp><p:nvSpPr><p:cNvPr id="2" name="Title"/><p:cNvSpPr txBox="1"/><p:nvPr/></p:nvSpPr>'
                '<p:spPr><a:xfrm><a:off x="914400" y="914400"/><a:ext cx="7315200" cy="1371600"/></a:xfrm>'
                '<a:prstGeom prst="rect"><a:avLst/></a:prstGeom></p:spPr>'
                f'<p:txBody><a:bodyPr/><a:lstStyle/><a:p><a:r><a:rPr lang="en-US"/><a:t>{escape(title)}'
                '</a:t></a:r></a:p></p:txBody></p:sp>')
    slide = (f'{XML_DECL}<p:sld {P_ROOT}><p:cSld><p:spTree>{SP_TREE_HEAD}{text_box}</p:spTree></p:cSld>'
             '<p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sld>')
    layout = (f'{XML_DECL}<p:sldLayout {P_ROOT}><p:cSld name="Blank"><p:spTree>{SP_TREE_HEAD}</p:spTree>'
              '</p:cSld><p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sldLayout>')
    master = (f'{XML_DECL}<p:sldMaster {P_ROOT}><p:cSld><p:spTree>{SP_TREE_HEAD}</p:spTree></p:cSld>'
              '<p:clrMap bg1="lt1" tx1="dk1" bg2="lt2" tx2="dk2" accent1="accent1" accent2="accent2" '
              'accent3="accent3" accent4="accent4" accent5="accent5" accent6="accent6" hlink="hlink" '
              'folHlink="folHlink"/><p:sldLayoutIdLst><p:sldLayoutId id="2147483649" r:id="rId1"/>'
              '</p:sldLayoutIdLst></p:sldMaster>')
    pres = (f'{XML_DECL}<p:presentation {P_ROOT}>'
            '<p:sldMasterIdLst><p:sldMasterId id="2147483648" r:id="rId1"/></p:sldMasterIdLst>'
            '<p:sldIdLst><p:sldId id="256" r:id="rId2"/></p:sldIdLst>'
            '<p:sldSz cx="9144000" cy="6858000"/><p:notesSz cx="6858000" cy="9144000"/></p:presentation>')
    pml = "presentationml."
    write_ooxml(path, "ppt/presentation.xml", [
        ("ppt/presentation.xml", pres, pml + "presentation.main+xml"),
        ("ppt/_rels/presentation.xml.rels", _rels(("slideMaster", "slideMasters/slideMaster1.xml"),
                                                  ("slide", "slides/slide1.xml"),
                                                  ("theme", "theme/theme1.xml")), None),
        ("ppt/slideMasters/slideMaster1.xml", master, pml + "slideMaster+xml"),
        ("ppt/slideMasters/_rels/slideMaster1.xml.rels",
         _rels(("slideLayout", "../slideLayouts/slideLayout1.xml"), ("theme", "../theme/theme1.xml")), None),
        ("ppt/slideLayouts/slideLayout1.xml", layout, pml + "slideLayout+xml"),
        ("ppt/slideLayouts/_rels/slideLayout1.xml.rels",
         _rels(("slideMaster", "../slideMasters/slideMaster1.xml")), None),
        ("ppt/slides/slide1.xml", slide, pml + "slide+xml"),
        ("ppt/slides/_rels/slide1.xml.rels", _rels(("slideLayout", "../slideLayouts/slideLayout1.xml")), None),
        ("ppt/theme/theme1.xml", _theme(), "theme+xml")])


def odt(path, text="Hello from media-pipeline."):
    mime = "application/vnd.oasis.opendocument.text"
    manifest = (f'{XML_DECL}<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
                'manifest:version="1.2">'
                f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{mime}"/>'
                '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
                '</manifest:manifest>')
    content = (f'{XML_DECL}<office:document-content '
               'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
               'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
               f'<office:body><office:text><text:p>{escape(text)}</text:p></office:text></office:body>'
               '</office:document-content>')
    # `mimetype` must be the first entry, stored, so readers can sniff it at byte 38.
    write_zip(path, [("mimetype", mime, True),
                     ("META-INF/manifest.xml", manifest, False),
                     ("content.xml", content, False)])


def epub(path, title="Course reader"):
    container = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                 '<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
                 '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
                 '</rootfiles></container>')
    opf = ('<?xml version="1.0" encoding="UTF-8"?>\n'
           '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid">'
           '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
           '<dc:identifier id="uid">urn:uuid:8d7c2f0e-3b1a-4c55-9a41-0c1e2d3f4a5b</dc:identifier>'
           f'<dc:title>{escape(title)}</dc:title><dc:language>en</dc:language>'
           '<meta property="dcterms:modified">2024-01-01T00:00:00Z</meta></metadata>'
           '<manifest><item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
           '<item id="ch1" href="ch1.xhtml" media-type="application/xhtml+xml"/></manifest>'
           '<spine><itemref idref="ch1"/></spine></package>')

    def page(body, extra_ns=""):
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
                f'<html xmlns="http://www.w3.org/1999/xhtml"{extra_ns}><head><title>{escape(title)}</title>'
                f'</head><body>{body}</body></html>')

    nav = page('<nav epub:type="toc"><ol><li><a href="ch1.xhtml">Chapter 1</a></li></ol></nav>',
               ' xmlns:epub="http://www.idpf.org/2007/ops"')
    ch1 = page("<h1>Chapter 1</h1><p>Hello from media-pipeline.</p>")
    write_zip(path, [("mimetype", "application/epub+zip", True),
                     ("META-INF/container.xml", container, False),
                     ("OEBPS/content.opf", opf, False),
                     ("OEBPS/nav.xhtml", nav, False),
                     ("OEBPS/ch1.xhtml", ch1, False)])


def plain_zip(path, *name_eq_text):
    """zip OUT NAME=TEXT ...  (default: two small text files)"""
    pairs = [a.split("=", 1) for a in name_eq_text] or [["a.txt", "first file\n"], ["b.txt", "second file\n"]]
    write_zip(path, [(name, text, False) for name, text in pairs])


# --------------------------------------------------------------------------
# PDF


def _pdf_text(s):
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf(path, *pages):
    """pdf OUT [PAGE...]: one page per argument; lines split on newlines, the
    first line of a page is drawn as a heading under a coloured band."""
    pages = pages or ("media-pipeline test document\nOne page, Helvetica text.",)
    objects = []  # object n is objects[n-1]

    def add(body):
        objects.append(body)
        return len(objects)

    catalog, pages_obj = add(None), add(None)
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids = []
    for i, page_text in enumerate(pages):
        lines = page_text.split("\n")
        ops = [f"0.{2 + i % 6} 0.4 0.7 rg 0 742 612 50 re f",  # title band, colour varies by page
               "BT 1 1 1 rg /F1 24 Tf 48 758 Td", f"({_pdf_text(lines[0])}) Tj ET",
               "BT 0 0 0 rg /F1 14 Tf 16 TL 48 700 Td"]
        ops += [f"({_pdf_text(line)}) '" for line in lines[1:]]
        ops += ["ET", f"BT /F1 9 Tf 540 30 Td (Page {i + 1}) Tj ET"]
        stream = "\n".join(ops).encode("latin-1")
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(add(f"<< /Type /Page /Parent {pages_obj} 0 R /MediaBox [0 0 612 792] "
                        f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {content} 0 R >>".encode()))
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_obj} 0 R >>".encode()
    objects[pages_obj - 1] = (f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] "
                              f"/Count {len(kids)} >>").encode()

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")  # binary comment marks the file as binary
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, catalog, xref)
    with open(path, "wb") as f:
        f.write(out)


# --------------------------------------------------------------------------
# PNG


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(path, width, height, colour_type, idat):
    """colour_type 0 = grey, 2 = RGB; idat = zlib data of the filtered rows."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def zlib_zeros(n, block=1 << 20):
    """zlib stream of n zero bytes, without compressing all n of them.

    After Z_FULL_FLUSH, deflate restarts on a byte boundary with an empty
    history, so every further block of zeros compresses to the same bytes:
    compress one block, repeat it, then add a final block and the Adler-32
    checksum of the whole input. (400 MB: 0.3 s instead of 3 s.)
    """
    full, rest = divmod(n, block)
    if full < 2:
        return zlib.compress(bytes(n), 9)
    zeros = bytes(block)
    co = zlib.compressobj(9)
    first = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)  # zlib header + one block
    repeat = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    if not first.endswith(repeat):  # some other zlib build: compress everything
        co = zlib.compressobj(9)
        return b"".join(co.compress(zeros) for _ in range(full)) + co.compress(bytes(rest)) + co.flush()
    last = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: the final block only
    tail = last.compress(bytes(rest)) + last.flush()
    adler = 1
    for _ in range(full):
        adler = zlib.adler32(zeros, adler)
    adler = zlib.adler32(bytes(rest), adler)
    return first + repeat * (full - 1) + tail + struct.pack(">I", adler)


def png_bomb(path, width, height, rows):
    """B1/B2: an all-zero greyscale PNG declaring WIDTHxHEIGHT but holding
    ROWS rows of pixel data (ROWS=HEIGHT gives a complete, valid image)."""
    width, height, rows = int(width), int(height), int(rows)
    # Each row is a filter byte (0) and `width` zero pixels: all zeros.
    write_png(path, width, height, 0, zlib_zeros(rows * (width + 1)))


def diagram(path, width=480, height=320):
    """A flat RGB 'diagram': three boxes joined by arrows, like a course figure."""
    width, height = int(width), int(height)
    px = bytearray(b"\xf8\xf8\xf4" * width * height)

    def rect(x0, y0, x1, y1, rgb):
        for y in range(max(0, y0), min(height, y1)):
            px[(y * width + x0) * 3:(y * width + x1) * 3] = bytes(rgb) * (x1 - x0)

    bw, bh, top = width // 5, height // 4, height // 3
    for i, colour in enumerate([(66, 114, 196), (237, 125, 49), (112, 173, 71)]):
        x = width // 16 + i * (bw + width // 8)
        rect(x - 3, top - 3, x + bw + 3, top + bh + 3, (40, 40, 40))  # border
        rect(x, top, x + bw, top + bh, colour)
        if i < 2:  # arrow shaft and head to the next box
            ax = x + bw + 3
            rect(ax, top + bh // 2 - 2, ax + width // 8 - 12, top + bh // 2 + 2, (40, 40, 40))
            for k in range(8):
                y = top + bh // 2
                rect(ax + width // 8 - 14 + k, y - 8 + k, ax + width // 8 - 13 + k, y + 8 - k, (40, 40, 40))
    raw = b"".join(b"\0" + bytes(px[y * width * 3:(y + 1) * width * 3]) for y in range(height))
    write_png(path, width, height, 2, zlib.compress(raw, 9))


# --------------------------------------------------------------------------
# GIF


def lzw_encode(pixels, min_code_size):
    """GIF LZW: variable-width codes (LSB first), clear code whenever the
    12-bit table fills up. pixels: bytes of palette indices."""
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1
    acc = nbits = 0
    out = bytearray()

    def emit(code, size):
        nonlocal acc, nbits
        acc |= code << nbits
        nbits += size
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8

    table, next_code, size = {}, clear + 2, min_code_size + 1
    emit(clear, size)
    prefix = pixels[0]  # code of the string matched so far
    for k in pixels[1:]:
        key = (prefix << 8) | k
        code = table.get(key)
        if code is not None:  # string + k is known: keep extending it
            prefix = code
            continue
        emit(prefix, size)
        if next_code == 4096:  # table full: restart so codes stay <= 12 bits
            emit(clear, size)
            table, next_code, size = {}, clear + 2, min_code_size + 1
        else:
            table[key] = next_code
            next_code += 1
            # The decoder adds this entry one code later, so widen only once
            # the newest code no longer fits in `size` bits.
            if next_code > (1 << size) and size < 12:
                size += 1
        prefix = k
    emit(prefix, size)
    emit(end, size)
    if nbits:
        out.append(acc & 0xFF)
    # Pack into data sub-blocks of at most 255 bytes, then a 0 terminator.
    blocks = b"".join(bytes([len(out[i:i + 255])]) + out[i:i + 255] for i in range(0, len(out), 255))
    return bytes([min_code_size]) + blocks + b"\0"


def write_gif(path, screen_w, screen_h, palette, frames, delay_cs=10):
    """palette: list of (r,g,b), at most 256; frames: list of (x, y, w, h, pixels)."""
    bits = max(1, (len(palette) - 1).bit_length())
    table = b"".join(bytes(c) for c in palette) + b"\0\0\0" * ((1 << bits) - len(palette))
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", screen_w, screen_h, 0xF0 | (bits - 1), 0, 0) + table)
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    for x, y, w, h, pixels in frames:
        out += b"\x21\xf9\x04\x00" + struct.pack("<H", delay_cs) + b"\x00\x00"  # graphic control
        out += b"\x2c" + struct.pack("<HHHHB", x, y, w, h, 0)  # image descriptor
        out += lzw_encode(pixels, max(2, bits))
    out += b"\x3b"
    with open(path, "wb") as f:
        f.write(out)


def gif_anim(path):
    """4 frames of 64x64: a red square moving across a blue background."""
    palette = [(30, 60, 160), (220, 40, 40), (250, 250, 250), (20, 20, 20)]
    frames = []
    for i in range(4):
        px = bytearray(64 * 64)  # all index 0 (blue)
        for y in range(20, 44):
            for x in range(4 + i * 14, 20 + i * 14):
                px[y * 64 + x] = 1
        px[i * 64:(i + 1) * 64] = b"\x03" * 64  # a dark line whose row shows the frame number
        frames.append((0, 0, 64, 64, bytes(px)))
    write_gif(path, 64, 64, palette, frames)


def gif_frame_bomb(path, size=2000, count=500):
    """B3: first frame SIZExSIZE, then COUNT-1 one-pixel frames. The first
    frame must really be full size: libvips sizes the canvas from frames."""
    size, count = int(size), int(count)
    frames = [(0, 0, size, size, bytes(size * size))]
    frames += [(0, 0, 1, 1, b"\0")] * (count - 1)
    write_gif(path, size, size, [(0, 0, 0), (255, 255, 255)], frames, delay_cs=2)


# --------------------------------------------------------------------------
# Photos (via the vips command line)


def photo(out, width, height, seed="1", grain="8"):
    """photo OUT W H [SEED] [GRAIN]: a textured, photo-like 3-band uchar image.

    Three Perlin layers of different scales (one per channel) give soft colour
    structure; Gaussian grain (sigma GRAIN levels, 0 = none) makes it compress
    like a real photo. OUT may carry vips save options ('x.jpg[Q=85]'); the
    file is saved with strip, so the only metadata is what the caller adds
    later (except that vips 8.14's WebP saver still writes a small EXIF
    chunk). Keep GRAIN low for PNGs.
    """
    w, h, seed, grain = str(width), str(height), int(seed), float(grain)
    base = max(8, min(int(w), int(h)) // 4)
    out = out[:-1] + ",strip]" if out.endswith("]") else out + "[strip]"

    def vips(*args):
        subprocess.run(["vips", *args], check=True)

    with tempfile.TemporaryDirectory() as tmp:
        layers = [os.path.join(tmp, f"p{i}.v") for i in range(3)]
        # Each vips start costs ~70 ms, so the independent generators run at once.
        jobs = [["perlin", layer, w, h, "--cell-size", str(max(4, base * (3 - i) // 3)),
                 "--seed", str(seed * 3 + i)] for i, layer in enumerate(layers)]
        if grain > 0:  # grain is in output levels; Perlin units are ~1/100 of that
            jobs.append(["gaussnoise", f"{tmp}/g.v", w, h, "--sigma", str(grain / 100),
                         "--mean", "0", "--seed", str(seed)])
        procs = [subprocess.Popen(["vips", *job]) for job in jobs]
        if any([p.wait() != 0 for p in procs]):  # a list: wait for every one
            sys.exit(f"photo: a vips generator failed for {out}")
        vips("bandjoin", " ".join(layers), f"{tmp}/rgb.v")
        src = f"{tmp}/rgb.v"
        if grain > 0:
            vips("add", src, f"{tmp}/g.v", f"{tmp}/grain.v")
            src = f"{tmp}/grain.v"
        # Perlin is roughly -1..1: map each channel to its own mid-tone;
        # --uchar clips to 0..255 and the savers treat 3-band uchar as sRGB.
        vips("linear", src, out, "110 95 85", "120 135 110", "--uchar")


# --------------------------------------------------------------------------
# Video and audio (via ffmpeg)

# No creation times, no encoder version tags, one thread: byte-identical reruns.
FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
BITEXACT = ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
            "-flags:a", "+bitexact", "-threads", "1"]


def video(out, size="160x120", seconds="1", audio="no"):
    """video OUT [WxH] [SECONDS] [audio]: ffmpeg test pattern (plus a 440 Hz
    tone with 'audio'); .mp4 = H.264/AAC, .webm = VP8/Vorbis."""
    args = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate=10"]
    if audio == "audio":
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    args += ["-t", seconds, "-pix_fmt", "yuv420p"]
    if out.endswith(".webm"):
        args += ["-c:v", "libvpx", "-b:v", "200k", "-deadline", "good", "-cpu-used", "4", "-c:a", "libvorbis"]
    else:
        args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-c:a", "aac", "-b:a", "48k"]
    subprocess.run(FFMPEG + args + BITEXACT + [out], check=True)


def tone(out, seconds="1"):
    """tone OUT [SECONDS]: 440 Hz sine; .mp3 = MP3 64 kb/s, else 16-bit PCM (.wav)."""
    codec = ["-c:a", "libmp3lame", "-b:a", "64k"] if out.endswith(".mp3") else ["-c:a", "pcm_s16le"]
    subprocess.run(FFMPEG + ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
                   + codec + BITEXACT + [out], check=True)


# --------------------------------------------------------------------------

COMMANDS = {
    "photo": photo, "pdf": pdf, "docx": docx, "xlsx": xlsx, "pptx": pptx, "odt": odt,
    "epub": epub, "zip": plain_zip, "png-bomb": png_bomb, "diagram": diagram,
    "gif-anim": gif_anim, "gif-frame-bomb": gif_frame_bomb, "video": video, "tone": tone,
}


def main(argv):
    """Runs one command, or several separated by '+' (one Python start for all)."""
    commands, current = [], []
    for arg in argv + ["+"]:
        if arg == "+":
            commands.append(current)
            current = []
        else:
            current.append(arg)
    for cmd in commands:
        if len(cmd) < 2 or cmd[0] not in COMMANDS:
            sys.exit("usage: fixtures.py COMMAND OUT [ARGS...] [+ COMMAND OUT [ARGS...]]...\n"
                     "commands: " + ", ".join(COMMANDS))
    for name, *args in commands:
        COMMANDS[name](*args)


if __name__ == "__main__":
    main(sys.argv[1:])
