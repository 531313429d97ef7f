"""Prepared weights (`sparsejl.prepare`) and their products with few columns, against float64.

Every layout (bitmap tiles from CSR or from BSR of other blocksizes; BSR 16/32/64), float16 and
bfloat16, n from 1 to a few thousand, odd shapes, empty rows, an all-empty matrix, fully dense
tiles, unsorted and repeated entries, Llama-2-7B shapes; the output is poisoned with NaN first,
so an unwritten element fails. Malformed structures are rejected by prepare, before any kernel.
"""
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import sparsejl

TESTS = Path(__file__).resolve().parents[1]
TOL = {"float16": 2e-3, "bfloat16": 1.6e-2}


def _dtype(name):
    if name == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def _exact(x, dtype):
    """float64 values that `dtype` holds exactly."""
    return np.asarray(x, dtype=np.float64).astype(dtype).astype(np.float32).astype(np.float64)


def _signed(rng, size):
    return rng.uniform(0.5, 1.5, size) * rng.choice([-1.0, 1.0], size)


def _gpu_view(cupy, A, dtype):
    data = cupy.asarray(np.asarray(A.data).astype(dtype))
    if A.format == "bsr":
        return sparsejl.BSR(data, cupy.asarray(A.indices), cupy.asarray(A.indptr), A.shape, A.blocksize[0])
    return sparsejl.CSR(data, cupy.asarray(A.indices), cupy.asarray(A.indptr), A.shape)


def _csr(rng, m, k, density, dtype):
    A = sp.random_array((m, k), density=density, format="csr", rng=rng, data_sampler=lambda size: _signed(rng, size))
    A.data = _exact(A.data, dtype)
    return A


def _bsr(rng, m, k, b, density, dtype):
    mask = rng.random((m // b, k // b)) < density
    if mask.size:
        mask[rng.integers(mask.shape[0])] = False                   # an empty block row
    dense = np.kron(mask, np.ones((b, b))) * _signed(rng, (m, k))
    return sp.bsr_array(_exact(dense, dtype), blocksize=(b, b))


def _check(cupy, P, A64, B64, dtype, *, vector=False, ks=None):
    """P @ B through the public call (into a NaN-poisoned `out`) against A64 @ B64 in float64."""
    Bg = cupy.asarray(B64.astype(dtype))
    if vector:
        Bg = Bg[:, 0]
    m, n = P.shape[0], B64.shape[1]
    out = cupy.full((m,) if vector else (m, n), np.nan, dtype=np.float32).astype(dtype)
    if ks is None:
        got = sparsejl.spmm(P, Bg, out=out)
        assert got is out
    else:
        from sparsejl.backends import _decode_kernels
        _decode_kernels.spmm(P, Bg.reshape(-1, n), out.reshape(m, n), ks=ks)
    fresh = sparsejl.spmm(P, Bg)
    ref = np.asarray(A64 @ B64, dtype=np.float64)
    if vector:
        ref = ref[:, 0]
    for C in (out, fresh):
        assert C.dtype == dtype and C.shape == ref.shape
        C = cupy.asnumpy(C.astype(np.float32)).astype(np.float64)
        assert np.isfinite(C).all(), "an element of C was not written"
        scale = max(np.linalg.norm(ref), 1e-30)
        err = np.linalg.norm(C - ref) / scale if np.linalg.norm(ref) else np.abs(C).max()
        assert err < TOL[dtype.name], f"relative error {err:.3g}"


LAYOUTS = [("csr", 1), ("bsr", 64), ("bsr", 32), ("bsr", 16), ("bsr", 8)]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("fmt,b", LAYOUTS)
@pytest.mark.parametrize("n", [1, 3, 8, 16, 24, 40, 64, 100, 1030])
def test_prepared_products_match_float64(gpu, seed, dtype, fmt, b, n):
    cupy, dtype = gpu, _dtype(dtype)
    rng = np.random.default_rng(seed)
    if fmt == "csr":
        A = _csr(rng, 301, 517, 0.3, dtype)
        A.data[A.indptr[7]:A.indptr[8]] = 0                              # an empty row
        A.eliminate_zeros()
    else:
        A = _bsr(rng, 6 * b, 9 * b, b, 0.4, dtype)
    P = sparsejl.prepare(_gpu_view(cupy, A, dtype))
    assert P.layout == ("bsr" if fmt == "bsr" and b >= 16 else "bitmap") and P.dtype == dtype
    B = _exact(_signed(rng, (A.shape[1], n)), dtype)
    _check(cupy, P, A, B, dtype)


@pytest.mark.parametrize("fmt,b", [("csr", 1), ("bsr", 64), ("bsr", 32)])
@pytest.mark.parametrize("ks", [1, 2, 7])
def test_every_split_of_the_tiles_gives_the_product(gpu, seed, fmt, b, ks):
    """The split-K reduction (last CTA sums the partials) at forced split counts, twice in a row
    (the arrival counters are reset for the next launch), bit-identical."""
    cupy, dtype = gpu, np.dtype(np.float16)
    rng = np.random.default_rng(seed)
    A = _csr(rng, 200, 1000, 0.2, dtype) if fmt == "csr" else _bsr(rng, 4 * b, 20 * b, b, 0.5, dtype)
    P = sparsejl.prepare(_gpu_view(cupy, A, dtype))
    B = _exact(_signed(rng, (A.shape[1], 16)), dtype)
    _check(cupy, P, A, B, dtype, ks=ks)
    from sparsejl.backends import _decode_kernels
    Bg = cupy.asarray(B.astype(dtype))
    runs = [_decode_kernels.spmm(P, Bg, cupy.empty((A.shape[0], 16), dtype), ks=ks) for _ in range(3)]
    assert all(bool((r == runs[0]).all()) for r in runs)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("shape", [(4096, 4096), (11008, 4096), (4096, 11008)])
def test_llama_shapes(gpu, seed, dtype, shape):
    """Llama-2-7B layers: unstructured at density 0.3 and 64×64 blocks at 0.1, n = 1, 16, 64;
    operands made on the device, the reference by CuPy in float64."""
    cupy, dtype = gpu, _dtype(dtype)
    from sparsejl.backends._gpu_conversions import todense
    from sparsejl.bench.gpu_operands import make_bsr, make_csr, make_dense
    m, k = shape
    for A in (make_csr(m, k, 0.3, dtype, seed), make_bsr(m, k, 64, 0.1, dtype, seed)):
        P = sparsejl.prepare(A)
        A64 = todense(A).astype(np.float32).astype(np.float64)
        for n in (1, 16, 64):
            B = make_dense(k, n, dtype, seed + n)
            ref = A64 @ B.astype(np.float32).astype(np.float64)
            C = sparsejl.spmm(P, B).astype(np.float32).astype(np.float64)
            assert bool(cupy.isfinite(C).all())
            err = float(cupy.linalg.norm(C - ref) / cupy.linalg.norm(ref))
            assert err < TOL[dtype.name], f"{A.format} {shape} n={n}: relative error {err:.3g}"


@pytest.mark.parametrize("fmt", ["csr", "bsr"])
def test_all_empty_and_fully_dense(gpu, seed, fmt):
    cupy, dtype = gpu, np.dtype(np.float16)
    rng = np.random.default_rng(seed)
    m, k = 128, 192
    empty = sp.csr_array((m, k)) if fmt == "csr" else \
        sp.bsr_array((np.zeros((0, 64, 64)), np.zeros(0, np.int32), np.zeros(3, np.int32)), shape=(m, k))
    dense = sp.csr_array(_exact(_signed(rng, (m, k)), dtype))
    if fmt == "bsr":
        dense = sp.bsr_array(dense.toarray(), blocksize=(64, 64))
    for A in (empty, dense):
        P = sparsejl.prepare(_gpu_view(cupy, A, dtype))
        for n in (1, 16, 64):
            B = _exact(_signed(rng, (k, n)), dtype)
            got = cupy.asnumpy(sparsejl.spmm(P, cupy.asarray(B.astype(dtype))).astype(np.float32))
            ref = A @ B
            if A.nnz == 0:
                assert (got == 0).all()
            else:
                assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < TOL["float16"]


def test_vector_odd_shapes_duplicates_and_unsorted(gpu, seed):
    """n = 1 as a 1-D B; m and k not multiples of 16 or 64; unsorted columns and repeated entries
    (summed, as SciPy sums them); float32 values converted to float16 by prepare; empty shapes."""
    cupy = gpu
    rng = np.random.default_rng(seed)
    sys.path.insert(0, str(TESTS))
    from sparse_cases import random_csr
    A = random_csr(rng, 37, 130, 0.3, np.float32, shuffle=True, duplicates=True)
    A.data = _exact(A.data, np.float16).astype(np.float32)
    P = sparsejl.prepare(sparsejl.CSR(cupy.asarray(A.data), cupy.asarray(A.indices), cupy.asarray(A.indptr), A.shape),
                         dtype=np.float16)
    B = _exact(_signed(rng, (130, 1)), np.float16)
    _check(cupy, P, A.astype(np.float64), B, np.dtype(np.float16), vector=True)
    for m, k in ((0, 10), (10, 0), (0, 0)):
        Z = sparsejl.prepare(sparsejl.CSR(cupy.zeros(0, np.float16), cupy.zeros(0, np.int32),
                                          cupy.zeros(m + 1, np.int32), (m, k)))
        C = sparsejl.spmm(Z, cupy.ones((k, 3), np.float16))
        assert C.shape == (m, 3) and (m == 0 or bool((C == 0).all()))


def test_prepared_is_a_snapshot(gpu, seed):
    """prepare copies: changing the source's values later changes nothing until prepared again."""
    cupy, dtype = gpu, np.dtype(np.float16)
    rng = np.random.default_rng(seed)
    A = _csr(rng, 64, 128, 0.3, dtype)
    view = _gpu_view(cupy, A, dtype)
    P = sparsejl.prepare(view)
    B = cupy.asarray(_exact(_signed(rng, (128, 4)), dtype).astype(dtype))
    before = cupy.asnumpy(sparsejl.spmm(P, B))
    view.data *= 2
    assert (cupy.asnumpy(sparsejl.spmm(P, B)) == before).all()
    again = cupy.asnumpy(sparsejl.spmm(sparsejl.prepare(view), B)).astype(np.float64)
    assert np.allclose(again, 2 * before.astype(np.float64), rtol=2e-3, atol=1e-2)


def test_bad_operands_are_clear_errors(gpu):
    cupy = gpu
    A = sp.random_array((64, 64), density=0.2, format="csr", rng=np.random.default_rng(0)).astype(np.float32)
    with pytest.raises(TypeError, match="CuPy arrays"):
        sparsejl.prepare(A)
    G = _gpu_view(cupy, A, np.float16)
    with pytest.raises(TypeError, match="float16 or bfloat16"):
        sparsejl.prepare(G, dtype=np.float32)
    P = sparsejl.prepare(G)
    for _ in range(2):      # products bound for a float16 B of 2 columns: the errors still come
        sparsejl.spmm(P, cupy.ones((64, 2), np.float16))
    with pytest.raises(TypeError, match="prepared in float16 but B has dtype float32"):
        sparsejl.spmm(P, cupy.ones((64, 2), np.float32))
    with pytest.raises(ValueError, match="dimension mismatch"):
        sparsejl.spmm(P, cupy.ones((63, 2), np.float16))
    with pytest.raises(TypeError, match="on the CPU"):
        sparsejl.spmm(P, np.ones((64, 2), np.float16))
    with pytest.raises(TypeError, match="does not multiply prepared weights"):
        sparsejl.spmm(P, cupy.ones((64, 2), np.float16), backend="cupy-dense")


def _malformed():
    sys.path.insert(0, str(TESTS))
    from sparse_cases import MALFORMED_BSR, MALFORMED_CSR
    return [(A, words) for A, words in MALFORMED_CSR.values()] + [(A, words) for words, A in MALFORMED_BSR.items()]


@pytest.mark.parametrize("case", range(13))
def test_malformed_structures_are_rejected_at_prepare(gpu, case):
    cupy = gpu
    cases = _malformed()
    assert len(cases) == 13
    A, words = cases[case]
    dt = np.float16
    if A.format == "csr":
        Ag = sparsejl.CSR(cupy.asarray(A.data.astype(dt)), cupy.asarray(A.indices), cupy.asarray(A.indptr), A.shape)
    else:
        Ag = sparsejl.BSR(cupy.asarray(A.data.astype(dt)), cupy.asarray(A.indices), cupy.asarray(A.indptr), A.shape,
                          A.blocksize)
    with pytest.raises(ValueError, match=re.escape(words)):
        sparsejl.prepare(Ag)
    cupy.cuda.Device().synchronize()        # no kernel ran on the bad arrays: the context is fine


def test_spmm_of_a_prepared_weight_never_waits(gpu, seed):
    """Products queued behind a 2 s kernel return before it ends."""
    cupy = gpu
    rng = np.random.default_rng(seed)
    A = _csr(rng, 512, 384, 0.3, np.float16)
    P = sparsejl.prepare(_gpu_view(cupy, A, np.float16))
    B = cupy.asarray(_exact(_signed(rng, (384, 16)), np.float16).astype(np.float16))
    sparsejl.spmm(P, B)
    cupy.cuda.Device().synchronize()
    spin = cupy.RawKernel(_SPIN, "spin")
    spin((1,), (1,), (np.int64(2_000_000_000),))
    t0 = time.perf_counter()
    for _ in range(20):
        C = sparsejl.spmm(P, B)
    queued = time.perf_counter() - t0
    t1 = time.perf_counter()
    cupy.cuda.Device().synchronize()
    waited = time.perf_counter() - t1
    assert queued < 1.0 and waited > 0.5, f"the calls took {queued:.3f} s; then the stream drained in {waited:.3f} s"
    ref = A @ cupy.asnumpy(B).astype(np.float64)
    assert np.linalg.norm(cupy.asnumpy(C).astype(np.float64) - ref) < TOL["float16"] * np.linalg.norm(ref)


_SPIN = r"""
extern "C" __global__ void spin(long long ns) {
    long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do { __nanosleep(10000); asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); } while (t - t0 < ns);
}
"""
