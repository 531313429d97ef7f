#!/usr/bin/env bash
# Turn a benchmark run folder (sparsejl-bench --out DIR) into the form that is committed:
# results.json gzipped, report.md kept, report.html dropped, and of plots/ only the PNGs that
# README.md or docs/ cite (report.md loses the image lines of the others). Every plot can be
# redrawn from the records: sparsejl-explorer --report DIR/results.json.gz
set -euo pipefail
cd "$(dirname "$0")/.."
for dir in "$@"; do
  dir=${dir%/}
  [ -f "$dir/report.md" ] || { echo "compact-results: $dir has no report.md" >&2; exit 1; }
  [ ! -f "$dir/results.json" ] || gzip -9nf "$dir/results.json"
  rm -f "$dir/report.html"
  for png in "$dir"/plots/*.png; do
    [ -e "$png" ] || continue
    grep -rqF "$png" README.md docs && continue
    rm "$png"
    name=$(basename "$png")
    sed -i "\\#^!\\[.*\\](plots/${name//./\\.})\$#,+1d" "$dir/report.md"
  done
  [ ! -d "$dir/plots" ] || rmdir --ignore-fail-on-non-empty "$dir/plots"
  sed -i 's/ in results\.json\.$/ in results.json.gz./' "$dir/report.md"
  echo "compact-results: $dir: $(du -sh "$dir" | cut -f1)"
done
