#!/usr/bin/env bash
# How steady this machine's CPUs are: one fixed loop, timed ROUNDS times on every CPU at once.
# docs/BENCHMARKS.md ("Why the throughput pairs count instructions") records what it printed on
# the lab's machine: a move timed on a host clock carries these swings.
set -euo pipefail
rounds="${1:-6}"
cpus=$(nproc)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ((r = 1; r <= rounds; r++)); do
  for ((cpu = 0; cpu < cpus; cpu++)); do
    taskset -c "$cpu" bash -c 'start=${EPOCHREALTIME/./}; i=0; while ((i < 2000000)); do ((i++)); done
                               echo $(( ${EPOCHREALTIME/./} - start ))' > "$tmp/$cpu" &
  done
  wait
  line="round $r:"
  for ((cpu = 0; cpu < cpus; cpu++)); do
    us=$(cat "$tmp/$cpu")
    line+=$(printf ' cpu%d %d.%02d s' "$cpu" $((us / 1000000)) $((us % 1000000 / 10000)))
  done
  echo "$line"
done
