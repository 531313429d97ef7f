"""SciPy's own sparse products: the reference every other backend is checked against."""

import numpy as np

from ..formats import VALUE_DTYPES
from .protocol import Backend


def availability():
    return None


def spmm(A, B, out):
    out[...] = A.to_scipy() @ B   # SciPy allocates its result; this backend is the reference, not the fast path
    return out


def spgemm(A, B):
    out = A.to_scipy() @ B.to_scipy()
    out.sum_duplicates()  # canonical: sorted indices, no duplicates
    return out


def linear(W, X, bias, out):
    out[...] = (W.to_scipy() @ X.T).T
    if bias is not None:
        out += bias
    return out


def linear_input_grad(W, dY, out):
    out[...] = (W.to_scipy().T @ dY.T).T
    return out


def sddmm(P, X, Y, out):
    """Gathers the rows (CSR) or row panels (BSR) that each stored entry pairs, then sums over tokens."""
    n, b = X.shape[0], P.blocksize
    used = int(P.indptr[-1])
    rows = np.repeat(np.arange(len(P.indptr) - 1), np.diff(P.indptr))
    cols = np.asarray(P.indices[:used], dtype=np.int64)
    out[used:] = 0
    if P.format == "csr":
        out[:used] = np.einsum("ti,ti->i", X[:, rows], Y[:, cols])
    else:
        Xb, Yb = X.reshape(n, X.shape[1] // b, b)[:, rows, :], Y.reshape(n, Y.shape[1] // b, b)[:, cols, :]
        out[:used] = np.einsum("tpi,tpj->pij", Xb, Yb)
    return out


# SciPy's C++ trusts its indices: sparsejl checks them first (checks_structure=False)
BACKEND = Backend("scipy", "cpu", checks_structure=False, value_dtypes=lambda: VALUE_DTYPES,
                  availability=availability, spmm=spmm, spgemm=spgemm,
                  linear=linear, linear_input_grad=linear_input_grad, sddmm=sddmm)
