"""The products of a linear layer (sparsejl.linear, linear_input_grad, sddmm) against float64 NumPy
references, for BSR and CSR weights of many shapes, then their bad inputs."""

import numpy as np
import pytest
import scipy.sparse as sp

import sparsejl
from sparse_cases import random_bsr, random_csr

BACKENDS = ["julia", "scipy"]
DTYPES = [np.float32, np.float64]
# (out, in, tokens, density): empty rows, an all-empty weight, one token, odd token counts
SHAPES = [(64, 96, 128, 0.3), (96, 64, 13, 0.5), (32, 32, 1, 1.0), (64, 64, 7, 0.0), (128, 32, 33, 0.1),
          (32, 160, 0, 0.4), (256, 96, 130, 0.25)]


def close(got, ref, scale, terms, dtype):
    """|got - ref| within (terms + 2) rounding errors of the sum of magnitudes `scale`."""
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    bound = (terms + 2) * np.finfo(dtype).eps * (scale + np.finfo(np.float64).tiny)
    err = np.abs(got - ref)
    assert np.all(err <= bound), f"max error {err.max():.3g}, worst excess at {np.unravel_index(np.argmax(err - bound), err.shape)}"


def weight(rng, fmt, m, k, density, dtype, b):
    if fmt == "csr":
        return random_csr(rng, m, k, density, dtype=dtype)
    return random_bsr(rng, m // b, k // b, b, density, dtype=dtype)


def operands(rng, fmt, shape, dtype, b):
    m, k, n, density = shape
    W = weight(rng, fmt, m, k, density, dtype, b)
    X = rng.standard_normal((n, k)).astype(dtype)
    dY = rng.standard_normal((n, m)).astype(dtype)
    return W, W.toarray().astype(np.float64), X, dY


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fmt,b", [("bsr", 32), ("bsr", 16), ("bsr", 8), ("bsr", 4), ("bsr", 1), ("csr", 1)])
@pytest.mark.parametrize("shape", SHAPES)
def test_products_match_float64(rng, backend, dtype, fmt, b, shape):
    W, Wd, X, dY = operands(rng, fmt, shape, dtype, b)
    X64, dY64 = X.astype(np.float64), dY.astype(np.float64)
    bias = rng.standard_normal(W.shape[0]).astype(dtype)
    k = W.shape[1]

    Y = sparsejl.linear(X, W, bias, backend=backend)
    close(Y, X64 @ Wd.T + bias, np.abs(X64) @ np.abs(Wd).T + np.abs(bias), k, dtype)
    assert Y.dtype == dtype
    close(sparsejl.linear(X, W, backend=backend), X64 @ Wd.T, np.abs(X64) @ np.abs(Wd).T, k, dtype)

    dX = sparsejl.linear_input_grad(dY, W, backend=backend)
    close(dX, dY64 @ Wd, np.abs(dY64) @ np.abs(Wd), W.shape[0], dtype)

    dW = sparsejl.sddmm(W, dY, X, backend=backend)
    assert dW.shape == W.data.shape and dW.dtype == dtype
    got = type(W)((dW, W.indices, W.indptr), shape=W.shape, **({"blocksize": (b, b)} if fmt == "bsr" else {}))
    mask = type(W)((np.ones_like(W.data), W.indices, W.indptr), shape=W.shape,
                   **({"blocksize": (b, b)} if fmt == "bsr" else {})).toarray() != 0
    close(got.toarray(), (dY64.T @ X64) * mask, (np.abs(dY64).T @ np.abs(X64)) * mask, X.shape[0], dtype)


def test_sddmm_of_unsorted_duplicated_csr_gives_each_entry_the_full_value(rng):
    W = random_csr(rng, 40, 50, 0.3, shuffle=True, duplicates=True)
    X, Y = rng.standard_normal((9, 40)), rng.standard_normal((9, 50))
    full = X.T @ Y
    rows = np.repeat(np.arange(40), np.diff(W.indptr))
    for backend in BACKENDS:
        np.testing.assert_allclose(sparsejl.sddmm(W, X, Y, backend=backend), full[rows, W.indices], rtol=1e-12)
        # and linear with duplicates sums them, as SciPy does
        np.testing.assert_allclose(sparsejl.linear(Y, W, backend=backend), Y @ W.toarray().T, rtol=1e-12)


def test_leading_dimensions_and_strided_inputs(rng):
    W = random_bsr(rng, 3, 2, 16, 0.6, dtype=np.float32)
    X = rng.standard_normal((2, 5, 64)).astype(np.float32)[:, :, ::2]     # (2, 5, 32), strided
    Y = sparsejl.linear(X, W)
    assert Y.shape == (2, 5, 48)
    np.testing.assert_allclose(Y, X @ W.toarray().T, rtol=1e-5, atol=1e-5)
    dX = sparsejl.linear_input_grad(Y, W)
    assert dX.shape == (2, 5, 32)
    np.testing.assert_allclose(dX, Y @ W.toarray(), rtol=1e-5, atol=1e-4)


def test_sparsejl_views_take_the_same_path(rng):
    W = random_bsr(rng, 4, 3, 8, 0.5)
    X = rng.standard_normal((6, 24))
    np.testing.assert_allclose(sparsejl.linear(X, sparsejl.BSR.from_scipy(W)), X @ W.toarray().T, rtol=1e-12)


def test_bad_inputs_raise_clear_errors(rng):
    W = random_bsr(rng, 2, 2, 8, 1.0, dtype=np.float32)
    X = np.ones((3, 16), np.float32)
    with pytest.raises(ValueError, match="last dimension must be 16"):
        sparsejl.linear(np.ones((3, 15), np.float32), W)
    with pytest.raises(TypeError, match="dtype float64, expected float32"):
        sparsejl.linear(X.astype(np.float64), W)
    with pytest.raises(ValueError, match="bias has shape"):
        sparsejl.linear(X, W, np.ones(3, np.float32))
    with pytest.raises(TypeError, match="bias has dtype"):
        sparsejl.linear(X, W, np.ones(16))
    with pytest.raises(TypeError, match="int64"):
        sparsejl.linear(X.astype(np.int64), W)
    with pytest.raises(ValueError, match="same leading dimensions"):
        sparsejl.sddmm(W, np.ones((3, 16), np.float32), np.ones((4, 16), np.float32))
    with pytest.raises(TypeError, match="expected a CSR or BSR"):
        sparsejl.linear(X, np.ones((16, 16), np.float32))
    for backend in BACKENDS:
        bad = sp.bsr_array((W.data, W.indices.copy(), W.indptr), shape=W.shape, blocksize=(8, 8), copy=False)
        bad.indices[1] = 7
        with pytest.raises(ValueError, match="out of range"):
            sparsejl.linear(X, bad, backend=backend)
        with pytest.raises(ValueError, match="out of range"):
            sparsejl.sddmm(bad, X, X, backend=backend)
        with pytest.raises(ValueError, match="out of range"):
            sparsejl.linear_input_grad(X, bad, backend=backend)
    with pytest.raises(ValueError, match="has no linear"):
        sparsejl.linear(X, W, backend="dense")
