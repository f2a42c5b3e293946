#!/usr/bin/env bash
# dry-run-files.sh [N]
#
# Per-file overhead of a dry run on many small non-image files (the common
# "course materials" case): N (default 10000) files, a third each .txt, .csv
# and .pdf (one minimal valid PDF copied), through the default pipeline
# (pipeline.json at the repo root). Prints files/s (median of RUNS=3 runs)
# and peak RSS. Env: MP (binary; default builds release here), RUNS,
# PIPELINE, CONCURRENCY (default: the CLI's own, one worker per core).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

N=${1:-10000}
case "$N" in ''|*[!0-9]*) echo "usage: $0 [N]" >&2; exit 2 ;; esac
RUNS=${RUNS:-3}
PIPELINE=${PIPELINE:-$REPO_DIR/pipeline.json}

echo "[bench] start: $(load_now)"
resolve_mp
tmp=$(mktemp -d /tmp/mp-dry-run-files.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$RESULTS_DIR"
STAMP=$(date +%Y%m%d-%H%M%S)
JSON=$RESULTS_DIR/dry-run-files-$N-$STAMP.json

# Python writes 10k files in well under a second; a bash loop would not.
# 500 files per folder, like a course archive's week folders.
python3 - "$tmp/files" "$N" "$BENCH_DIR" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, sys.argv[3])
from minipdf import minimal_pdf

pdf = minimal_pdf(b"bench handout")
for i in range(n):
    d = os.path.join(root, "week-%02d" % (i // 500))
    os.makedirs(d, exist_ok=True)
    kind = i % 3
    if kind == 0:
        name, data = "notes-%05d.txt" % i, b"Lesson notes %d\nRead chapter %d before class.\n" % (i, i % 17)
    elif kind == 1:
        name, data = "grades-%05d.csv" % i, b"student,score\ns%d,%d\ns%d,%d\n" % (i, i % 100, i + 1, (i * 7) % 100)
    else:
        name, data = "handout-%05d.pdf" % i, pdf
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
PY
echo "[bench] made $N files in $tmp/files ($(du -sh "$tmp/files" | cut -f1))"

cmd=("$MP" run "$tmp/files" --pipeline "$PIPELINE" --dry-run --assume-configured
     --work-dir "$tmp/work" --quiet)
[ -n "${CONCURRENCY:-}" ] && cmd+=(--concurrency "$CONCURRENCY")

# Pass 1 under GNU time: peak RSS, the run's own summary line, and a warm
# page cache for the timed runs. Exit 1 (some rejected) is tolerated but shown.
run_rss "$tmp/rss" "${cmd[@]}" 2> "$tmp/stderr"
case "$RC" in 0|1) ;; *) cat "$tmp/stderr" >&2; echo "[bench] exit $RC" >&2; exit 1 ;; esac
# Rejections (if any) come first, then the summary block.
rejected=$(grep -cv -e '^summary:' -e '^  ' "$tmp/stderr" || true)
[ "$rejected" = 0 ] || { echo "[bench] $rejected problem line(s), first 3:"; grep -v -e '^summary:' -e '^  ' "$tmp/stderr" | head -n 3; }
sed -n '/^summary:/,$p' "$tmp/stderr"
echo "[bench] pass 1 exit $RC, peak RSS $(mib "$RSS_KIB") MiB"

# Pass 2: timings. hyperfine runs via a shell, so quote each word once.
printf -v line '%q ' "${cmd[@]}"
hf=(--runs "$RUNS" --warmup 0 --export-json "$JSON" --style basic
    --prepare "rm -rf $(printf %q "$tmp/work")" -n "dry-run $N files")
[ "$RC" = 1 ] && hf+=(--ignore-failure)   # pass 1 showed exit 1 is expected
hyperfine "${hf[@]}" "$line 2>/dev/null"

echo "[bench] end: $(load_now)"
python3 - "$JSON" "$N" "$RSS_KIB" "$RUNS" <<'PY' | tee "$RESULTS_DIR/dry-run-files-$N-$STAMP.txt"
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
n, rss, runs = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
print(f"\ndry run, {n} small files (txt/csv/pdf), default pipeline, median of {runs}")
print(f"median {r['median']:.2f} s (min {r['min']:.2f}, max {r['max']:.2f})  "
      f"{n / r['median']:.0f} files/s  peak RSS {rss / 1024:.1f} MiB")
PY
