#!/usr/bin/env bash
# fuzz.sh [TARGET…]
#
# Builds the libFuzzer driver (Tests/Fuzz/FuzzDriver) with AddressSanitizer and coverage into
# .build/fuzz, its own scratch path, so the normal build is never invalidated; then runs each
# target (default: all) for FUZZ_SECONDS (60) on a copy of its seeds and regression inputs.
# Prints one line per target: executions, exec/s, and ok or what went wrong with the input that
# did it. Exit 1 when any target crashed, leaked, timed out or ran out of memory; the work folder
# with the inputs is then kept. Nothing is written into the repository but .build/fuzz.
# Env: FUZZ_SECONDS, FUZZ_RSS_MB (2048), FUZZ_TIMEOUT (10 s per input).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SECONDS_EACH=${FUZZ_SECONDS:-60}
RSS_MB=${FUZZ_RSS_MB:-2048}
TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_DIR=$REPO_DIR/Tests/Fuzz
SCRATCH=$REPO_DIR/.build/fuzz

# swiftc's -sanitize=fuzzer links libFuzzer's own main, which clashes with the `main` SwiftPM
# gives an executable; so the code gets libFuzzer's coverage flags, the link gets the runtime
# without a main, and the driver calls LLVMFuzzerRunDriver itself.
runtime=$(ls -d "$(dirname "$(command -v swift)")"/../lib/clang/*/lib/linux | head -1)
[ -f "$runtime/libclang_rt.fuzzer_no_main-x86_64.a" ] || { echo "[fuzz] no libFuzzer runtime under $runtime" >&2; exit 1; }
build=(swift build -c release --scratch-path "$SCRATCH" --product media-pipeline-fuzz
       -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table
       -Xswiftc -DFUZZING -Xcc -fsanitize=address
       -Xlinker "$runtime/libclang_rt.fuzzer_no_main-x86_64.a" -Xlinker -lstdc++)
echo "[fuzz] building the instrumented driver in $SCRATCH"
start=$(date +%s)
(cd "$REPO_DIR" && MEDIA_PIPELINE_FUZZ=1 "${build[@]}" >&2)
echo "[fuzz] build took $(( $(date +%s) - start )) s"
BIN=$(cd "$REPO_DIR" && MEDIA_PIPELINE_FUZZ=1 "${build[@]}" --show-bin-path)/media-pipeline-fuzz

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <("$BIN" 2>&1 | sed -n 's/^  \([a-z0-9-]*\): .*/\1/p')
fi
[ ${#targets[@]} -gt 0 ] || { echo "[fuzz] the driver lists no targets" >&2; exit 1; }

work=$(mktemp -d /tmp/mp-fuzz.XXXXXX)
failed=0
for target in "${targets[@]}"; do
  dir=$work/$target
  mkdir -p "$dir/corpus" "$dir/tmp"
  # A copy: libFuzzer adds every new input to the corpus folder it is given.
  cp "$FUZZ_DIR/Seeds/$target"/* "$dir/corpus/"
  if [ -d "$FUZZ_DIR/Regressions/$target" ]; then cp "$FUZZ_DIR/Regressions/$target"/* "$dir/corpus/" 2>/dev/null || true; fi
  # libvips runs as in the tool: untrusted loaders blocked. Leak checks stay on; see
  # docs/fuzzing.md for why they hold with libvips and glib's caches (all still reachable), and
  # Tests/Fuzz/lsan.supp for the one leak inside Foundation that is suppressed.
  # Tokens of the format (Tests/Fuzz/Dictionaries), so mutations reach past the first checks.
  dict=$FUZZ_DIR/Dictionaries/$target.dict
  case "$target" in *-response) dict=$FUZZ_DIR/Dictionaries/responses.dict ;; esac
  dict_flag=()
  [ -f "$dict" ] && dict_flag=(-dict="$dict")
  status=0
  (cd "$dir" && TMPDIR=$dir/tmp VIPS_BLOCK_UNTRUSTED=1 ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0} \
     LSAN_OPTIONS=suppressions=$FUZZ_DIR/lsan.supp:print_suppressions=0 \
     "$BIN" "$target" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -rss_limit_mb="$RSS_MB" \
     -timeout="$TIMEOUT" -artifact_prefix="$dir/" "${dict_flag[@]}" corpus >"$dir/log" 2>&1) || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
  verdict=ok
  if [ "$status" != 0 ]; then
    failed=1
    if grep -q 'libFuzzer: timeout' "$dir/log"; then verdict=TIMEOUT
    elif grep -q 'out-of-memory' "$dir/log"; then verdict=OUT-OF-MEMORY
    elif grep -q 'LeakSanitizer' "$dir/log"; then verdict=LEAK
    else verdict=CRASH; fi
    input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$dir/log" | tail -1)
    verdict="$verdict (exit $status) input: ${input:-none} log: $dir/log"
  fi
  printf 'fuzz %-14s %10s execs %7s exec/s  %s\n' "$target" "${execs:-?}" "${rate:-?}" "$verdict"
done

if [ "$failed" = 0 ]; then
  rm -rf "$work"
else
  echo "[fuzz] inputs and logs kept in $work; replay one with: $BIN TARGET FILE" >&2
  exit 1
fi
