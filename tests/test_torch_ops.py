"""sparsejl.torch.ops and sparsejl's entries with PyTorch tensors: gradcheck in float64 for every
op, tensors in and out, PyTorch sparse tensors as A."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")

import sparsejl  # noqa: E402
from sparsejl.torch import ops  # noqa: E402


def structure(mb, kb, density, seed):
    g = torch.Generator().manual_seed(seed)
    pattern = torch.rand((mb, kb), generator=g) < density
    indptr = torch.zeros(mb + 1, dtype=torch.int64)
    indptr[1:] = pattern.sum(1).cumsum(0)
    return pattern, indptr, pattern.nonzero()[:, 1].contiguous()


def dense_of(blocks, pattern, b):
    mb, kb = pattern.shape
    grid = blocks.new_zeros((mb, kb, b, b)).index_put((pattern,), blocks)
    return grid.permute(0, 2, 1, 3).reshape(mb * b, kb * b)


CASES = [(2, 3, 4, 5, 0.5), (3, 2, 2, 1, 0.7), (1, 1, 4, 3, 1.0), (3, 2, 3, 2, 0.0), (2, 2, 8, (2, 3), 0.6)]


@pytest.mark.parametrize("route", ["custom op", "eager"])
@pytest.mark.parametrize("mb,kb,b,tokens,density", CASES)
def test_gradcheck_every_op_in_float64(mb, kb, b, tokens, density, route):
    if route == "custom op":
        bsr_linear, bsr_linear_input_grad, bsr_sddmm = ops.bsr_linear, ops.bsr_linear_input_grad, ops.bsr_sddmm
    else:
        bsr_linear, bsr_linear_input_grad, bsr_sddmm = (ops.EAGER[n] for n in ("bsr_linear", "bsr_linear_input_grad", "bsr_sddmm"))
    pattern, indptr, indices = structure(mb, kb, density, seed=mb * 10 + kb)
    lead = tokens if isinstance(tokens, tuple) else (tokens,)
    m, k, nnzb = mb * b, kb * b, int(indices.shape[0])
    g = torch.Generator().manual_seed(7)
    def f64(*shape):
        return torch.randn(shape, generator=g, dtype=torch.float64).requires_grad_()
    X, dY, blocks, bias = f64(*lead, k), f64(*lead, m), f64(nnzb, b, b), f64(m)
    torch.autograd.gradcheck(lambda x, w, c: bsr_linear(x, w, indptr, indices, c, m), (X, blocks, bias))
    torch.autograd.gradcheck(lambda x, w: bsr_linear(x, w, indptr, indices, None, m), (X, blocks))
    torch.autograd.gradcheck(lambda y, w: bsr_linear_input_grad(y, w, indptr, indices, k), (dY, blocks))
    torch.autograd.gradcheck(lambda y, x: bsr_sddmm(y, x, indptr, indices, b), (dY, X))
    # and the values, against dense products
    W = dense_of(blocks, pattern, b)
    torch.testing.assert_close(bsr_linear(X, blocks, indptr, indices, bias, m), X @ W.T + bias)
    torch.testing.assert_close(bsr_linear_input_grad(dY, blocks, indptr, indices, k), dY @ W)
    mask = dense_of(torch.ones_like(blocks), pattern, b) != 0
    full = dY.reshape(-1, m).T @ X.reshape(-1, k)
    got = dense_of(bsr_sddmm(dY, X, indptr, indices, b), pattern, b)
    torch.testing.assert_close(got, full * mask)


def test_tensors_in_tensors_out_without_copies(rng):
    import scipy.sparse as sp
    W = sp.random_array((64, 48), density=0.2, format="csr", dtype=np.float32, rng=rng)
    X = torch.randn(48, 5)
    Y = sparsejl.spmm(W, X)
    assert isinstance(Y, torch.Tensor)
    torch.testing.assert_close(Y, torch.from_numpy(W.toarray()) @ X)
    T = torch.randn(7, 48)
    out = sparsejl.linear(T, W)
    assert isinstance(out, torch.Tensor) and out.shape == (7, 64)
    torch.testing.assert_close(out, T @ torch.from_numpy(W.toarray()).T)
    dW = sparsejl.sddmm(W, torch.randn(7, 64), T)
    assert isinstance(dW, torch.Tensor) and dW.shape == (W.nnz,)
    # a DLPack array that is neither NumPy nor a tensor: read in place, returned as NumPy's kind
    Xd = np.asarray(X)
    assert isinstance(sparsejl.spmm(W, Xd), np.ndarray)


@pytest.mark.parametrize("layout", ["csr", "bsr"])
def test_pytorch_sparse_tensors_as_A(layout, rng):
    dense = torch.from_numpy((rng.random((64, 32)) < 0.2) * rng.standard_normal((64, 32))).float()
    A = dense.to_sparse_csr() if layout == "csr" else dense.to_sparse_bsr((16, 16))
    view = (sparsejl.CSR if layout == "csr" else sparsejl.BSR).from_torch(A)
    assert view.format == layout and view.shape == (64, 32)
    assert np.shares_memory(view.data, A.values().numpy())
    B = torch.randn(32, 6)
    torch.testing.assert_close(sparsejl.spmm(A, B), dense @ B)
    torch.testing.assert_close(sparsejl.linear(B.T.contiguous(), A), B.T @ dense.T)
    other = sparsejl.BSR if layout == "csr" else sparsejl.CSR
    with pytest.raises(TypeError, match="expected a PyTorch sparse"):
        other.from_torch(A)


def test_dense_tensor_of_another_layout_is_a_clear_error():
    with pytest.raises(TypeError, match="dense tensor is needed"):
        sparsejl.spmm(torch.eye(4).to_sparse_csr(), torch.eye(4).to_sparse_csr())


@pytest.mark.parametrize("layout", ["csr", "bsr"])
def test_spgemm_of_pytorch_sparse_tensors_returns_one(layout, rng):
    dense = torch.from_numpy((rng.random((64, 64)) < 0.1) * rng.standard_normal((64, 64)))
    A = dense.to_sparse_csr() if layout == "csr" else dense.to_sparse_bsr((16, 16))
    C = sparsejl.spgemm(A, A)
    assert C.layout == A.layout
    torch.testing.assert_close(C.to_dense(), dense @ dense)
