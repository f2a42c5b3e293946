#!/usr/bin/env python3
"""Load for bench/serve.sh (standard library only).

  serve_load.py http PORT TOKEN DIR CLIENTS PURPOSE
      POSTs every file of DIR to /v1/assets with CLIENTS connections at once; a 503 is sent
      again after its Retry-After.
  serve_load.py procs MP PIPELINE DIR CLIENTS PURPOSE
      runs `MP run FILE --no-journal --purpose PURPOSE --quiet` once per file, CLIENTS at once.

Prints one JSON object: files, ok, wall seconds, files/s, p50/p99 latency (ms), retries.
"""
import http.client
import json
import os
import queue
import subprocess
import sys
import threading
import time


def percentile(values, p):
    values = sorted(values)
    if not values:
        return None
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


def run(mode, args):
    directory, clients, purpose = args[2], int(args[3]), args[4]
    files = sorted(os.path.join(directory, f) for f in os.listdir(directory))
    work = queue.Queue()
    for f in files:
        work.put(f)
    latencies, failures, retries = [], [], [0]
    lock = threading.Lock()

    def http_worker():
        port, token = int(args[0]), args[1]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            try:
                path = work.get_nowait()
            except queue.Empty:
                break
            with open(path, "rb") as f:
                body = f.read()
            started = time.monotonic()
            while True:
                try:
                    conn.request("POST", f"/v1/assets?purpose={purpose}&filename={os.path.basename(path)}", body=body,
                                 headers={"Authorization": f"Bearer {token}"})
                    response = conn.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                    with lock:
                        retries[0] += 1
                    continue
                if response.status == 503:
                    with lock:
                        retries[0] += 1
                    time.sleep(float(response.getheader("Retry-After") or 1) / 10)
                    continue
                break
            with lock:
                latencies.append((time.monotonic() - started) * 1000)
                if response.status != 201:
                    failures.append(response.status)
        conn.close()

    def proc_worker():
        mp, pipeline = args[0], args[1]
        while True:
            try:
                path = work.get_nowait()
            except queue.Empty:
                break
            started = time.monotonic()
            code = subprocess.run([mp, "run", path, "--pipeline", pipeline, "--no-journal", "--purpose", purpose, "--quiet",
                                   "--set", "limits.apiRequestsPer5Min=100000"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
            with lock:
                latencies.append((time.monotonic() - started) * 1000)
                if code != 0:
                    failures.append(code)

    started = time.monotonic()
    threads = [threading.Thread(target=http_worker if mode == "http" else proc_worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    print(json.dumps({"files": len(files), "ok": len(files) - len(failures), "failures": failures[:5], "wall": round(wall, 2),
                      "per_second": round(len(files) / wall, 1), "p50_ms": round(percentile(latencies, 50), 1),
                      "p99_ms": round(percentile(latencies, 99), 1), "retries": retries[0]}))


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2:])
