#!/usr/bin/env bash
# Every test tierd has, from a fresh machine: provisions (idempotent), builds with warnings as
# failures, runs the unit tests (property tests among them), a short run of every fuzz target on
# its corpus, a dry-run smoke test of the daemon against a captured kernel
# tree, systemd-analyze verify and security on the unit, then every end-to-end scenario in the
# two-tier lab guests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/provision.sh

echo "== build (debug, with tests)"
log=$(mktemp)
swift build --build-tests 2>&1 | tee "$log" | grep -E 'error|warning:|Build complete' || true
if grep -E '^/.*/(Sources|Tests)/.*warning:' "$log" | grep -v '/.build' >/dev/null; then
  echo "test.sh: the build has warnings in tierd's own code:"; grep -E '^/.*/(Sources|Tests)/.*warning:' "$log" | grep -v '/.build'
  exit 1
fi
grep -q 'Build complete' "$log" || { echo "test.sh: build failed"; tail -n 40 "$log"; exit 1; }

echo "== unit tests"
swift test --skip-build

echo "== fuzz: every parser of kernel text and the policy loader, 10 s each (scripts/fuzz.sh)"
bash scripts/fuzz.sh smoke 10

echo "== tierd --once --dry-run on the captured guest tree"
.build/debug/tierd --once --dry-run --config config/examples/systemd-slices.yaml --root Tests/Fixtures/guest-3node --log-level warning
set +e
.build/debug/tierd --once --dry-run --config Tests/Fixtures/bad-policy.yaml --root Tests/Fixtures/guest-3node 2>/dev/null
status=$?
set -e
[ "$status" = 2 ] || { echo "test.sh: a bad policy must exit 2, got $status"; exit 1; }

echo "== the systemd unit, as systemd reads it"
bash scripts/check-systemd-unit.sh .build/debug/tierd

echo "== lab: end-to-end scenarios on real kernels (6.12 LTS and the newest series) with a slow memory tier"
bash scripts/lab.sh tests
