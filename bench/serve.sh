#!/usr/bin/env bash
# `media-pipeline serve` under load against per-file processes, on the same files in one run:
# FILES small images (default 500) posted by CLIENTS connections at once (default 32) to a server
# with the Cloudflare fake and the S3 fake behind it, then the same files through
# `media-pipeline run FILE` once each, CLIENTS at once. Prints throughput, p50/p99 latency, the
# ratio, and the server's memory: idle, peak during the load (itself plus its decoder workers),
# and after.
#   MP=.build/release/media-pipeline bash bench/serve.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
resolve_mp
FILES=${FILES:-500}
CLIENTS=${CLIENTS:-32}
with_servers_tmp serve
start_fakes
export MEDIA_PIPELINE_TOKEN=bench-serve-token-0123456789abcdef

# Distinct small JPEGs (about 40 KB, 640×480), so every upload is new to the provider.
mkdir -p "$tmp/images" "$tmp/images2"
python3 - "$tmp/images" "$FILES" <<'PY'
import os, struct, sys, zlib
out, n = sys.argv[1], int(sys.argv[2])
def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
w, h = 320, 240
for i in range(n):
    raw = b''.join(b'\x00' + bytes(v for x in range(w) for v in ((x * 3 + i) % 256, (y * 5 + i * 7) % 256, (x ^ y ^ i) % 256)) for y in range(h))
    png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(raw, 6)) + chunk(b'IEND', b'')
    open(os.path.join(out, 'img-%04d.png' % i), 'wb').write(png)
PY
for f in "$tmp"/images/*.png; do vips copy "$f" "$tmp/images2/$(basename "${f%.png}").jpg[Q=85]"; done
rm -rf "$tmp/images"; mv "$tmp/images2" "$tmp/images"
echo "[bench] $FILES images, $(du -sh "$tmp/images" | cut -f1), $CLIENTS clients; $(load_now)" >&2
pipeline="$REPO_DIR/pipeline.json"

# The server, with as many requests in flight as clients.
"$MP" serve --pipeline "$pipeline" --listen 127.0.0.1:0 --max-in-flight "$CLIENTS" --set limits.apiRequestsPer5Min=100000 --quiet 2>"$tmp/serve.log" &
server=$!; pids+=("$server")
for _ in $(seq 1 300); do grep -q '^serving on' "$tmp/serve.log" && break; sleep 0.1; done
port=$(sed -n 's/^serving on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/serve.log")
[ -n "$port" ] || { cat "$tmp/serve.log" >&2; exit 1; }
# Resident memory of the server and its children (decoder workers), in KiB.
# One awk over the status files, so sampling costs the machine little while it is measured.
rss_tree() {
  local kids
  kids=$(cat /proc/"$server"/task/*/children 2>/dev/null || true)
  (cd /proc && awk '/^VmRSS/ { total += $2 } END { print total + 0 }' "$server/status" $(for k in $kids; do echo "$k/status"; done) 2>/dev/null)
}
curl -fsS -H "Authorization: Bearer $MEDIA_PIPELINE_TOKEN" "http://127.0.0.1:$port/healthz" >/dev/null
# Idle means warmed up and quiet: one upload first (libraries load on first use), then long enough
# for its decoder worker to end (15 s idle) and the heap to be trimmed.
images=("$tmp"/images/*.jpg); first=$(basename "${images[0]}")
curl -fsS -o /dev/null -H "Authorization: Bearer $MEDIA_PIPELINE_TOKEN" --data-binary @"$tmp/images/$first" \
  "http://127.0.0.1:$port/v1/assets?purpose=avatar&filename=warm-up.jpg"
cold=$(rss_tree)
sleep 20
idle=$(rss_tree)
peak=0
( while kill -0 "$server" 2>/dev/null; do rss_tree; sleep 0.5; done ) > "$tmp/rss.samples" &
sampler=$!; pids+=("$sampler")
served=$(python3 "$BENCH_DIR/serve_load.py" http "$port" "$MEDIA_PIPELINE_TOKEN" "$tmp/images" "$CLIENTS" thumbnail)
# Idle decoder workers end after 15 s; give them that, then measure again.
sleep 20
after=$(rss_tree)
kill "$sampler" 2>/dev/null || true
peak=$(sort -n "$tmp/rss.samples" | tail -1)
kill -TERM "$server"; wait "$server" || true

# The same files, one `media-pipeline run` process each (a fresh bucket and account state: the
# fakes are reset so nothing is found already there).
curl -fsS -X POST "$cf_url/__fake/reset" >/dev/null
procs=$(python3 "$BENCH_DIR/serve_load.py" procs "$MP" "$pipeline" "$tmp/images" "$CLIENTS" thumbnail)

echo "serve:             $served"
echo "per-file process:  $procs"
python3 - "$served" "$procs" "$idle" "$peak" "$after" "$cold" <<'PY'
import json, sys
s, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
idle, peak, after, cold = (int(x) / 1024 for x in sys.argv[3:7])
print(f"throughput: serve {s['per_second']} files/s, per-file processes {p['per_second']} files/s: {s['per_second'] / p['per_second']:.1f}x")
print(f"latency serve p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms; per-file p50 {p['p50_ms']} ms p99 {p['p99_ms']} ms")
print(f"server RSS (with decoder workers): idle {idle:.1f} MiB (right after the warm-up upload {cold:.1f}), peak {peak:.1f} MiB, "
      f"20 s after the load {after:.1f} MiB ({(after - idle) / idle * 100:+.1f} % of idle)")
ok = s['ok'] == s['files'] and p['ok'] == p['files']
print("all files stored" if ok else "SOME FILES FAILED")
sys.exit(0 if ok else 1)
PY
