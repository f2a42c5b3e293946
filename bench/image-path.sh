#!/usr/bin/env bash
# image-path.sh [small|medium]
#
# Times media-pipeline's image path (dry run: sniff, SHA-256, libvips resize to
# 1600 px JPEG q82, plan an R2 upload) on the corpus photos, side by side with
# two anchors doing the same resize one process per file: vipsthumbnail and
# ImageMagick convert, both under xargs -P2 (2 cores). Prints medians, ratios
# and peak RSS. Env: MP (binary; default builds release here), RUNS (5),
# WARMUP (1).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SIZE=${1:-medium}
case "$SIZE" in small|medium) ;; *) echo "usage: $0 [small|medium]" >&2; exit 2 ;; esac
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
JOBS=2   # = cores on the reference box; ours uses --concurrency, anchors xargs -P

for tool in hyperfine vipsthumbnail convert python3 /usr/bin/time; do
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
STAMP=$(date +%Y%m%d-%H%M%S)
JSON=$RESULTS_DIR/image-path-$SIZE-$STAMP.json

# One small script per contender (args: photos dir, output dir) so hyperfine
# and GNU time get a plain command line without nested quoting.
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

# name|command (run with: photos dir, output dir). VIPS_CONCURRENCY=1 gives
# 2 workers x 1 libvips thread; -u leaves libvips its default thread pool.
CONTENDERS=(
  "ours-vc1|env VIPS_CONCURRENCY=1 $tmp/ours.sh"
  "ours-default|env -u VIPS_CONCURRENCY $tmp/ours.sh"
  "vipsthumbnail|$tmp/vipsthumbnail.sh"
  "imagemagick|$tmp/imagemagick.sh"
)

# Pass 1: each contender once under GNU time, for peak RSS and to check that
# it really produced NPHOTOS outputs (also warms the page cache). For the
# xargs anchors %M is the largest single child process.
declare -A RSS
for c in "${CONTENDERS[@]}"; do
  name=${c%%|*} cmd=${c#*|}
  out=$tmp/out/$name
  rm -rf "$out" && mkdir -p "$out"
  # shellcheck disable=SC2086  # cmd is "env VAR=.. script": split on purpose
  run_rss "$tmp/$name.rss" $cmd "$PHOTOS" "$out"
  [ "$RC" = 0 ] || { echo "[bench] $name exited $RC" >&2; exit 1; }
  made=$(find "$out" -name '*.jpg' | wc -l)
  [ "$made" = "$NPHOTOS" ] || { echo "[bench] $name made $made of $NPHOTOS outputs" >&2; exit 1; }
  RSS[$name]=$RSS_KIB
  echo "[bench] $name: ok, $made outputs, peak RSS $(mib "$RSS_KIB") MiB"
done
# Our outputs must respect the 1600 px box (catches a silently skipped resize).
biggest=0
for f in "$tmp/out/ours-vc1"/*.jpg; do
  w=$(vipsheader -f width "$f") h=$(vipsheader -f height "$f")
  biggest=$(( w > biggest ? w : biggest ))
  biggest=$(( h > biggest ? h : biggest ))
done
echo "[bench] ours: longest output side ${biggest}px"

# Pass 2: timings. Each contender's output dir is emptied before every run.
hf_args=(--runs "$RUNS" --warmup "$WARMUP" --export-json "$JSON" --style basic)
for c in "${CONTENDERS[@]}"; do
  name=${c%%|*} cmd=${c#*|}
  out=$tmp/out/$name
  hf_args+=(--prepare "rm -rf '$out' && mkdir -p '$out'" -n "$name" "$cmd '$PHOTOS' '$out'")
done
hyperfine "${hf_args[@]}"

echo "[bench] end: $(load_now)"
python3 - "$JSON" "$NPHOTOS" "$SIZE" "$RUNS" \
  "${RSS[ours-vc1]}" "${RSS[ours-default]}" "${RSS[vipsthumbnail]}" "${RSS[imagemagick]}" <<'PY' \
  | tee "$RESULTS_DIR/image-path-$SIZE-$STAMP.txt"
import json, sys
path, n, size, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rss = dict(zip(["ours-vc1", "ours-default", "vipsthumbnail", "imagemagick"], map(int, sys.argv[5:9])))
med = {r["command"]: r["median"] for r in json.load(open(path))["results"]}
labels = {"ours-vc1": "ours (VIPS_CONCURRENCY=1)", "ours-default": "ours (libvips default threads)",
          "vipsthumbnail": "vipsthumbnail, xargs -P2", "imagemagick": "ImageMagick convert, xargs -P2"}
print(f"\nimage path, {size} corpus: {n} photos, 2 workers, median of {runs} runs")
print(f"{'contender':32} {'median s':>9} {'photos/s':>9} {'peak RSS MiB':>13}")
for k, label in labels.items():
    print(f"{label:32} {med[k]:9.2f} {n / med[k]:9.2f} {rss[k] / 1024:13.1f}")
print("(RSS of the xargs anchors = largest single process)")
for k in ("ours-vc1", "ours-default"):
    print(f"{k:13} ours/vipsthumbnail = {med[k] / med['vipsthumbnail']:.2f}   "
          f"imagemagick/ours = {med['imagemagick'] / med[k]:.2f}")
PY
echo "[bench] hyperfine JSON: $JSON"
