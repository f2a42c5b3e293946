#!/usr/bin/env python3
"""A webhook receiver for the tests: checks Standard Webhooks signatures on its own, with hmac.

Every POST is logged. One that carries webhook-id, webhook-timestamp (within --tolerance seconds
of now) and a webhook-signature holding a v1 HMAC-SHA256 of "id.timestamp.body" under the
base64-decoded part of the whsec_ secret is "verified". A verified event is processed once per id
(later deliveries of the same id are answered 200 and counted as repeats).

Control (JSON): POST /__fake/script {"statuses": [503, 400, ...], "delay_first": seconds}
  statuses: answers for the next deliveries, one each, then 200 again;
  delay_first: sleep this long before answering the first delivery of each id (a slow receiver).
GET /__fake/state -> {"deliveries": [{id, type, verified, status, signature_ok, timestamp_ok}],
                      "processed": {id: body}}
POST /__fake/reset forgets every delivery, processed event and script.
Prints "READY <port>" once listening.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--secret", required=True)
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--tolerance", type=int, default=300)
args = parser.parse_args()
key = base64.b64decode(args.secret[len("whsec_"):])

lock = threading.Lock()
deliveries = []
processed = {}
seen_first = set()
script = {"statuses": [], "delay_first": 0}


def verify(headers, body):
    msg_id = headers.get("webhook-id") or ""
    stamp = headers.get("webhook-timestamp") or ""
    signatures = (headers.get("webhook-signature") or "").split(" ")
    try:
        timestamp_ok = abs(time.time() - int(stamp)) <= args.tolerance
    except ValueError:
        timestamp_ok = False
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()).decode()
    signature_ok = any(s.startswith("v1,") and hmac.compare_digest(s[3:], expected) for s in signatures)
    return msg_id, signature_ok, timestamp_ok


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle holds the body until the
    # client acknowledges the headers, and a delayed ACK makes every answer 40 ms late.
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def answer(self, status, payload=b""):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        if self.path == "/__fake/state":
            with lock:
                body = json.dumps({"deliveries": deliveries, "processed": processed}).encode()
            return self.answer(200, body)
        self.answer(404)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/__fake/script":
            with lock:
                script.update(json.loads(body or b"{}"))
            return self.answer(200, b"{}")
        if self.path == "/__fake/reset":
            with lock:
                deliveries.clear()
                processed.clear()
                seen_first.clear()
                script.update(statuses=[], delay_first=0)
            return self.answer(200, b"{}")
        msg_id, signature_ok, timestamp_ok = verify(self.headers, body)
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        verified = signature_ok and timestamp_ok and event is not None and msg_id != ""
        with lock:
            first = msg_id not in seen_first
            seen_first.add(msg_id)
            delay = script["delay_first"] if first else 0
            status = script["statuses"].pop(0) if script["statuses"] else (200 if verified else 401)
        if delay:
            time.sleep(delay)
        with lock:
            deliveries.append({"id": msg_id, "type": (event or {}).get("type"), "verified": verified,
                               "signature_ok": signature_ok, "timestamp_ok": timestamp_ok, "status": status})
            if verified and status < 300 and msg_id not in processed:
                processed[msg_id] = event
        try:
            self.answer(status, b"{}")
        except (BrokenPipeError, ConnectionResetError):
            pass


server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
server.daemon_threads = True
print(f"READY {server.server_address[1]}", flush=True)
# Stop when the test process that started us is gone, so no receiver outlives its test.
parent = os.getppid()
threading.Thread(target=server.serve_forever, daemon=True).start()
while os.getppid() == parent:
    time.sleep(0.5)
server.shutdown()
