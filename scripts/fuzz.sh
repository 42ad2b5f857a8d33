#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of kernel text and of the policy loader: libFuzzer
# through the Swift toolchain's -sanitize=fuzzer, with AddressSanitizer (see docs/FUZZING.md).
#
#   scripts/fuzz.sh smoke [SECONDS]    each target for SECONDS (default 10) on a copy of its corpus;
#                                      the test command runs this
#   scripts/fuzz.sh long RUNS [TARGET...]
#                                      each target (default: all) for RUNS executions on its corpus
#                                      in Tests/FuzzCorpus, which is then minimized in place; prints
#                                      the table docs/FUZZING.md keeps
#
# A crash, a broken claim, a timeout (5 s per input) or running out of memory (2 GiB) fails the
# run; the input that did it is left in .build-fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-smoke}
corpus=Tests/FuzzCorpus
scratch=.build-fuzz
artifacts=$scratch/artifacts
mkdir -p "$artifacts"

echo "== fuzz: building the targets (release, -sanitize=fuzzer,address)"
swift build --product tierfuzz 2>&1 | grep -E 'error|warning:|complete' || true
plain=.build/debug/tierfuzz
log=$(mktemp)
if ! swift build -c release --product tierfuzz --scratch-path "$scratch" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -parse-as-library >"$log" 2>&1; then
  echo "fuzz.sh: the fuzzing build failed:"; grep -E 'error' "$log" | head -20; exit 1
fi
fuzzer=$scratch/release/tierfuzz

case "$mode" in
  smoke) seconds=${2:-10}; targets=$("$plain" list) ;;
  long) runs=${2:?usage: fuzz.sh long RUNS [TARGET...]}; shift 2; targets=${*:-$("$plain" list)} ;;
  *) echo "usage: fuzz.sh smoke [SECONDS] | long RUNS [TARGET...]"; exit 2 ;;
esac

# libFuzzer's closing statistics: executions, and the seconds they took.
stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }

failed=0
printf '%-18s %12s %9s %10s %8s\n' target executions seconds "exec/s" corpus
for target in $targets; do
  dir=$corpus/$target
  if [ ! -d "$dir" ] || [ -z "$(ls -A "$dir")" ]; then "$plain" seed "$target" Tests/Fixtures "$dir" >/dev/null; fi
  out=$(mktemp)
  flags=(-timeout=5 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 -artifact_prefix="$artifacts/$target-")
  if [ "$mode" = smoke ]; then
    work=$(mktemp -d); cp -R "$dir/." "$work"
    set +e; TIERFUZZ_TARGET=$target "$fuzzer" "${flags[@]}" -max_total_time="$seconds" "$work" >"$out" 2>&1; rc=$?; set -e
    rm -rf "$work"
  else
    fresh=$(mktemp -d)
    set +e; TIERFUZZ_TARGET=$target "$fuzzer" "${flags[@]}" -runs="$runs" "$fresh" "$dir" >"$out" 2>&1; rc=$?; set -e
    if [ "$rc" = 0 ]; then
      merged=$(mktemp -d)
      TIERFUZZ_TARGET=$target "$fuzzer" -merge=1 "$merged" "$dir" "$fresh" >/dev/null 2>&1
      rm -rf "$dir"; mkdir -p "$dir"; cp "$merged"/* "$dir"/; rm -rf "$merged"
    fi
    rm -rf "$fresh"
  fi
  executions=$(stat number_of_executed_units "$out"); rate=$(stat average_exec_per_sec "$out")
  elapsed=$(( ${executions:-0} / (${rate:-1} > 0 ? ${rate:-1} : 1) ))
  printf '%-18s %12s %9s %10s %8s\n' "$target" "${executions:-?}" "$elapsed" "${rate:-?}" "$(ls "$dir" | wc -l)"
  if [ "$rc" != 0 ] || [ -z "$executions" ]; then
    echo "fuzz.sh: $target failed (exit $rc):"; grep -E 'ERROR|claim broken|Fatal error|timeout|out-of-memory|Test unit written' "$out" | head -10
    failed=1
  fi
  rm -f "$out"
done
[ "$failed" = 0 ] || exit 1
echo "fuzz: every target ran clean: 0 crashes, 0 broken claims, 0 timeouts"
