#!/usr/bin/env bash
# Regenerates docs/man/ (tierd and tierctl man pages, one per subcommand) from the command
# definitions, through swift-argument-parser's generate-manual plugin. Run after changing a flag
# or a help text; a unit test (CLIDocsTests) fails while the pages lag behind the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.build/man
rm -rf "$out" && mkdir -p "$out"
swift package --allow-writing-to-directory "$out" generate-manual --multi-page --date "$(date -u +%Y-%m-%d)" --output-directory "$out"
rm -rf docs/man && mkdir -p docs/man
for page in "$out"/tierd*.1 "$out"/tierctl*.1; do
  case "$page" in *.help.1) continue ;; esac
  cp "$page" docs/man/
done
ls docs/man
