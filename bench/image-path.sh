#!/usr/bin/env bash
# image-path.sh [small|medium]
#
# Times media-pipeline's image path (dry run: sniff, SHA-256, libvips resize to
# 1600 px JPEG q82, plan an R2 upload) on the corpus photos, side by side with
# two anchors doing the same resize one process per file: vipsthumbnail and
# ImageMagick convert, both under xargs -P2 (2 cores). Prints medians, ratios
# and peak RSS; per-run data goes to bench/results/image-path-*.tsv.
# Env: MP (binary; default builds release here), RUNS (5), WARMUP (1).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SIZE=${1:-medium}
case "$SIZE" in small|medium) ;; *) echo "usage: $0 [small|medium]" >&2; exit 2 ;; esac
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
JOBS=2   # = cores on the reference box; ours uses --concurrency, anchors xargs -P

for tool in vipsthumbnail vipsheader convert python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

echo "[bench] start: $(load_now)"
resolve_mp
ensure_corpus "$SIZE"
PHOTOS=$CORPUS/photos
PIPELINE=$BENCH_DIR/image-path.pipeline.json
NPHOTOS=$(find "$PHOTOS" -maxdepth 1 -name '*.jpg' | wc -l)
[ "$NPHOTOS" -gt 0 ] || { echo "no photos in $PHOTOS" >&2; exit 1; }

tmp=$(mktemp -d /tmp/mp-image-path.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
TSV=$RESULTS_DIR/image-path-$SIZE-$(date +%Y%m%d-%H%M%S).tsv

# One small script per contender (args: photos dir, output dir), so every
# run is a plain command line with no nested quoting.
cat > "$tmp/ours.sh" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
exec "$MP" run "$1" --pipeline "$PIPELINE" --dry-run --assume-configured \
  --concurrency "$JOBS" --work-dir "$2" --quiet
EOF
cat > "$tmp/vipsthumbnail.sh" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
printf '%s\0' "$1"/*.jpg | xargs -0 -n1 -P"$JOBS" \
  vipsthumbnail --export-profile srgb -s '1600x1600>' -o "$2/%s.jpg[Q=82,strip]"
EOF
cat > "$tmp/imagemagick.sh" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
printf '%s\0' "$1"/*.jpg | xargs -0 -P"$JOBS" -I{} sh -c \
  'convert "$1" -auto-orient -resize "1600x1600>" -strip -quality 82 "$2/$(basename "$1")"' sh {} "$2"
EOF
chmod +x "$tmp"/*.sh
export MP PIPELINE JOBS

# name|command. VIPS_CONCURRENCY=1 gives 2 workers x 1 libvips thread;
# env -u leaves libvips its default thread pool.
CONTENDERS=(
  "ours-vc1|env VIPS_CONCURRENCY=1 $tmp/ours.sh"
  "ours-default|env -u VIPS_CONCURRENCY $tmp/ours.sh"
  "vipsthumbnail|$tmp/vipsthumbnail.sh"
  "imagemagick|$tmp/imagemagick.sh"
)

# Our own loop instead of hyperfine: the contenders take turns, one run each
# per round. On a shared box, a burst of someone else's load then slows all
# of them instead of skewing one. The first WARMUP rounds are not counted.
# Every run goes under GNU time (wall %e, peak RSS %M; for the xargs anchors
# %M is the largest single process) and must produce NPHOTOS outputs.
printf 'round\tcontender\tseconds\tpeak_rss_kib\tload1\n' > "$TSV"
for round in $(seq 0 $(( WARMUP + RUNS - 1 ))); do
  for c in "${CONTENDERS[@]}"; do
    name=${c%%|*} cmd=${c#*|}
    out=$tmp/out/$name
    rm -rf "$out" && mkdir -p "$out"      # start every run from an empty output dir
    RC=0
    # shellcheck disable=SC2086  # cmd is "env VAR=.. script": split on purpose
    /usr/bin/time -f '%e %M' -o "$tmp/time" $cmd "$PHOTOS" "$out" 2> "$tmp/stderr" || RC=$?
    [ "$RC" = 0 ] || { cat "$tmp/stderr" >&2; echo "[bench] $name exited $RC" >&2; exit 1; }
    made=$(find "$out" -name '*.jpg' | wc -l)
    [ "$made" = "$NPHOTOS" ] || { echo "[bench] $name made $made of $NPHOTOS outputs" >&2; exit 1; }
    read -r secs rss < "$tmp/time"
    load1=$(cut -d' ' -f1 /proc/loadavg)
    if [ "$round" -lt "$WARMUP" ]; then
      kind=warmup
    else
      kind="run $(( round - WARMUP + 1 ))/$RUNS"
      printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$secs" "$rss" "$load1" >> "$TSV"
    fi
    printf '[bench] %-8s %-14s %7.2f s %7.1f MiB  load %s\n' "$kind" "$name" "$secs" "$(mib "$rss")" "$load1"
  done
done

# Our outputs must fit the 1600 px box (catches a silently skipped resize).
biggest=0
for f in "$tmp/out/ours-vc1"/*.jpg; do
  w=$(vipsheader -f width "$f") h=$(vipsheader -f height "$f")
  biggest=$(( w > biggest ? w : biggest ))
  biggest=$(( h > biggest ? h : biggest ))
done
echo "[bench] ours: longest output side ${biggest}px"
echo "[bench] end: $(load_now)"

python3 - "$TSV" "$NPHOTOS" "$SIZE" "$RUNS" <<'EOF' | tee "${TSV%.tsv}.txt"
import csv, statistics, sys
path, n, size, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
secs, rss = {}, {}
for row in csv.DictReader(open(path), delimiter="\t"):
    k = row["contender"]
    secs.setdefault(k, []).append(float(row["seconds"]))
    rss[k] = max(rss.get(k, 0), int(row["peak_rss_kib"]))
med = {k: statistics.median(v) for k, v in secs.items()}
labels = {"ours-vc1": "ours (VIPS_CONCURRENCY=1)", "ours-default": "ours (libvips default threads)",
          "vipsthumbnail": "vipsthumbnail, xargs -P2", "imagemagick": "ImageMagick convert, xargs -P2"}
print(f"\nimage path, {size} corpus: {n} photos, 2 workers, median of {runs} interleaved runs")
print(f"{'contender':32} {'median s':>9} {'min':>7} {'max':>7} {'photos/s':>9} {'peak RSS MiB':>13}")
for k, label in labels.items():
    print(f"{label:32} {med[k]:9.2f} {min(secs[k]):7.2f} {max(secs[k]):7.2f} {n / med[k]:9.2f} {rss[k] / 1024:13.1f}")
print("(peak RSS = max over runs; for the xargs anchors, the largest single process)")
for k in ("ours-vc1", "ours-default"):
    print(f"{k:13} ours/vipsthumbnail = {med[k] / med['vipsthumbnail']:.2f}   "
          f"imagemagick/ours = {med['imagemagick'] / med[k]:.2f}")
EOF
echo "[bench] per-run data: $TSV"
