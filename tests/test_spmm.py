"""spmm on every CPU backend against a float64 SciPy reference, over shapes, densities and types."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparsejl
from sparse_cases import CPU_BACKENDS, assert_product_close, random_bsr, random_csr

SHAPES = [(0, 0, 0), (0, 5, 3), (5, 0, 3), (5, 4, 0), (1, 1, 1), (7, 3, 1), (3, 7, 2), (64, 48, 33), (200, 130, 17)]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("density", [0.0, 0.05, 0.3, 1.0])
def test_csr_shapes_and_densities(backend, m, k, n, density, rng):
    A = random_csr(rng, m, k, density)
    B = rng.standard_normal((k, n))
    got = sparsejl.spmm(A, B, backend=backend)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    assert_product_close(got, A, B, np.float64)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype_a,dtype_b", [(np.float32, np.float32), (np.float64, np.float64),
                                             (np.float32, np.float64), (np.float64, np.float32)])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_csr_value_and_index_types(backend, dtype_a, dtype_b, index_dtype, rng):
    A = random_csr(rng, 90, 70, 0.2, dtype=dtype_a, index_dtype=index_dtype)
    B = rng.standard_normal((70, 9)).astype(dtype_b)
    got = sparsejl.spmm(A, B, backend=backend)
    assert got.dtype == np.result_type(dtype_a, dtype_b)
    assert_product_close(got, A, B, got.dtype)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("b", [1, 2, 3, 4, 8, 16, 32, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bsr_block_sizes(backend, b, dtype, rng):
    mb, kb = (3, 2) if b >= 32 else (9, 7)
    A = random_bsr(rng, mb, kb, b, 0.4, dtype=dtype, index_dtype=np.int64 if b % 2 else np.int32)
    B = rng.standard_normal((kb * b, 13)).astype(dtype)
    got = sparsejl.spmm(A, B, backend=backend)
    assert got.dtype == dtype
    assert_product_close(got, A, B, dtype)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("b", [4, 8, 16, 32, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shuffle", [False, True])
def test_bsr_times_one_column(backend, b, dtype, shuffle, rng):
    """n = 1 has its own kernels (SIMD where b is a multiple of a vector); big enough to thread,
    with empty block rows, as a vector and as a k×1 matrix."""
    A = random_bsr(rng, 40, 30, b, 0.2, dtype=dtype, shuffle=shuffle)
    x = rng.standard_normal(30 * b).astype(dtype)
    got = sparsejl.spmm(A, x, backend=backend)
    assert got.shape == (40 * b,) and got.dtype == dtype
    assert_product_close(got[:, None], A, x[:, None], dtype)
    assert_product_close(sparsejl.spmm(A, x[:, None], backend=backend), A, x[:, None], dtype)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("fmt", ["csr", "bsr"])
def test_vector_b(backend, fmt, rng):
    A = random_csr(rng, 40, 24, 0.3) if fmt == "csr" else random_bsr(rng, 10, 6, 4, 0.3)
    x = rng.standard_normal(24)
    got = sparsejl.spmm(A, x, backend=backend)
    assert got.shape == (40,)
    assert_product_close(got[:, None], A, x[:, None], np.float64)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_layouts_of_b_give_scipys_result(backend, rng):
    A = random_csr(rng, 30, 20, 0.3)
    base = rng.standard_normal((20, 12))
    fortran = np.asfortranarray(base)
    strided = np.ascontiguousarray(np.repeat(base, 2, axis=1))[:, ::2]
    readonly = base.copy()
    readonly.flags.writeable = False
    ref = A @ base
    for B in (fortran, strided, readonly, base.T.copy().T):
        np.testing.assert_allclose(sparsejl.spmm(A, B, backend=backend), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_unsorted_and_duplicate_indices(backend, rng):
    A = random_csr(rng, 50, 40, 0.3, shuffle=True, duplicates=True)
    assert not A.has_canonical_format
    B = rng.standard_normal((40, 6))
    np.testing.assert_allclose(sparsejl.spmm(A, B, backend=backend), A @ B, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_own_types_and_scipy_matrix_classes(backend, rng):
    A = random_csr(rng, 32, 16, 0.25)
    Ab = random_bsr(rng, 8, 4, 4, 0.5)
    B = rng.standard_normal((16, 5))
    for operand in (A, sp.csr_matrix(A), sparsejl.CSR.from_scipy(A)):
        np.testing.assert_allclose(sparsejl.spmm(operand, B, backend=backend), A @ B, rtol=1e-12)
    for operand in (Ab, sp.bsr_matrix(Ab), sparsejl.BSR.from_scipy(Ab)):
        np.testing.assert_allclose(sparsejl.spmm(operand, B, backend=backend), Ab @ B, rtol=1e-12)


def test_default_backend_is_julia():
    assert sparsejl.backends()[0].name == "julia" and sparsejl.backends()[0].available


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(0, 40), k=st.integers(0, 40), n=st.integers(0, 9), density=st.floats(0, 1),
       b=st.sampled_from([1, 2, 3, 5, 8]), bsr=st.booleans(), f32=st.booleans(), i64=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_property_julia_matches_scipy(m, k, n, density, b, bsr, f32, i64, seed):
    rng = np.random.default_rng(seed)
    dtype, index_dtype = (np.float32 if f32 else np.float64), (np.int64 if i64 else np.int32)
    if bsr:
        A = random_bsr(rng, m // b + 1, k // b + 1, b, density, dtype=dtype, index_dtype=index_dtype)
    else:
        A = random_csr(rng, m, k, density, dtype=dtype, index_dtype=index_dtype, shuffle=True)
    B = rng.standard_normal((A.shape[1], n)).astype(dtype)
    assert_product_close(sparsejl.spmm(A, B, backend="julia"), A, B, dtype)
