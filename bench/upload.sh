#!/usr/bin/env bash
# upload.sh [VIDEO_MIB] [OBJECT_MIB]
#
# Large uploads to the local servers, as the real binary does them:
#   - a VIDEO_MIB (default 2048) video through Stream's tus protocol to the Cloudflare fake,
#   - an OBJECT_MIB (default 1024) document through R2 multipart to moto behind the R2 proxy,
#   - the same document as one PUT (multipartThreshold raised), and with `curl -T` (one PUT)
#     to the same server in the same run: the transport against curl (goal ≥ 0.8×);
#   - the same document with boto3's multipart upload (same part size, 4 threads): the
#     multipart path against the reference SDK on the same server.
# Prints peak RSS of each media-pipeline run (GNU time; budget 150 MB). RUNS=N (default 3)
# repeats the R2 rounds, interleaved, and reports medians.
# Env: MP (binary), RUNS. Needs python3 with moto (see .ci/install-deps.sh), ffmpeg, curl.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

VIDEO_MIB=${1:-2048}
OBJECT_MIB=${2:-1024}
RUNS=${RUNS:-3}
LIMIT_MB=150

echo "[bench] start: $(load_now)"
resolve_mp
with_servers_tmp upload

token=bench-token-0123456789abcdef
account=0123456789abcdef0123456789abcdef
start_server cloudflare python3 "$REPO_DIR/Tests/Fakes/cloudflare_fake.py" --token "$token" --account "$account" --data-dir "$tmp/cf-data"
# Without SigV4 checking, so plain curl -T can be compared on the same server.
start_server s3 python3 "$REPO_DIR/Tests/Fakes/s3_server.py" --no-auth
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
sed 's|"keyTemplate": "bench/{sha256}{ext}"|"keyTemplate": "bench/single-{sha256}{ext}", "multipartThreshold": "5000MiB"|' \
  "$BENCH_DIR/upload.pipeline.json" > "$tmp/single.pipeline.json"
cat > "$tmp/boto.py" <<'PY'
import json, sys, time, boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
j = json.loads(sys.argv[1])
c = boto3.client("s3", endpoint_url=j["endpoint"], aws_access_key_id=j["access_key_id"],
                 aws_secret_access_key=j["secret_access_key"], region_name="auto",
                 config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                               request_checksum_calculation="when_required", response_checksum_validation="when_required"))
c.meta.events.register("before-send.s3.*", lambda request, **_: (request.headers.pop("Expect", None), None)[1])
t = time.time()
c.upload_file(sys.argv[2], j["bucket"], sys.argv[3],
              Config=TransferConfig(multipart_threshold=100 * 2**20, multipart_chunksize=8 * 2**20, max_concurrency=4))
print(f"{time.time() - t:.2f}")
PY
timed() { local start end; start=$(date +%s.%N); "$@"; end=$(date +%s.%N); awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }'; }
multi=() single=() curl_s=() boto=() rss=()
for i in $(seq 1 "$RUNS"); do
  curl -sS -X POST "$s3_endpoint/__fake/reset" >/dev/null
  # New bytes each round, so nothing is skipped as already uploaded.
  printf '%08d' "$i" | dd of="$tmp/in-doc/handout.pdf" bs=1 seek=20 conv=notrunc status=none
  upload doc "$tmp/in-doc"
  rss+=("$RSS_KIB") multi+=("$SECONDS_TAKEN")
  start=$(date +%s.%N)
  run_rss "$tmp/single.rss" "$MP" run "$tmp/in-doc" --pipeline "$tmp/single.pipeline.json" --quiet >/dev/null 2>"$tmp/single.err"
  [ "$RC" = 0 ] || { cat "$tmp/single.err" >&2; exit 1; }
  end=$(date +%s.%N)
  rss+=("$RSS_KIB") single+=("$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')")
  curl_s+=("$(timed curl -sS -f -T "$tmp/in-doc/handout.pdf" -H 'Expect:' -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    "$s3_endpoint/$CLOUDFLARE_R2_BUCKET_NAME/curl-$i.pdf" -o /dev/null)")
  boto+=("$(python3 "$tmp/boto.py" "$s3_json" "$tmp/in-doc/handout.pdf" "boto-$i.pdf")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
m_multi=$(median "${multi[@]}") m_single=$(median "${single[@]}") m_curl=$(median "${curl_s[@]}") m_boto=$(median "${boto[@]}")
max_rss=$(printf '%s\n' "${rss[@]}" "$video_rss" | sort -g | tail -n 1)
mbs() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }

echo
echo "| upload to the local servers | size | wall s (median of $RUNS) | MB/s | peak RSS |"
echo "|---|---|---|---|---|"
echo "| media-pipeline → Stream, tus | $VIDEO_MIB MiB | $video_s (1 run) | $(mbs $((VIDEO_MIB * 1048576)) "$video_s") | $(mib "$video_rss") MiB |"
echo "| media-pipeline → R2, one PUT | $OBJECT_MIB MiB | $m_single | $(mbs "$bytes" "$m_single") | |"
echo "| curl -T → R2, one PUT | $OBJECT_MIB MiB | $m_curl | $(mbs "$bytes" "$m_curl") | – |"
echo "| media-pipeline → R2, multipart (8 MiB parts, 4 at once) | $OBJECT_MIB MiB | $m_multi | $(mbs "$bytes" "$m_multi") | |"
echo "| boto3 → R2, multipart (8 MiB parts, 4 threads) | $OBJECT_MIB MiB | $m_boto | $(mbs "$bytes" "$m_boto") | – |"
r_single=$(awk -v a="$m_curl" -v b="$m_single" 'BEGIN { printf "%.2f", a / b }')
r_multi=$(awk -v a="$m_boto" -v b="$m_multi" 'BEGIN { printf "%.2f", a / b }')
r_multi_curl=$(awk -v a="$m_curl" -v b="$m_multi" 'BEGIN { printf "%.2f", a / b }')
echo
echo "R2 one PUT, ours/curl -T: ${r_single}× (goal ≥ 0.8; our wall time includes starting, validating and hashing the file)"
echo "R2 multipart, ours/boto3: ${r_multi}×; ours/curl -T: ${r_multi_curl}× (the server's multipart path is its own cost)"
echo "peak RSS, largest run: $(mib "$max_rss") MiB (budget $LIMIT_MB MB)"
echo "[bench] end: $(load_now)"
ok=1
awk -v r="$r_single" 'BEGIN { exit !(r >= 0.8) }' || { echo "[bench] one PUT under 0.8× curl" >&2; ok=0; }
[ "$max_rss" -le $((LIMIT_MB * 1000000 / 1024)) ] || { echo "[bench] peak RSS over ${LIMIT_MB} MB" >&2; ok=0; }
[ "$ok" = 1 ]
