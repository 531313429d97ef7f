#!/usr/bin/env bash
# Install everything sparsejl, its tests, benchmarks and front end need: Julia (where none is
# found), the Python package with its extras, Debian's Chromium and Playwright. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-julia.sh
python3 -m pip install -q --disable-pip-version-check -e ".[test,bench,peers,jupyter,models]"
# PyTorch's CPU build lies on these machines as a file; it is a benchmark peer, not a dependency.
python3 -m pip install -q --disable-pip-version-check "torch==2.13.0" \
  || echo "setup: torch 2.13.0 not installable here; the benchmarks will report PyTorch as missing"
bash scripts/install-browser.sh
# compile SparseJL once so that the first product does not pay for it
"${SPARSEJL_JULIA:-julia}" --startup-file=no -e 'pushfirst!(LOAD_PATH, "julia"); using SparseJL' </dev/null
