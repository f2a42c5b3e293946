#!/usr/bin/env bash
# archive-dryrun.sh
#
# Wall time and peak RSS of a dry run over one big course archive, entry by entry:
#   zip-10k   a .zip of 10,000 entries
#   zip-100k  a .zip of 100,000 entries (the same kinds, ten times as many)
#   tgz-10k   a .tar.gz of the same 10,000 entries as zip-10k, for comparison
# Entries are tiny and all different (made with python's zipfile / tarfile, deflated): 60 % .txt,
# 30 % one-page PDFs, 10 % small PNGs (8x8 to 64x64), 500 per folder, under lessons/, thumbnails/
# and attachments/ so the purpose rules all fire. Each archive is run with
#   media-pipeline run X --pipeline P --dry-run --assume-configured --quiet --manifest M
# where P is pipeline.json with limits.maxEntriesPerArchive raised to 200000 (the default
# 50000 refuses the 100k archive as entry_limit). RUNS=3 runs each, the archives taking turns.
# Every run is checked: exit 0 and one "planned" manifest row per entry.
#
# How to read it: wall s is the median of RUNS (GNU time %e), entries/s follows from it; peak
# RSS is the largest GNU time %M of the runs. Goals: zip-10k under 20 s; every run at most
# 200 MB (= 190.7 MiB); zip-100k's peak RSS within 10 % of zip-10k's (memory does not grow with
# the number of entries). Exit 1 when a goal is missed. "other CPU s" is what the rest of the
# machine used meanwhile (/proc/stat minus this run): well above zero, the wall times are
# disturbed by other work.
# Env: MP (binary), RUNS (3), CONCURRENCY (--concurrency; default the CLI's, one worker per core).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[ $# -eq 0 ] || { echo "usage: $0   (env: MP, RUNS, CONCURRENCY)" >&2; exit 2; }
RUNS=${RUNS:-3}
LIMIT_MB=200
for tool in python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "[bench] missing: $tool" >&2; exit 1; }
done

echo "[bench] start: $(load_now)"
resolve_mp
tmp=$(mktemp -d /tmp/mp-archive-dryrun.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

echo "[bench] writing the archives ..." >&2
python3 - "$tmp" "$BENCH_DIR" <<'PY'
import io, struct, sys, tarfile, zipfile, zlib
out = sys.argv[1]
sys.path.insert(0, sys.argv[2])
from minipdf import minimal_pdf

def pdf(i):
    """A one-page PDF whose text carries i."""
    return minimal_pdf(b"bench handout %d" % i)

def png(i):
    """An RGB PNG of 8..64 px a side, its colours drawn from i."""
    side = 8 + i % 57
    row = bytes((i * 7 + x * 3) % 256 for x in range(side * 3))
    raw = b"".join(b"\x00" + row[y % 3:] + row[:y % 3] for y in range(side))
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data
                                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

def entries(n):
    for i in range(n):
        folder = f"course/week-{i // 500:03d}"
        kind = i % 10
        if kind < 6:
            yield f"{folder}/lessons/notes-{i:06d}.txt", f"Notes for item {i}.\nRead pages {i % 300} to {i % 300 + 4}.\n".encode()
        elif kind < 9:
            yield f"{folder}/attachments/handout-{i:06d}.pdf", pdf(i)
        else:
            yield f"{folder}/thumbnails/tile-{i:06d}.png", png(i)

def write_zip(path, n):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries(n):
            info = zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0))
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            z.writestr(info, data)

write_zip(f"{out}/zip-10k.zip", 10_000)
write_zip(f"{out}/zip-100k.zip", 100_000)
with tarfile.open(f"{out}/tgz-10k.tar.gz", "w:gz") as t:
    for name, data in entries(10_000):
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 1767225600
        t.addfile(info, io.BytesIO(data))
PY
python3 - "$REPO_DIR/pipeline.json" "$tmp/pipeline.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["limits"]["maxEntriesPerArchive"] = 200_000
json.dump(p, open(sys.argv[2], "w"), indent=1)
PY

names=(zip-10k zip-100k tgz-10k)
declare -A file=([zip-10k]=zip-10k.zip [zip-100k]=zip-100k.zip [tgz-10k]=tgz-10k.tar.gz)
declare -A count=([zip-10k]=10000 [zip-100k]=100000 [tgz-10k]=10000)
declare -A walls rss other
extra=()
[ -n "${CONCURRENCY:-}" ] && extra+=(--concurrency "$CONCURRENCY")
host_cpu() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.1f", ($2 + $3 + $4 + $7 + $8) / hz }' /proc/stat; }

for i in $(seq 1 "$RUNS"); do
  for name in "${names[@]}"; do
    rc=0 before=$(host_cpu)
    /usr/bin/time -f '%e %M %U %S' -o "$tmp/$name.time" \
      "$MP" run "$tmp/${file[$name]}" --pipeline "$tmp/pipeline.json" --dry-run --assume-configured --quiet \
      ${extra[@]+"${extra[@]}"} --manifest "$tmp/$name.jsonl" >/dev/null 2>"$tmp/$name.err" || rc=$?
    read -r wall kib user sys < <(tail -n 1 "$tmp/$name.time")
    busy=$(awk -v a="$before" -v b="$(host_cpu)" -v u="$user" -v s="$sys" 'BEGIN { o = b - a - u - s; printf "%.1f", o < 0 ? 0 : o }')
    rows=$(wc -l < "$tmp/$name.jsonl")
    planned=$(grep -c '"status":"planned"' "$tmp/$name.jsonl" || true)
    if [ "$rc" != 0 ] || [ "$rows" != "${count[$name]}" ] || [ "$planned" != "${count[$name]}" ]; then
      echo "[bench] $name: exit $rc, $rows manifest rows, $planned planned (want ${count[$name]}):" >&2
      tail -n 20 "$tmp/$name.err" >&2
      exit 1
    fi
    walls[$name]+="$wall " rss[$name]+="$kib " other[$name]+="$busy "
    echo "[bench] run $i $name: ${wall} s, CPU $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }') s (other $busy s), peak RSS $(mib "$kib") MiB, $rows rows"
  done
done

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "–" hi }'; }
maxof() { printf '%s\n' "$@" | sort -g | tail -n 1; }
declare -A m_wall m_rss
echo
echo "| archive | entries | size | wall s (median of $RUNS) | min–max | entries/s | peak RSS (max) | other CPU s |"
echo "|---|---|---|---|---|---|---|---|"
for name in "${names[@]}"; do
  # shellcheck disable=SC2086
  m_wall[$name]=$(median ${walls[$name]}) m_rss[$name]=$(maxof ${rss[$name]})
  # shellcheck disable=SC2086
  echo "| ${file[$name]} | ${count[$name]} | $(du -k "$tmp/${file[$name]}" | awk '{ printf "%.1f MB", $1 * 1024 / 1e6 }') | ${m_wall[$name]} | $(range ${walls[$name]}) | $(awk -v n="${count[$name]}" -v s="${m_wall[$name]}" 'BEGIN { printf "%.0f", n / s }') | $(mib "${m_rss[$name]}") MiB | $(median ${other[$name]}) |"
done
growth=$(awk -v a="${m_rss[zip-10k]}" -v b="${m_rss[zip-100k]}" 'BEGIN { printf "%+.1f", (b / a - 1) * 100 }')
worst=$(maxof "${m_rss[@]}")
worst_mb=$(awk -v k="$worst" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }')
echo
verdict() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo FAIL; fi; }
v1=$(verdict "${m_wall[zip-10k]} < 20") v2=$(verdict "$worst_mb <= $LIMIT_MB") v3=$(verdict "$growth <= 10")
echo "zip-10k wall: ${m_wall[zip-10k]} s (goal < 20 s): $v1"
echo "largest peak RSS: $(mib "$worst") MiB = $worst_mb MB (goal <= $LIMIT_MB MB): $v2"
echo "zip-100k peak RSS vs zip-10k: $growth % (goal within 10 %): $v3"
echo "[bench] end: $(load_now)"
[ "$v1$v2$v3" = PASSPASSPASS ]
