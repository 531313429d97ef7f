#!/usr/bin/env bash
# Build the sdist, the wheel from that sdist, install the wheel into a fresh venv outside the
# checkout, and run one product on every CPU backend there, checked against SciPy: what a user
# gets from `pip install`, not what an editable install in the checkout reads.
# numpy and scipy come from the package index (pip's cache first); set PIP_NO_INDEX=1 and
# PIP_FIND_LINKS=<folder of wheels> to install offline.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python=${PYTHON:-python3}

quiet() {  # the build's chatter only when a step fails
  "$@" >"$work/log" 2>&1 || { cat "$work/log" >&2; echo "check-wheel: failed: $*" >&2; exit 1; }
}
quiet "$python" -c "from setuptools import build_meta; build_meta.build_sdist('$work/dist')"
quiet "$python" -m pip wheel --disable-pip-version-check --no-deps --no-build-isolation \
  -w "$work/dist" "$work"/dist/sparsejl-*.tar.gz
quiet "$python" -m venv "$work/venv"
quiet "$work/venv/bin/pip" install --disable-pip-version-check "$work"/dist/sparsejl-*.whl
echo "check-wheel: built and installed $(basename "$work"/dist/sparsejl-*.whl)"

cd "$work"  # nothing of the checkout on sys.path
# a depot of its own: Julia's compile cache of the checkout's SparseJL stays valid
env -u PYTHONPATH JULIA_DEPOT_PATH="$work/depot" JULIA_NUM_THREADS=2 "$work/venv/bin/python" - <<'EOF'
import numpy as np, scipy.sparse as sp, sparsejl
from sparsejl.julia import find

site = sparsejl.__file__.rsplit("/", 2)[0]
assert "site-packages" in site, f"sparsejl imported from {sparsejl.__file__}, not from the wheel"
assert str(find.package_dir()).startswith(site), f"SparseJL read from {find.package_dir()}, outside the wheel"
from sparsejl.backends import _culaunch  # the C launch of the GPU kernels, built into the wheel
assert _culaunch.__file__.startswith(site), f"_culaunch imported from {_culaunch.__file__}"
A = sp.random_array((300, 200), density=0.05, format="csr", dtype=np.float64, rng=1)
B = np.random.default_rng(2).standard_normal((200, 16))
cpu = [s for s in sparsejl.backends() if s.device == "cpu"]
for status in cpu:
    assert status.available, str(status)
    got = sparsejl.spmm(A, B, backend=status.name)
    np.testing.assert_allclose(got, A @ B, rtol=1e-12, atol=1e-12)
    print(f"check-wheel: spmm on {status.name!r} matches SciPy")
print(f"check-wheel: ok, {len(cpu)} CPU backends, sparsejl and SparseJL from {site}")
EOF
