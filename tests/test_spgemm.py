"""spgemm on every CPU backend against SciPy: values, canonical form, formats and index types."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparsejl
from sparsejl import runtime
from sparse_cases import CPU_BACKENDS, RTOL, random_bsr, random_csr


def check_spgemm(got, A, B, fmt, dtype):
    ref = A.astype(np.float64).toarray() @ B.astype(np.float64).toarray()
    scale = np.abs(A.astype(np.float64).toarray()) @ np.abs(B.astype(np.float64).toarray())
    assert got.format == fmt and got.shape == ref.shape and got.dtype == dtype
    assert np.dtype(got.indices.dtype) in (np.int32, np.int64)
    # canonical form: indices sorted within each (block) row, no duplicates
    for i in range(len(got.indptr) - 1):
        row = got.indices[got.indptr[i]:got.indptr[i + 1]]
        assert np.all(np.diff(row) > 0), f"row {i} not strictly increasing: {row}"
    assert np.all(np.abs(got.toarray().astype(np.float64) - ref) <= RTOL[np.dtype(dtype)] * scale + 1e-300)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("m,k,n", [(0, 0, 0), (0, 4, 3), (4, 0, 3), (4, 3, 0), (1, 1, 1), (30, 20, 25), (120, 90, 70)])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.3, 1.0])
def test_csr(backend, m, k, n, density, rng):
    A, B = random_csr(rng, m, k, density), random_csr(rng, k, n, density)
    check_spgemm(sparsejl.spgemm(A, B, backend=backend), A, B, "csr", np.float64)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtypes", [(np.float32, np.float32), (np.float32, np.float64), (np.float64, np.float64)])
@pytest.mark.parametrize("index_dtypes", [(np.int32, np.int32), (np.int64, np.int64), (np.int32, np.int64)])
def test_csr_types_unsorted_duplicates(backend, dtypes, index_dtypes, rng):
    A = random_csr(rng, 60, 50, 0.15, dtype=dtypes[0], index_dtype=index_dtypes[0], shuffle=True, duplicates=True)
    B = random_csr(rng, 50, 40, 0.15, dtype=dtypes[1], index_dtype=index_dtypes[1], shuffle=True)
    check_spgemm(sparsejl.spgemm(A, B, backend=backend), A, B, "csr", np.result_type(*dtypes))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("b", [1, 2, 4, 8, 16, 32, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bsr(backend, b, dtype, rng):
    nb = 2 if b >= 32 else 6
    A = random_bsr(rng, nb + 1, nb, b, 0.5, dtype=dtype, shuffle=True)
    B = random_bsr(rng, nb, nb + 2, b, 0.5, dtype=dtype, index_dtype=np.int64)
    got = sparsejl.spgemm(A, B, backend=backend)
    check_spgemm(got, A, B, "bsr", dtype)
    assert got.blocksize == (b, b)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(0, 30), k=st.integers(0, 30), n=st.integers(0, 30), da=st.floats(0, 1), db=st.floats(0, 1),
       seed=st.integers(0, 2**32 - 1), i64=st.booleans())
def test_property_julia_matches_scipy(m, k, n, da, db, seed, i64):
    rng = np.random.default_rng(seed)
    idx = np.int64 if i64 else np.int32
    A = random_csr(rng, m, k, da, index_dtype=idx, shuffle=True)
    B = random_csr(rng, k, n, db, index_dtype=idx, shuffle=True, duplicates=True)
    check_spgemm(sparsejl.spgemm(A, B, backend="julia"), A, B, "csr", np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gram_product_full_rows(dtype, rng):
    """W·Wᵀ of a pruned layer, where every row of C is full (counted by bitmap union, computed as
    SpMM against Wᵀ densified)."""
    W = random_csr(rng, 48, 400, 0.3, dtype=dtype, shuffle=True, duplicates=True)
    WT = W.T.tocsr()
    got = sparsejl.spgemm(W, WT, backend="julia")
    assert got.nnz == 48 * 48
    check_spgemm(got, W, WT, "csr", dtype)


def test_one_pass_matches_counting_first(rng, monkeypatch):
    """With sparse rows of B, Julia computes C in one pass into arrays with room for every
    multiply-add and Python shrinks them to C's entries; switched off (counting rows first), the
    same product comes out entry for entry."""
    A = random_csr(rng, 300, 200, 0.05, dtype=np.float32, shuffle=True, duplicates=True)
    B = random_csr(rng, 200, 5000, 0.01, dtype=np.float32, shuffle=True)
    rt = runtime.get()
    rooms = []
    call = rt.call

    def observe(key, slots, *args, **kwargs):
        if key.startswith("csr_spgemm_numeric"):
            rooms.append(slots[-1])
        return call(key, slots, *args, **kwargs)

    monkeypatch.setattr(rt, "call", observe)
    one = sparsejl.spgemm(A, B, backend="julia")
    limit = rt.eval("SparseJL.ONEPASS_MAX_ROOM[]")
    rt.eval("SparseJL.ONEPASS_MAX_ROOM[] = -1")
    try:
        counted = sparsejl.spgemm(A, B, backend="julia")
    finally:
        rt.eval(f"SparseJL.ONEPASS_MAX_ROOM[] = {limit}")
    flops = np.diff(B.indptr)[A.indices]
    room = sum(min(int(f.sum()), 5000) for f in np.split(flops, A.indptr[1:-1]))
    assert rooms == [room, -1] and room > one.nnz > 0
    assert one.indices.size == one.data.size == one.nnz
    np.testing.assert_array_equal(one.indptr, counted.indptr)
    np.testing.assert_array_equal(one.indices, counted.indices)
    np.testing.assert_array_equal(one.data, counted.data)
    check_spgemm(one, A, B, "csr", np.float32)
