#!/usr/bin/env bash
# Quick start, command 2: every test, Julia's then Python's (the Python suite includes the
# notebooks and the real-browser test of the explorer).
set -uo pipefail
cd "$(dirname "$0")/.."
export JULIA_NUM_THREADS=${JULIA_NUM_THREADS:-2}
julia_bin=${SPARSEJL_JULIA:-julia}
# The Julia suite twice: as is (one thread per CPU), and through Pkg.test() on one thread, which
# runs it with --check-bounds=yes (pkg_test.jl gives Pkg the empty local registry it needs offline);
# the kernels take other paths on one thread.
"$julia_bin" --startup-file=no --project=julia/SparseJL julia/SparseJL/test/runtests.jl
julia_status=$?
JULIA_NUM_THREADS=1 "$julia_bin" --startup-file=no --project=julia/SparseJL julia/SparseJL/test/pkg_test.jl
[ $? = 0 ] || julia_status=1
python3 -m pytest "$@"
pytest_status=$?
[ "$julia_status" = 0 ] || echo "test.sh: the Julia test suite failed (status $julia_status)"
exit $(( julia_status != 0 || pytest_status != 0 ))
