#!/usr/bin/env python3
"""A TCP fault proxy for the media-pipeline tests.

Python 3.11 standard library only. It listens on 127.0.0.1, forwards raw TCP to one
upstream (one of the other fakes) and breaks chosen requests on the way:

    python3 fault_proxy.py --upstream HOST:PORT [--port 0] [--control-port 0]
        [--tls-self-signed | --tls-cert PEM --tls-key PEM]

It prints exactly one line once both ports listen:

    READY {"endpoint":"http://127.0.0.1:P","control":"http://127.0.0.1:C","upstream":"HOST:PORT"}

The bytes go through unchanged. The proxy only follows the client's request framing
(head, then a Content-Length body; the tool never sends chunked bodies) so that a fault
can start at a given request. The answers are never parsed.

Faults are scripted on the control port (plain HTTP, never faulted):

    POST /faults   {"actions":[...]} appends actions to the script
    GET  /faults   the actions not taken yet
    GET  /log      one entry per connection (see Connection.entry)
    POST /reset    forgets the script and the log

Each request (on any connection) takes the first action of the script whose "match"
(a regex searched in the request line, default: any request) fits it. The action then
governs that connection from that request's first byte on. An action is an object:

    {}                                   pass
    {"reset_after": N, "direction": "up"|"down"}
                                         forward N more bytes client->server ("up", the
                                         default; counted from the request's first byte)
                                         or server->client ("down"), then RST both sides
    {"stall": S}                         read and drop everything, forward and answer
                                         nothing; after S seconds (true: never) RST
    {"respond": 503, "headers": {...}, "body": "..."}
                                         read the request head and body, answer that
                                         status with Connection: close, forward nothing
    {"latency": S}                       wait S seconds before each forwarded piece
    {"drip": N, "interval": S, "direction": "down"|"up"|"both"}
                                         forward at most N bytes per S seconds
                                         (default direction "down")

"latency" and "drip" combine in one action. Any action may add "times": K (the same
action K times in a row) and "match": REGEX.

With --tls-self-signed (a fresh certificate made by `openssl req -x509`) or --tls-cert
and --tls-key, clients must speak TLS to the proxy, which forwards plain TCP upstream.
The upstream is only connected once a request's bytes are to be forwarded, so a failed
handshake never reaches it.

The process stops on SIGTERM/SIGINT, or when its parent process goes away.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PIECE = 64 * 1024          # largest read from a socket at once
HEAD_MAX = 64 * 1024       # a request head longer than this is forwarded without framing
REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout", 408: "Request Timeout", 429: "Too Many Requests"}


class Script:
    """The scripted actions and the connection log, shared by every connection thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.actions: list[dict] = []
        self.connections: list[Connection] = []

    def add(self, actions):
        if not isinstance(actions, list):
            raise ValueError("'actions' must be a list")
        expanded = []
        for action in actions:
            if not isinstance(action, dict):
                raise ValueError(f"an action must be an object, not {action!r}")
            known = {"match", "times", "reset_after", "direction", "stall", "respond", "headers", "body",
                     "latency", "drip", "interval"}
            if set(action) - known:
                raise ValueError(f"unknown keys {sorted(set(action) - known)} in {action!r}")
            if "match" in action:
                re.compile(action["match"])
            times = int(action.get("times", 1))
            expanded += [{k: v for k, v in action.items() if k != "times"} for _ in range(times)]
        with self.lock:
            self.actions += expanded
            return len(self.actions)

    def take(self, request_line: str) -> dict | None:
        with self.lock:
            for index, action in enumerate(self.actions):
                if "match" not in action or re.search(action["match"], request_line):
                    return self.actions.pop(index)
        return None

    def register(self, connection) -> int:
        with self.lock:
            self.connections.append(connection)
            return len(self.connections)

    def reset(self):
        with self.lock:
            self.actions.clear()
            self.connections.clear()

    def log(self):
        with self.lock:
            return [c.entry() for c in self.connections]

    def pending(self):
        with self.lock:
            return list(self.actions)


class Framing:
    """Splits the client->server bytes into request heads and bodies."""

    def __init__(self):
        self.head = b""
        self.body_left = 0
        self.opaque = False      # a chunked body or an oversized head: no more framing

    def feed(self, data: bytes):
        """Yields ("head", bytes, request line), ("body", bytes, None) and ("end", b"", None)."""
        while data:
            if self.opaque:
                yield "body", data, None
                return
            if self.body_left:
                piece, data = data[:self.body_left], data[self.body_left:]
                self.body_left -= len(piece)
                yield "body", piece, None
                if not self.body_left:
                    yield "end", b"", None
                continue
            self.head += data
            data = b""
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > HEAD_MAX:
                    self.opaque = True
                    data, self.head = self.head, b""
                continue
            head, data = self.head[:end + 4], self.head[end + 4:]
            self.head = b""
            text = head.decode("latin-1")
            line = text.split("\r\n", 1)[0]
            length = re.search(r"(?im)^content-length:\s*(\d+)\s*$", text)
            if re.search(r"(?im)^transfer-encoding:\s*\S", text):
                self.opaque = True
            self.body_left = int(length.group(1)) if length and not self.opaque else 0
            yield "head", head, line
            if not self.body_left and not self.opaque:
                yield "end", b"", None


class Connection:
    """One client connection, served by one thread with a select loop over both sockets."""

    def __init__(self, proxy, client: socket.socket):
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.framing = Framing()
        self.requests: list[str] = []
        self.faults: list[dict] = []
        self.bytes_up = self.bytes_down = self.dropped = 0
        self.end = "open"
        self.detail = ""
        self.opened = time.monotonic()
        self.closed_after: float | None = None
        # What the taken actions set.
        self.reset_up: int | None = None       # bytes still to forward up before the RST
        self.reset_down: int | None = None
        self.stalled = False
        self.stall_until: float | None = None
        self.respond: dict | None = None
        self.latency = 0.0
        self.drip: tuple[int, float, str] | None = None
        self.id = proxy.script.register(self)

    def entry(self) -> dict:
        """What the log shows: request lines, faults taken (with the request index), byte
        counts (forwarded each way, read and dropped), whether the upstream was ever
        connected, and how the connection ended."""
        return {"id": self.id, "requests": list(self.requests), "faults": list(self.faults),
                "bytes_up": self.bytes_up, "bytes_down": self.bytes_down, "dropped": self.dropped,
                "upstream": self.upstream is not None, "end": self.end, "detail": self.detail,
                "seconds": round((self.closed_after or time.monotonic() - self.opened), 3)}

    def finish(self, end: str, detail: str = "", rst: bool = False):
        if self.end == "open":
            self.end, self.detail = end, detail
            self.closed_after = time.monotonic() - self.opened
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            try:
                if rst:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            except OSError:
                pass

    def run(self):
        try:
            if self.proxy.tls:
                self.client.settimeout(10)
                try:
                    self.client = self.proxy.tls.wrap_socket(self.client, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    return self.finish("tls_failed", str(exc))
                self.client.settimeout(None)
            self.loop()
        except OSError as exc:
            self.finish("error", f"{type(exc).__name__}: {exc}", rst=True)
        finally:
            self.finish("closed")

    def loop(self):
        while self.end == "open":
            timeout = None
            if self.stall_until is not None:
                timeout = max(0.0, self.stall_until - time.monotonic())
            if isinstance(self.client, ssl.SSLSocket) and self.client.pending():
                ready = [self.client]
            else:
                watched = [self.client] + ([self.upstream] if self.upstream else [])
                ready, _, _ = select.select(watched, [], [], timeout)
            if self.stall_until is not None and time.monotonic() >= self.stall_until:
                return self.finish("stall_reset", "stalled until the scripted time, then reset", rst=True)
            if self.client in ready:
                data = self.client.recv(PIECE)
                if not data:
                    return self.finish("client_closed", "stalled" if self.stalled else "")
                self.from_client(data)
            if self.end == "open" and self.upstream is not None and self.upstream in ready:
                data = self.upstream.recv(PIECE)
                if not data:
                    return self.finish("upstream_closed")
                self.to_client(data)

    def take(self, line: str):
        action = self.proxy.script.take(line)
        if action is None:
            return
        self.faults.append(dict(action, request=len(self.requests) - 1))
        if "reset_after" in action:
            if action.get("direction", "up") == "down":
                self.reset_down = int(action["reset_after"])
            else:
                self.reset_up = int(action["reset_after"])
        if "stall" in action:
            self.stalled = True
            if action["stall"] is not True:
                self.stall_until = time.monotonic() + float(action["stall"])
        if "respond" in action:
            self.respond = action
        if "latency" in action:
            self.latency = float(action["latency"])
        if "drip" in action:
            self.drip = (max(1, int(action["drip"])), float(action.get("interval", 0.01)), action.get("direction", "down"))

    def from_client(self, data: bytes):
        for kind, piece, line in self.framing.feed(data):
            if kind == "head":
                self.requests.append(line)
                self.take(line)
            if self.stalled or self.respond:
                self.dropped += len(piece)
                if self.respond and kind == "end":
                    return self.answer()
                continue
            if self.reset_up is not None and len(piece) >= self.reset_up:
                self.forward_up(piece[:self.reset_up])
                return self.finish("reset", "after the scripted bytes client->server", rst=True)
            if self.reset_up is not None:
                self.reset_up -= len(piece)
            self.forward_up(piece)

    def forward_up(self, piece: bytes):
        if not piece:
            return
        if self.upstream is None:
            self.upstream = socket.create_connection(self.proxy.upstream, timeout=10)
            self.upstream.settimeout(None)
        self.send(self.upstream, piece, "up")
        self.bytes_up += len(piece)

    def to_client(self, data: bytes):
        if self.reset_down is not None and len(data) >= self.reset_down:
            self.send(self.client, data[:self.reset_down], "down")
            self.bytes_down += self.reset_down
            return self.finish("reset", "after the scripted bytes server->client", rst=True)
        if self.reset_down is not None:
            self.reset_down -= len(data)
        self.send(self.client, data, "down")
        self.bytes_down += len(data)

    def send(self, sock: socket.socket, data: bytes, direction: str):
        if self.latency:
            time.sleep(self.latency)
        if self.drip and self.drip[2] in (direction, "both"):
            size, interval, _ = self.drip
            for start in range(0, len(data), size):
                sock.sendall(data[start:start + size])
                time.sleep(interval)
        elif data:
            sock.sendall(data)

    def answer(self):
        status = int(self.respond["respond"])
        body = self.respond.get("body", f"{status} {REASONS.get(status, 'Scripted')} (fault_proxy)\n").encode()
        headers = {"Content-Type": "text/plain", **self.respond.get("headers", {}),
                   "Content-Length": str(len(body)), "Connection": "close"}
        head = f"HTTP/1.1 {status} {REASONS.get(status, 'Scripted')}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        self.client.sendall(head.encode("latin-1") + body)
        self.finish("responded", str(status))


class Proxy:
    def __init__(self, host: str, port: int, upstream: tuple[str, int], tls: ssl.SSLContext | None):
        self.upstream = upstream
        self.tls = tls
        self.script = Script()
        self.listener = socket.create_server((host, port), backlog=128)

    def serve(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = Connection(self, client)
            threading.Thread(target=connection.run, name=f"conn-{connection.id}", daemon=True).start()


def control_handler(script: Script):
    class Control(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status: int, value):
            body = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/log":
                return self.reply(200, script.log())
            if self.path == "/faults":
                return self.reply(200, script.pending())
            self.reply(404, {"error": f"no control endpoint GET {self.path}"})

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/faults":
                try:
                    pending = script.add(json.loads(raw or b"{}").get("actions"))
                except (ValueError, TypeError, AttributeError, re.error) as exc:
                    return self.reply(400, {"error": str(exc)})
                return self.reply(200, {"ok": True, "pending": pending})
            if self.path == "/reset":
                script.reset()
                return self.reply(200, {"ok": True})
            self.reply(404, {"error": f"no control endpoint POST {self.path}"})

    return Control


def self_signed(folder: str) -> tuple[str, str]:
    """A fresh certificate for 127.0.0.1 that no trust store knows."""
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def parse_args(argv):
    p = argparse.ArgumentParser(description="TCP fault proxy in front of one test fake.")
    p.add_argument("--upstream", required=True, help="HOST:PORT to forward to")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="proxy port, 0 picks a free one (default)")
    p.add_argument("--control-port", type=int, default=0, help="control port, 0 picks a free one (default)")
    p.add_argument("--tls-cert", help="PEM certificate: clients speak TLS to the proxy")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument("--tls-self-signed", action="store_true", help="serve TLS with a certificate made at start")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    host, _, port = args.upstream.rpartition(":")
    if not host or not port.isdigit():
        p.error("--upstream takes HOST:PORT")
    args.upstream = (host, int(port))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    folder = tempfile.mkdtemp(prefix="fault-proxy-")
    try:
        tls = None
        if args.tls_self_signed or args.tls_cert:
            cert, key = self_signed(folder) if args.tls_self_signed else (args.tls_cert, args.tls_key)
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(cert, key)
        proxy = Proxy(args.host, args.port, args.upstream, tls)
        control = ThreadingHTTPServer((args.host, args.control_port), control_handler(proxy.script))
        control.daemon_threads = True
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        threading.Thread(target=proxy.serve, daemon=True).start()
        threading.Thread(target=control.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        scheme = "https" if tls else "http"
        ready = {"endpoint": f"{scheme}://{args.host}:{proxy.listener.getsockname()[1]}",
                 "control": f"http://{args.host}:{control.server_address[1]}",
                 "upstream": f"{args.upstream[0]}:{args.upstream[1]}"}
        print("READY " + json.dumps(ready, separators=(",", ":")), flush=True)
        parent = os.getppid()
        while not stop.wait(0.5) and os.getppid() == parent:
            pass
        control.shutdown()
        proxy.listener.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
