"""The GPU products as a user calls them: `sparsejl.spmm` never waits for the device, runs inside
CUDA graph capture (CuPy's and PyTorch's), takes and returns PyTorch tensors, and rejects every
malformed structure of the CPU suite with the CPU's message while the CUDA context stays usable."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import sparsejl

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
GPU_BACKENDS = ("cupy", "julia-cuda")

_SPIN = r"""
extern "C" __global__ void spin(long long ns) {
    long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do { __nanosleep(10000); asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); } while (t - t0 < ns);
}
"""


def _available(name):
    from sparsejl.backends import status
    s = status(name)
    if not s.available:
        pytest.skip(f"{name}: {s.reason}")


def _operands(cupy, rng, fmt, dtype, m=512, k=384, n=256, b=64):
    """A (SciPy float64 reference and its CuPy twin) and B (host and device), values exact in dtype."""
    if fmt == "bsr":
        mask = rng.random((m // b, k // b)) < 0.3
        mask[0, 0] = True
        dense = np.kron(mask, np.ones((b, b))) * rng.uniform(0.5, 1.5, (m, k)) * rng.choice([-1, 1], (m, k))
        host = sp.bsr_array(dense.astype(dtype).astype(np.float64), blocksize=(b, b))
        A = sparsejl.BSR(cupy.asarray(host.data.astype(dtype)), cupy.asarray(host.indices.astype(np.int32)),
                         cupy.asarray(host.indptr.astype(np.int32)), host.shape, b)
    else:
        host = sp.random_array((m, k), density=0.1, format="csr", rng=rng,
                               data_sampler=lambda size: rng.uniform(0.5, 1.5, size))
        host.data = host.data.astype(dtype).astype(np.float64)
        A = sparsejl.CSR(cupy.asarray(host.data.astype(dtype)), cupy.asarray(host.indices.astype(np.int32)),
                         cupy.asarray(host.indptr.astype(np.int32)), host.shape)
    B = rng.uniform(-1, 1, (k, n)).astype(dtype)
    return host, A, B


def _close(got, ref, dtype):
    got = np.asarray(got, dtype=np.float64)
    tol = 2e-3 if np.dtype(dtype) == np.float16 else 1e-5
    return np.linalg.norm(got - ref) <= tol * np.linalg.norm(ref)


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("fmt,dtype", [("bsr", np.float16), ("csr", np.float16), ("csr", np.float32)])
def test_spmm_returns_while_the_stream_is_busy(gpu, seed, backend, fmt, dtype):
    """A product queued behind a kernel that holds the stream for 2 s returns long before that
    kernel ends: the public call never waits for the device (the structure check of a matrix's
    first product does, once; it runs before the spin here)."""
    cupy = gpu
    _available(backend)
    rng = np.random.default_rng(seed)
    host, A, B = _operands(cupy, rng, fmt, dtype)
    Bg = cupy.asarray(B)
    sparsejl.spmm(A, Bg, backend=backend)                 # first product: checks the structure once
    out = cupy.empty((A.shape[0], B.shape[1]), dtype=dtype)
    cupy.cuda.Device().synchronize()
    spin = cupy.RawKernel(_SPIN, "spin")
    spin((1,), (1,), (np.int64(2_000_000_000),))
    t0 = time.perf_counter()
    for _ in range(20):
        sparsejl.spmm(A, Bg, backend=backend, out=out)
    C = sparsejl.spmm(A, Bg, backend=backend)
    queued = time.perf_counter() - t0
    t1 = time.perf_counter()
    cupy.cuda.Device().synchronize()
    waited = time.perf_counter() - t1
    assert queued < 1.0 and waited > 0.5, f"the calls took {queued:.3f} s; then the stream drained in {waited:.3f} s"
    ref = host @ B.astype(np.float64)
    assert _close(cupy.asnumpy(C), ref, dtype) and _close(cupy.asnumpy(out), ref, dtype), f"seed={seed}"


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("fmt", ["bsr", "csr"])
def test_spmm_in_a_cupy_graph(gpu, seed, backend, fmt):
    """Products captured in a CUDA graph (CuPy stream capture) replay with the values B holds at
    replay time, into the outputs captured."""
    cupy = gpu
    _available(backend)
    dtype = np.float16
    rng = np.random.default_rng(seed)
    host, A, B = _operands(cupy, rng, fmt, dtype)
    Bg = cupy.asarray(B)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        first = sparsejl.spmm(A, Bg, backend=backend)       # checks once, warms caches and workspaces
        out = cupy.empty_like(first)
        del first                                           # its block waits in CuPy's pool for the capture
        stream.synchronize()
        stream.begin_capture()
        C = sparsejl.spmm(A, Bg, backend=backend)           # allocated inside the capture
        sparsejl.spmm(A, C[: A.shape[1]] if A.shape[1] <= A.shape[0] else Bg, backend=backend, out=out)
        graph = stream.end_capture()
    for _ in range(3):
        B = rng.uniform(-1, 1, B.shape).astype(dtype)
        Bg.set(B)
        graph.launch(stream)
        stream.synchronize()
        ref = host @ B.astype(np.float64)
        assert _close(cupy.asnumpy(C), ref, dtype), f"seed={seed}: replay gave a wrong product"
        ref2 = host @ np.asarray(cupy.asnumpy(C)[: A.shape[1]], dtype=np.float64)
        assert _close(cupy.asnumpy(out), ref2, dtype), f"seed={seed}: the second captured product is wrong"


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("b", [64, 32])
def test_launches_kept_with_the_verdict_follow_every_operand(gpu, seed, backend, b):
    """A checked matrix keeps its kernel launches per kind of B (_bsr_kernels.plan); calls that
    alternate B's width, dtype and alignment, an unaligned `out`, new values and values changed in
    place each get the product of the operands they pass."""
    cupy = gpu
    _available(backend)
    rng = np.random.default_rng(seed)
    host, A, _ = _operands(cupy, rng, "bsr", np.float16, b=b)
    k, m = A.shape[1], A.shape[0]
    flat = cupy.asarray(rng.uniform(-1, 1, k * 300 + 1).astype(np.float16))
    Bs = [cupy.asarray(rng.uniform(-1, 1, (k, n)).astype(dt)) for n, dt in
          ((256, np.float16), (24, np.float16), (13, np.float16), (256, np.float32))]
    Bs.append(flat[1: 1 + k * 40].reshape(k, 40))                     # 2 bytes past a 16-byte boundary
    for rnd in range(2):
        for B in Bs + Bs[::-1]:
            ref = host @ cupy.asnumpy(B).astype(np.float64)
            C = sparsejl.spmm(A, B, backend=backend)
            assert _close(cupy.asnumpy(C), ref, C.dtype), f"seed={seed}: n={B.shape[1]} {B.dtype}"
            buf = cupy.empty(m * B.shape[1] + 1, dtype=C.dtype)
            out = buf[1:].reshape(m, B.shape[1])
            sparsejl.spmm(A, B, backend=backend, out=out)
            assert _close(cupy.asnumpy(out), ref, C.dtype), f"seed={seed}: unaligned out, n={B.shape[1]}"
        if rnd == 0:
            A.data *= 2                                     # values changed in place: the same arrays
            host = host * 2
    A.data = A.data * -1                                # new values for the checked structure
    C = sparsejl.spmm(A, Bs[0], backend=backend)
    assert _close(cupy.asnumpy(C), -(host @ cupy.asnumpy(Bs[0]).astype(np.float64)), np.float16), f"seed={seed}"


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("fmt", ["bsr", "csr"])
def test_bound_products_still_check_what_changed(gpu, seed, backend, fmt):
    """After a first call, spmm reuses what it bound for that matrix, backend and kind of B
    (ops._bound_product); every call whose operands differ from the bound ones in anything the
    full path checks still gets that path's product or its error."""
    cupy = gpu
    _available(backend)
    rng = np.random.default_rng(seed)
    host, A, _ = _operands(cupy, rng, fmt, np.float16, n=64)
    k = A.shape[1]

    def ref(B):
        return host @ cupy.asnumpy(B).astype(np.float64)

    for _ in range(3):                     # bound after the first: fresh B arrays of the same kind
        B = cupy.asarray(rng.uniform(-1, 1, (k, 64)).astype(np.float16))
        assert _close(cupy.asnumpy(sparsejl.spmm(A, B, backend=backend)), ref(B), np.float16), f"seed={seed}"
    wide = cupy.asarray(rng.uniform(-1, 1, (k, 128)).astype(np.float16))
    strided = wide[:, ::2]                 # B's kind (type, dtype, shape) but not C-contiguous
    assert _close(cupy.asnumpy(sparsejl.spmm(A, strided, backend=backend)), ref(strided), np.float16), f"seed={seed}"
    vector = wide[:, 0].copy()
    v = sparsejl.spmm(A, vector, backend=backend)
    assert v.shape == (A.shape[0],) and _close(cupy.asnumpy(v), ref(vector[:, None])[:, 0], np.float16)
    with pytest.raises(TypeError, match="int32"):
        sparsejl.spmm(A, cupy.ones((k, 64), np.int32), backend=backend)
    with pytest.raises(ValueError, match="dimension mismatch"):
        sparsejl.spmm(A, cupy.ones((k + 1, 64), np.float16), backend=backend)
    with pytest.raises(TypeError, match="A is on the GPU but B is on the CPU"):
        sparsejl.spmm(A, cupy.asnumpy(B), backend=backend)
    with pytest.raises(TypeError, match="runs on the CPU"):
        sparsejl.spmm(A, B, backend="scipy")
    data, indices = A.data, A.indices
    A.data = data[:-1]                     # new values of the wrong length
    with pytest.raises(ValueError, match="data holds"):
        sparsejl.spmm(A, B, backend=backend)
    A.data = cupy.asnumpy(data)            # values moved to the host
    with pytest.raises(TypeError, match="A is on the CPU but B is on the GPU"):
        sparsejl.spmm(A, B, backend=backend)
    A.data = data * -1                     # new values, same structure: the product of the new ones
    assert _close(cupy.asnumpy(sparsejl.spmm(A, B, backend=backend)), -ref(B), np.float16), f"seed={seed}"
    bad = indices.copy()
    bad[0] = A.shape[1] // A.blocksize     # a new indices array, out of range
    A.indices = bad
    with pytest.raises(ValueError, match=r"indices\[0\] = \d+ is out of range"):
        sparsejl.spmm(A, B, backend=backend)
    A.indices = indices
    A.indices[0] = bad[0]                  # the same array changed in place: check_format names it
    with pytest.raises(ValueError, match="out of range"):
        sparsejl.check_format(A)
    with pytest.raises(ValueError, match="out of range"):
        sparsejl.spmm(A, B, backend=backend)
    A.indices[0] = int(host.indices[0])
    sparsejl.check_format(A)
    assert _close(cupy.asnumpy(sparsejl.spmm(A, B, backend=backend)), -ref(B), np.float16), f"seed={seed}"


@pytest.mark.parametrize("b, dtype", [(64, np.float16), (32, np.float16), (16, np.float32)])
def test_kernel_launches_from_c_and_through_ctypes_agree(gpu, seed, b, dtype):
    """The cupy backend launches its BSR kernels from the C extension _culaunch (setup.py builds it);
    the ctypes path it falls back to launches the same parameters: both give A @ B, bit for bit."""
    cupy = gpu
    from sparsejl.backends import _bsr_kernels, _cuda, _cukernel
    assert _cukernel._culaunch is not None, "the C extension sparsejl.backends._culaunch is not built"
    rng = np.random.default_rng(seed)
    host, A, B = _operands(cupy, rng, "bsr", dtype, b=b)
    B = cupy.asarray(B)
    sparsejl.check_format(A)                       # the verdict: plan keeps its launch shapes there
    outs = []
    for through_ctypes in (False, True):
        C = cupy.full((A.shape[0], B.shape[1]), np.nan, dtype=dtype)
        _cukernel.launch(_bsr_kernels.plan(A, B, C), _cuda.current_stream_ptr(), through_ctypes=through_ctypes)
        outs.append(cupy.asnumpy(C))
    assert _close(outs[0], host @ cupy.asnumpy(B).astype(np.float64), dtype), f"seed={seed}"
    assert np.array_equal(outs[0], outs[1]), f"seed={seed}: the two launch paths differ"


@pytest.mark.parametrize("fmt", ["bsr", "csr"])
def test_spmm_in_a_torch_graph_with_tensors(gpu, seed, fmt):
    """PyTorch tensors in, a tensor out, on PyTorch's current stream: torch.cuda.graph captures
    the product and replays it."""
    cupy = gpu
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA here")
    dtype = np.float16
    rng = np.random.default_rng(seed)
    host, A, B = _operands(cupy, rng, fmt, dtype)
    Bt = torch.tensor(B, device="cuda")
    first = sparsejl.spmm(A, Bt)
    assert isinstance(first, torch.Tensor) and first.is_cuda and first.dtype == torch.float16
    assert _close(first.float().cpu().numpy(), host @ B.astype(np.float64), dtype)
    graph = torch.cuda.CUDAGraph()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            sparsejl.spmm(A, Bt)                              # warm-up on the capture's stream
    torch.cuda.current_stream().wait_stream(side)
    with torch.cuda.graph(graph):
        C = sparsejl.spmm(A, Bt)
        D = torch.relu(C)
    for _ in range(3):
        B = rng.uniform(-1, 1, B.shape).astype(dtype)
        Bt.copy_(torch.tensor(B, device="cuda"))
        graph.replay()
        torch.cuda.synchronize()
        ref = host @ B.astype(np.float64)
        assert _close(C.float().cpu().numpy(), ref, dtype), f"seed={seed}"
        assert _close(D.float().cpu().numpy(), np.maximum(ref, 0), dtype), f"seed={seed}"


def test_torch_tensors_in_and_out_bfloat16(gpu, seed):
    cupy = gpu
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA here")
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(seed)
    host, A32, B = _operands(cupy, rng, "bsr", np.float32)
    A = sparsejl.BSR(A32.data.astype(ml_dtypes.bfloat16), A32.indices, A32.indptr, A32.shape, A32.blocksize)
    Bt = torch.tensor(B, device="cuda").to(torch.bfloat16)
    C = sparsejl.spmm(A, Bt)
    assert isinstance(C, torch.Tensor) and C.dtype == torch.bfloat16
    Ahost = sp.bsr_array((cupy.asnumpy(A.data.astype(np.float32)).astype(np.float64), host.indices, host.indptr),
                         shape=host.shape, blocksize=host.blocksize)
    ref = Ahost @ Bt.float().cpu().numpy().astype(np.float64)
    err = np.linalg.norm(C.float().cpu().numpy() - ref) / np.linalg.norm(ref)
    assert err <= 1.6e-2, f"seed={seed}: error {err:.2e}"


def test_mixed_devices_are_a_type_error(gpu):
    cupy = gpu
    A = sp.csr_array(np.eye(4, dtype=np.float32))
    with pytest.raises(TypeError, match="A is on the CPU but B is on the GPU"):
        sparsejl.spmm(A, cupy.ones((4, 2), np.float32))
    Ag = sparsejl.CSR(cupy.asarray(A.data), cupy.asarray(A.indices), cupy.asarray(A.indptr), A.shape)
    with pytest.raises(TypeError, match="A is on the GPU but B is on the CPU"):
        sparsejl.spmm(Ag, np.ones((4, 2), np.float32))


def test_structure_changed_in_place_is_caught_by_check_format(gpu):
    """The structure is checked once per matrix; after an in-place change, check_format (the
    documented step) names the problem before the next product."""
    cupy = gpu
    host = sp.random_array((64, 48), density=0.2, format="csr", dtype=np.float32, rng=np.random.default_rng(1))
    import cupyx.scipy.sparse as csp
    A = csp.csr_matrix((cupy.asarray(host.data), cupy.asarray(host.indices), cupy.asarray(host.indptr)),
                       shape=host.shape)
    B = cupy.ones((48, 8), np.float32)
    sparsejl.spmm(A, B)
    A.indices[0] = 48
    with pytest.raises(ValueError, match=r"indices\[0\] = 48 is out of range"):
        sparsejl.check_format(A)
    with pytest.raises(ValueError, match=r"out of range"):
        sparsejl.spmm(A, B)       # the failed check dropped the verdict: the next product checks again
    A.indices[0] = 0
    sparsejl.check_format(A)
    assert cupy.asnumpy(sparsejl.spmm(A, B)).shape == (64, 8)


_CASE = """
import re, sys, numpy as np, scipy.sparse as sp, cupy, sparsejl
from sparse_cases import MALFORMED_BSR, MALFORMED_CSR
kind, name, backend = sys.argv[1:4]
if kind == "csr":
    A, words = MALFORMED_CSR[name]
else:
    A, words = MALFORMED_BSR[name], name
dt = np.float16 if kind == "bsr" and A.blocksize <= 128 else np.float32
Ag = type(A)(cupy.asarray(A.data.astype(dt)), cupy.asarray(A.indices), cupy.asarray(A.indptr), A.shape,
             *([A.blocksize] if kind == "bsr" else []))
for op in ("spmm", "spgemm"):
    try:
        if op == "spmm":
            sparsejl.spmm(Ag, cupy.ones((A.shape[1], 8), dt), backend=backend)
        else:
            sparsejl.spgemm(Ag, Ag, backend=backend)
        print("NO ERROR", op); sys.exit(1)
    except ValueError as e:
        if op == "spmm" and not re.search(re.escape(words), str(e)):
            print("WRONG MESSAGE", op, e); sys.exit(1)
    except TypeError as e:       # spgemm of a shape that does not chain, say
        if op == "spmm":
            print("TYPE ERROR", e); sys.exit(1)
cupy.cuda.Device().synchronize()
good = sp.random_array((256, 192), density=0.1, format="csr", dtype=np.float32, rng=np.random.default_rng(0))
G = sparsejl.CSR(cupy.asarray(good.data), cupy.asarray(good.indices), cupy.asarray(good.indptr), good.shape)
X = np.random.default_rng(1).standard_normal((192, 16)).astype(np.float32)
C = cupy.asnumpy(sparsejl.spmm(G, cupy.asarray(X), backend=backend))
cupy.cuda.Device().synchronize()
assert np.allclose(C, good @ X, rtol=1e-4, atol=1e-5), "the context computes wrong after the error"
print("OK")
"""


def _malformed_cases():
    sys.path.insert(0, str(TESTS))
    from sparse_cases import MALFORMED_BSR, MALFORMED_CSR
    return [("csr", n) for n in MALFORMED_CSR] + [("bsr", n) for n in MALFORMED_BSR]


@pytest.mark.parametrize("backend", GPU_BACKENDS)
@pytest.mark.parametrize("kind,name", _malformed_cases())
def test_malformed_structure_on_the_gpu(gpu, backend, kind, name):
    """Each malformed case of the CPU suite, in a process of its own: the CPU's ValueError, no
    CUDA error, and a correct product on the same context afterwards."""
    _available(backend)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", _CASE, kind, name, backend], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), (out.stdout + out.stderr)[-3000:]
