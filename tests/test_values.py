"""NaN, Inf, signed zeros, subnormals, empty operands and odd-but-valid inputs behave as in SciPy."""

import numpy as np
import pytest
import scipy.sparse as sp

import sparsejl
from sparse_cases import random_bsr, random_csr


def with_specials(values, rng, specials):
    values = values.copy()
    flat = values.reshape(-1)
    where = rng.choice(len(flat), size=min(len(flat), 6), replace=False)
    flat[where] = rng.choice(specials, size=len(where))
    return values


@pytest.mark.parametrize("fmt", ["csr", "bsr"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_propagate_as_in_scipy(fmt, dtype, rng):
    A = random_csr(rng, 40, 30, 0.3, dtype) if fmt == "csr" else random_bsr(rng, 10, 6, 5, 0.4, dtype)
    A.data[...] = with_specials(A.data, rng, [np.nan, np.inf, -np.inf])
    B = with_specials(rng.standard_normal((30, 7)).astype(dtype), rng, [np.nan, np.inf, -np.inf, 0.0])
    same_specials(sparsejl.spmm(A, B, backend="julia"), A @ B)
    Bs = sp.csr_array(B) if fmt == "csr" else sp.bsr_array(np.pad(B, ((0, 0), (0, 3))), blocksize=(5, 5))
    same_specials(sparsejl.spgemm(A, Bs, backend="julia").toarray(), (A @ Bs).toarray())


def same_specials(got, ref):
    """NaN where SciPy has NaN, the same infinities, and finite values close to SciPy's."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(np.where(np.isinf(ref), ref, 0), np.where(np.isinf(got), got, 0))
    finite = np.isfinite(ref)
    scale = np.abs(ref[finite]).max(initial=1.0)
    np.testing.assert_allclose(got[finite], ref[finite], rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("dtype,tiny", [(np.float32, 1e-40), (np.float64, 1e-310)])
def test_subnormals_and_signed_zeros(dtype, tiny, rng):
    A = random_csr(rng, 30, 20, 0.4, dtype)
    A.data[::2] *= dtype(tiny)
    A.data[1::5] = -0.0
    B = rng.standard_normal((20, 4)).astype(dtype)
    B[::3] = -0.0
    np.testing.assert_allclose(sparsejl.spmm(A, B, backend="julia"), A @ B, rtol=1e-5, atol=0)
    np.testing.assert_allclose(sparsejl.spgemm(A, sp.csr_array(B), backend="julia").toarray(),
                               (A @ sp.csr_array(B)).toarray(), rtol=1e-5, atol=0)


def test_memory_mapped_and_view_b(tmp_path, rng):
    A = random_csr(rng, 25, 18, 0.3)
    B = rng.standard_normal((18, 6))
    mm = np.lib.format.open_memmap(tmp_path / "b.npy", mode="w+", dtype=np.float64, shape=B.shape)
    mm[...] = B
    mm.flush()
    ro = np.load(tmp_path / "b.npy", mmap_mode="r")
    for view in (mm, ro, B[:, 1:4], B[::2][:9], np.broadcast_to(B[:, :1], (18, 6))):
        np.testing.assert_allclose(sparsejl.spmm(A[:, : view.shape[0]] if view.shape[0] != 18 else A, view,
                                                 backend="julia"),
                                   (A[:, : view.shape[0]] if view.shape[0] != 18 else A) @ view, rtol=1e-12)


def test_scipy_views_of_index_arrays(rng):
    big = random_csr(rng, 30, 20, 0.3)
    A = sparsejl.CSR(big.data[:], big.indices[:], big.indptr[:], big.shape)
    np.testing.assert_allclose(sparsejl.spmm(A, np.ones(20), backend="julia"), big @ np.ones(20), rtol=1e-12)


def test_huge_result_is_a_clear_error():
    A = sparsejl.CSR(np.zeros(0), np.zeros(0, np.int64), np.zeros(2**20 + 1, np.int64), (2**20, 1))
    with pytest.raises(ValueError, match="GiB"):
        sparsejl.spmm(A, np.ones((1, 2**17)), backend="julia")
