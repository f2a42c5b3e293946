#!/usr/bin/env bash
# import-overlap.sh [FILES]
#
# Does a real import overlap its CPU work (checks, SHA-256, libvips) with its uploads?
# One course of FILES (default 2000) files: ~77 % JPEG photos of 1600-3000 px and 8 % PNGs
# under lessons/*/thumbnails/ (resized into the 1600 px box of the "thumbnail" purpose), 5 %
# JPEGs under avatars/ (512 px cover crop), 10 % PDFs, 4 short videos. Every file has
# different bytes: each photo is a crop of one of a few generated base images at its own
# offset and size. The course is built once into bench/results/import-course-FILES/ and reused.
#
# Three modes, RUNS=3 rounds, the modes taking turns in each round, each timed with GNU time:
#   cpu-only     `run full/ --dry-run --assume-configured`: all local work, nothing sent.
#   upload-only  `run small/ --no-journal --concurrency 8` with a copy of pipeline.json without
#                the image.transform stage; small/ is the same course with every image already
#                at its output size (vips thumbnail, same box and quality), so what is left is
#                checks + SHA-256 + the uploads, with the same count and about the same bytes.
#   full         `run full/ --no-journal`: the real import (default --concurrency/--uploads).
# Uploads go to the local fakes (Tests/Fakes/): Images and Stream to cloudflare_fake.py, R2 to
# s3_server.py (moto, SigV4 checked). Before every real run both fakes are reset
# (POST /__fake/reset) and given DELAY_MS (default 200) of latency on every upload request
# with their `delay` fault action: Images POST, R2 PUT, tus POST (creation) and PATCH. Fault
# actions are used up one per request, so each rule carries more delays than there are files.
# The S3 fake's reset forgets its log and rules but not moto's objects, so each real run
# writes under its own R2 key prefix (r<round>-<mode>/...): HEAD finds nothing, every object
# is PUT. Each real run is checked: one manifest row per file, all "uploaded".
#
# How to read it: wall s are medians of RUNS. full / max(cpu-only, upload-only) is the overlap:
# 1.0 means the CPU pool and the upload pool overlap perfectly; the goal is <= 1.2.
# full / (cpu-only + upload-only) = 1.0 would mean no overlap at all. The test is sharpest when
# cpu-only and upload-only take about as long: raise DELAY_MS when cpu-only is much longer.
# Peak RSS is GNU time %M of the media-pipeline process (max of the runs). "CPU s" is the tool's
# user + system time; "fakes CPU s" what the two fake servers used meanwhile: they share the
# cores with the tool, so their work also lengthens upload-only and full. "other CPU s" is what
# the rest of the machine used during the run (/proc/stat minus the two): well above zero, the
# figures are disturbed by other work, and the run is worth repeating on a quiet machine.
# Env: MP (binary), RUNS (3), DELAY_MS (200), CONCURRENCY (--concurrency of cpu-only and full),
# UPLOADS (--uploads of upload-only and full); unset, the CLI's defaults (one worker per core,
# 8 uploads). Needs: vips, ffmpeg, python3 with moto and boto3 (.ci/install-deps.sh), curl, GNU time.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

FILES=${1:-2000}
case "$FILES" in ''|*[!0-9]*) echo "usage: $0 [FILES]" >&2; exit 2 ;; esac
[ "$FILES" -ge 100 ] || { echo "[bench] FILES must be at least 100" >&2; exit 2; }
RUNS=${RUNS:-3}
DELAY_MS=${DELAY_MS:-200}
UPLOAD_ONLY_CONCURRENCY=8

for tool in vips ffmpeg python3 curl /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "[bench] missing: $tool" >&2; exit 1; }
done
python3 -c 'import moto, boto3' 2>/dev/null || { echo "[bench] python3 needs moto and boto3 (.ci/install-deps.sh)" >&2; exit 1; }

echo "[bench] start: $(load_now)"
resolve_mp
with_servers_tmp import-overlap

# ---------------------------------------------------------------------------- the course
COURSE=$RESULTS_DIR/import-course-$FILES
if [ -f "$COURSE/DONE" ]; then
  echo "[bench] reusing $COURSE" >&2
else
  echo "[bench] building a course of $FILES files in $COURSE (a few minutes, once) ..." >&2
  rm -rf "$COURSE"
  mkdir -p "$COURSE"
  python3 - "$COURSE" "$FILES" "$REPO_DIR/Tests/Fixtures/fixtures.py" <<'PY'
import concurrent.futures as cf, importlib.util, os, random, shutil, subprocess, sys
root, n, fixtures_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
spec = importlib.util.spec_from_file_location("fixtures", fixtures_path)
fx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fx)
jobs = os.cpu_count() or 2
pool = cf.ThreadPoolExecutor(jobs)

def run_all(tasks):
    for f in [pool.submit(t) for t in tasks]:
        f.result()

def vips(*args):
    subprocess.run(["vips", *map(str, args)], check=True)

# A few textured base images (vips native format: memory-mapped, free to crop from).
bases = f"{root}/bases"
os.makedirs(bases)
jpeg_bases = [f"{bases}/j{k}.v" for k in range(4)]
png_bases = [f"{bases}/p{k}.v" for k in range(2)]
run_all([lambda p=p, k=k: fx.photo(p, 3200, 2400, str(k + 1), "8") for k, p in enumerate(jpeg_bases)]
        + [lambda p=p, k=k: fx.photo(p, 2200, 1650, str(k + 11), "1") for k, p in enumerate(png_bases)])

videos, pdfs, pngs, avatars = 4, n // 10, n * 8 // 100, n // 20
photos = n - videos - pdfs - pngs - avatars
rng = random.Random(42)
seen = set()

def crop(base, base_w, base_h, lo, hi):
    """A crop box of base no other file has: long side lo..hi, 4:3 landscape (4 in 5) or 3:4 portrait."""
    while True:
        side = rng.randrange(lo, hi + 1)
        w, h = (side * 3 // 4, side) if side <= base_h and rng.random() < 0.2 else (side, side * 3 // 4)
        x, y = rng.randrange(0, base_w - w + 1), rng.randrange(0, base_h - h + 1)
        if (base, x, y, w, h) not in seen:
            seen.add((base, x, y, w, h))
            return base, (x, y, w, h)

tasks = []
def lesson(i): return f"lessons/{i // 100:03d}"
for i in range(photos):
    rel = f"{lesson(i)}/thumbnails/photo-{i:05d}.jpg"
    tasks.append((*crop(jpeg_bases[i % 4], 3200, 2400, 1600, 3000), rel, "[Q=85,strip]", "1600", []))
for i in range(pngs):
    rel = f"{lesson(i * 10)}/thumbnails/diagram-{i:05d}.png"
    tasks.append((*crop(png_bases[i % 2], 2200, 1650, 1600, 2000), rel, "[compression=6]", "1600", []))
for i in range(avatars):
    rel = f"avatars/avatar-{i:05d}.jpg"
    tasks.append((*crop(jpeg_bases[i % 4], 3200, 2400, 1600, 2400), rel, "[Q=85,strip]", "512",
                  ["--height", "512", "--crop", "centre"]))

def make(task):
    base, (x, y, w, h), rel, save, box, extra = task
    for top in ("full", "small"):
        os.makedirs(os.path.dirname(f"{root}/{top}/{rel}"), exist_ok=True)
    vips("crop", base, f"{root}/full/{rel}{save}", x, y, w, h)
    # The upload-only twin: what the pipeline's transform would send (box, quality 82, stripped).
    out = f"{root}/small/{rel}" + ("[Q=82,strip]" if rel.endswith(".jpg") else "[strip]")
    vips("thumbnail", f"{root}/full/{rel}", out, box, *extra)
run_all([lambda t=t: make(t) for t in tasks])

for i in range(pdfs):
    rel = f"{lesson(i * 10)}/slides-{i:05d}.pdf"
    os.makedirs(os.path.dirname(f"{root}/full/{rel}"), exist_ok=True)
    fx.pdf(f"{root}/full/{rel}", f"Lesson handout {i}\nPage one of a bench document.",
           f"Exercises {i}\nTwo pages, Helvetica text.")
for k in range(videos):
    os.makedirs(f"{root}/full/videos", exist_ok=True)
    fx.video(f"{root}/full/videos/clip-{k}.mp4", "320x240", str(2 + k), "audio")
# PDFs and videos need no CPU work beyond checks and hashing: the same files in both sets.
for d, _, names in os.walk(f"{root}/full"):
    for name in names:
        if name.endswith((".pdf", ".mp4")):
            src = os.path.join(d, name)
            dst = os.path.join(f"{root}/small", os.path.relpath(src, f"{root}/full"))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)
shutil.rmtree(bases)
print(f"photos {photos}, pngs {pngs}, avatars {avatars}, pdfs {pdfs}, videos {videos}", file=sys.stderr)
PY
  touch "$COURSE/DONE"
fi
for top in full small; do
  got=$(find "$COURSE/$top" -type f | wc -l)
  [ "$got" = "$FILES" ] || { echo "[bench] $COURSE/$top holds $got files, not $FILES: delete it to rebuild" >&2; exit 1; }
done
course_mb=$(du -sm "$COURSE/full" | cut -f1) small_mb=$(du -sm "$COURSE/small" | cut -f1)
echo "[bench] course: $FILES files, full/ $course_mb MB, small/ $small_mb MB" >&2

# ---------------------------------------------------------------------------- the fakes
start_fakes

# Fresh fakes, then DELAY_MS on each upload request (FILES + 100 delays per rule; one is used per request).
prepare_fakes() {
  curl -sSf -X POST "$cf_url/__fake/reset" >/dev/null
  curl -sSf -X POST "$s3_url/__fake/reset" >/dev/null
  python3 - "$DELAY_MS" "$FILES" "$tmp/cf-rules.json" "$tmp/s3-rules.json" <<'PY'
import json, sys
delay, n = int(sys.argv[1]) / 1000, int(sys.argv[2]) + 100
def rule(method, path):
    return {"method": method, "path": path, "actions": [{"delay": delay}] * n}
json.dump({"rules": [rule("POST", r"/images/v1$"), rule("POST", r"/stream$"), rule("PATCH", r"/stream/tus/")]},
          open(sys.argv[3], "w"))
json.dump({"rules": [rule("PUT", r"^/")]}, open(sys.argv[4], "w"))
PY
  curl -sSf -X POST -H 'Content-Type: application/json' --data-binary "@$tmp/cf-rules.json" "$cf_url/__fake/faults" >/dev/null
  curl -sSf -X POST -H 'Content-Type: application/json' --data-binary "@$tmp/s3-rules.json" "$s3_url/__fake/faults" >/dev/null
}
# How many delays the fakes handed out (= upload requests), from the actions left.
delays_used() {
  python3 - "$FILES" "$(curl -sSf "$cf_url/__fake/faults")" "$(curl -sSf "$s3_url/__fake/faults")" <<'PY'
import json, sys
n = int(sys.argv[1]) + 100
rules = json.loads(sys.argv[2])["rules"] + json.loads(sys.argv[3])
print(sum(n - len(r["actions"]) for r in rules))
PY
}

# ---------------------------------------------------------------------------- pipelines
# The bundled pipeline with the API budget raised for the fakes and tus for every video
# (as Tests/CLITests/UploadTests.swift does); KEY_PREFIX is replaced per run.
python3 - "$REPO_DIR/pipeline.json" "$tmp" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["limits"]["apiRequestsPer5Min"] = 1_000_000
for s in p["stages"]:
    if s["kind"] == "cloudflare.stream":
        s.setdefault("options", {})["basicThreshold"] = "1KB"
    if s["kind"] == "cloudflare.r2":
        s["options"]["keyTemplate"] = "KEY_PREFIX/" + s["options"]["keyTemplate"]
json.dump(p, open(f"{sys.argv[2]}/full.template.json", "w"), indent=1)
p["stages"] = [s for s in p["stages"] if s["kind"] != "image.transform"]
json.dump(p, open(f"{sys.argv[2]}/upload.template.json", "w"), indent=1)
PY

# ---------------------------------------------------------------------------- runs
# CPU seconds the fake servers have used so far (utime + stime of their processes).
fakes_cpu() {
  local ticks=0 p
  for p in "${pids[@]}"; do ticks=$((ticks + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }'
}
# CPU seconds the whole machine has used so far (user, nice, system, irq, softirq).
host_cpu() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.1f", ($2 + $3 + $4 + $7 + $8) / hz }' /proc/stat; }
# timed NAME CMD... : GNU time; sets WALL (s), RSS_KIB, CPU (user + sys s), FAKES (the fakes' CPU s),
# OTHER (everything else's CPU s meanwhile), RC.
timed() {
  local name=$1 before host user sys; shift
  RC=0
  before=$(fakes_cpu) host=$(host_cpu)
  /usr/bin/time -f '%e %M %U %S' -o "$tmp/$name.time" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" || RC=$?
  read -r WALL RSS_KIB user sys < <(tail -n 1 "$tmp/$name.time")
  CPU=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }')
  FAKES=$(awk -v a="$before" -v b="$(fakes_cpu)" 'BEGIN { printf "%.1f", b - a }')
  OTHER=$(awk -v a="$host" -v b="$(host_cpu)" -v c="$CPU" -v f="$FAKES" 'BEGIN { o = b - a - c - f; printf "%.1f", o < 0 ? 0 : o }')
}
# check_uploaded NAME : exit 0 and one "uploaded" manifest row per file, else stop; prints MB sent.
check_uploaded() {
  [ "$RC" = 0 ] || { echo "[bench] $1 exited $RC:" >&2; tail -n 20 "$tmp/$1.err" >&2; exit 1; }
  python3 - "$tmp/$1.jsonl" "$FILES" <<'PY' || { tail -n 20 "$tmp/$1.err" >&2; exit 1; }
import collections, json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
status = collections.Counter(r["status"] for r in rows)
if len(rows) != int(sys.argv[2]) or status["uploaded"] != len(rows):
    sys.exit(f"[bench] {sys.argv[1]}: {len(rows)} rows, {dict(status)}")
print(f"{sum((r.get('result') or {}).get('bytes', 0) for r in rows) / 1e6:.0f}")
PY
}
cpu_args=() upl_args=(--concurrency "$UPLOAD_ONLY_CONCURRENCY")
[ -n "${CONCURRENCY:-}" ] && cpu_args+=(--concurrency "$CONCURRENCY")
[ -n "${UPLOADS:-}" ] && upl_args+=(--uploads "$UPLOADS")
full_args=(${cpu_args[@]+"${cpu_args[@]}"})
[ -n "${UPLOADS:-}" ] && full_args+=(--uploads "$UPLOADS")

cpu=() upl=() full=() cpu_rss=() upl_rss=() full_rss=() cpu_cpu=() upl_cpu=() full_cpu=() upl_fakes=() full_fakes=()
cpu_other=() upl_other=() full_other=()
for i in $(seq 1 "$RUNS"); do
  # cpu-only: the real pipeline, planned.
  timed cpu "$MP" run "$COURSE/full" --pipeline "$tmp/full.template.json" --dry-run --assume-configured --quiet \
    ${cpu_args[@]+"${cpu_args[@]}"} --manifest "$tmp/cpu.jsonl"
  [ "$RC" = 0 ] && [ "$(grep -c '"status":"planned"' "$tmp/cpu.jsonl")" = "$FILES" ] \
    || { echo "[bench] cpu-only run: exit $RC or not $FILES planned rows" >&2; tail -n 20 "$tmp/cpu.err" >&2; exit 1; }
  cpu+=("$WALL") cpu_rss+=("$RSS_KIB") cpu_cpu+=("$CPU") cpu_other+=("$OTHER")
  echo "[bench] round $i cpu-only:    ${WALL} s, CPU $CPU s (other $OTHER s), $(mib "$RSS_KIB") MiB"

  # upload-only: images already at output size, no transform stage.
  sed "s|KEY_PREFIX|r$i-upload|" "$tmp/upload.template.json" > "$tmp/upload.json"
  prepare_fakes
  timed upload "$MP" run "$COURSE/small" --pipeline "$tmp/upload.json" --no-journal --quiet \
    "${upl_args[@]}" --manifest "$tmp/upload.jsonl"
  upl_mb=$(check_uploaded upload) upl_delays=$(delays_used)
  upl+=("$WALL") upl_rss+=("$RSS_KIB") upl_cpu+=("$CPU") upl_fakes+=("$FAKES") upl_other+=("$OTHER")
  echo "[bench] round $i upload-only: ${WALL} s, CPU $CPU s (fakes $FAKES s, other $OTHER s), $(mib "$RSS_KIB") MiB, $upl_mb MB sent, $upl_delays delayed requests"

  # full: the real import.
  sed "s|KEY_PREFIX|r$i-full|" "$tmp/full.template.json" > "$tmp/full.json"
  prepare_fakes
  timed full "$MP" run "$COURSE/full" --pipeline "$tmp/full.json" --no-journal --quiet \
    ${full_args[@]+"${full_args[@]}"} --manifest "$tmp/full.jsonl"
  full_mb=$(check_uploaded full) full_delays=$(delays_used)
  full+=("$WALL") full_rss+=("$RSS_KIB") full_cpu+=("$CPU") full_fakes+=("$FAKES") full_other+=("$OTHER")
  echo "[bench] round $i full:        ${WALL} s, CPU $CPU s (fakes $FAKES s, other $OTHER s), $(mib "$RSS_KIB") MiB, $full_mb MB sent, $full_delays delayed requests"
done

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "–" hi }'; }
maxof() { printf '%s\n' "$@" | sort -g | tail -n 1; }
per_s() { awk -v n="$FILES" -v s="$1" 'BEGIN { printf "%.1f", n / s }'; }
m_cpu=$(median "${cpu[@]}") m_upl=$(median "${upl[@]}") m_full=$(median "${full[@]}")
ratio=$(awk -v f="$m_full" -v c="$m_cpu" -v u="$m_upl" 'BEGIN { m = c > u ? c : u; printf "%.2f", f / m }')
serial=$(awk -v f="$m_full" -v c="$m_cpu" -v u="$m_upl" 'BEGIN { printf "%.2f", f / (c + u) }')
echo
echo "$FILES files (full/ $course_mb MB, small/ $small_mb MB; sent: upload-only $upl_mb MB, full $full_mb MB)," \
  "$DELAY_MS ms on each of $full_delays upload requests, RUNS=$RUNS, $(nproc) cores"
echo
echo "| mode | command | wall s (median) | min–max | files/s | CPU s | fakes CPU s | other CPU s | peak RSS |"
echo "|---|---|---|---|---|---|---|---|---|"
echo "| cpu-only | \`run full/ --dry-run --assume-configured${cpu_args[*]:+ ${cpu_args[*]}}\` | $m_cpu | $(range "${cpu[@]}") | $(per_s "$m_cpu") | $(median "${cpu_cpu[@]}") | – | $(median "${cpu_other[@]}") | $(mib "$(maxof "${cpu_rss[@]}")") MiB |"
echo "| upload-only | \`run small/ --no-journal ${upl_args[*]}\`, no image.transform | $m_upl | $(range "${upl[@]}") | $(per_s "$m_upl") | $(median "${upl_cpu[@]}") | $(median "${upl_fakes[@]}") | $(median "${upl_other[@]}") | $(mib "$(maxof "${upl_rss[@]}")") MiB |"
echo "| full | \`run full/ --no-journal${full_args[*]:+ ${full_args[*]}}\` | $m_full | $(range "${full[@]}") | $(per_s "$m_full") | $(median "${full_cpu[@]}") | $(median "${full_fakes[@]}") | $(median "${full_other[@]}") | $(mib "$(maxof "${full_rss[@]}")") MiB |"
echo
echo "full / max(cpu-only, upload-only) = $ratio (goal <= 1.2; 1.0 = the two pools overlap perfectly)"
echo "full / (cpu-only + upload-only)   = $serial (1.0 = no overlap at all)"
echo "upload-only = the same $FILES paths, every image already at its output size (vips thumbnail: same box,"
echo "  Q82, stripped), pipeline.json without image.transform, --concurrency $UPLOAD_ONLY_CONCURRENCY: checks + SHA-256 + uploads."
echo "[bench] end: $(load_now)"
awk -v r="$ratio" 'BEGIN { exit !(r <= 1.2) }' || { echo "[bench] full / max(cpu-only, upload-only) is over 1.2" >&2; exit 1; }
