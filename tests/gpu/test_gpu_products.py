"""GPU SpMM and SpGEMM of every GPU backend against SciPy in float64, on fresh random inputs.

Outputs must be CuPy arrays (data stays on the device) and every element must be written: the
tensor-core kernel is run on a NaN-poisoned output too.
"""
import importlib

import numpy as np
import pytest
import scipy.sparse as sp

import sparsejl
from sparsejl import BSR, CSR

TOL = {"float16": 2e-3, "bfloat16": 1.6e-2, "float32": 1e-5, "float64": 1e-12}


BACKENDS = ("cupy", "julia-cuda", "cupy-dense")


def _dtype(name):
    if name == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def _backend(name):
    mod = importlib.import_module({"cupy": "sparsejl.backends.cupy_backend", "cupy-dense": "sparsejl.backends.cupy_dense",
                                   "julia-cuda": "sparsejl.backends.julia_cuda"}[name])
    reason = mod.availability()
    if reason is not None:
        pytest.skip(f"{name}: {reason}")
    return mod


def _host_values(rng, size, dtype):
    v = rng.uniform(0.5, 1.5, size) * np.where(rng.random(size) < 0.5, -1.0, 1.0)
    return v.astype(dtype)


def _representable(x, dtype):
    """float64 values that `dtype` holds exactly (SciPy has no bfloat16: the host copy stays float64)."""
    return np.asarray(x).astype(dtype).astype(np.float32).astype(np.float64)


def random_bsr(rng, mb, kb, b, density, dtype):
    """A float64 SciPy BSR whose values are exact in `dtype`, with one empty block row."""
    mask = rng.random((mb, kb)) < density
    empty = rng.integers(mb)
    mask[empty] = False
    mask[(empty + 1) % mb, rng.integers(kb)] = True  # never all zero
    rows, cols = np.nonzero(mask)
    indptr = np.zeros(mb + 1, np.int32)
    np.cumsum(np.bincount(rows, minlength=mb), out=indptr[1:])
    data = _representable(_host_values(rng, rows.size * b * b, np.float64), dtype).reshape(-1, b, b)
    return sp.bsr_matrix((data, cols.astype(np.int32), indptr), shape=(mb * b, kb * b), blocksize=(b, b))


def random_csr(rng, m, k, density, dtype):
    A = sp.random(m, k, density=density, format="csr", random_state=np.random.RandomState(rng.integers(2**31)))
    A.data = _representable(_host_values(rng, A.nnz, np.float64), dtype)
    A.sort_indices()
    return A


def random_dense(rng, k, n, dtype):
    return _host_values(rng, k * n, np.float64).astype(dtype).reshape(k, n)


def to_gpu(cupy, A, dtype):
    data = cupy.asarray(A.data.astype(dtype))
    if A.format == "bsr":
        return BSR(data, cupy.asarray(A.indices), cupy.asarray(A.indptr), A.shape, A.blocksize[0])
    return CSR(data, cupy.asarray(A.indices), cupy.asarray(A.indptr), A.shape)


def f64(x):
    return x.astype(np.float32).astype(np.float64) if x.dtype.name == "bfloat16" else x.astype(np.float64)


def rel_err(C, ref):
    C = np.asarray(C, dtype=np.float64)
    assert np.isfinite(C).all(), "output has NaN/Inf: an element was not written"
    return np.linalg.norm(C - ref) / np.linalg.norm(ref)


def host(cupy, C):
    C = C.astype(np.float32) if C.dtype.name == "bfloat16" else C
    return cupy.asnumpy(C)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("b,n", [(64, 256), (32, 136), (16, 64), (32, 13), (3, 40)])
def test_bsr_spmm(gpu, seed, backend, dtype, b, n):
    cupy = gpu
    mod = _backend(backend)
    dt = _dtype(dtype)
    rng = np.random.default_rng(seed)
    mb, kb = rng.integers(3, 9), rng.integers(2, 9)
    A = random_bsr(rng, mb, kb, b, 0.4, dt)
    B = random_dense(rng, A.shape[1], n, dt)
    ref = f64(A).toarray() @ f64(B)
    Ag, Bg = to_gpu(cupy, A, dt), cupy.asarray(B)
    C = mod.spmm(Ag, Bg)
    assert isinstance(C, cupy.ndarray) and C.shape == ref.shape and C.dtype == dt
    err = rel_err(host(cupy, C), ref)
    assert err <= TOL[dtype], f"seed={seed}: error {err:.2e}"


#: every TMA kernel configuration the benchmark times, and the previous defaults
TMA_CONFIGS = [("tma", 2, 4, 1, 0), ("tma", 2, 4, 1, 1), ("tma", 2, 4, 1, 2), ("tma", 1, 3, 1, 2),
               ("tma", 1, 2, 1, 2), ("tma", 1, 3, 1, 0), ("tma", 2, 3, 0, 0), ("tma", 2, 4, 0, 2), ("tma", 1, 4, 1, 0),
               ("tma", 2, 4, 1, 2, 0, 1), ("tma", 1, 3, 1, 2, 0, 1), ("tma", 2, 4, 1, 0, 0, 1), ("tma", 2, 3, 0, 2, 0, 1)]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("b", [16, 32, 64])
def test_bsr_tensor_core_kernel_writes_every_element(gpu, seed, dtype, b):
    cupy = gpu
    from sparsejl.backends import _bsr_kernels
    dt = _dtype(dtype)
    rng = np.random.default_rng(seed)
    A = random_bsr(rng, 6, 5, b, 0.3, dt)
    n = 8 * int(rng.integers(1, 40))
    B = random_dense(rng, A.shape[1], n, dt)
    Ag, Bg = to_gpu(cupy, A, dt), cupy.asarray(B)
    assert _bsr_kernels.mma_eligible(Ag, Bg, dt)
    configs = [None] + [c for c in [(128, 2, 2, 3), (256, 2, 4, 3), (64, 2, 2, 4), (128, 1, 4, 4)] if b // c[1] >= 16]
    if _bsr_kernels.wgmma_eligible(Ag, Bg, dt):
        configs += TMA_CONFIGS
    ref = f64(A).toarray() @ f64(B)
    order = cupy.asarray(rng.permutation(A.shape[0] // b).astype(np.int32))
    for cfg in configs:
        for out_dt in (dt, np.dtype(np.float32)):
            out = cupy.full(A.shape[:1] + (n,), np.nan, dtype=np.float32).astype(out_dt)
            _bsr_kernels.bsr_spmm(Ag, Bg, out_dt, config=cfg, out=out)
            err = rel_err(host(cupy, out), ref)
            assert err <= TOL[dtype], f"seed={seed} config={cfg} out={out_dt}: error {err:.2e}"
        out = cupy.full(A.shape[:1] + (n,), np.nan, dtype=np.float32).astype(dt)
        _bsr_kernels.bsr_spmm(Ag, Bg, dt, config=cfg, out=out, row_order=order)
        err = rel_err(host(cupy, out), ref)
        assert err <= TOL[dtype], f"seed={seed} config={cfg} row_order: error {err:.2e}"


@pytest.mark.parametrize("shape", ["long rows", "many tiles"])
def test_tma_kernel_long_rows_and_many_tiles(gpu, seed, shape):
    """Block rows of many blocks, CTAs of many tiles (and, for SCHED 1, many snake rounds)."""
    cupy = gpu
    from sparsejl.backends import _bsr_kernels, _gpu_conversions
    dt = np.dtype(np.float16)
    rng = np.random.default_rng(seed)
    mb, kb, density, n = (3, 100, 0.7, 8 * int(rng.integers(1, 50))) if shape == "long rows" else (600, 2, 0.6, 2048)
    A = random_bsr(rng, mb, kb, 64, density, dt)
    B = random_dense(rng, A.shape[1], n, dt)
    Ag, Bg = to_gpu(cupy, A, dt), cupy.asarray(B)
    if not _bsr_kernels.wgmma_eligible(Ag, Bg, dt):
        pytest.skip("the TMA kernel needs compute capability 9.0")
    ref = _gpu_conversions.todense(Ag).astype(np.float64) @ Bg.astype(np.float64)
    for cfg in [None] + TMA_CONFIGS:
        out = cupy.full((A.shape[0], n), np.nan, dtype=dt)
        _bsr_kernels.bsr_spmm(Ag, Bg, dt, config=cfg, out=out)
        assert bool(cupy.isfinite(out).all()), f"seed={seed} config={cfg}: an element was not written"
        err = float(cupy.linalg.norm(out.astype(np.float64) - ref) / cupy.linalg.norm(ref))
        assert err <= TOL["float16"], f"seed={seed} config={cfg}: error {err:.2e}"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("b", [32, 64])
def test_julia_cuda_runs_the_same_kernel_as_cupy(gpu, seed, dtype, b):
    """julia-cuda launches the cupy backend's cubin: the two results agree bit for bit."""
    cupy = gpu
    cp_mod, jl_mod = _backend("cupy"), _backend("julia-cuda")
    dt = _dtype(dtype)
    rng = np.random.default_rng(seed)
    A = random_bsr(rng, int(rng.integers(3, 12)), int(rng.integers(2, 9)), b, 0.4, dt)
    B = random_dense(rng, A.shape[1], 8 * int(rng.integers(1, 70)), dt)
    Ag, Bg = to_gpu(cupy, A, dt), cupy.asarray(B)
    c1, c2 = cp_mod.spmm(Ag, Bg), jl_mod.spmm(Ag, Bg)
    assert bool((c1.view(np.uint16) == c2.view(np.uint16)).all()), f"seed={seed}"
    err = rel_err(host(cupy, c2), f64(A).toarray() @ f64(B))
    assert err <= TOL[dtype], f"seed={seed}: error {err:.2e}"


def test_back_to_back_products_read_their_predecessors(gpu, seed):
    """Each product reads the one before it (C becomes the next B), launched from Python and from
    Julia on one stream: every launch is ordered after the one before it."""
    cupy = gpu
    from sparsejl.backends import _bsr_kernels, julia_cuda
    dt = np.dtype(np.float16)
    rng = np.random.default_rng(seed)
    A = random_bsr(rng, 8, 8, 64, 0.5, dt)
    Ag = to_gpu(cupy, A, dt)
    B = random_dense(rng, A.shape[1], 512, dt)
    if not _bsr_kernels.wgmma_eligible(Ag, cupy.asarray(B), dt):
        pytest.skip("the TMA kernel needs compute capability 9.0")
    scale = 1.0 / np.sqrt(float((A.toarray() != 0).sum(axis=1).max()))   # keeps the chain's values near 1
    Ag = type(Ag)(Ag.data * dt.type(scale), Ag.indices, Ag.indptr, Ag.shape, 64)
    Ah = sp.bsr_matrix((host(cupy, Ag.data).astype(np.float64), A.indices, A.indptr), shape=A.shape)
    x, ref = cupy.asarray(B), f64(B)
    for step in range(8):
        if step % 2 == 0 or julia_cuda.availability() is not None:
            x = _bsr_kernels.bsr_spmm(Ag, x, dt)
        else:
            x = julia_cuda.spmm(Ag, x)
        ref = Ah @ _representable(ref, dt)
    err = rel_err(host(cupy, x), ref)
    assert err <= 1e-2, f"seed={seed}: error {err:.2e}"


@pytest.mark.parametrize("b", [32, 64])
def test_julia_cuda_cusparse_bsr_paths(gpu, seed, b):
    """cuSPARSE's Blocked-ELL (converted in the call, or passed) and BSR SpMM stay selectable."""
    cupy = gpu
    mod = _backend("julia-cuda")
    dt = np.dtype(np.float16)
    rng = np.random.default_rng(seed)
    A = random_bsr(rng, 6, 5, b, 0.4, dt)
    B = random_dense(rng, A.shape[1], 8 * int(rng.integers(1, 40)), dt)
    Ag, Bg = to_gpu(cupy, A, dt), cupy.asarray(B)
    ref = f64(A).toarray() @ f64(B)
    for kw in ({"alg": mod.CUSPARSE_SPMM_BLOCKED_ELL_ALG1}, {"blocked_ell": mod.to_blocked_ell(Ag)},
               {"alg": mod.CUSPARSE_SPMM_BSR_ALG1}):
        err = rel_err(host(cupy, mod.spmm(Ag, Bg, **kw)), ref)
        assert err <= TOL["float16"], f"seed={seed} {list(kw)}: error {err:.2e}"


@pytest.mark.parametrize("backend", ["cupy", "julia-cuda"])
@pytest.mark.parametrize("b", [64, 32])
def test_bsr_spmm_int64_indices(gpu, seed, backend, b):
    cupy = gpu
    mod = _backend(backend)
    dt = np.dtype(np.float16)
    rng = np.random.default_rng(seed)
    A = random_bsr(rng, 7, 5, b, 0.4, dt)
    B = random_dense(rng, A.shape[1], 264, dt)
    Ag = to_gpu(cupy, A, dt)
    Ag = type(Ag)(Ag.data, Ag.indices.astype(np.int64), Ag.indptr.astype(np.int64), Ag.shape, b)
    C = mod.spmm(Ag, cupy.asarray(B))
    err = rel_err(host(cupy, C), f64(A).toarray() @ f64(B))
    assert err <= TOL["float16"], f"seed={seed}: error {err:.2e}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_csr_spmm(gpu, seed, backend, dtype):
    cupy = gpu
    mod = _backend(backend)
    dt = _dtype(dtype)
    rng = np.random.default_rng(seed)
    m, k, n = (int(x) for x in rng.integers(20, 300, 3))
    A = random_csr(rng, m, k, 0.1, dt)
    B = random_dense(rng, k, n, dt)
    C = mod.spmm(to_gpu(cupy, A, dt), cupy.asarray(B))
    assert isinstance(C, cupy.ndarray) and C.dtype == dt
    err = rel_err(host(cupy, C), f64(A).toarray() @ f64(B))
    assert err <= TOL[dtype], f"seed={seed}: error {err:.2e}"


@pytest.mark.parametrize("backend", ["cupy", "julia-cuda"])
def test_spmm_all_zero_rows_and_empty(gpu, backend):
    cupy = gpu
    mod = _backend(backend)
    A, dt = sp.csr_matrix((50, 30), dtype=np.float32), np.dtype(np.float32)
    C = mod.spmm(to_gpu(cupy, A, dt), cupy.ones((30, 7), np.float32))
    assert float(abs(C).max()) == 0.0


@pytest.mark.parametrize("backend", ["cupy", "julia-cuda", "cupy-dense"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_csr_spgemm(gpu, seed, backend, dtype):
    cupy = gpu
    mod = _backend(backend)
    dt = _dtype(dtype)
    rng = np.random.default_rng(seed)
    m, k, n = (int(x) for x in rng.integers(30, 400, 3))
    A, B = random_csr(rng, m, k, 0.05, dt), random_csr(rng, k, n, 0.05, dt)
    C = mod.spgemm(to_gpu(cupy, A, dt), to_gpu(cupy, B, dt))
    assert isinstance(C.data, cupy.ndarray), "SpGEMM result left the GPU"
    assert C.data.dtype == dt
    ref = (f64(A) @ f64(B)).toarray()
    Ch = sp.csr_matrix((host(cupy, C.data).astype(np.float64), cupy.asnumpy(C.indices), cupy.asnumpy(C.indptr)),
                       shape=C.shape)
    assert Ch.has_sorted_indices
    err = rel_err(Ch.toarray(), ref) if np.linalg.norm(ref) else 0.0
    assert err <= TOL[dtype], f"seed={seed}: error {err:.2e}"


def test_julia_cuda_leaves_the_default_memory_pool_alone(gpu, seed):
    """Workspaces come from a pool of Julia's own: the device's default stream-ordered pool, which
    other libraries allocate from, keeps its settings (release threshold) and its memory."""
    cupy = gpu
    mod = _backend("julia-cuda")
    rt = cupy.cuda.runtime
    if not (hasattr(rt, "deviceGetDefaultMemPool") and hasattr(rt, "memPoolGetAttribute")):
        pytest.skip("this CuPy has no stream-ordered pool API")
    threshold = getattr(rt, "cudaMemPoolAttrReleaseThreshold", 4)
    reserved_now = getattr(rt, "cudaMemPoolAttrReservedMemCurrent", 5)
    pool = rt.deviceGetDefaultMemPool(cupy.cuda.Device().id)
    cupy.cuda.Device().synchronize()
    before = rt.memPoolGetAttribute(pool, threshold)
    reserved = rt.memPoolGetAttribute(pool, reserved_now)
    rng = np.random.default_rng(seed)
    dt = np.dtype(np.float32)
    for m in (300, 900, 500):  # workspaces of several sizes, reused from the pool
        A, B = random_csr(rng, m, m, 0.05, dt), random_csr(rng, m, m, 0.05, dt)
        C = mod.spgemm(to_gpu(cupy, A, dt), to_gpu(cupy, B, dt))
        Ch = sp.csr_matrix((cupy.asnumpy(C.data).astype(np.float64), cupy.asnumpy(C.indices),
                            cupy.asnumpy(C.indptr)), shape=C.shape)
        err = rel_err(Ch.toarray(), (f64(A) @ f64(B)).toarray())
        assert err <= TOL["float32"], f"seed={seed}, m={m}: error {err:.2e}"
    cupy.cuda.Device().synchronize()
    assert rt.memPoolGetAttribute(pool, threshold) == before
    assert rt.memPoolGetAttribute(pool, reserved_now) <= reserved


@pytest.mark.parametrize("backend", ["cupy", "julia-cuda"])
def test_bsr_spgemm(gpu, seed, backend):
    cupy = gpu
    mod = _backend(backend)
    rng = np.random.default_rng(seed)
    dt = np.dtype(np.float32)
    A, B = random_bsr(rng, 5, 6, 4, 0.3, dt), random_bsr(rng, 6, 4, 4, 0.3, dt)
    C = mod.spgemm(to_gpu(cupy, A, dt), to_gpu(cupy, B, dt))
    assert C.format == "bsr" and C.blocksize == 4
    got = sp.bsr_matrix((cupy.asnumpy(C.data), cupy.asnumpy(C.indices), cupy.asnumpy(C.indptr)), shape=C.shape,
                        blocksize=(4, 4)).toarray()
    err = rel_err(got, f64(A).toarray() @ f64(B).toarray())
    assert err <= 1e-5, f"seed={seed}: error {err:.2e}"


@pytest.mark.parametrize("backend", ["cupy", "julia-cuda"])
def test_top_level_spmm_keeps_cupy_inputs_on_the_gpu(gpu, seed, backend):
    cupy = gpu
    _backend(backend)
    import cupyx.scipy.sparse as csp
    rng = np.random.default_rng(seed)
    A = random_csr(rng, 120, 90, 0.1, np.float32)
    B = _host_values(rng, 90 * 17, np.float32).reshape(90, 17)
    Ag = csp.csr_matrix((cupy.asarray(A.data), cupy.asarray(A.indices), cupy.asarray(A.indptr)), shape=A.shape)
    C = sparsejl.spmm(Ag, cupy.asarray(B), backend=backend)
    assert isinstance(C, cupy.ndarray)
    assert rel_err(cupy.asnumpy(C), A.toarray().astype(np.float64) @ B) <= 1e-5


@pytest.mark.parametrize("name", ["cupy", "julia-cuda"])
@pytest.mark.parametrize("b", [32, 64])
def test_values_changed_in_place_are_seen(gpu, name, b, seed):
    """A weight updated in place (a training step, say) must not be served from a stale copy."""
    cupy = gpu
    mod = _backend(name)
    rng = np.random.default_rng(seed)
    dt = np.dtype("float16")
    pattern = sp.random_array((4, 3), density=0.6, format="csr", rng=rng)
    values = _representable(_host_values(rng, (pattern.nnz, b, b), dt), dt)
    A = BSR(cupy.asarray(values.astype(dt)), cupy.asarray(pattern.indices), cupy.asarray(pattern.indptr), (4 * b, 3 * b), b)
    B = cupy.asarray(_representable(_host_values(rng, (3 * b, 64), dt), dt).astype(dt))
    mod.spmm(A, B)
    A.data *= dt.type(-0.5)
    host = sp.bsr_array((values * -0.5, pattern.indices, pattern.indptr), shape=A.shape, blocksize=(b, b))
    ref = host @ cupy.asnumpy(B).astype(np.float64)
    got = cupy.asnumpy(mod.spmm(A, B)).astype(np.float64)
    assert np.abs(got - ref).max() <= TOL["float16"] * np.abs(ref).max(), f"seed {seed}"


def test_julia_cuda_spgemm_spins_through_its_gpu_waits(gpu, seed, monkeypatch):
    """SpGEMM's compute and copy jobs wait on the GPU: the caller spins through them (the
    runtime's `spin_s`) rather than sleeping; SpMM's jobs keep the default short poll."""
    cupy = gpu
    mod = _backend("julia-cuda")
    from sparsejl import runtime
    rt, seen = runtime.get(), []
    real = rt.call

    def call(key, *args, spin_s=0.0, **kw):
        seen.append((key.split(":")[0], spin_s))
        return real(key, *args, spin_s=spin_s, **kw)

    monkeypatch.setattr(rt, "call", call)
    rng = np.random.default_rng(seed)
    dt = np.dtype(np.float32)
    A, B = random_csr(rng, 200, 150, 0.05, dt), random_csr(rng, 150, 120, 0.05, dt)
    C = mod.spgemm(to_gpu(cupy, A, dt), to_gpu(cupy, B, dt))
    Ch = sp.csr_matrix((cupy.asnumpy(C.data).astype(np.float64), cupy.asnumpy(C.indices),
                        cupy.asnumpy(C.indptr)), shape=C.shape)
    assert rel_err(Ch.toarray(), (f64(A) @ f64(B)).toarray()) <= TOL["float32"], f"seed={seed}"
    mod.spmm(to_gpu(cupy, A, dt), cupy.asarray(random_dense(rng, 150, 8, dt)))
    spins = dict(seen)
    assert spins["cuda_csr_spgemm_compute"] == spins["cuda_csr_spgemm_copy"] == mod.SPGEMM_SPIN_S > 0
    assert spins["cuda_csr_spmm"] == 0.0
