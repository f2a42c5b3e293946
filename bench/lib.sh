# Shared helpers for the bench scripts. Sourced, not run.
# shellcheck shell=bash

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
RESULTS_DIR=$BENCH_DIR/results            # git-ignored
# The shared corpus builder sits beside the repository, in ../shared/bench/.
CORPUS_SCRIPT=${CORPUS_SCRIPT:-$REPO_DIR/../shared/bench/make-corpus.sh}

# Sets MP to the binary under test. MP= wins, so a binary built elsewhere can
# be measured without touching this checkout's .build folder.
resolve_mp() {
  if [ -z "${MP:-}" ]; then
    echo "[bench] MP not set: building release in $REPO_DIR" >&2
    (cd "$REPO_DIR" && swift build -c release --product media-pipeline >&2)
    MP="$(cd "$REPO_DIR" && swift build -c release --show-bin-path)/media-pipeline"
  fi
  [ -x "$MP" ] || { echo "[bench] not an executable: $MP" >&2; exit 1; }
  MP=$(cd "$(dirname "$MP")" && pwd)/$(basename "$MP")
  export MP
}

# Sets CORPUS to bench/results/corpus-SIZE, building it once. SHA256SUMS is
# the last thing make-corpus.sh writes, so it marks a finished corpus.
ensure_corpus() {
  local size=$1
  CORPUS=$RESULTS_DIR/corpus-$size
  if [ -f "$CORPUS/SHA256SUMS" ]; then
    echo "[bench] reusing $CORPUS" >&2
    return
  fi
  echo "[bench] building $size corpus in $CORPUS (takes a while) ..." >&2
  rm -rf "$CORPUS"
  mkdir -p "$RESULTS_DIR"
  bash "$CORPUS_SCRIPT" "$CORPUS" "$size" >&2
}

# run_rss OUTFILE CMD... : runs CMD under GNU time. Sets RC (CMD's exit
# status; never trips set -e) and RSS_KIB (peak resident set, KiB).
run_rss() {
  local out=$1; shift
  RC=0
  /usr/bin/time -f %M -o "$out" "$@" || RC=$?
  RSS_KIB=$(tail -n 1 "$out")
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

load_now() { uptime | sed 's/.*load average: /load /'; }

# with_servers_tmp NAME : makes $tmp (a new folder under /tmp) and an empty array pids; on exit,
# every pid in pids is killed and $tmp removed.
with_servers_tmp() {
  tmp=$(mktemp -d "/tmp/mp-$1.XXXXXX")
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
}

# start_server NAME CMD... : starts a local server (a fake from Tests/Fakes/) in the background and
# waits up to 60 s for its READY line, which lands in $tmp/NAME.ready. The caller owns $tmp and
# the array pids, and kills every pid in it on exit.
start_server() {
  local name=$1; shift
  "$@" >"$tmp/$name.ready" 2>"$tmp/$name.log" &
  pids+=($!)
  for _ in $(seq 1 600); do grep -q '^READY ' "$tmp/$name.ready" 2>/dev/null && return; sleep 0.1; done
  echo "[bench] $name did not start:" >&2; cat "$tmp/$name.log" >&2; exit 1
}

# start_fakes : starts the Cloudflare fake and the S3 fake (needs with_servers_tmp), sets cf_url and
# s3_url (their base URLs) and exports the variables that point media-pipeline at them.
start_fakes() {
  local token=bench-token-0123456789abcdef account=0123456789abcdef0123456789abcdef s3_json
  start_server cloudflare python3 "$REPO_DIR/Tests/Fakes/cloudflare_fake.py" --token "$token" --account "$account" --data-dir "$tmp/cf-data"
  start_server s3 python3 "$REPO_DIR/Tests/Fakes/s3_server.py"
  cf_url=http://127.0.0.1:$(awk '{print $2}' "$tmp/cloudflare.ready")
  s3_json=$(sed 's/^READY //' "$tmp/s3.ready")
  s3_field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$s3_json" "$1"; }
  s3_url=$(s3_field endpoint)
  export CLOUDFLARE_API_BASE_URL=$cf_url/client/v4 CLOUDFLARE_ACCOUNT_ID=$account CLOUDFLARE_API_TOKEN=$token
  export CLOUDFLARE_R2_ENDPOINT=$s3_url CLOUDFLARE_R2_BUCKET_NAME=$(s3_field bucket)
  export CLOUDFLARE_R2_ACCESS_KEY_ID=$(s3_field access_key_id) CLOUDFLARE_R2_SECRET_ACCESS_KEY=$(s3_field secret_access_key)
}
