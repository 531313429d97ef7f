#!/usr/bin/env bash
# Quick start, command 2: every test, Julia's then Python's (the Python suite includes the
# notebooks and the real-browser test of the explorer).
set -uo pipefail
cd "$(dirname "$0")/.."
export JULIA_NUM_THREADS=${JULIA_NUM_THREADS:-2}
"${SPARSEJL_JULIA:-julia}" --startup-file=no --project=julia/SparseJL julia/SparseJL/test/runtests.jl
julia_status=$?
python3 -m pytest "$@"
pytest_status=$?
[ "$julia_status" = 0 ] || echo "test.sh: the Julia test suite failed (status $julia_status)"
exit $(( julia_status != 0 || pytest_status != 0 ))
