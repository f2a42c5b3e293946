#!/usr/bin/env python3
"""A fake of the Cloudflare API v4 (Images, Stream, live inputs, token verify) for tests.

Python 3.11 standard library only. Start it, read the one line `READY <port>` from
stdout, then talk HTTP (or HTTPS with --tls-cert/--tls-key) to 127.0.0.1:<port>:

    python3 cloudflare_fake.py --token TOKEN --account ACCOUNT [--port 0]
        [--host 127.0.0.1] [--data-dir DIR] [--tls-cert PEM --tls-key PEM]
        [--ready-after N] [--stream-page N]

API routes live under /client/v4 and answer in Cloudflare's JSON envelope. Every API
request is checked (no chunked bodies, no `Expect: 100-continue`, bearer token,
account id) and logged. Uploaded bytes go to files under the data folder, read in
pieces of at most 1 MiB with a running SHA-256, never held whole in memory (Images
uploads, at most ~10 MB, are the one exception).

Routes (A = /client/v4/accounts/{account}):
    GET  /client/v4/user/tokens/verify, A/tokens/verify      wrong token: 401 code 1000
    POST A/images/v1                    multipart upload (5400 5413 5415 5455 5409)
    GET|DELETE A/images/v1/{id}         id may hold raw or %2F-encoded slashes (5404)
    GET  A/images/v1/stats
    POST A/images/v2/direct_upload      draft + uploadURL -> POST /upload/fakehash/{id} (no auth); expiry
                                        (RFC 3339) must lie now+2 min .. now+6 h
    POST A/stream                       tus creation (Tus-Resumable) or basic multipart (<= 200 MB)
    POST A/stream?direct_user=true      tus creation for a direct creator: maxDurationSeconds (1-21600) and
                                        optional expiry in Upload-Metadata; Location /upload/tus/{uid} takes
                                        HEAD and PATCH without auth
    POST A/stream/direct_upload         JSON {maxDurationSeconds (1-21600), expiry?, meta?, creator?}:
                                        {uid, uploadURL} -> one POST /upload/stream/{uid} (no auth), file <= 200 MB
    HEAD|PATCH A/stream/tus/{uid}       tus offset / data, with Cloudflare's chunk rules
    GET  A/stream                       list: status, creator, search (in meta.name), start (created at or
                                        after), end (before), asc; at most --stream-page (1000) per call
    GET|DELETE A/stream/{uid}           (10003 = not found)
    POST|GET A/stream/live_inputs, GET|DELETE A/stream/live_inputs/{uid}
One-time upload URLs (/upload/...) take no token and are not checked for expiry.
Other error codes: 9999 chunked body, 9998 Expect refused, 9997 bad Content-Length,
10000 auth/account, 10005 Stream request problems, 7003 no route, 7001 wrong method,
10001 injected faults (default) and internal errors of the fake.

Control endpoints (no auth, not logged, never faulted):
    GET  /__fake/state   images, videos and live inputs as the fake holds them
    GET  /__fake/log     every API request seen so far
    GET  /__fake/faults  the fault rules and their remaining actions
    POST /__fake/faults  {"rules":[{"method","path"(regex),"actions":[...]}]} adds rules; a rule may
                         also take "probability" (0-1), "seed" (int) and "repeat" (bool), see the README
    POST /__fake/reset   forgets state, log and fault rules

The process stops on SIGTERM/SIGINT, or when its parent process goes away.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import email.message
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import signal
import socket
import socketserver
import ssl
import struct
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import quote, unquote

import fault_draws  # the fault-rule draws the fakes share (this folder)

PIECE = 1 << 20                      # largest read from a socket or file at once
IMAGE_MAX = 10_000_000               # Images file limit
IMAGE_BODY_MAX = IMAGE_MAX + 64 * 1024
IMAGE_SIDE_MAX = 12_000
IMAGE_AREA_MAX = 100_000_000
IMAGE_TYPES = {"image/jpeg", "image/png", "image/webp", "image/gif", "image/svg+xml", "image/heic"}
IMAGE_TYPE_MESSAGE = ("Uploaded image must have image/jpeg, image/png, image/webp, image/gif "
                      "or image/svg+xml content-type")
BASIC_MAX = 200_000_000              # Stream basic (non-tus) upload limit
TUS_MAX_LENGTH = 30_000_000_000
TUS_MIN_CHUNK, TUS_MAX_CHUNK, TUS_GRAIN = 5_242_880, 209_715_200, 262_144
JSON_BODY_MAX = 1 << 20
IMAGE_EXPIRY_MIN, IMAGE_EXPIRY_MAX = 120, 21_600    # Images direct upload expiry: now+2 min .. now+6 h
DIRECT_EXPIRY_DEFAULT = 1800         # both direct upload kinds default to now+30 min
MAX_DURATION_MAX = 21_600            # Stream direct uploads: maxDurationSeconds 1 .. 21600
DELIVERY = "https://imagedelivery.net/fakehash"
CUSTOMER = "https://customer-fake.cloudflarestream.com"
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# tus metadata keys that are settings, not user metadata
TUS_SETTING_KEYS = {"requiresignedurls", "scheduleddeletion", "allowedorigins", "thumbnailtimestamppct",
                    "watermark", "maxdurationseconds", "expiry"}
IMAGE_FORM_FIELDS = {"metadata", "requireSignedURLs", "id", "expiry"}
FAULT_KEYS = {"status", "echo_headers", "reset_after_bytes", "commit_then_drop", "redirect", "delay"}


class ApiError(Exception):
    """An error answer: HTTP status plus one envelope error."""

    def __init__(self, status: int, code: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class Dropped(Exception):
    """The connection is to be aborted without an answer."""


def iso_now(millis: bool = False, micros: bool = False) -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    text = now.strftime("%Y-%m-%dT%H:%M:%S")
    if micros:
        return f"{text}.{now.microsecond:06d}Z"
    return f"{text}.{now.microsecond // 1000:03d}Z" if millis else text + "Z"


def envelope(result=None, errors=(), messages=(), **extra) -> dict:
    body = {"success": not errors, "errors": list(errors), "messages": list(messages), "result": result}
    body.update(extra)
    return body


def error_body(code: int, message: str) -> dict:
    return envelope(None, errors=[{"code": code, "message": message}])


# --------------------------------------------------------------------------
# multipart/form-data

class Part(NamedTuple):
    name: str | None
    filename: str | None
    content_type: str
    start: int                       # body of the part is buf[start:end]
    end: int


def header_params(name: str, value: str) -> email.message.Message:
    msg = email.message.Message()
    msg[name] = value
    return msg


def multipart_boundary(content_type: str) -> bytes | None:
    """The boundary of a multipart/form-data Content-Type, or None for any other type."""
    msg = header_params("Content-Type", content_type)
    boundary = msg.get_param("boundary")
    if msg.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        return None
    return boundary.encode("latin-1") if 0 < len(boundary) <= 70 else None


def parse_part_headers(block: bytes) -> tuple[str | None, str | None, str]:
    msg = email.message.Message()
    for line in block.decode("utf-8", "replace").split("\r\n"):
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError("malformed part header")
        msg[name.strip()] = value.strip()
    disposition = msg.get("Content-Disposition")
    if disposition is None:
        raise ValueError("part without Content-Disposition")
    params = header_params("Content-Disposition", disposition)
    name = params.get_param("name", header="content-disposition")
    return (name if isinstance(name, str) else None, params.get_filename(),
            msg.get("Content-Type", "").strip())


class FileView:
    """The bits of the bytes API parse_multipart uses (find, slices), over a file read 1 MiB at a time."""

    def __init__(self, fd: int, size: int):
        self.fd, self.size = fd, size

    def __getitem__(self, span: slice) -> bytes:
        start, stop, _ = span.indices(self.size)
        return os.pread(self.fd, max(0, stop - start), start)

    def find(self, sub: bytes, start: int = 0) -> int:
        for pos in range(start, self.size, PIECE):
            hit = os.pread(self.fd, PIECE + len(sub) - 1, pos).find(sub)
            if hit >= 0:
                return pos + hit
        return -1


def parse_multipart(buf, boundary: bytes) -> list[Part]:
    """Find the parts of a form body held in bytes or a FileView (only headers are copied)."""
    delim = b"--" + boundary
    if buf[:len(delim)] == delim:
        pos = len(delim)
    else:
        first = buf.find(b"\r\n" + delim)
        if first < 0:
            raise ValueError("no multipart boundary found")
        pos = first + 2 + len(delim)
    parts = []
    while True:
        if buf[pos:pos + 2] == b"--":
            return parts
        eol = buf.find(b"\r\n", pos)
        head_end = buf.find(b"\r\n\r\n", eol) if eol >= 0 else -1
        if eol < 0 or eol - pos > 256 or buf[pos:eol].strip() or head_end < 0 or head_end - eol > 16384:
            raise ValueError("malformed multipart part")
        name, filename, content_type = parse_part_headers(buf[eol + 2:head_end]) if head_end > eol \
            else (None, None, "")
        start = head_end + 4
        end = buf.find(b"\r\n" + delim, start)
        if end < 0:
            raise ValueError("unterminated multipart body")
        parts.append(Part(name, filename, content_type, start, end))
        pos = end + 2 + len(delim)


# --------------------------------------------------------------------------
# Image sniffing: format and pixel size from the first bytes

def sniff_image(data: bytes) -> tuple[str, int | None, int | None] | None:
    """(format, width, height) of an image; None for bytes that are no supported image."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ("png", *struct.unpack(">II", data[16:24])) if data[12:16] == b"IHDR" else None
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return ("gif", *struct.unpack("<HH", data[6:10]))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return webp_size(data)
    if data[:3] == b"\xff\xd8\xff":
        return jpeg_size(data)
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis",
                                                 b"mif1", b"msf1"):
        return heic_size(data)
    text = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    return ("svg", None, None) if text.lstrip(b" \t\r\n")[:1] == b"<" else None


def webp_size(d: bytes):
    chunk = d[12:16]
    if chunk == b"VP8 " and len(d) >= 30 and d[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", d[26:30])
        return "webp", w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(d) >= 25 and d[20] == 0x2F:
        bits = int.from_bytes(d[21:25], "little")
        return "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(d) >= 30:
        return "webp", int.from_bytes(d[24:27], "little") + 1, int.from_bytes(d[27:30], "little") + 1
    return None


def jpeg_size(d: bytes):
    """Walk the JPEG segments up to the first SOF marker."""
    i = 2
    while i + 9 <= len(d):
        if d[i] != 0xFF:
            return None
        while i < len(d) and d[i] == 0xFF:
            i += 1
        marker = d[i] if i < len(d) else 0xD9
        i += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            continue
        if marker in (0xD9, 0xDA) or i + 7 > len(d):
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", d[i + 3:i + 7])
            return "jpeg", w, h
        i += struct.unpack(">H", d[i:i + 2])[0]
    return None


def heic_size(d: bytes):
    """The largest `ispe` (image spatial extents) box; size unknown if there is none."""
    best, pos = None, d.find(b"ispe")
    while 0 <= pos and pos + 16 <= len(d):
        w, h = struct.unpack(">II", d[pos + 8:pos + 16])
        if best is None or w * h > best[0] * best[1]:
            best = (w, h)
        pos = d.find(b"ispe", pos + 4)
    return ("heic", *best) if best else ("heic", None, None)


# --------------------------------------------------------------------------
# Records

@dataclass
class Image:
    id: str
    meta: dict
    require_signed: bool
    draft: bool
    uploaded: str
    filename: str | None = None
    content_type: str | None = None
    size: int = 0
    sha256: str | None = None
    path: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    expiry: str | None = None


@dataclass
class Video:
    uid: str
    kind: str                        # "tus" or "basic"
    length: int
    path: str
    meta: dict
    upload_metadata: dict
    require_signed: bool = False
    creator: str | None = None
    created: str = field(default_factory=lambda: iso_now(micros=True))
    modified: str = field(default_factory=iso_now)
    offset: int = 0
    hasher: object = field(default_factory=hashlib.sha256)
    completed_at: str | None = None
    gets: int = 0                    # GETs of the video since it completed
    chunk_violations: list = field(default_factory=list)
    patch_sizes: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    direct: str | None = None        # direct creator upload: "basic" or "tus"
    max_duration: int | None = None
    upload_expiry: str | None = None


def image_object(img: Image) -> dict:
    obj = {"id": img.id, "filename": img.filename, "meta": dict(img.meta), "uploaded": img.uploaded,
           "requireSignedURLs": img.require_signed,
           "variants": [f"{DELIVERY}/{img.id}/public", f"{DELIVERY}/{img.id}/thumbnail"], "draft": img.draft}
    if img.draft:
        del obj["filename"]
    return obj


def video_status(v: Video, ready_after: int) -> tuple[str, str, bool]:
    """(state, pctComplete, readyToStream): ready on the ready_after-th GET after completion."""
    if v.completed_at is None:
        return "pendingupload", "0", False
    if v.gets >= ready_after:
        return "ready", "100", True
    return ("queued", "0", False) if v.gets == 0 else ("inprogress", str(100 * v.gets // ready_after), False)


def video_object(v: Video, ready_after: int) -> dict:
    state, pct, ready = video_status(v, ready_after)
    base = f"{CUSTOMER}/{v.uid}"
    return {"uid": v.uid, "creator": v.creator, "thumbnail": f"{base}/thumbnails/thumbnail.jpg",
            "thumbnailTimestampPct": 0, "readyToStream": ready, "readyToStreamAt": v.completed_at if ready else None,
            "status": {"state": state, "pctComplete": pct, "errorReasonCode": "", "errorReasonText": ""},
            "meta": dict(v.meta), "created": v.created, "modified": v.modified, "uploaded": v.completed_at,
            "uploadExpiry": v.upload_expiry, "size": v.length, "preview": f"{base}/watch", "allowedOrigins": [],
            "requireSignedURLs": v.require_signed, "scheduledDeletion": None, "maxDurationSeconds": v.max_duration,
            "duration": -1, "input": {"width": -1, "height": -1},
            "playback": {"hls": f"{base}/manifest/video.m3u8", "dash": f"{base}/manifest/video.mpd"}}


def new_live_input(body: dict) -> dict:
    def key() -> str:
        return secrets.token_hex(16) + "k" + secrets.token_hex(16)
    recording = {"mode": "off", "requireSignedURLs": False, "allowedOrigins": None,
                 "timeoutSeconds": 0, "hideLiveViewerCount": False}
    recording.update(body.get("recording") or {})
    now, uid, srt_id = iso_now(), secrets.token_hex(16), secrets.token_hex(16)
    return {"uid": uid, "created": now, "modified": now, "meta": body.get("meta") or {},
            "recording": recording, "deleteRecordingAfterDays": body.get("deleteRecordingAfterDays"),
            "rtmps": {"url": "rtmps://live.cloudflare.com:443/live/", "streamKey": key()},
            "rtmpsPlayback": {"url": "rtmps://live.cloudflare.com:443/live/", "streamKey": key()},
            "srt": {"url": "srt://live.cloudflare.com:778", "streamId": srt_id, "passphrase": key()},
            "srtPlayback": {"url": "srt://live.cloudflare.com:778", "streamId": "play" + srt_id,
                            "passphrase": key()},
            "webRTC": {"url": f"{CUSTOMER}/{key()}/webRTC/publish"},
            "webRTCPlayback": {"url": f"{CUSTOMER}/{key()}/webRTC/play"}, "status": None}


# --------------------------------------------------------------------------
# State: everything the fake remembers, behind one lock

class State:
    def __init__(self, data_dir: str, ready_after: int, stream_page: int = 1000):
        self.data_dir, self.ready_after, self.stream_page = data_dir, ready_after, stream_page
        self.lock = threading.Lock()
        for sub in ("images", "videos", "spool"):
            os.makedirs(os.path.join(data_dir, sub), exist_ok=True)
        self.images: dict[str, Image] = {}
        self.videos: dict[str, Video] = {}
        self.live_inputs: dict[str, dict] = {}
        self.log: list[dict] = []
        self.rules: list[dict] = []

    def new_path(self, kind: str, name: str | None = None) -> str:
        return os.path.join(self.data_dir, kind, (name or uuid.uuid4().hex) + ".bin")

    def reset(self) -> None:
        with self.lock:
            paths = [i.path for i in self.images.values()] + [v.path for v in self.videos.values()]
            self.images, self.videos, self.live_inputs, self.log, self.rules = {}, {}, {}, [], []
        for path in paths:
            if path and os.path.exists(path):
                os.unlink(path)

    # log and faults
    def add_log(self, entry: dict) -> None:
        with self.lock:
            self.log.append(entry)

    def add_rules(self, rules: list[dict]) -> None:
        with self.lock:
            for r in rules:
                rule = {"method": r.get("method", "*"), "path": r.get("path", ""), "actions": list(r["actions"])}
                if "probability" in r or r.get("repeat"):
                    # Only rules that use these keys show them, so the listing of plain rules is as before.
                    rule.update(fault_draws.probabilistic(r.get("probability", 1), r.get("seed", 0), r.get("repeat", False)))
                self.rules.append(rule)

    def take_fault(self, method: str, path: str) -> dict | None:
        with self.lock:
            for rule in self.rules:
                if rule["actions"] and rule["method"].upper() in ("*", method) and re.search(rule["path"], path):
                    action = fault_draws.next_action(rule)
                    if action is not None:
                        return action
        return None

    def rules_listing(self) -> list[dict]:
        with self.lock:
            return [{k: list(v) if k == "actions" else v for k, v in r.items() if k != "draws"} for r in self.rules]

    # images
    def store_image(self, img: Image, data: bytes | None, fill: bool = False) -> None:
        """Add a new image (a draft when data is None), or with `fill` replace the draft of that id."""
        if data is not None:
            img.path, img.size, img.sha256 = self.new_path("images"), len(data), hashlib.sha256(data).hexdigest()
            with open(img.path, "wb") as out:
                out.write(data)
        with self.lock:
            old = self.images.get(img.id)
            if fill and old is None:
                problem = ApiError(404, 5404, "Image not found")
            elif old is not None and not (fill and old.draft):
                problem = ApiError(409, 5409, "Resource already exists")
            else:
                problem, self.images[img.id] = None, img
        if problem is not None:
            if img.path:
                os.unlink(img.path)
            raise problem

    def image(self, image_id: str) -> Image:
        with self.lock:
            img = self.images.get(image_id)
        if img is None:
            raise ApiError(404, 5404, "Image not found")
        return img

    def delete_image(self, image_id: str) -> None:
        with self.lock:
            img = self.images.pop(image_id, None)
        if img is None:
            raise ApiError(404, 5404, "Image not found")
        if img.path and os.path.exists(img.path):
            os.unlink(img.path)

    # videos
    def add_video(self, video: Video) -> Video:
        with self.lock:
            self.videos[video.uid] = video
        return video

    def video(self, uid: str, observe: bool = False) -> Video:
        with self.lock:
            v = self.videos.get(uid)
            if v is not None and observe and v.completed_at is not None:
                v.gets += 1
        if v is None:
            raise ApiError(404, 10003, "video not found")
        return v

    def delete_video(self, uid: str) -> None:
        with self.lock:
            v = self.videos.pop(uid, None)
        if v is None:
            raise ApiError(404, 10003, "video not found")
        if os.path.exists(v.path):
            os.unlink(v.path)

    def append(self, v: Video, data: bytes) -> None:
        with self.lock:
            v.hasher.update(data)
            v.offset += len(data)
            v.modified = iso_now()
            if v.offset == v.length and v.completed_at is None:
                v.completed_at = v.modified

    def video_objects(self) -> list[dict]:
        with self.lock:
            return [video_object(v, self.ready_after) for v in self.videos.values()]

    # live inputs
    def live_input(self, uid: str, delete: bool = False) -> dict:
        with self.lock:
            obj = self.live_inputs.pop(uid, None) if delete else self.live_inputs.get(uid)
        if obj is None:
            raise ApiError(404, 10003, "live input not found")
        return obj

    def snapshot(self) -> dict:
        with self.lock:
            images = {i.id: {"id": i.id, "meta": i.meta, "requireSignedURLs": i.require_signed, "draft": i.draft,
                             "size": i.size, "sha256": i.sha256, "content_type": i.content_type,
                             "filename": i.filename, "format": i.format, "width": i.width, "height": i.height,
                             "expiry": i.expiry}
                      for i in self.images.values()}
            videos = {v.uid: {"uid": v.uid, "kind": v.kind, "size": v.offset, "length": v.length,
                              "offset": v.offset, "sha256": v.hasher.copy().hexdigest(), "meta": v.meta,
                              "upload_metadata": v.upload_metadata, "requireSignedURLs": v.require_signed,
                              "state": video_status(v, self.ready_after)[0],
                              "chunk_violations": list(v.chunk_violations), "patch_sizes": list(v.patch_sizes),
                              "direct": v.direct, "maxDurationSeconds": v.max_duration, "uploadExpiry": v.upload_expiry}
                      for v in self.videos.values()}
            return json.loads(json.dumps({"images": images, "videos": videos, "live_inputs": self.live_inputs}))


# --------------------------------------------------------------------------
# Request bodies

class BodyReader:
    """Reads a Content-Length body in pieces; counts bytes and notices a lost connection."""

    def __init__(self, rfile, length: int):
        self.rfile, self.length = rfile, length
        self.received = 0
        self.cap: int | None = None  # a reset_after_bytes fault stops reading here
        self.truncated = False       # the body ended (connection lost or cap hit) before `length`

    def read(self, size: int = PIECE) -> bytes:
        limit = self.length if self.cap is None else min(self.length, self.cap)
        want = min(size, limit - self.received)
        if self.truncated or want <= 0:
            self.truncated = self.truncated or self.received < self.length
            return b""
        try:
            data = self.rfile.read(want)
        except OSError:
            data = b""
        self.received += len(data)
        self.truncated = len(data) < want
        return data

    def read_all(self) -> bytes:
        chunks = bytearray()
        while piece := self.read():
            chunks += piece
        if self.truncated:
            raise Dropped()
        return bytes(chunks)

    def discard(self) -> None:
        while self.read():
            pass


def chunk_rule_problem(offset: int, size: int, length: int) -> str | None:
    """Cloudflare's tus chunk rules; None when the PATCH body size is allowed."""
    if size > TUS_MAX_CHUNK:
        return f"chunk of {size} bytes is over the {TUS_MAX_CHUNK}-byte maximum"
    if offset + size == length:
        return None
    if size < TUS_MIN_CHUNK:
        return f"non-final chunk of {size} bytes is under the {TUS_MIN_CHUNK}-byte minimum"
    if size % TUS_GRAIN:
        return f"non-final chunk of {size} bytes is not a multiple of {TUS_GRAIN} bytes"
    return None


def parse_upload_metadata(value: str) -> dict[str, str]:
    """tus Upload-Metadata: comma-separated `key base64value` pairs; valueless keys allowed."""
    pairs: dict[str, str] = {}
    if not value.strip():
        return pairs
    for item in value.split(","):
        key, _, encoded = item.strip().partition(" ")
        if not key or key in pairs or " " in encoded.strip():
            raise ValueError(f"malformed Upload-Metadata pair {item.strip()!r}")
        pairs[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8") if encoded.strip() else ""
    return pairs


def parse_count(text: str | None) -> int | None:
    """A header's non-negative decimal integer, or None."""
    text = (text or "").strip()
    return int(text) if re.fullmatch(r"[0-9]{1,20}", text) else None


def parse_expiry(text: str, code: int) -> datetime.datetime:
    """An RFC 3339 date-time with a time zone, or an ApiError with `code`."""
    try:
        when = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ApiError(400, code, "expiry must be an RFC 3339 date-time with a time zone")
    return when


def seconds_ahead(when: datetime.datetime) -> float:
    return (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds()


def direct_stream_settings(max_duration, expiry) -> tuple[int, str]:
    """(maxDurationSeconds, uploadExpiry) of a Stream direct creator upload, checked."""
    if isinstance(max_duration, str) and re.fullmatch(r"[0-9]{1,9}", max_duration.strip()):
        max_duration = int(max_duration.strip())
    if not isinstance(max_duration, int) or isinstance(max_duration, bool) or not 1 <= max_duration <= MAX_DURATION_MAX:
        raise ApiError(400, 10005, f"maxDurationSeconds is required and must be an integer from 1 to {MAX_DURATION_MAX}")
    if expiry is None:
        when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=DIRECT_EXPIRY_DEFAULT)
    elif not isinstance(expiry, str):
        raise ApiError(400, 10005, "expiry must be an RFC 3339 date-time")
    else:
        when = parse_expiry(expiry, 10005)
        if seconds_ahead(when) <= 0:
            raise ApiError(400, 10005, "expiry must be in the future")
    return max_duration, when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def custom_id_problem(image_id: str, signed: bool) -> str | None:
    if signed:
        return "custom id cannot be combined with requireSignedURLs"
    if len(image_id) > 1024:
        return "custom id is longer than 1024 characters"
    if image_id.startswith("/") or image_id.endswith("/"):
        return "custom id must not start or end with '/'"
    if UUID_RE.fullmatch(image_id):
        return "custom id must not look like a UUID"
    return None


# --------------------------------------------------------------------------
# HTTP

ACCOUNT_ROUTES = [  # (method, pattern on the path after /accounts/{acc}, handler); first match wins
    ("GET", r"/tokens/verify", "verify_token"),
    ("GET", r"/images/v1/stats", "image_stats"),
    ("POST", r"/images/v1", "image_upload"),
    ("GET", r"/images/v1/(.+)", "image_get"),
    ("DELETE", r"/images/v1/(.+)", "image_delete"),
    ("POST", r"/images/v2/direct_upload", "image_direct_upload"),
    ("POST", r"/stream", "stream_post"),
    ("POST", r"/stream/direct_upload", "stream_direct_upload"),
    ("GET", r"/stream", "stream_list"),
    ("POST", r"/stream/live_inputs", "live_create"),
    ("GET", r"/stream/live_inputs", "live_list"),
    ("GET", r"/stream/live_inputs/([^/]+)", "live_get"),
    ("DELETE", r"/stream/live_inputs/([^/]+)", "live_delete"),
    ("HEAD", r"/stream/tus/([^/]+)", "tus_head"),
    ("PATCH", r"/stream/tus/([^/]+)", "tus_patch"),
    ("GET", r"/stream/([^/]+)", "video_get"),
    ("DELETE", r"/stream/([^/]+)", "video_delete"),
]


ONE_TIME_ROUTES = [  # (methods, pattern on the whole path, handler): direct creator upload URLs, no auth
    (("POST",), r"/upload/fakehash/(.+)", "image_direct_fill"),
    (("POST",), r"/upload/stream/([^/]+)", "stream_direct_fill"),
    (("HEAD", "PATCH"), r"/upload/tus/([^/]+)", "direct_tus"),
]


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, state: State, token: str, account: str, tls: ssl.SSLContext | None):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.state, self.token, self.account, self.scheme = state, token, account, "https" if tls else "http"
        super().__init__(address, Handler)
        if tls is not None:  # handshake happens in the connection's own thread (Handler.setup)
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def server_bind(self):  # like HTTPServer's, without its reverse DNS lookup
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (OSError, ssl.SSLError)):
            traceback.print_exc(file=sys.stderr)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle holds the body until the
    # client acknowledges the headers, and a delayed ACK makes every answer 40 ms late.
    disable_nagle_algorithm = True
    timeout = 120
    logged = True  # set False for each API request until it is in the log; control requests never are

    # ---- plumbing
    def setup(self):
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def log_message(self, format, *args):
        pass

    def handle_expect_100(self):
        # Cloudflare never sends 100 Continue: API requests get a 417 from handle_api, unread.
        return super().handle_expect_100() if self.path.startswith("/__fake/") else True

    def do_GET(self):
        self.path_only, _, self.query = self.path.partition("?")
        if self.path_only.startswith("/__fake/"):
            return self.handle_control()
        self.entry = {"method": self.command, "path": self.path_only, "query": self.query, "status": 0,
                      "bytes_in": 0, "headers": self.logged_headers()}
        self.reader, self.suppress, self.logged = BodyReader(self.rfile, 0), False, False
        try:
            self.handle_api()
        except Dropped:
            self.abort()
        except ApiError as err:
            self.reply(err.status, error_body(err.code, err.message), err.headers)
        except Exception as err:  # a bug in the fake: say so instead of hanging the client
            traceback.print_exc(file=sys.stderr)
            self.reply(500, error_body(10001, f"fake server error: {err!r}"))
        finally:
            self.commit_log()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def commit_log(self) -> None:
        """Logs this API request once, before its answer or reset goes out: a client that has its
        answer and then asks for the log always finds the request in it."""
        if self.logged:
            return
        self.logged = True
        self.entry["bytes_in"] = self.reader.received
        self.server.state.add_log(self.entry)

    def update_entry(self, **fields) -> None:
        """Changes this request's log entry, which the log may already hold."""
        with self.server.state.lock:
            self.entry.update(fields)

    def logged_headers(self) -> dict:
        out: dict[str, str] = {}
        for name, value in self.headers.items():
            name = name.lower()
            value = "present" if name == "authorization" else value
            out[name] = f"{out[name]}, {value}" if name in out else value
        return out

    def reply(self, status: int, body=None, headers: dict | None = None) -> None:
        """Send an answer (JSON when body is not None), or abort if a fault says to drop it."""
        self.reader.discard()
        if self.suppress or self.reader.truncated:
            return self.abort()
        data = b"" if body is None else json.dumps(body).encode()
        self.update_entry(status=status)
        self.commit_log()
        try:
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            for name, value in (headers or {}).items():
                self.send_header(name, str(value))
            if status not in (204, 304):
                self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and status not in (204, 304):
                self.wfile.write(data)
        except OSError:
            self.update_entry(status=0)  # the client never got it
            raise

    def abort(self) -> None:
        """Reset the TCP connection (RST, no answer)."""
        self.update_entry(status=0, dropped=True)
        self.commit_log()
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.connection.close()
        self.rfile.close()

    def base_url(self) -> str:
        host = self.headers.get("Host") or "%s:%s" % self.server.server_address[:2]
        return f"{self.server.scheme}://{host}"

    # ---- checks, faults and routing
    def handle_api(self):
        h = self.headers
        if "chunked" in h.get("Transfer-Encoding", "").lower():
            return self.refuse("chunked", 400, 9999, "chunked bodies are refused")
        if h.get("Expect", "").strip():
            return self.refuse("expect", 417, 9998, "Expect is not supported; send an empty Expect: header")
        length = parse_count(h.get("Content-Length", "0"))
        if length is None:
            return self.refuse(None, 400, 9997, "invalid Content-Length")
        self.reader.length = length
        action = self.server.state.take_fault(self.command, self.path_only)
        if action is not None:
            self.entry["fault"] = action
            if self.apply_fault(action):
                return
        self.dispatch()

    def refuse(self, reason: str | None, status: int, code: int, message: str):
        """Answer without reading the body, then close the connection gently."""
        if reason:
            self.entry["refused"] = reason
        self.close_connection = True
        self.reply(status, error_body(code, message))
        self.lingering_close()

    def lingering_close(self, seconds: float = 2.0) -> None:
        """Half-close and swallow what the client still sends for a while, so the unread body
        does not turn our close into a RST that destroys the answer before the client reads it."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)  # on TLS this drops to the raw socket
            self.connection.settimeout(0.25)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    if not self.connection.recv(PIECE):
                        break
                except TimeoutError:
                    continue
        except OSError:
            pass

    def apply_fault(self, action: dict) -> bool:
        """Apply one fault action; True when the request has been answered (or dropped) by it."""
        if "delay" in action:
            time.sleep(float(action["delay"]))
        if "reset_after_bytes" in action:
            self.reader.cap, self.suppress = int(action["reset_after_bytes"]), True
            if self.command == "PATCH" and "/stream/tus/" in self.path_only:
                return False  # the PATCH handler keeps the bytes that arrived, then the reply is dropped
            self.reader.discard()
            raise Dropped()
        if action.get("commit_then_drop"):
            self.suppress = True
            return False
        if "redirect" in action:
            self.reply(int(action.get("status", 307)), None, {"Location": action["redirect"]})
            return True
        if action.get("echo_headers"):
            echoed = "; ".join(f"{name}: {value}" for name, value in self.headers.items())
            raise ApiError(int(action.get("status", 400)), int(action.get("code", 10001)),
                           f"request headers were: {echoed}")
        if "status" in action:
            status = int(action["status"])
            body = action.get("body", error_body(int(action.get("code", 10001)), f"injected fault: HTTP {status}"))
            self.reply(status, body, action.get("headers"))
            return True
        return False

    def dispatch(self):
        path = self.path_only
        if path.startswith("/upload/"):
            return self.one_time_upload(path)
        is_verify = path == "/client/v4/user/tokens/verify" or path.endswith("/tokens/verify")
        self.check_token(is_verify)
        if path == "/client/v4/user/tokens/verify":
            return self.verify_token() if self.command == "GET" else self.no_method()
        match = re.fullmatch(r"/client/v4/accounts/([^/]+)(/.*)", path)
        if not match:
            raise ApiError(404, 7003, "No route for that URI")
        if unquote(match[1]) != self.server.account:
            raise ApiError(403, 10000, "Authentication error")
        known = False
        for method, pattern, name in ACCOUNT_ROUTES:
            route = re.fullmatch(pattern, match[2])
            if route and method == self.command:
                return getattr(self, name)(*(unquote(g) for g in route.groups()))
            known = known or route is not None
        raise ApiError(405, 7001, "Method not allowed") if known else ApiError(404, 7003, "No route for that URI")

    def one_time_upload(self, path: str):
        """The one-time URLs of direct creator uploads: no token, the upload's id in the path."""
        for methods, pattern, name in ONE_TIME_ROUTES:
            match = re.fullmatch(pattern, path)
            if match:
                if self.command not in methods:
                    raise ApiError(405, 7001, "Method not allowed")
                return getattr(self, name)(unquote(match[1]))
        raise ApiError(404, 7003, "No route for that URI")

    def no_method(self):
        raise ApiError(405, 7001, "Method not allowed")

    def check_token(self, is_verify: bool) -> None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.server.token.encode()):
            raise ApiError(401, 1000, "Invalid API Token") if is_verify else ApiError(401, 10000, "Authentication error")

    def ok(self, result, status: int = 200, **extra) -> None:
        self.reply(status, envelope(result, **extra))

    # ---- token verify
    def verify_token(self):
        self.ok({"id": "fake-token-id", "status": "active"},
                messages=[{"code": 10000, "message": "This API Token is valid and active"}])

    # ---- Images
    def read_form(self, max_length: int) -> tuple[dict[str, str], tuple[Part, bytes] | None]:
        """Read a small multipart body: the text fields the fake knows, plus the `file` part and its bytes."""
        boundary = multipart_boundary(self.headers.get("Content-Type", ""))
        if boundary is None:
            raise ApiError(415, 5415, "request must be multipart/form-data")
        if self.reader.length > max_length:
            raise ApiError(413, 5413, f"request body over {max_length} bytes")
        body = self.reader.read_all()
        try:
            parts = parse_multipart(body, boundary)
        except ValueError as err:
            raise ApiError(400, 5400, f"malformed multipart body: {err}")
        try:
            fields = {p.name: body[p.start:p.end].decode("utf-8") for p in parts if p.name in IMAGE_FORM_FIELDS}
        except UnicodeDecodeError:
            raise ApiError(400, 5400, f"form fields {sorted(IMAGE_FORM_FIELDS)} must be UTF-8 text")
        files = [(p, body[p.start:p.end]) for p in parts if p.name == "file"]
        return fields, files[0] if files else None

    @staticmethod
    def image_options(fields: dict[str, str]) -> tuple[dict, bool, str | None]:
        """(meta, requireSignedURLs, custom id) from the form fields, checked."""
        try:
            meta = json.loads(fields["metadata"]) if "metadata" in fields else {}
        except ValueError:
            raise ApiError(400, 5400, "metadata must be JSON")
        if len(fields.get("metadata", "").encode()) > 1024 or not isinstance(meta, dict):
            raise ApiError(400, 5400, "metadata must be a JSON object of at most 1024 bytes")
        signed_text = fields.get("requireSignedURLs", "false").strip().lower()
        if signed_text not in ("true", "false"):
            raise ApiError(400, 5400, "requireSignedURLs must be true or false")
        image_id = fields.get("id") or None
        problem = custom_id_problem(image_id, signed_text == "true") if image_id else None
        if problem:
            raise ApiError(400, 5400, problem)
        return meta, signed_text == "true", image_id

    def checked_image(self, file: tuple[Part, bytes] | None) -> tuple[Part, bytes, tuple]:
        if file is None:
            raise ApiError(400, 5400, "a `file` part is required")
        part, data = file
        if part.content_type.split(";")[0].strip().lower() not in IMAGE_TYPES:
            raise ApiError(415, 5415, IMAGE_TYPE_MESSAGE)
        if len(data) > IMAGE_MAX:
            raise ApiError(413, 5413, f"image is over the {IMAGE_MAX}-byte limit")
        sniffed = sniff_image(data)
        if sniffed is None:
            raise ApiError(415, 5455, "unsupported image format")
        _, width, height = sniffed
        if width and height and (max(width, height) > IMAGE_SIDE_MAX or width * height > IMAGE_AREA_MAX):
            raise ApiError(400, 5400, f"image of {width}x{height} px is over the size limits "
                                      f"({IMAGE_SIDE_MAX} px side, {IMAGE_AREA_MAX} px area)")
        return part, data, sniffed

    def filled_image(self, img: Image, file) -> tuple[Image, bytes]:
        part, data, (fmt, width, height) = self.checked_image(file)
        img.filename, img.content_type = part.filename or "", part.content_type
        img.format, img.width, img.height, img.draft, img.uploaded = fmt, width, height, False, iso_now(True)
        return img, data

    def image_upload(self):
        fields, file = self.read_form(IMAGE_BODY_MAX)
        meta, signed, image_id = self.image_options(fields)
        img, data = self.filled_image(Image(image_id or str(uuid.uuid4()), meta, signed, False, ""), file)
        self.server.state.store_image(img, data)
        self.ok(image_object(img))

    def image_get(self, image_id: str):
        self.ok(image_object(self.server.state.image(image_id)))

    def image_delete(self, image_id: str):
        self.server.state.delete_image(image_id)
        self.ok({})

    def image_stats(self):
        with self.server.state.lock:
            count = len(self.server.state.images)
        self.ok({"count": {"allowed": 100000, "current": count}})

    def image_direct_upload(self):
        fields = self.read_form(JSON_BODY_MAX)[0] if self.reader.length else {}
        meta, signed, image_id = self.image_options(fields)
        expiry = fields.get("expiry", "").strip() or None
        if expiry:
            ahead = seconds_ahead(parse_expiry(expiry, 5400))
            if not IMAGE_EXPIRY_MIN <= ahead <= IMAGE_EXPIRY_MAX:
                raise ApiError(400, 5400, "expiry must be at least 2 minutes and at most 6 hours from now")
        img = Image(image_id or str(uuid.uuid4()), meta, signed, True, iso_now(True), expiry=expiry)
        self.server.state.store_image(img, None)
        self.ok({"id": img.id, "uploadURL": f"{self.base_url()}/upload/fakehash/{quote(img.id, safe='/')}"})

    def image_direct_fill(self, image_id: str):
        draft = self.server.state.image(image_id)
        if not draft.draft:
            raise ApiError(409, 5409, "Resource already exists")
        _, file = self.read_form(IMAGE_BODY_MAX)
        img, data = self.filled_image(Image(draft.id, draft.meta, draft.require_signed, False, "",
                                            expiry=draft.expiry), file)
        self.server.state.store_image(img, data, fill=True)
        self.ok(image_object(img))

    def read_json(self, *objects: str) -> dict:
        """A small JSON object body (empty: {}) whose keys `objects`, when present, hold objects too."""
        if self.reader.length > JSON_BODY_MAX:
            raise ApiError(413, 10005, "request body too large")
        raw = self.reader.read_all()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise ApiError(400, 10005, "body must be JSON")
        if not isinstance(body, dict) or any(not isinstance(body.get(key) or {}, dict) for key in objects):
            names = ["body", *objects]
            raise ApiError(400, 10005, f"{', '.join(names[:-1])} and {names[-1]} must be JSON objects")
        return body

    # ---- Stream
    def stream_post(self):
        direct = "direct_user=true" in self.query.split("&")
        return self.tus_create(direct) if direct or "Tus-Resumable" in self.headers else self.basic_upload()

    def check_tus_version(self) -> None:
        if self.headers.get("Tus-Resumable", "").strip() != "1.0.0":
            raise ApiError(412, 10005, "Tus-Resumable: 1.0.0 is required", {"Tus-Version": "1.0.0"})

    def tus_create(self, direct: bool = False):
        self.check_tus_version()
        length = parse_count(self.headers.get("Upload-Length"))
        if length is None:
            raise ApiError(400, 10005, "Upload-Length is required and must be a non-negative integer")
        if length > TUS_MAX_LENGTH:
            raise ApiError(413, 10005, f"Upload-Length is over the {TUS_MAX_LENGTH}-byte limit")
        try:
            metadata = parse_upload_metadata(self.headers.get("Upload-Metadata", ""))
        except ValueError as err:
            raise ApiError(400, 10005, str(err))
        settings = {k.lower(): v for k, v in metadata.items()}
        max_duration, expiry = (direct_stream_settings(settings.get("maxdurationseconds"), settings.get("expiry"))
                                if direct else (None, None))
        self.reader.discard()
        state, uid = self.server.state, secrets.token_hex(16)
        video = Video(uid, "tus", length, state.new_path("videos", uid),
                      {k: v for k, v in metadata.items() if k.lower() not in TUS_SETTING_KEYS}, metadata,
                      require_signed=any(k.lower() == "requiresignedurls" for k in metadata),
                      creator=self.headers.get("Upload-Creator"), direct="tus" if direct else None,
                      max_duration=max_duration, upload_expiry=expiry)
        open(video.path, "wb").close()
        state.add_video(video)
        state.append(video, b"")  # an empty upload is complete at once
        location = (f"{self.base_url()}/upload/tus/{uid}" if direct
                    else f"{self.base_url()}/client/v4/accounts/{self.server.account}/stream/tus/{uid}")
        self.reply(201, None, {"Location": location, "stream-media-id": uid, "Tus-Resumable": "1.0.0"})

    def basic_upload(self):
        boundary = multipart_boundary(self.headers.get("Content-Type", ""))
        if boundary is None:
            raise ApiError(415, 10005, "basic uploads must be multipart/form-data (or use tus)")
        if self.reader.length > BASIC_MAX:
            raise ApiError(413, 10005, "basic uploads are limited to 200 MB; use tus")
        state, uid = self.server.state, secrets.token_hex(16)
        video = Video(uid, "basic", 0, state.new_path("videos", uid), {}, {})
        self.receive_file_part(boundary, video)
        state.add_video(video)
        state.append(video, b"")
        self.ok(video_object(video, state.ready_after))

    def receive_file_part(self, boundary: bytes, video: Video) -> None:
        """Spool the multipart body to disk, then copy its `file` part into the video."""
        with tempfile.TemporaryFile(dir=os.path.join(self.server.state.data_dir, "spool")) as spool:
            while piece := self.reader.read():
                spool.write(piece)
            if self.reader.truncated:
                raise Dropped()
            spool.flush()
            self.copy_file_part(FileView(spool.fileno(), self.reader.received), boundary, video)

    def copy_file_part(self, body: FileView, boundary: bytes, video: Video) -> None:
        try:
            files = [p for p in parse_multipart(body, boundary) if p.name == "file"]
        except ValueError as err:
            raise ApiError(400, 10005, f"malformed multipart body: {err}")
        if not files:
            raise ApiError(400, 10005, "a `file` part is required")
        part = files[0]
        video.length, video.meta = part.end - part.start, {"name": part.filename or ""}
        with open(video.path, "wb") as out:
            for start in range(part.start, part.end, PIECE):
                piece = body[start:min(start + PIECE, part.end)]
                out.write(piece)
                video.hasher.update(piece)
        video.offset = video.length

    def stream_direct_upload(self):
        body = self.read_json("meta")
        max_duration, expiry = direct_stream_settings(body.get("maxDurationSeconds"), body.get("expiry"))
        creator = body.get("creator")
        if creator is not None and (not isinstance(creator, str) or len(creator) > 64):
            raise ApiError(400, 10005, "creator must be a string of at most 64 characters")
        state, uid = self.server.state, secrets.token_hex(16)
        video = Video(uid, "basic", 0, state.new_path("videos", uid), dict(body.get("meta") or {}), {},
                      require_signed=body.get("requireSignedURLs") is True, creator=creator, direct="basic",
                      max_duration=max_duration, upload_expiry=expiry)
        state.add_video(video)
        self.ok({"uid": uid, "uploadURL": f"{self.base_url()}/upload/stream/{uid}", "scheduledDeletion": None,
                 "watermark": None})

    def stream_direct_fill(self, uid: str):
        """The one POST a basic direct creator upload URL takes: multipart, `file` <= 200 MB."""
        video = self.server.state.video(uid)
        if video.direct != "basic":
            raise ApiError(404, 10003, "video not found")
        boundary = multipart_boundary(self.headers.get("Content-Type", ""))
        if boundary is None:
            raise ApiError(415, 10005, "direct uploads must be multipart/form-data")
        if self.reader.length > BASIC_MAX:
            raise ApiError(413, 10005, "direct uploads are limited to 200 MB; use tus")
        if not video.lock.acquire(blocking=False):
            raise ApiError(409, 10005, "an upload to this URL is already in progress")
        try:
            if video.completed_at is not None:
                raise ApiError(409, 10005, "this upload URL has already been used")
            created_meta = dict(video.meta)
            self.receive_file_part(boundary, video)
            video.meta = {**video.meta, **created_meta}  # the creator's meta wins over the file's name
            self.server.state.append(video, b"")
        finally:
            video.lock.release()
        self.ok(video_object(video, self.server.state.ready_after))

    def direct_tus(self, uid: str):
        """HEAD and PATCH on the one-time tus URL of a direct creator upload, without the token."""
        if self.server.state.video(uid).direct != "tus":
            raise ApiError(404, 10003, "video not found")
        return self.tus_head(uid) if self.command == "HEAD" else self.tus_patch(uid)

    def tus_head(self, uid: str):
        self.check_tus_version()
        video = self.server.state.video(uid)
        self.reply(200, None, {"Upload-Offset": video.offset, "Upload-Length": video.length,
                               "Tus-Resumable": "1.0.0", "Cache-Control": "no-store"})

    def tus_patch(self, uid: str):
        self.check_tus_version()
        video = self.server.state.video(uid)
        if self.headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/offset+octet-stream":
            raise ApiError(415, 10005, "Content-Type must be application/offset+octet-stream")
        if "Content-Length" not in self.headers:
            raise ApiError(411, 10005, "Content-Length is required")
        claimed = parse_count(self.headers.get("Upload-Offset"))
        if claimed is None:
            raise ApiError(400, 10005, "Upload-Offset is required and must be a non-negative integer")
        if not video.lock.acquire(timeout=10):
            raise ApiError(423, 10005, "another PATCH is writing this upload")
        try:
            self.tus_append(video, claimed)
        finally:
            video.lock.release()

    def tus_append(self, video: Video, claimed: int):
        size = self.reader.length
        if claimed != video.offset:
            raise ApiError(409, 10005, f"Upload-Offset {claimed} does not match the current offset {video.offset}")
        if claimed + size > video.length:
            raise ApiError(413, 10005, f"chunk would pass Upload-Length {video.length}")
        problem = chunk_rule_problem(claimed, size, video.length)
        if problem:
            self.entry["refused"] = "chunk_rule"
            with self.server.state.lock:
                video.chunk_violations.append({"offset": claimed, "size": size, "reason": problem})
            raise ApiError(400, 10005, problem)
        with self.server.state.lock:
            video.patch_sizes.append(size)
        with open(video.path, "ab") as out:
            while piece := self.reader.read():
                out.write(piece)
                out.flush()
                self.server.state.append(video, piece)
        if self.reader.truncated:
            raise Dropped()
        self.reply(204, None, {"Upload-Offset": video.offset, "Tus-Resumable": "1.0.0"})

    def video_get(self, uid: str):
        state = self.server.state
        self.ok(video_object(state.video(uid, observe=True), state.ready_after))

    def video_delete(self, uid: str):
        self.server.state.delete_video(uid)
        self.ok({})

    def stream_list(self):
        """Cloudflare's listing: filters, newest first unless `asc`, one page of at most
        `stream_page` videos; `total` counts every match, `range` this page."""
        params = {k: unquote(v.replace("+", " ")) for k, _, v in
                  (pair.partition("=") for pair in self.query.split("&") if pair)}
        state = self.server.state
        videos = state.video_objects()
        if "status" in params:
            wanted = set(params["status"].split(","))
            videos = [v for v in videos if v["status"]["state"] in wanted]
        if "creator" in params:
            videos = [v for v in videos if v["creator"] == params["creator"]]
        if "search" in params:
            videos = [v for v in videos if params["search"].lower() in str(v["meta"].get("name", "")).lower()]
        if "start" in params:
            videos = [v for v in videos if v["created"] >= params["start"]]
        if "end" in params:
            videos = [v for v in videos if v["created"] < params["end"]]
        videos.sort(key=lambda v: v["created"], reverse=params.get("asc", "false").lower() != "true")
        page = videos[:state.stream_page]
        self.ok(page, range=len(page), total=len(videos))

    # ---- live inputs
    def live_create(self):
        body = self.read_json("meta", "recording")
        live = new_live_input(body)
        if live["recording"]["mode"] not in ("off", "automatic"):
            raise ApiError(400, 10005, "recording.mode must be off or automatic")
        with self.server.state.lock:
            self.server.state.live_inputs[live["uid"]] = live
        self.ok(live)

    def live_list(self):
        keys = ("uid", "created", "modified", "meta", "deleteRecordingAfterDays")
        with self.server.state.lock:
            items = [{k: live[k] for k in keys} for live in self.server.state.live_inputs.values()]
        self.ok({"liveInputs": items, "range": len(items), "total": len(items)})

    def live_get(self, uid: str):
        self.ok(self.server.state.live_input(uid))

    def live_delete(self, uid: str):
        self.server.state.live_input(uid, delete=True)
        self.ok({})

    # ---- control endpoints
    def handle_control(self):
        self.entry, self.suppress = {}, False
        body = self.control_body()
        self.reader = BodyReader(self.rfile, 0)
        state, route = self.server.state, (self.command, self.path_only)
        if route == ("GET", "/__fake/state"):
            return self.reply(200, state.snapshot())
        if route in (("GET", "/__fake/log"), ("GET", "/__fake/faults")):
            if route[1] == "/__fake/faults":
                return self.reply(200, {"rules": state.rules_listing()})
            with state.lock:  # copy under the lock, send after it
                copy = json.loads(json.dumps(state.log))
            return self.reply(200, copy)
        if route == ("POST", "/__fake/reset"):
            state.reset()
            return self.reply(200, {"ok": True})
        if route == ("POST", "/__fake/faults"):
            problem, rules = self.checked_rules(body)
            if problem:
                return self.reply(400, {"ok": False, "error": problem})
            state.add_rules(rules)
            return self.reply(200, {"ok": True, "added": len(rules)})
        self.reply(404, {"ok": False, "error": f"no control route {self.command} {self.path_only}"})

    def control_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                data += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return bytes(data)
        return self.rfile.read(parse_count(self.headers.get("Content-Length", "0")) or 0)

    @staticmethod
    def checked_rules(body: bytes) -> tuple[str | None, list]:
        try:
            rules = json.loads(body or b"{}").get("rules")
            for rule in rules:
                re.compile(rule.get("path", ""))
                if not isinstance(rule.get("method", "*"), str) or not isinstance(rule["actions"], list):
                    return "each rule needs a method string and an actions list", []
                if any(not isinstance(a, dict) or not FAULT_KEYS & a.keys() for a in rule["actions"]):
                    return f"every action needs one of {sorted(FAULT_KEYS)}", []
                probability = rule.get("probability", 1)
                if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not 0 < probability <= 1:
                    return "probability must be a number in (0, 1]", []
                if not isinstance(rule.get("repeat", False), bool) or isinstance(rule.get("seed", 0), bool) \
                        or not isinstance(rule.get("seed", 0), int):
                    return "repeat must be a boolean and seed an integer", []
            return None, rules
        except (ValueError, TypeError, KeyError, AttributeError, re.error) as err:
            return f"bad fault rules: {err!r}", []


# --------------------------------------------------------------------------
# Main

def parse_args(argv):
    p = argparse.ArgumentParser(description="Fake Cloudflare API v4 (Images, Stream, live inputs) for tests.")
    p.add_argument("--token", required=True, help="the only accepted bearer token")
    p.add_argument("--account", required=True, help="the only accepted account id")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--data-dir", help="where uploads are written (default: a temp folder removed at exit)")
    p.add_argument("--tls-cert", help="PEM certificate; serve HTTPS")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument("--stream-page", type=int, default=1000, help="most videos one GET /stream lists (default 1000)")
    p.add_argument("--ready-after", type=int, default=1,
                   help="a finished video is readyToStream on this many-th GET (0: at once)")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if args.ready_after < 0:
        p.error("--ready-after must be >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    owned = args.data_dir is None
    data_dir = tempfile.mkdtemp(prefix="cloudflare-fake-") if owned else args.data_dir
    try:
        tls = None
        if args.tls_cert:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(args.tls_cert, args.tls_key)
        server = FakeServer((args.host, args.port), State(data_dir, args.ready_after, args.stream_page),
                            args.token, args.account, tls)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        print(f"READY {server.server_address[1]}", flush=True)
        parent = os.getppid()
        while not stop.wait(0.5) and os.getppid() == parent:
            pass
        server.shutdown()
        server.server_close()
    finally:
        if owned:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
