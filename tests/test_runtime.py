"""The embedded runtime: one per process, errors carried over, reuse of a Julia already running."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import sparsejl
from sparsejl import runtime

ROOT = Path(__file__).resolve().parents[1]


def test_started_once():
    rt = runtime.get()
    assert runtime.get() is rt
    assert rt.eval("Threads.nthreads()") == str(rt.threads)
    assert rt.version.startswith("1.")


@pytest.mark.parametrize("env,expected", [({"JULIA_NUM_THREADS": "1"}, 1),
                                          ({"SPARSEJL_NUM_THREADS": "1"}, 1),
                                          ({}, os.cpu_count())])
def test_thread_count_follows_the_environment(env, expected):
    clean = {k: v for k, v in os.environ.items() if k not in ("JULIA_NUM_THREADS", "SPARSEJL_NUM_THREADS")}
    clean.update(env, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", "from sparsejl import runtime; print(runtime.julia_threads())"],
                         env=clean, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout) == expected


def test_julia_exceptions_become_python_exceptions():
    rt = runtime.get()
    with pytest.raises(sparsejl.JuliaError, match="boom"):
        rt.eval('error("boom")')
    with pytest.raises(ValueError, match="unknown kernel|unknown"):
        rt.entry("no_such_kernel:Float64")
    assert rt.eval("1 + 1") == "2"  # still usable


REUSE = """
import ctypes, sys, threading
import numpy as np, scipy.sparse as sp
info = __import__("sparsejl.runtime", fromlist=["probe"]).probe(sys.argv[1])
lib = ctypes.CDLL(info["libjulia"], mode=ctypes.RTLD_GLOBAL)      # as juliacall does
init = getattr(lib, "jl_init_with_image__threading", None) or lib.jl_init_with_image
init(info["bindir"].encode(), info["sysimage"].encode())
import sparsejl
from sparsejl import runtime
A = sp.random_array((30, 20), density=0.3, format="csr", rng=1); B = np.ones((20, 4))
assert np.allclose(sparsejl.spmm(A, B, backend="julia"), A @ B)
assert runtime.get()._owner is None, "did not reuse the running Julia"
errors = []
def other():
    try:
        sparsejl.spmm(A, B, backend="julia")
    except RuntimeError as exc:
        errors.append(str(exc))
t = threading.Thread(target=other); t.start(); t.join()
print("reused", errors)
"""


def test_reuses_a_julia_started_by_another_embedder():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", REUSE, runtime.find_julia()], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "reused" in out.stdout
    if tuple(int(x) for x in runtime.get().version.split(".")[:2]) < (1, 9):
        assert "thread it did not start" in out.stdout


def test_many_threads_share_the_runtime():
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(5)
    cases = [(sp.random_array((40, 30), density=0.2, format="csr", rng=rng), rng.standard_normal((30, 3)))
             for _ in range(16)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda c: sparsejl.spmm(c[0], c[1], backend="julia"), cases * 20))
    for (A, B), got in zip(cases * 20, results):
        np.testing.assert_allclose(got, A @ B, rtol=1e-12)


CPP_AFTER_JULIA = """
import numpy as np, scipy.sparse as sp, sparsejl
sparsejl.spmm(sp.csr_array(np.eye(3)), np.ones(3), backend="julia")
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt   # loads ft2font, a pybind11 extension that throws C++ exceptions
fig = plt.figure()
fig.text(0.5, 0.5, "$x^2$")        # mathtext: more C++ under the hood
fig.savefig(__import__("io").BytesIO(), format="png")
print("ok")
"""


def test_cpp_extensions_loaded_after_julia_keep_their_exceptions():
    pytest.importorskip("matplotlib", reason="matplotlib is installed by scripts/setup.sh")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", CPP_AFTER_JULIA], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_ctypes_call_path_without_the_c_module(tmp_path):
    """Where the C call path is not built, the same jobs go through ctypes: products, a Julia
    error and a rejected structure behave the same."""
    script = tmp_path / "no_c.py"
    script.write_text("""
import sys
sys.modules["sparsejl._handover"] = None  # import of the C module fails
import numpy as np, scipy.sparse as sp, sparsejl
from sparsejl import runtime
assert runtime._handover is None
rng = np.random.default_rng(3)
A = sp.random(50, 40, density=0.2, format="csr", dtype=np.float64, random_state=4)
B = rng.standard_normal((40, 7))
assert np.allclose(sparsejl.spmm(A, B, backend="julia"), A @ B)
C = sparsejl.spgemm(A, A.T.tocsr(), backend="julia")
assert np.allclose(C.toarray(), (A @ A.T).toarray())
bad = sp.csr_array((A.data, A.indices.copy(), A.indptr), shape=A.shape)
bad.indices[3] = 99
try:
    sparsejl.spmm(sparsejl.CSR(bad.data, bad.indices, bad.indptr, bad.shape), B, backend="julia")
except ValueError as exc:
    assert "out of range" in str(exc) or "indices" in str(exc), exc
else:
    raise AssertionError("malformed indices were accepted")
print("ok")
""")
    done = subprocess.run([sys.executable, str(script)], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout + done.stderr


def test_triton_loads_after_julia_started():
    """Triton's libtriton.so carries an LLVM whose symbols it exports; loaded after libjulia, its
    static constructors bound to Julia's LLVM and the process died (PyTorch's optimizers import
    Triton where it is installed). boot loads it first; here Julia starts, then Triton imports."""
    import importlib.util
    code = ("import importlib.util, numpy as np, scipy.sparse as sp, sparsejl\n"
            "A = sp.random_array((50, 40), density=0.2, format='csr', dtype=np.float64, rng=np.random.default_rng(0))\n"
            "B = np.ones((40, 3))\n"
            "assert np.allclose(sparsejl.spmm(A, B), A @ B)\n"
            "if importlib.util.find_spec('triton') is not None:\n"
            "    import triton\n"
            "    print('triton', triton.__version__)\n"
            "assert np.allclose(sparsejl.spmm(A, B), A @ B)\n"
            "print('ok')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.rstrip().endswith("ok"), (run.returncode, run.stdout, run.stderr[-2000:])
    assert ("triton" in run.stdout) == (importlib.util.find_spec("triton") is not None)
