#!/usr/bin/env python3
"""Fake Cloudflare R2 (S3 API) for the media-pipeline tests.

Usage:
    python3 Tests/Fakes/s3_server.py [--port 0] [--bucket media] [--no-auth] [--verbose]

One process runs two servers on 127.0.0.1:

* moto's S3 server (``ThreadedMotoServer``) holding the bucket. Unless
  ``--no-auth`` is given, IAM checking is switched on, so SigV4 signatures are
  really verified with the access key printed in the READY line.
* an "R2 rules" proxy in front of it (the endpoint clients use, path style
  ``/<bucket>/<key>``). It forwards each request unchanged (same Host, method,
  path+query, headers and body) and enforces what R2 does but moto does not:
  no chunked bodies, no ``Expect: 100-continue``, ``x-amz-content-sha256``
  required and checked against the body, no streaming SigV4, no
  ``x-amz-checksum-*`` headers, ``Content-MD5`` checked, R2's multipart part
  size rule at CompleteMultipartUpload, 5 GiB - 5 MiB per PUT. With auth on,
  requests without an Authorization header get 403 AccessDenied here (moto
  would answer most of them with a 500).

Bodies stream through in 1 MiB pieces and are hashed on the way; the last
piece is held back until SHA-256 / MD5 match, so a mismatch leaves moto with a
truncated request that it discards (no temp files, ~1 GB/s through the proxy).

Two moto adjustments: signatures are checked against the raw request target
(moto's own check uses a decoded URL and rejects correctly signed keys such as
"photo (1).jpg"), and with --no-auth the bucket gets a public policy (moto
otherwise answers 403 to unsigned requests on existing keys).

Tests script faults and inspect the result over control endpoints on the
proxy (never forwarded, never logged):

    POST /__fake/faults     {"rules":[{"method","path","query","actions":[...]}]}; a rule may
                            also take "probability" (0-1), "seed" (int) and "repeat" (bool):
                            see Tests/Fakes/README.md
    GET  /__fake/faults     rules with the actions still left
    GET  /__fake/log        every proxied request, oldest first
    POST /__fake/reset      clear log, faults and recorded part sizes
    POST /__fake/empty      delete every object, abort every open multipart upload
    GET  /__fake/objects    what moto stored, read from its backend
    GET  /__fake/multipart  multipart uploads still in progress

When both servers are up, exactly one line is printed to stdout:
``READY {"endpoint": ..., "moto": ..., "bucket": ..., "access_key_id": ...,
"secret_access_key": ..., "region": "auto"}``. SIGTERM / SIGINT stop both.
"""

from __future__ import annotations

import argparse
import os
import base64
import binascii
import hashlib
import http.client
import io
import json
import logging
import re
import signal
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

import fault_draws  # the fault-rule draws the fakes share (this folder)

PIECE = 1 << 20                      # body pieces, never more in memory
MIN_PART = 5 * 1024 * 1024           # R2: every non-final part >= 5 MiB
MAX_PARTS = 10_000
MAX_PUT = 5 * 1024**3 - 5 * 1024**2  # R2: single PUT / part <= 5,363,466,240 B
ACCOUNT_ID = "123456789012"          # moto's default account
SETUP_REGION = "us-east-1"           # moto refuses CreateBucket signed for "auto"
WRONG_ETAG = '"00000000000000000000000000000000"'
HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
CONTROL = "/__fake/"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}
ACTION_KEYS = {"status", "code", "message", "headers", "error_body", "reset_after_bytes",
               "commit_then_drop", "lie_etag", "flip_byte", "delay", "echo_headers"}
MULTIPART_MESSAGE = "All non-trailing parts must have the same length"


# --------------------------------------------------------------------------- helpers

class Refusal(Exception):
    """An R2 rule the request broke: answered with an S3 XML error, never forwarded."""

    def __init__(self, status: int, code: str, message: str, detail: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.reason = f"{code}: {detail or message}"


class BodyDigests:
    """SHA-256 / MD5 of a request body, computed piece by piece as it streams."""

    def __init__(self, sha_hex: str | None, md5_b64: str | None):
        self.sha_hex, self.md5_b64 = sha_hex, md5_b64
        self.sha = hashlib.sha256() if sha_hex else None
        self.md5 = hashlib.md5() if md5_b64 else None

    def update(self, piece) -> None:
        if self.sha:
            self.sha.update(piece)
        if self.md5:
            self.md5.update(piece)

    def check(self) -> None:
        if self.sha and self.sha.hexdigest() != self.sha_hex.lower():
            raise Refusal(400, "XAmzContentSHA256Mismatch",
                          "The provided 'x-amz-content-sha256' header does not match what was computed.",
                          detail=f"body sha256 is {self.sha.hexdigest()}")
        if self.md5 and base64.b64encode(self.md5.digest()).decode() != self.md5_b64:
            raise Refusal(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")


def s3_error_xml(code: str, message: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
            ).encode()


def redacted_headers(headers) -> dict:
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        value = "present" if key == "authorization" else value
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def signed_header_names(headers) -> set[str]:
    match = re.search(r"SignedHeaders=([^,\s]+)", headers.get("Authorization", ""))
    return set(match.group(1).lower().split(";")) if match else set()


def parse_complete_parts(body: bytes) -> list[int] | None:
    """Part numbers listed in a CompleteMultipartUpload body (None if unreadable)."""
    try:
        root = ET.fromstring(body)
        return [int(el.text) for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "PartNumber"]
    except (ET.ParseError, TypeError, ValueError):
        return None


def multipart_violation(numbers: list[int], sizes: dict[int, int]) -> str | None:
    """Why the listed parts break R2's size rule, or None if they are fine."""
    numbers = sorted(set(numbers))
    if len(numbers) > MAX_PARTS:
        return f"{len(numbers)} parts, more than {MAX_PARTS}"
    if len(numbers) < 2:
        return None
    first = sizes[numbers[0]]
    if first < MIN_PART:
        return f"part {numbers[0]} is {first} B, less than {MIN_PART} B"
    for n in numbers[1:-1]:
        if sizes[n] != first:
            return f"part {n} is {sizes[n]} B, part {numbers[0]} is {first} B"
    if sizes[numbers[-1]] > first:
        return f"last part {numbers[-1]} is {sizes[numbers[-1]]} B, larger than {first} B"
    return None


def compile_rules(payload) -> list[dict]:
    """Validate a POST /__fake/faults body; raises ValueError with a readable reason."""
    if not isinstance(payload, dict) or not isinstance(payload.get("rules"), list):
        raise ValueError('body must be {"rules":[...]}')
    rules = []
    for i, rule in enumerate(payload["rules"]):
        if not isinstance(rule, dict) or not isinstance(rule.get("actions"), list):
            raise ValueError(f"rules[{i}] needs an actions list")
        for j, action in enumerate(rule["actions"]):
            unknown = set(action) - ACTION_KEYS if isinstance(action, dict) else {"?"}
            if unknown or not action:
                raise ValueError(f"rules[{i}].actions[{j}]: unknown keys {sorted(unknown)}")
        try:
            compiled = {"method": (rule.get("method") or "").upper(),
                        "path": rule.get("path") or "",
                        "query": rule.get("query") or "",
                        "path_re": re.compile(rule.get("path") or ""),
                        "query_re": re.compile(rule.get("query") or ""),
                        "actions": list(rule["actions"])}
        except re.error as exc:
            raise ValueError(f"rules[{i}]: bad regex: {exc}") from None
        if "probability" in rule or rule.get("repeat"):
            probability, seed, repeat = rule.get("probability", 1), rule.get("seed", 0), rule.get("repeat", False)
            if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not 0 < probability <= 1:
                raise ValueError(f"rules[{i}]: probability must be a number in (0, 1]")
            if isinstance(seed, bool) or not isinstance(seed, int) or not isinstance(repeat, bool):
                raise ValueError(f"rules[{i}]: seed must be an integer and repeat a boolean")
            # Only rules that use these keys show them, so the listing of plain rules is as before.
            compiled.update(fault_draws.probabilistic(probability, seed, repeat))
        rules.append(compiled)
    return rules


# --------------------------------------------------------------------------- state

class State:
    """Everything the proxy threads share, behind one lock."""

    def __init__(self, bucket: str, moto_port: int, auth: bool):
        self.bucket, self.moto_port, self.auth = bucket, moto_port, auth
        self.lock = threading.Lock()
        self.rules: list[dict] = []
        self.log: list[dict] = []
        self.in_flight = 0   # requests begun and not yet logged
        self.parts: dict[str, dict[int, int]] = {}   # uploadId -> {partNumber: size}
        self.sha_cache: dict[tuple, str] = {}

    def reset(self) -> None:
        with self.lock:
            self.rules, self.log, self.parts = [], [], {}

    def set_rules(self, rules: list[dict]) -> None:
        with self.lock:
            self.rules = rules

    def rules_left(self) -> list[dict]:
        extra = ("probability", "seed", "repeat", "fired")
        with self.lock:
            return [{"method": r["method"], "path": r["path"], "query": r["query"],
                     "actions": list(r["actions"]), **{k: r[k] for k in extra if k in r}} for r in self.rules]

    def pop_action(self, method: str, path: str, query: str) -> dict | None:
        with self.lock:
            for rule in self.rules:
                if (rule["actions"] and rule["method"] in ("", method)
                        and rule["path_re"].search(path) and rule["query_re"].search(query)):
                    action = fault_draws.next_action(rule)
                    if action is not None:
                        return action
        return None

    def begin_request(self) -> None:
        with self.lock:
            self.in_flight += 1

    def append_log(self, entry: dict) -> None:
        with self.lock:
            self.log.append(entry)
            self.in_flight -= 1

    def settle(self) -> None:
        """Waits until every request begun so far is in the log (each is logged after its answer)."""
        while True:
            with self.lock:
                if self.in_flight == 0:
                    return
            time.sleep(0.01)

    def log_copy(self) -> list[dict]:
        with self.lock:
            return list(self.log)

    def record_part(self, upload_id: str, number: int, size: int) -> None:
        with self.lock:
            self.parts.setdefault(upload_id, {})[number] = size

    def part_sizes(self, upload_id: str) -> dict[int, int]:
        with self.lock:
            return dict(self.parts.get(upload_id, {}))

    def forget_upload(self, upload_id: str) -> None:
        with self.lock:
            self.parts.pop(upload_id, None)

    def cached_sha(self, cache_key: tuple, compute) -> str:
        with self.lock:
            if cache_key in self.sha_cache:
                return self.sha_cache[cache_key]
        digest = compute()
        with self.lock:
            self.sha_cache[cache_key] = digest
        return digest


# --------------------------------------------------------------------------- moto side

def moto_bucket(name: str):
    from moto.s3.models import s3_backends
    return s3_backends[ACCOUNT_ID]["aws"].buckets.get(name)


def stored_sha256(key) -> str:
    """SHA-256 of the bytes moto holds for a key, read in pieces."""
    digest = hashlib.sha256()
    buffer = getattr(key, "_value_buffer", None)
    if buffer is None:                       # other moto layout: fall back to the copy
        digest.update(key.value)
        return digest.hexdigest()
    with key.lock:
        buffer.seek(0)
        while piece := buffer.read(PIECE):
            digest.update(piece)
    return digest.hexdigest()


def objects_snapshot(state: State) -> dict:
    bucket = moto_bucket(state.bucket)
    if bucket is None:
        return {}
    out = {}
    for name, key in bucket.keys.items():
        if not hasattr(key, "size") or not hasattr(key, "metadata"):
            continue                         # delete marker
        meta = dict(key.metadata)
        cache_key = (name, key.etag, key.size, str(key.last_modified))
        out[name] = {
            "size": key.size,
            "etag": key.etag,
            "content_type": meta.get("content-type"),
            "content_disposition": meta.get("content-disposition"),
            "cache_control": meta.get("cache-control"),
            "content_encoding": meta.get("content-encoding"),
            "metadata": {k[len("x-amz-meta-"):]: v for k, v in meta.items()
                         if k.lower().startswith("x-amz-meta-")},
            "sha256": state.cached_sha(cache_key, lambda k=key: stored_sha256(k)),
        }
    return out


def empty_bucket(state: State) -> dict:
    """Deletes every object and aborts every open multipart upload, so a test starts from nothing."""
    from moto.s3.models import s3_backends
    backend = s3_backends[ACCOUNT_ID]["aws"]
    bucket = moto_bucket(state.bucket)
    if bucket is None:
        return {"objects": 0, "multipart": 0}
    uploads = [mp.id for mp in list(bucket.multiparts.values())]
    for upload_id in uploads:
        backend.abort_multipart_upload(state.bucket, upload_id)
    names = list(bucket.keys.keys())
    for name in names:
        backend.delete_object(state.bucket, name, bypass=True)
    with state.lock:
        state.parts, state.sha_cache = {}, {}
    return {"objects": len(names), "multipart": len(uploads)}


def multipart_snapshot(state: State) -> list[dict]:
    bucket = moto_bucket(state.bucket)
    if bucket is None:
        return []
    return [{"key": mp.key_name, "uploadId": mp.id} for mp in list(bucket.multiparts.values())]


def check_signatures_on_raw_path() -> None:
    """Make moto verify S3 signatures against the request target as sent.

    moto rebuilds the canonical request from werkzeug's IRI-decoded URL, so every
    key whose correct SigV4 encoding has %XX for a character werkzeug decodes
    (non-ASCII, ( ) + = @ , ; ' %) fails with SignatureDoesNotMatch even when the
    client signed it right. The raw target (werkzeug's RAW_URI) is what S3/R2 sign.
    """
    from flask import has_request_context, request
    from moto.iam.access_control import S3IAMRequest
    original_init = S3IAMRequest.__init__

    def init(self, *args, **kwargs):
        if has_request_context() and "path" in kwargs and request.environ.get("RAW_URI"):
            kwargs["path"] = request.environ["RAW_URI"]
        original_init(self, *args, **kwargs)

    S3IAMRequest.__init__ = init


def start_moto():
    from moto.server import ThreadedMotoServer
    check_signatures_on_raw_path()
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)   # no access log / tracebacks
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    return server, server.get_host_and_port()[1]


def provision(endpoint: str, bucket: str) -> tuple[str, str]:
    """While auth is off: bucket, IAM user allowed s3:* on *, and its access key."""
    import boto3
    dummy = dict(endpoint_url=endpoint, region_name=SETUP_REGION,
                 aws_access_key_id="setup", aws_secret_access_key="setup")
    boto3.client("s3", **dummy).create_bucket(Bucket=bucket)
    iam = boto3.client("iam", **dummy)
    iam.create_user(UserName="r2-fake")
    iam.put_user_policy(UserName="r2-fake", PolicyName="s3-all", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="r2-fake")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def allow_anonymous(endpoint: str, bucket: str) -> None:
    """--no-auth: a public bucket policy, else moto answers 403 to any unsigned
    request that touches an existing key (its private-ACL check), e.g. a second curl -T."""
    import boto3
    boto3.client("s3", endpoint_url=endpoint, region_name=SETUP_REGION,
                 aws_access_key_id="setup", aws_secret_access_key="setup").put_bucket_policy(
        Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}))


def enable_auth(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0",
                                     headers={"Content-Type": "text/plain"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def verify_auth(endpoint: str, bucket: str, key_id: str, secret: str) -> None:
    """Through the proxy: unsigned, wrongly signed and unknown-key requests get 403
    and the real key works with region "auto".

    (moto itself answers an unsigned request with 500 - KeyError 'Authorization' -
    except GetObject of an existing private key, which is why the proxy refuses
    requests without Authorization itself.)
    """
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
    unsigned = urllib.request.Request(f"{endpoint}/{bucket}?list-type=2",
                                      headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    try:
        urllib.request.urlopen(unsigned, timeout=30).read()
        raise RuntimeError("an unsigned request was accepted")
    except urllib.error.HTTPError as exc:
        if exc.code != 403:
            raise RuntimeError(f"unsigned request got {exc.code}, wanted 403") from None
    config = Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required")

    def client(access_key, secret_key):
        return boto3.client("s3", endpoint_url=endpoint, region_name="auto", config=config,
                            aws_access_key_id=access_key, aws_secret_access_key=secret_key)
    for access_key, secret_key, code in ((key_id, secret + "x", "SignatureDoesNotMatch"),
                                         ("AKIANOSUCHKEY0000000", secret, "InvalidAccessKeyId")):
        try:
            client(access_key, secret_key).list_objects_v2(Bucket=bucket, MaxKeys=1)
            raise RuntimeError(f"moto accepted a request that should fail with {code}")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != code:
                raise RuntimeError(f"wanted {code}, got {exc.response['Error']}") from None
    client(key_id, secret).list_objects_v2(Bucket=bucket, MaxKeys=1)


# --------------------------------------------------------------------------- proxy

class R2ProxyHandler(BaseHTTPRequestHandler):
    """One client connection (HTTP/1.1 keep-alive); forwards to moto with R2's rules."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle holds the body until the
    # client acknowledges the headers, and a delayed ACK makes every answer 40 ms late.
    disable_nagle_algorithm = True
    server_version = "r2-fake"
    timeout = 300
    state: State            # set on the subclass built in main()
    verbose = False
    entry: dict | None = None
    remaining = 0           # request body bytes not yet read from the client
    digests: BodyDigests | None = None

    # ---- plumbing

    def log_message(self, fmt, *args):
        if self.verbose:
            sys.stderr.write("proxy: " + (fmt % args) + "\n")

    def send_response_only(self, code, message=None):
        if self.entry is not None:
            self.entry["status"] = code
        super().send_response_only(code, message)

    def handle_expect_100(self):
        if self.path.startswith(CONTROL):
            return super().handle_expect_100()
        self.begin_entry()
        self.close_connection = True        # the body was never read
        self.finish_with(Refusal(417, "ExpectationFailed",
                                 "Expect: 100-continue is not supported; send the body at once",
                                 detail="Expect: 100-continue"))
        self.state.append_log(self.entry)
        self.entry = None
        return False

    def do_GET(self):
        self.dispatch()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def dispatch(self):
        if self.path.startswith(CONTROL):
            self.entry = None
            return self.control()
        self.begin_entry()
        try:
            self.proxy()
        except Refusal as refusal:
            self.finish_with(refusal)
        except (OSError, http.client.HTTPException) as exc:
            self.entry["error"] = f"{type(exc).__name__}: {exc}"
            self.close_connection = True
        finally:
            self.state.append_log(self.entry)
            self.entry = None

    def begin_entry(self):
        self.state.begin_request()
        path, _, query = self.path.partition("?")
        self.entry = {"method": self.command, "path": path, "query": query, "status": None,
                      "bytes_in": 0, "headers": redacted_headers(self.headers),
                      "fault": None, "refused": None}
        self.remaining = 0
        self.digests = None

    def finish_with(self, refusal: Refusal):
        self.entry["refused"] = refusal.reason
        self.discard_body()
        self.send_xml(refusal.status, refusal.code, refusal.message)

    def send_xml(self, status: int, code: str, message: str, headers: dict | None = None):
        body = b"" if self.command == "HEAD" else s3_error_xml(code, message)
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, value) -> None:
        body = json.dumps(value, indent=1).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # ---- request body

    def read_piece(self, buffer: memoryview) -> memoryview:
        """Next piece of the request body (at most len(buffer) bytes)."""
        want = min(len(buffer), self.remaining)
        got = self.rfile.readinto(buffer[:want]) if want else 0
        if got < want:
            self.close_connection = True
            raise ConnectionError(f"client closed with {self.remaining - got} body bytes unsent")
        self.remaining -= got
        self.entry["bytes_in"] += got
        if self.digests:
            self.digests.update(buffer[:got])
        return buffer[:got]

    def discard_body(self, limit: int | None = None) -> None:
        buffer = memoryview(bytearray(PIECE))
        target = self.remaining - min(self.remaining, limit if limit is not None else self.remaining)
        try:
            while self.remaining > target:
                self.read_piece(buffer[:min(PIECE, self.remaining - target)])
        except OSError:
            self.close_connection = True

    def read_small_body(self) -> bytes:
        """Whole body of a small request (CompleteMultipartUpload XML), digests checked."""
        chunks, buffer = [], memoryview(bytearray(PIECE))
        while self.remaining:
            chunks.append(bytes(self.read_piece(buffer)))
        self.digests.check()
        return b"".join(chunks)

    # ---- R2 rules

    def check_headers(self) -> int:
        """Header-level R2 rules; returns the body length."""
        h = self.headers
        if h.get("Transfer-Encoding"):
            self.close_connection = True
            raise Refusal(411, "MissingContentLength", "You must provide the Content-Length HTTP header.",
                          detail=f"Transfer-Encoding: {h.get('Transfer-Encoding')}")
        try:
            length = int(h.get("Content-Length") or 0)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise Refusal(400, "InvalidArgument", "Bad Content-Length") from None
        self.remaining = length
        sha = h.get("x-amz-content-sha256")
        if sha is None:
            raise Refusal(400, "InvalidRequest", "Missing x-amz-content-sha256")
        if sha.upper().startswith("STREAMING-"):
            raise Refusal(501, "NotImplemented", "STREAMING-* payload signing is not implemented",
                          detail=f"x-amz-content-sha256: {sha}")
        for name in h.keys():
            low = name.lower()
            if low.startswith("x-amz-checksum-") or low == "x-amz-sdk-checksum-algorithm":
                raise Refusal(501, "NotImplemented", f"Header {name} is not implemented",
                              detail=f"{low} header")
        if sha != "UNSIGNED-PAYLOAD" and not HEX_SHA256.fullmatch(sha):
            raise Refusal(400, "InvalidArgument",
                          "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a SHA-256 hex digest")
        md5 = h.get("Content-MD5")
        if md5 is not None:
            try:
                if len(base64.b64decode(md5, validate=True)) != 16:
                    raise ValueError
            except (binascii.Error, ValueError):
                raise Refusal(400, "InvalidDigest", "The Content-MD5 you specified is not valid.") from None
        if self.state.auth and "Authorization" not in h:
            raise Refusal(403, "AccessDenied", "Access Denied",
                          detail="no Authorization header (moto cannot check presigned/anonymous requests)")
        if self.command == "PUT" and length > MAX_PUT:
            self.remaining, self.close_connection = 0, True     # not worth draining
            raise Refusal(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size.",
                          detail=f"{length} B > {MAX_PUT} B")
        return length

    def check_complete(self, query: dict, body: bytes) -> None:
        """R2's part size rule at CompleteMultipartUpload, on the sizes we saw go through."""
        upload_id = query["uploadId"][0]
        numbers = parse_complete_parts(body)
        sizes = self.state.part_sizes(upload_id)
        if not numbers or any(n not in sizes for n in numbers):
            return                            # unreadable or unseen parts: let moto judge
        problem = multipart_violation(numbers, sizes)
        if problem:
            raise Refusal(400, "InvalidPart", MULTIPART_MESSAGE, detail=problem)

    # ---- proxying

    def proxy(self):
        path, _, raw_query = self.path.partition("?")
        query = parse_qs(raw_query, keep_blank_values=True)
        length = self.check_headers()
        action = self.state.pop_action(self.command, path, raw_query) or {}
        self.entry["fault"] = action or None
        if action.get("delay"):
            time.sleep(float(action["delay"]))
        if "reset_after_bytes" in action:
            self.discard_body(limit=int(action["reset_after_bytes"]))
            return self.abort_connection()
        if action.get("echo_headers"):
            self.discard_body()
            echoed = "; ".join(f"{k}: {v}" for k, v in self.headers.items())
            return self.send_xml(int(action.get("status", 400)), action.get("code", "InvalidRequest"),
                                 echoed, action.get("headers"))
        if "status" in action or action.get("error_body"):
            self.discard_body()
            status = action.get("status", 200 if action.get("error_body") else 500)
            return self.send_xml(int(status), action.get("code", "InternalError"),
                                 action.get("message", "Injected fault"), action.get("headers"))

        sha = self.headers.get("x-amz-content-sha256")
        self.digests = BodyDigests(None if sha == "UNSIGNED-PAYLOAD" else sha,
                                   self.headers.get("Content-MD5"))
        body = None
        if self.command == "POST" and "uploadId" in query:      # CompleteMultipartUpload
            body = self.read_small_body()
            self.check_complete(query, body)
        elif length == 0:
            self.digests.check()
        status = self.forward(length, body, action)
        self.track_multipart(query, length, status)

    def forward(self, length: int, body, action: dict) -> int | None:
        """Send the request to moto and relay (or drop / alter) its answer."""
        drop_md5 = action.get("flip_byte") and "content-md5" not in signed_header_names(self.headers)
        upstream = http.client.HTTPConnection("127.0.0.1", self.state.moto_port, timeout=600)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if not (drop_md5 and name.lower() == "content-md5"):
                    upstream.putheader(name, value)
            upstream.endheaders()
            self.send_body(upstream, length, body, length // 2 if action.get("flip_byte") else None)
            response = upstream.getresponse()
            self.entry["upstream_status"] = response.status
            if action.get("commit_then_drop"):
                response.read()
                self.abort_connection()
                return response.status
            self.relay(response, lie_etag=bool(action.get("lie_etag")))
            return response.status
        finally:
            upstream.close()

    def send_body(self, upstream, length: int, body: bytes | None, flip_at: int | None) -> None:
        """Stream the body to moto. The last piece is held back until the digests
        match, so on a mismatch moto only ever sees a truncated request (which it
        drops) and nothing is stored - no temp file, no second pass."""
        if body is not None:
            body = bytearray(body)
        buffer = memoryview(body if body is not None else bytearray(PIECE))
        offset = 0
        while offset < length:
            if body is not None:
                piece = buffer[offset:offset + PIECE]
            else:
                piece = self.read_piece(buffer)
                if self.remaining == 0:
                    self.digests.check()
            if flip_at is not None and offset <= flip_at < offset + len(piece):
                piece[flip_at - offset] ^= 0xFF
            upstream.send(piece)
            offset += len(piece)

    def relay(self, response, lie_etag: bool) -> None:
        no_body = self.command == "HEAD" or response.status in (204, 304)
        declared = response.getheader("Content-Length")
        rewrite_xml = lie_etag and (declared is None or int(declared) <= PIECE)
        buffered = None
        if not no_body and (declared is None or rewrite_xml):
            buffered = response.read()
            if rewrite_xml:
                buffered = re.sub(rb"<ETag>(&quot;|&#34;|\")?[^<]*?(&quot;|&#34;|\")?</ETag>",
                                  rb"<ETag>&quot;00000000000000000000000000000000&quot;</ETag>", buffered)
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            low = name.lower()
            if low in HOP_BY_HOP or (buffered is not None and low == "content-length"):
                continue
            self.send_header(name, WRONG_ETAG if lie_etag and low == "etag" else value)
        if buffered is not None:
            self.send_header("Content-Length", str(len(buffered)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if buffered is not None:
            self.wfile.write(buffered)
        elif not no_body:
            while piece := response.read(PIECE):
                self.wfile.write(piece)

    def track_multipart(self, query: dict, length: int, status: int | None) -> None:
        upload_id = query.get("uploadId", [None])[0]
        if not upload_id or status is None:
            return
        if (self.command == "PUT" and status == 200 and "partNumber" in query
                and "x-amz-copy-source" not in self.headers):
            self.state.record_part(upload_id, int(query["partNumber"][0]), length)
        elif (self.command == "POST" and status == 200) or (self.command == "DELETE" and status == 204):
            self.state.forget_upload(upload_id)

    def abort_connection(self) -> None:
        """Drop the client connection with a TCP RST, answering nothing."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.wfile.close()
        self.connection.close()
        self.rfile, self.wfile = io.BytesIO(), io.BytesIO()   # absorb the server's final flush

    # ---- control endpoints

    def control(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        route = (self.command, self.path.partition("?")[0])
        state = self.state
        if route == ("POST", "/__fake/faults"):
            try:
                state.set_rules(compile_rules(json.loads(raw or b"null")))
            except (ValueError, TypeError) as exc:
                return self.send_json(400, {"error": str(exc)})
            return self.send_json(200, {"ok": True, "rules": len(state.rules)})
        if route == ("GET", "/__fake/faults"):
            return self.send_json(200, state.rules_left())
        if route == ("GET", "/__fake/log"):
            return self.send_json(200, state.log_copy())
        if route == ("POST", "/__fake/reset"):
            state.reset()
            return self.send_json(200, {"ok": True})
        if route == ("GET", "/__fake/objects"):
            return self.send_json(200, objects_snapshot(state))
        if route == ("GET", "/__fake/multipart"):
            return self.send_json(200, multipart_snapshot(state))
        if route == ("POST", "/__fake/empty"):
            return self.send_json(200, empty_bucket(state))
        return self.send_json(404, {"error": f"no control endpoint {route[0]} {route[1]}"})


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


# --------------------------------------------------------------------------- main

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="proxy port (0 = any free port)")
    parser.add_argument("--bucket", default="media")
    parser.add_argument("--no-auth", action="store_true", help="leave moto's signature checks off")
    parser.add_argument("--verbose", action="store_true", help="access log on stderr")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    moto, moto_port = start_moto()
    moto_url = f"http://127.0.0.1:{moto_port}"
    key_id, secret = provision(moto_url, args.bucket)
    if args.no_auth:
        allow_anonymous(moto_url, args.bucket)
    else:
        enable_auth(moto_url)

    state = State(args.bucket, moto_port, auth=not args.no_auth)
    handler = type("Handler", (R2ProxyHandler,), {"state": state, "verbose": args.verbose})
    proxy = ProxyServer(("127.0.0.1", args.port), handler)
    proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
    threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.1},
                     name="r2-proxy", daemon=True).start()
    if not args.no_auth:
        verify_auth(proxy_url, args.bucket, key_id, secret)
        state.settle()   # the checks' last log entries land before the log is cleared
        state.reset()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    ready = {"endpoint": proxy_url, "moto": moto_url,
             "bucket": args.bucket, "access_key_id": key_id, "secret_access_key": secret,
             "region": "auto"}
    sys.stdout.write("READY " + json.dumps(ready, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    # Also stop when the test process that started us is gone, so no fake outlives its test
    # (a fake left behind keeps the test runner's output pipe open).
    parent = os.getppid()
    while not stop.wait(0.5) and os.getppid() == parent:
        pass
    proxy.shutdown()
    proxy.server_close()
    moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
