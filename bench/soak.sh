#!/usr/bin/env bash
# soak.sh : FILES=5000 (default; FILES=300 for a quick try)
#
# A long real import under steady faults, watched for leaks. One course of FILES files, built
# once into bench/results/soak-course-FILES/ by bench/soak.py: ~68 % JPEG photos (800x600 to
# 1600x1200, 5 % of them avatars), 12 % PNG diagrams, 18 % one-page PDFs, up to 5 short videos,
# every file different (ffmpeg frames with grain; about a minute for 5,000 files).
#
# The import runs with a journal against the local fakes (Tests/Fakes/): Images and Stream on
# cloudflare_fake.py, R2 on s3_server.py. For the whole run both fakes reset the connection on
# 5 % of API requests and answer 2 % with a 5xx (seeded probabilistic rules, see
# Tests/Fakes/README.md); once 30 % of the files have ended, a storm of 24 429s with
# Retry-After: 2 hits Images uploads. The pipeline is the bundled pipeline.json with the API
# budget lifted, 8 tries per request and short backoffs (so the run is about the faults, not
# the waiting).
#
# Every second, the tool's open file descriptors (/proc/PID/fd), RSS, peak RSS (VmHWM) and
# threads are sampled. At the end it checks: exit 0, one manifest row per file and every row in
# a terminal state (a failed or rejected file is reported as a finding), the storm was sent,
# and neither open fds nor RSS grew materially from the first quarter of the run to the last
# (median of the quarter: fds more than 25 % and 10, RSS more than 30 % and 25 MiB). It prints
# fds and RSS at 10 %, 50 % and 90 % of the run and the peaks, the retries (the sum of the
# asset rows' result.retries by sink: the summary line has no retry count) and the faults the
# fakes fired. Exit 1 when a check fails.
# Env: MP (binary), FILES (5000), SEED (1: the fault rules' seed), UPLOADS, CONCURRENCY.
# Needs: ffmpeg, python3 with moto and boto3 (.ci/install-deps.sh), curl.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

FILES=${FILES:-5000}
case "$FILES" in ''|*[!0-9]*) echo "usage: FILES=N $0 (N >= 100)" >&2; exit 2 ;; esac
[ "$FILES" -ge 100 ] || { echo "[bench] FILES must be at least 100" >&2; exit 2; }
SEED=${SEED:-1}
for tool in ffmpeg python3 curl; do
  command -v "$tool" >/dev/null || { echo "[bench] missing: $tool" >&2; exit 1; }
done
python3 -c 'import moto, boto3' 2>/dev/null || { echo "[bench] python3 needs moto and boto3 (.ci/install-deps.sh)" >&2; exit 1; }

echo "[bench] start: $(load_now)"
resolve_mp
with_servers_tmp soak

COURSE=$RESULTS_DIR/soak-course-$FILES
if [ -f "$COURSE/.done" ]; then
  echo "[bench] reusing $COURSE" >&2
else
  echo "[bench] building a course of $FILES files in $COURSE ..." >&2
  rm -rf "$COURSE"
  mkdir -p "$RESULTS_DIR"
  started=$(date +%s)
  python3 "$BENCH_DIR/soak.py" course "$COURSE" "$FILES"
  echo "[bench] course built in $(( $(date +%s) - started )) s" >&2
  touch "$COURSE/.done"
fi
got=$(find "$COURSE" -type f ! -name .done | wc -l)
[ "$got" = "$FILES" ] || { echo "[bench] $COURSE holds $got files, not $FILES: delete it to rebuild" >&2; exit 1; }
echo "[bench] course: $FILES files, $(du -sm "$COURSE" | cut -f1) MB" >&2

start_fakes

cat > "$tmp/soak.overlay.json" <<'JSON'
{ "limits": { "apiRequestsPer5Min": 1000000,
              "retry": { "attempts": 8, "baseDelay": "50ms", "maxDelay": "1s", "maxWait": "60s" } } }
JSON
python3 "$BENCH_DIR/soak.py" faults "$cf_url" "$s3_url" "$SEED"

run_args=()
[ -n "${UPLOADS:-}" ] && run_args+=(--uploads "$UPLOADS")
[ -n "${CONCURRENCY:-}" ] && run_args+=(--concurrency "$CONCURRENCY")
echo "[bench] importing $FILES files with 5 % resets and 2 % 5xx on both fakes (seed $SEED) ..." >&2
began=$(date +%s.%N)
"$MP" run "$COURSE" --pipeline "$REPO_DIR/pipeline.json" --pipeline "$tmp/soak.overlay.json" \
  --journal "$tmp/journal.db" --manifest "$tmp/manifest.jsonl" --json --quiet ${run_args[@]+"${run_args[@]}"} \
  >"$tmp/run.jsonl" 2>"$tmp/run.err" &
mp_pid=$!
pids+=("$mp_pid")
python3 "$BENCH_DIR/soak.py" watch "$mp_pid" "$tmp/run.jsonl" "$FILES" "$cf_url" "$tmp/samples.tsv" --storm-at 0.3
RC=0
wait "$mp_pid" || RC=$?
wall=$(awk -v a="$began" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
echo "[bench] the import took $wall s and exited $RC" >&2
[ "$RC" = 0 ] || tail -n 20 "$tmp/run.err" >&2
echo
echo "soak: $FILES files, $wall s wall, $(nproc) cores, seed $SEED"
echo
RESULT=0
python3 "$BENCH_DIR/soak.py" report "$tmp/samples.tsv" "$tmp/manifest.jsonl" "$tmp/run.jsonl" "$FILES" \
  "$cf_url" "$s3_url" "$RC" || RESULT=$?
mkdir -p "$RESULTS_DIR"
cp "$tmp/samples.tsv" "$RESULTS_DIR/soak-$FILES-samples.tsv"
echo "[bench] samples kept in $RESULTS_DIR/soak-$FILES-samples.tsv"
echo "[bench] end: $(load_now)"
exit "$RESULT"
