#!/usr/bin/env bash
# Runs a lab suite in two-tier QEMU guests: `scripts/lab.sh demo` (kernel alone vs tierd, with a
# table and a plot; `--kernels both` for the LTS and the newest kernel) or `scripts/lab.sh tests`
# (every end-to-end scenario on both kernels; fails if any claim fails).
# Provisions what it needs first (idempotent), then builds the lab binaries in release mode into
# .build-lab, the way tierd is deployed. Results land in .lab-out/<suite>/.
set -euo pipefail
cd "$(dirname "$0")/.."
suite="${1:-demo}"
shift || true
# The kernels this run boots (tierlab's --kernels; default: both for tests, lts otherwise) are
# the ones provisioned.
kernels=$([ "$suite" = tests ] && echo both || echo lts)
args=("$@")
for i in "${!args[@]}"; do
  case "${args[$i]}" in
    --kernels) kernels="${args[$((i + 1))]:-}" ;;
    --kernels=*) kernels="${args[$i]#--kernels=}" ;;
  esac
done
case "$kernels" in lts,newest|newest,lts) kernels=both ;; esac
bash scripts/provision.sh --kernels "$kernels"
log=$(mktemp)
for product in tierd tierctl tierload tierlab; do
  if ! swift build -c release --scratch-path .build-lab --product "$product" >"$log" 2>&1; then
    echo "lab.sh: building $product failed:"; tail -n 40 "$log"; exit 1
  fi
done
rm -f "$log"
exec .build-lab/release/tierlab run "$suite" "$@"
