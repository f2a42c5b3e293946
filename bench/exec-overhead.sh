#!/usr/bin/env bash
# exec-overhead.sh [N]
#
# What an `exec` stage costs per file when its program does nothing: N (default 10000) tiny
# text files through a dry run of the default pipeline.json, once as it is and once with a no-op
# exec stage (a Python program answering "continue", started once and kept) after classify.
# RUNS=3 interleaved rounds (without, with), each timed with GNU time; prints the medians, the
# overhead in ms per file ((with - without) / N) against the 1 ms goal, and peak RSS.
# Env: MP (binary; default builds release here), RUNS, INSTANCES (exec programs kept, default 1),
# CONCURRENCY (default: the CLI's own, one worker per core).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

N=${1:-10000}
case "$N" in ''|*[!0-9]*) echo "usage: $0 [N]" >&2; exit 2 ;; esac
RUNS=${RUNS:-3}
INSTANCES=${INSTANCES:-1}

echo "[bench] start: $(load_now)"
resolve_mp
tmp=$(mktemp -d /tmp/mp-exec-overhead.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$RESULTS_DIR"
STAMP=$(date +%Y%m%d-%H%M%S)
TSV=$RESULTS_DIR/exec-overhead-$N-$STAMP.tsv

# The files, the no-op program, and the two pipelines.
python3 - "$tmp" "$N" "$REPO_DIR/pipeline.json" "$INSTANCES" <<'PY'
import json, os, sys
tmp, n, default, instances = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
for i in range(n):
    d = os.path.join(tmp, "files", "week-%02d" % (i // 500))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "notes-%05d.txt" % i), "w") as f:
        f.write("Lesson notes %d\n" % i)
with open(os.path.join(tmp, "noop.py"), "w") as f:
    f.write("""import json, sys
sys.stdin.readline()
sys.stdout.write('{"type":"ready"}\\n')
sys.stdout.flush()
for line in sys.stdin:
    sys.stdout.write('{"type":"continue","id":%d}\\n' % json.loads(line)["id"])
    sys.stdout.flush()
""")
pipeline = json.load(open(default))
with open(os.path.join(tmp, "without.json"), "w") as f:
    json.dump(pipeline, f)
at = [s["name"] for s in pipeline["stages"]].index("classify") + 1
pipeline["stages"].insert(at, {"name": "noop", "kind": "exec", "options": {
    "command": ["python3", os.path.join(tmp, "noop.py")], "instances": instances}})
with open(os.path.join(tmp, "with.json"), "w") as f:
    json.dump(pipeline, f)
PY
echo "[bench] made $N files in $tmp/files"

run_variant() {  # run_variant NAME ROUND: one timed dry run; appends a row to the TSV
  local name=$1 round=$2
  local cmd=("$MP" run "$tmp/files" --pipeline "$tmp/$name.json" --dry-run --assume-configured
             --no-journal --work-dir "$tmp/work" --quiet)
  [ -n "${CONCURRENCY:-}" ] && cmd+=(--concurrency "$CONCURRENCY")
  rm -rf "$tmp/work"
  local rc=0
  /usr/bin/time -f "%e %M" -o "$tmp/time" "${cmd[@]}" 2> "$tmp/stderr-$name" || rc=$?
  if [ "$rc" != 0 ]; then cat "$tmp/stderr-$name" >&2; echo "[bench] $name exit $rc" >&2; exit 1; fi
  grep -q "^summary: $N files: $N planned" "$tmp/stderr-$name" \
    || { cat "$tmp/stderr-$name" >&2; echo "[bench] $name did not plan every file" >&2; exit 1; }
  read -r seconds rss < <(tail -n 1 "$tmp/time")
  printf '%s\t%s\t%s\t%s\n' "$name" "$round" "$seconds" "$rss" >> "$TSV"
  echo "[bench] round $round $name: ${seconds} s, peak RSS $(mib "$rss") MiB"
}

printf 'variant\tround\tseconds\tpeak_rss_kib\n' > "$TSV"
run_variant without 0 > /dev/null   # warms the page cache and Python; not counted
for round in $(seq 1 "$RUNS"); do
  run_variant without "$round"
  run_variant with "$round"
done

echo "[bench] end: $(load_now)"
python3 - "$TSV" "$N" "$RUNS" "$INSTANCES" <<'PY' | tee "${TSV%.tsv}.txt"
import csv, statistics, sys
path, n, runs, instances = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = [r for r in csv.DictReader(open(path), delimiter="\t") if r["round"] != "0"]
def stats(name):
    times = [float(r["seconds"]) for r in rows if r["variant"] == name]
    rss = max(int(r["peak_rss_kib"]) for r in rows if r["variant"] == name)
    return statistics.median(times), min(times), max(times), rss
print(f"\nexec stage overhead: {n} tiny text files, default pipeline, dry run, median of {runs} interleaved rounds")
print(f"{'variant':<26} {'median s':>9} {'min':>7} {'max':>7} {'files/s':>8} {'peak RSS':>10}")
medians = {}
for name, label in (("without", "default pipeline"), ("with", f"+ no-op exec ({instances} proc)")):
    median, low, high, rss = stats(name)
    medians[name] = median
    print(f"{label:<26} {median:>9.2f} {low:>7.2f} {high:>7.2f} {n / median:>8.0f} {rss / 1024:>8.1f} MiB")
overhead = (medians["with"] - medians["without"]) / n * 1000
print(f"overhead per file: {overhead:.3f} ms (goal: at most 1 ms) -> {'met' if overhead <= 1 else 'MISSED'}")
PY
