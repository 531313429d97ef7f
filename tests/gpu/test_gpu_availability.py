"""GPU backends on any machine: nothing GPU-related at import, a reason wherever they cannot run."""
import subprocess
import sys

import sparsejl

GPU_BACKENDS = ("cupy", "cupy-dense", "julia-cuda")


def test_import_loads_no_gpu_library():
    code = ("import sys, sparsejl; "
            "bad = [m for m in ('cupy', 'cupyx', 'cupy_backends', 'torch', 'triton') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import sparsejl imported {out}"


def test_gpu_backends_are_listed_with_a_reason_when_unavailable():
    statuses = {s.name: s for s in sparsejl.backends()}
    for name in GPU_BACKENDS:
        assert name in statuses, f"{name} missing from sparsejl.backends()"
        s = statuses[name]
        assert s.device == "gpu"
        if not s.available:
            assert s.reason and len(s.reason) > 10, f"{name} is unavailable without a reason"


def test_reason_names_cupy_when_cupy_is_missing():
    try:
        import cupy  # noqa: F401
        have_cupy = True
    except Exception:
        have_cupy = False
    if have_cupy:
        return
    for s in sparsejl.backends():
        if s.name in GPU_BACKENDS:
            assert not s.available and "CuPy" in s.reason
