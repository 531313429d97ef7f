"""A linear layer's products on the GPU, a first step: `linear` and `linear_input_grad` run the
backend's SpMM (tensor-core BSR kernels, cuSPARSE for CSR) on transposed copies of the
activations (Yᵀ = W·Xᵀ, dXᵀ = Wᵀ·dYᵀ, Wᵀ regrouped on the device per call, its blocks
transposed), and `sddmm` gathers the row panels each stored block pairs and multiplies them in
batches (cuBLAS), in float32. Nothing waits for the device. Each takes the SpMM to use.
"""

from __future__ import annotations

import numpy as np


def linear(spmm, W, X, bias, out):
    import cupy
    Yt = spmm(W, cupy.ascontiguousarray(X.T))
    if bias is not None:
        Yt += bias[:, None]
    out[...] = Yt.T
    return out


def linear_input_grad(spmm, W, dY, out):
    import cupy
    out[...] = spmm(transposed(W), cupy.ascontiguousarray(dY.T)).T
    return out


def _stored_rows(A):
    """The (block) row of each stored entry, and whether it lies before indptr's end."""
    import cupy
    nrows = len(A.indptr) - 1
    rows = cupy.searchsorted(A.indptr, cupy.arange(len(A.indices), dtype=A.indptr.dtype), side="right") - 1
    valid = rows < nrows
    return cupy.minimum(rows, max(nrows - 1, 0)), valid


def transposed(A):
    """Aᵀ as a view of A's format (BSR blocks transposed), entries past indptr's end dropped."""
    import cupy
    from ..formats import BSR, CSR
    b = A.blocksize
    m, k = A.shape
    rows, valid = _stored_rows(A)
    cols = cupy.where(valid, A.indices.astype(cupy.int64), k // b)   # dropped entries sort last
    order = cupy.lexsort(cupy.stack([rows.astype(cupy.int64), cols]))
    counts = cupy.bincount(cols, minlength=k // b + 1)[: k // b]
    indptr = cupy.zeros(k // b + 1, dtype=cupy.int64)
    indptr[1:] = cupy.cumsum(counts)
    indices = rows[order].astype(cupy.int64)
    if A.format == "csr":
        return CSR(A.data[order], indices, indptr, (k, m))
    return BSR(cupy.ascontiguousarray(A.data[order].transpose(0, 2, 1)), indices, indptr, (k, m), b)


def sddmm(P, X, Y, out):
    import cupy
    b, n = P.blocksize, X.shape[0]
    rows, valid = _stored_rows(P)
    cols = P.indices
    X32, Y32 = X.astype(np.float32, copy=False), Y.astype(np.float32, copy=False)
    if P.format == "csr":
        vals = (X32[:, rows] * Y32[:, cols]).sum(axis=0)
    else:
        Xb = X32.reshape(n, X.shape[1] // b, b)[:, rows, :]          # (n, nnzb, b)
        Yb = Y32.reshape(n, Y.shape[1] // b, b)[:, cols, :]
        vals = cupy.matmul(Xb.transpose(1, 2, 0), Yb.transpose(1, 0, 2))   # (nnzb, b, b)
    mask = valid.reshape((-1,) + (1,) * (vals.ndim - 1))
    out[...] = cupy.where(mask, vals, 0).astype(out.dtype)
    return out
