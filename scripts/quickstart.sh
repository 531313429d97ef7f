#!/usr/bin/env bash
# Quick start, command 1: install everything, then run the main job, a CPU sweep over densities on
# BERT-base's feed-forward layer (3072x768 weight, 128 tokens), printing time and speedup per backend.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 -m sparsejl.bench "$@"   # the sparsejl-bench command
