"""Seeded operands for a benchmark case: block-sparse weights, dense activations, references.

A pattern is drawn block by block: each ``blocksize × blocksize`` block of ``A`` is kept with
probability ``density`` (blocksize 1 is unstructured sparsity), and every kept block is filled
with random values bounded away from zero (``|a| ∈ [0.5, 1.5]``, random sign), so no stored
entry is ever zero and cancellation is rare. The same case and seed give the same matrices.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["sparse_operand", "dense_operand", "operands", "reference"]

# Dense references are faster through BLAS than through SciPy's single-threaded sparse product
# once a tenth of A or more is stored; below that the sparse product is cheaper.
_DENSE_REFERENCE_DENSITY = 0.1


def _nonzero_values(rng: np.random.Generator, size: int, dtype) -> np.ndarray:
    mag = rng.uniform(0.5, 1.5, size)
    sign = np.where(rng.random(size) < 0.5, -1.0, 1.0)
    return (mag * sign).astype(dtype)


def sparse_operand(m: int, k: int, density: float, blocksize: int, dtype, seed: int) -> sp.csr_matrix:
    """A random ``m × k`` CSR matrix whose stored blocks cover ``density`` of it.

    ``m`` and ``k`` must be multiples of ``blocksize``; column indices are sorted and unique.
    """
    b = int(blocksize)
    if b < 1 or m % b or k % b:
        raise ValueError(f"shape {m}x{k} is not a whole number of {b}x{b} blocks")
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    rng = np.random.default_rng(seed)
    mb, kb = m // b, k // b
    keep = rng.random((mb, kb), dtype=np.float32) < density
    if not keep.any():  # a tiny matrix at a low density: keep one block rather than none
        keep[rng.integers(mb), rng.integers(kb)] = True
    rows, cols = np.nonzero(keep)
    nnzb = rows.size
    indptr = np.zeros(mb + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=mb), out=indptr[1:])
    data = _nonzero_values(rng, nnzb * b * b, dtype).reshape(nnzb, b, b)
    idx_dtype = np.int32 if max(m, k, nnzb * b * b) < 2**31 else np.int64
    blocks = sp.bsr_matrix((data, cols.astype(idx_dtype), indptr.astype(idx_dtype)),
                           shape=(m, k), blocksize=(b, b))
    A = blocks.tocsr() if b > 1 else sp.csr_matrix((data.reshape(-1), cols.astype(idx_dtype),
                                                     indptr.astype(idx_dtype)), shape=(m, k))
    A.sort_indices()
    return A


def dense_operand(k: int, n: int, dtype, seed: int) -> np.ndarray:
    """A C-contiguous ``k × n`` activation matrix with random non-zero values."""
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(_nonzero_values(rng, k * n, dtype).reshape(k, n))


def operands(case):
    """``(A, B)`` for a :class:`~sparsejl.bench.sweep.Case`: A is SciPy CSR of ``case.dtype``.

    SpMM: B is dense ``k × n``. SpGEMM: B is CSR ``k × n`` with the same density and blocksize
    (``operand_b="random"``) or ``Aᵀ`` (``operand_b="transpose"``, the Gram product W·Wᵀ).
    """
    dtype = np.dtype(case.dtype)
    A = sparse_operand(case.m, case.k, case.density, case.blocksize, dtype, case.seed)
    if case.op == "spmm":
        return A, dense_operand(case.k, case.n, dtype, case.seed + 1)
    if case.op != "spgemm":
        raise ValueError(f"unknown op {case.op!r}")
    if case.operand_b == "transpose":
        if case.n != case.m:
            raise ValueError("W·Wᵀ needs n == m")
        B = A.T.tocsr()
        B.sort_indices()
        return A, B
    return A, sparse_operand(case.k, case.n, case.density, case.blocksize, dtype, case.seed + 1)


def reference(op: str, A, B, density: float):
    """``(C, bound)`` in float64: the exact product and ``|A|·|B|``, its rounding-error scale."""
    A64 = A.astype(np.float64)
    absA = abs(A64)
    if op == "spgemm":
        B64 = B.astype(np.float64)
        return (A64 @ B64).tocsr(), (absA @ abs(B64)).tocsr()
    B64 = np.asarray(B, dtype=np.float64)
    if density >= _DENSE_REFERENCE_DENSITY:
        Ad = A64.toarray()
        C = Ad @ B64
        np.abs(Ad, out=Ad)
        return C, Ad @ np.abs(B64)
    return np.asarray(A64 @ B64), np.asarray(absA @ np.abs(B64))
