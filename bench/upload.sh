#!/usr/bin/env bash
# upload.sh [VIDEO_MIB] [OBJECT_MIB]
#
# Large uploads to the local servers, as the real binary does them:
#   - a VIDEO_MIB (default 2048) video through Stream's tus protocol to the Cloudflare fake,
#   - an OBJECT_MIB (default 1024) document through R2 multipart to moto behind the R2 proxy,
#   - the same document with `curl -T` (one PUT) to the same server in the same run.
# Prints peak RSS of each media-pipeline run (GNU time; budget 150 MB) and the R2 throughput
# ratio against curl (goal ≥ 0.8). RUNS=N (default 3) repeats the R2 pair and reports medians.
# Env: MP (binary), RUNS. Needs python3 with moto (see .ci/install-deps.sh), ffmpeg, curl.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

VIDEO_MIB=${1:-2048}
OBJECT_MIB=${2:-1024}
RUNS=${RUNS:-3}
LIMIT_MB=150

echo "[bench] start: $(load_now)"
resolve_mp
tmp=$(mktemp -d /tmp/mp-upload.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

# Start a server and wait for its READY line.
start() { # NAME CMD...
  local name=$1; shift
  "$@" >"$tmp/$name.ready" 2>"$tmp/$name.log" &
  pids+=($!)
  for _ in $(seq 1 300); do grep -q '^READY ' "$tmp/$name.ready" 2>/dev/null && return; sleep 0.1; done
  echo "[bench] $name did not start:" >&2; cat "$tmp/$name.log" >&2; exit 1
}
token=bench-token-0123456789abcdef
account=0123456789abcdef0123456789abcdef
start cloudflare python3 "$REPO_DIR/Tests/Fakes/cloudflare_fake.py" --token "$token" --account "$account" --data-dir "$tmp/cf-data"
# Without SigV4 checking, so plain curl -T can be compared on the same server.
start s3 python3 "$REPO_DIR/Tests/Fakes/s3_server.py" --no-auth
cf_port=$(awk '{print $2}' "$tmp/cloudflare.ready")
s3_json=$(sed 's/^READY //' "$tmp/s3.ready")
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$s3_json" "$1"; }
s3_endpoint=$(field endpoint)
export CLOUDFLARE_API_BASE_URL=http://127.0.0.1:$cf_port/client/v4 CLOUDFLARE_ACCOUNT_ID=$account CLOUDFLARE_API_TOKEN=$token
export CLOUDFLARE_R2_ENDPOINT=$s3_endpoint CLOUDFLARE_R2_BUCKET_NAME=$(field bucket)
export CLOUDFLARE_R2_ACCESS_KEY_ID=$(field access_key_id) CLOUDFLARE_R2_SECRET_ACCESS_KEY=$(field secret_access_key)

# Real headers, then filler: libmagic and the validate stage see a video and a PDF.
echo "[bench] making a ${VIDEO_MIB} MiB video and a ${OBJECT_MIB} MiB document ..." >&2
ffmpeg -loglevel error -f lavfi -i testsrc=duration=1:size=320x240:rate=10 -pix_fmt yuv420p "$tmp/head.mp4"
mkdir -p "$tmp/in-video" "$tmp/in-doc"
{ cat "$tmp/head.mp4"; head -c $((VIDEO_MIB * 1048576 - $(stat -c %s "$tmp/head.mp4"))) /dev/urandom; } > "$tmp/in-video/lesson.mp4"
{ printf '%%PDF-1.4\n%%\xe2\xe3\xcf\xd3\n'; head -c $((OBJECT_MIB * 1048576 - 15)) /dev/urandom; } > "$tmp/in-doc/handout.pdf"

upload() { # NAME INPUT : one run, peak RSS and wall time
  local start end
  start=$(date +%s.%N)
  run_rss "$tmp/$1.rss" "$MP" run "$2" --pipeline "$BENCH_DIR/upload.pipeline.json" --quiet --json >"$tmp/$1.json" 2>"$tmp/$1.err"
  end=$(date +%s.%N)
  [ "$RC" = 0 ] || { echo "[bench] $1 failed ($RC):" >&2; cat "$tmp/$1.err" >&2; exit 1; }
  SECONDS_TAKEN=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
}

upload video "$tmp/in-video"
video_rss=$RSS_KIB video_s=$SECONDS_TAKEN
grep -q '"sink":"stream"' "$tmp/video.json" || { echo "[bench] the video did not go to Stream" >&2; exit 1; }
rm -rf "$tmp/cf-data"

bytes=$(stat -c %s "$tmp/in-doc/handout.pdf")
ours=() theirs=() rss=()
for i in $(seq 1 "$RUNS"); do
  curl -sS -X POST "$s3_endpoint/__fake/reset" >/dev/null
  # A new key each run, so nothing is skipped as already uploaded.
  printf '%08d' "$i" | dd of="$tmp/in-doc/handout.pdf" bs=1 seek=20 conv=notrunc status=none
  upload doc "$tmp/in-doc"
  rss+=("$RSS_KIB") ours+=("$SECONDS_TAKEN")
  start=$(date +%s.%N)
  curl -sS -f -T "$tmp/in-doc/handout.pdf" -H 'Expect:' -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    "$s3_endpoint/$CLOUDFLARE_R2_BUCKET_NAME/curl-$i.pdf" -o /dev/null
  end=$(date +%s.%N)
  theirs+=("$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
m_ours=$(median "${ours[@]}") m_theirs=$(median "${theirs[@]}") m_rss=$(median "${rss[@]}")
max_rss=$(printf '%s\n' "${rss[@]}" "$video_rss" | sort -g | tail -n 1)

echo
echo "| upload (local servers) | size | wall s | MB/s | peak RSS |"
echo "|---|---|---|---|---|"
printf '| media-pipeline → Stream tus | %d MiB | %s | %.0f | %s MiB |\n' "$VIDEO_MIB" "$video_s" \
  "$(awk -v b=$((VIDEO_MIB * 1048576)) -v s="$video_s" 'BEGIN { print b / s / 1e6 }')" "$(mib "$video_rss")"
printf '| media-pipeline → R2 multipart (median of %d) | %d MiB | %s | %.0f | %s MiB |\n' "$RUNS" "$OBJECT_MIB" "$m_ours" \
  "$(awk -v b="$bytes" -v s="$m_ours" 'BEGIN { print b / s / 1e6 }')" "$(mib "$m_rss")"
printf '| curl -T → same server (median of %d) | %d MiB | %s | %.0f | – |\n' "$RUNS" "$OBJECT_MIB" "$m_theirs" \
  "$(awk -v b="$bytes" -v s="$m_theirs" 'BEGIN { print b / s / 1e6 }')"
ratio=$(awk -v a="$m_theirs" -v b="$m_ours" 'BEGIN { printf "%.2f", a / b }')
echo
echo "R2 throughput, ours/curl: ${ratio}× (goal ≥ 0.8; our wall time includes validating and hashing the file)"
echo "peak RSS, largest run: $(mib "$max_rss") MiB (budget $LIMIT_MB MB)"
echo "[bench] end: $(load_now)"
ok=1
awk -v r="$ratio" 'BEGIN { exit !(r >= 0.8) }' || { echo "[bench] throughput under 0.8× curl" >&2; ok=0; }
[ "$max_rss" -le $((LIMIT_MB * 1000000 / 1024)) ] || { echo "[bench] peak RSS over ${LIMIT_MB} MB" >&2; ok=0; }
[ "$ok" = 1 ]
