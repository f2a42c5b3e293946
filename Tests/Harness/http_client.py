#!/usr/bin/env python3
"""Raw HTTP clients that misbehave on purpose, for the `serve` tests (standard library only).

Each mode prints one JSON object on stdout:

  slow-headers  send a request's headers one byte every --interval seconds; report when the
                server closed the connection ({"closed_after": s, "sent": n, "answer": "…"})
  big-length    declare --length bytes, send --send of them, read the answer
                ({"status": n, "seconds": s, "sent": n, "body": "…"})
  disconnect    declare --length bytes, send --send of them, then reset the connection
  concurrent    POST each file of --files to --path at once, one thread each
                ({"answers": [{"file", "status", "body", "retry_after"}…]})
"""
import argparse
import json
import os
import socket
import struct
import sys
import threading
import time
import http.client


def head(args, method, path, length=None, extra=()):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {args.host}:{args.port}"]
    if args.token:
        lines.append(f"Authorization: Bearer {args.token}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock, timeout):
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                top, _, rest = data.partition(b"\r\n\r\n")
                length = 0
                for line in top.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if len(rest) >= length:
                    break
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def status_of(answer):
    try:
        return int(answer.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def slow_headers(args):
    sock = socket.create_connection((args.host, args.port))
    request = head(args, "GET", "/healthz")
    started = time.monotonic()
    sent = 0
    answer = b""
    closed = None
    for byte in request:
        try:
            sock.sendall(bytes([byte]))
            sent += 1
        except OSError:
            closed = time.monotonic() - started
            break
        sock.settimeout(args.interval)
        try:
            chunk = sock.recv(4096)
            if not chunk:
                closed = time.monotonic() - started
                break
            answer += chunk
        except socket.timeout:
            pass
        except OSError:
            closed = time.monotonic() - started
            break
        if time.monotonic() - started > args.max:
            break
    sock.close()
    print(json.dumps({"closed_after": closed, "sent": sent, "of": len(request), "answer": answer.decode("latin-1")[:200]}))


def big_length(args):
    sock = socket.create_connection((args.host, args.port))
    started = time.monotonic()
    sock.sendall(head(args, "POST", args.path, length=args.length))
    sent = 0
    block = b"\0" * 65536
    sock.settimeout(0.2)
    try:
        while sent < args.send:
            sock.sendall(block[: min(len(block), args.send - sent)])
            sent += min(len(block), args.send - sent)
    except OSError:
        pass
    answer = read_answer(sock, 10)
    seconds = time.monotonic() - started
    sock.close()
    body = answer.partition(b"\r\n\r\n")[2].decode("utf-8", "replace")
    print(json.dumps({"status": status_of(answer), "seconds": seconds, "sent": sent, "body": body}))


def disconnect(args):
    sock = socket.create_connection((args.host, args.port))
    sock.sendall(head(args, "POST", args.path, length=args.length))
    sent = 0
    block = os.urandom(65536)
    while sent < args.send:
        piece = block[: min(len(block), args.send - sent)]
        sock.sendall(piece)
        sent += len(piece)
    time.sleep(0.3)
    # A reset, not a polite close: the server sees the client vanish mid-body.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    print(json.dumps({"sent": sent}))


def concurrent(args):
    files = sorted(os.path.join(args.files, name) for name in os.listdir(args.files))
    answers = [None] * len(files)
    gate = threading.Barrier(len(files))

    def one(i, path):
        with open(path, "rb") as f:
            data = f.read()
        name = os.path.basename(path)
        conn = http.client.HTTPConnection(args.host, args.port, timeout=300)
        gate.wait()
        try:
            conn.request("POST", f"{args.path}&filename={name}", body=data,
                         headers={"Authorization": f"Bearer {args.token}", "Content-Length": str(len(data))})
            response = conn.getresponse()
            answers[i] = {"file": name, "status": response.status, "body": response.read().decode("utf-8", "replace"),
                          "retry_after": response.getheader("Retry-After")}
        except OSError as error:
            answers[i] = {"file": name, "status": 0, "body": str(error), "retry_after": None}
        finally:
            conn.close()

    threads = [threading.Thread(target=one, args=(i, path)) for i, path in enumerate(files)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"answers": answers}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["slow-headers", "big-length", "disconnect", "concurrent"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--path", default="/v1/assets?filename=x.bin")
    parser.add_argument("--length", type=int, default=0)
    parser.add_argument("--send", type=int, default=0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--max", type=float, default=60.0)
    parser.add_argument("--files", default="")
    args = parser.parse_args()
    {"slow-headers": slow_headers, "big-length": big_length, "disconnect": disconnect, "concurrent": concurrent}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
