#!/usr/bin/env bash
# Checks deploy/systemd/tierd.service as systemd itself reads it: `systemd-analyze verify` (with
# ExecStart pointed at the binary built here, since /usr/local/bin/tierd is not installed) and
# `systemd-analyze security --offline=yes`, whose exposure must stay "OK" or better (<= 4.9).
# Usage: scripts/check-systemd-unit.sh [TIERD_BINARY]   (default .build/debug/tierd)
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(realpath "${1:-.build/debug/tierd}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|/usr/local/bin/tierd|$binary|" deploy/systemd/tierd.service > "$work/tierd.service"
if ! out=$(systemd-analyze verify "$work/tierd.service" 2>&1) || [ -n "$out" ]; then
  echo "check-systemd-unit: systemd-analyze verify found problems:"; echo "$out"; exit 1
fi
echo "systemd-analyze verify: no findings"
line=$(systemd-analyze security --offline=yes "$work/tierd.service" 2>&1 | grep 'Overall exposure level')
echo "systemd-analyze security: ${line#→ }"
score=$(sed -E 's/.*: ([0-9.]+) .*/\1/' <<<"$line")
awk -v s="$score" 'BEGIN { exit !(s <= 4.9) }' || { echo "check-systemd-unit: exposure $score is above 4.9 (OK)"; exit 1; }
