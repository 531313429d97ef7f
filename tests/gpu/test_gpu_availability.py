"""GPU backends on any machine: nothing GPU-related at import, a reason wherever they cannot run."""
import os
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


def test_reason_says_what_is_missing():
    """No GPU: the reason says so; a GPU without CuPy: the reason names CuPy."""
    import importlib.util
    has_gpu = any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg"))
    has_cupy = importlib.util.find_spec("cupy") is not None
    for s in sparsejl.backends():
        if s.name not in GPU_BACKENDS:
            continue
        if not has_gpu:
            assert not s.available and "no NVIDIA GPU" in s.reason
        elif not has_cupy:
            assert not s.available and "CuPy" in s.reason
