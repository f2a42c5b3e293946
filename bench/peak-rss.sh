#!/usr/bin/env bash
# peak-rss.sh [small|medium]
#
# Peak RSS of one dry run over the whole corpus (every folder: photos,
# screenshots, misc, docs, video, bad) with the default pipeline (or PIPELINE=FILE), checked
# against the 250 MB budget. RSS varies with scheduling, so it runs RUNS=3
# times and judges the largest. Env: MP, RUNS, PIPELINE, CONCURRENCY.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SIZE=${1:-medium}
case "$SIZE" in small|medium) ;; *) echo "usage: $0 [small|medium]" >&2; exit 2 ;; esac
RUNS=${RUNS:-3}
PIPELINE=${PIPELINE:-$REPO_DIR/pipeline.json}
LIMIT_MB=250

echo "[bench] start: $(load_now)"
resolve_mp
ensure_corpus "$SIZE"
tmp=$(mktemp -d /tmp/mp-peak-rss.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# The corpus folders, not the corpus root: MANIFEST.tsv / SHA256SUMS are not media.
mapfile -t dirs < <(find "$CORPUS" -mindepth 1 -maxdepth 1 -type d ! -name '.*' | sort)
cmd=("$MP" run "${dirs[@]}" --pipeline "$PIPELINE" --dry-run --assume-configured --quiet)
[ -n "${CONCURRENCY:-}" ] && cmd+=(--concurrency "$CONCURRENCY")

max=0
for i in $(seq 1 "$RUNS"); do
  rm -rf "$tmp/work"
  run_rss "$tmp/rss" "${cmd[@]}" --work-dir "$tmp/work" 2> "$tmp/stderr"
  # bad/ holds files that must be rejected, so exit 1 is the expected outcome.
  case "$RC" in 0|1) ;; *) cat "$tmp/stderr" >&2; echo "[bench] exit $RC" >&2; exit 1 ;; esac
  echo "[bench] run $i: exit $RC, peak RSS $(mib "$RSS_KIB") MiB; $(grep '^summary:' "$tmp/stderr" || echo 'no summary')"
  max=$(( RSS_KIB > max ? RSS_KIB : max ))
done
[ -n "${VERBOSE:-}" ] && cat "$tmp/stderr"

echo "[bench] end: $(load_now)"
mb=$(awk -v k="$max" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }')
verdict=$(awk -v m="$mb" -v l="$LIMIT_MB" 'BEGIN { print (m <= l) ? "PASS" : "FAIL" }')
echo "peak RSS over $SIZE corpus (${#dirs[@]} folders, pipeline $(basename "$PIPELINE")): $(mib "$max") MiB = $mb MB, max of $RUNS runs; target <= $LIMIT_MB MB: $verdict"
[ "$verdict" = PASS ]
