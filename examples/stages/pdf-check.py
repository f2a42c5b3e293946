#!/usr/bin/env python3
"""pdf-check: an `exec` stage for media-pipeline (docs/stage-protocol.md).

For each PDF it counts the pages (the `pages` variable, shown in the manifest row) and refuses
a PDF that carries JavaScript or a launch action (`/JavaScript`, `/JS`, `/Launch`) with the
reason code `pdf_active_content`: course handouts have no need for either, and a viewer may run
them. Names are matched after their `#xx` escapes are decoded, in the file's bytes and inside its
compressed streams. Any other file is passed through untouched.

Python 3 standard library only. Use it from pipeline.json:

    { "name": "pdf-check", "kind": "exec", "when": { "kind": "document" },
      "options": { "command": ["python3", "examples/stages/pdf-check.py"], "timeout": "30s" } }
"""
import json
import mmap
import re
import sys
import zlib

PROTOCOL = 1
# Decompressed bytes looked at per file: enough for real handouts, bounded against zip bombs.
MAX_INFLATED = 64 * 1024 * 1024

ACTIVE = re.compile(rb"/(JavaScript|JS|Launch)(?![A-Za-z0-9_.#-])")
PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z0-9_.#-])")
COUNT = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b", re.S)
ESCAPED_NAME = re.compile(rb"/[^\s/<>\[\]()%{}]*#[0-9A-Fa-f]{2}[^\s/<>\[\]()%{}]*")
STREAM = re.compile(rb"stream\r?\n")


def unescape_names(data):
    """`/J#61vaScript` is `/JavaScript`: decode #xx inside names before matching."""
    return ESCAPED_NAME.sub(lambda m: re.sub(rb"#([0-9A-Fa-f]{2})", lambda h: bytes([int(h.group(1), 16)]), m.group(0)), data)


def inflated_streams(data):
    """The Flate streams of the file, decompressed, up to MAX_INFLATED bytes altogether."""
    budget = MAX_INFLATED
    for match in STREAM.finditer(data):
        end = data.find(b"endstream", match.end())
        if end < 0 or budget <= 0:
            break
        try:
            inflater = zlib.decompressobj()
            chunk = inflater.decompress(data[match.end():end], budget)
        except zlib.error:
            continue  # not Flate, or damaged: the raw bytes were scanned already
        budget -= len(chunk)
        yield chunk


def check(path):
    """(pages, active name or None) for the PDF at path."""
    with open(path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if f.seek(0, 2) else b""
    parts = [data] + list(inflated_streams(data))
    active, pages, counts = None, 0, []
    for part in parts:
        text = unescape_names(part) if part.find(b"#") >= 0 else part
        found = ACTIVE.search(text)
        if found and active is None:
            active = found.group(1).decode()
        pages += len(PAGE.findall(text))
        counts += [int(a or b) for a, b in COUNT.findall(text)]
    # Page objects inside compressed object streams are counted too; /Count is the fallback.
    return (pages or max(counts, default=0)), active


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(asset):
    ident = asset["id"]
    if asset.get("mime") != "application/pdf":
        return {"type": "continue", "id": ident}
    try:
        pages, active = check(asset["path"])
    except (OSError, ValueError) as error:
        return {"type": "reject", "id": ident, "code": "pdf_unreadable", "reason": "cannot read the PDF: %s" % error}
    if active:
        print("%s: refused, it holds /%s" % (asset["source"], active), file=sys.stderr, flush=True)
        return {"type": "reject", "id": ident, "code": "pdf_active_content",
                "reason": "the PDF holds /%s (scripts and launch actions are not allowed in course files)" % active}
    return {"type": "continue", "id": ident, "variables": {"pages": pages}}


def main():
    hello = json.loads(sys.stdin.readline() or "{}")
    if hello.get("type") != "hello" or hello.get("protocol") != PROTOCOL:
        print("expected hello with protocol %d, got %r" % (PROTOCOL, hello), file=sys.stderr)
        return 2
    send({"type": "ready", "protocol": PROTOCOL})
    for line in sys.stdin:  # one asset per line, until the tool closes stdin
        send(answer(json.loads(line)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
