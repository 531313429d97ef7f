"""Make realistic sparse weights: magnitude pruning, block magnitude pruning, seeded random patterns.

All functions take a target *density* (fraction of weights kept, 0..1) and keep exactly
``round(density * total)`` entries (or blocks), so two patterns at the same density have the same
number of stored values and their benchmark times are comparable.

* :func:`magnitude` — unstructured: keep the entries of largest ``|w|`` → CSR.
* :func:`block_magnitude` — keep the ``b×b`` blocks of largest Frobenius norm → BSR.
* :func:`random_pattern` — seeded random sparse matrix (unstructured CSR or block BSR) for
  benchmarks where no weights are at hand.
* :func:`dense_weights` — a seeded dense weight matrix with the scale of a trained/initialised
  layer (``N(0, 1/in_features)``), to prune when no checkpoint is at hand.

Results are SciPy sparse matrices (``csr_matrix`` / ``bsr_matrix``), the formats
``sparsejl.spmm`` / ``sparsejl.spgemm`` take. Kept entries are stored even where their value is 0,
so ``A.nnz`` is the kept count.
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
import scipy.sparse as sp

__all__ = ["magnitude", "block_magnitude", "random_pattern", "dense_weights", "prune",
           "magnitude_mask", "block_magnitude_mask", "kept_count", "density_of"]


def _check_density(density: float) -> float:
    d = float(density)
    if not (0.0 <= d <= 1.0) or d != d:
        raise ValueError(f"density must be in [0, 1], got {density!r}")
    return d


def kept_count(total: int, density: float) -> int:
    """Number of entries (or blocks) kept out of ``total`` at ``density``: ``round(density*total)``."""
    d = _check_density(density)
    return int(min(total, max(0, int(np.floor(d * total + 0.5)))))


def density_of(A) -> float:
    """Stored fraction of a sparse matrix: ``nnz / (rows * cols)`` (BSR counts whole blocks)."""
    m, k = A.shape
    return float(A.nnz) / float(m * k) if m * k else 0.0


def _as_2d(W) -> np.ndarray:
    W = np.asarray(W)
    if W.ndim != 2:
        raise ValueError(f"expected a 2-D weight matrix, got shape {W.shape}")
    if not np.issubdtype(W.dtype, np.number) or np.iscomplexobj(W):
        raise ValueError(f"expected a real numeric matrix, got dtype {W.dtype}")
    return W


def _top(scores: np.ndarray, count: int) -> np.ndarray:
    """Flat indices of the ``count`` largest scores, sorted ascending (row-major order).

    Ties are broken towards the lower flat index, so the result is deterministic."""
    n = scores.size
    if not np.all(np.isfinite(scores)):
        raise ValueError("weights contain NaN or infinity")
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    if count >= n:
        return np.arange(n, dtype=np.int64)
    flat = scores.ravel()
    # O(n): the count-th largest score is the threshold; everything above it is kept, and the
    # remaining places go to the lowest-index entries equal to it.
    thr = np.partition(flat, n - count)[n - count]
    above = np.flatnonzero(flat > thr)
    need = count - above.size
    ties = np.flatnonzero(flat == thr)[:need]
    return np.sort(np.concatenate([above, ties])).astype(np.int64)


def magnitude_mask(W, density: float) -> np.ndarray:
    """Boolean mask (same shape as ``W``) of the ``round(density*W.size)`` largest ``|w|``."""
    W = _as_2d(W)
    keep = _top(np.abs(W.astype(np.float64, copy=False)), kept_count(W.size, density))
    mask = np.zeros(W.size, dtype=bool)
    mask[keep] = True
    return mask.reshape(W.shape)


def magnitude(W, density: float, *, dtype=None) -> sp.csr_matrix:
    """Unstructured magnitude pruning: keep the largest-|w| entries of ``W`` as a CSR matrix."""
    W = _as_2d(W)
    dtype = np.dtype(dtype or W.dtype)
    keep = _top(np.abs(W.astype(np.float64, copy=False)), kept_count(W.size, density))
    rows, cols = np.divmod(keep, W.shape[1])
    data = W.ravel()[keep].astype(dtype)
    indptr = np.zeros(W.shape[0] + 1, dtype=np.int64)
    np.add.at(indptr, rows + 1, 1)
    np.cumsum(indptr, out=indptr)
    idx_t = np.int32 if max(W.shape[1], keep.size) < 2**31 else np.int64
    return sp.csr_matrix((data, cols.astype(idx_t), indptr.astype(idx_t)), shape=W.shape)


def _block_view(W: np.ndarray, b: int) -> np.ndarray:
    m, k = W.shape
    if b < 1:
        raise ValueError(f"blocksize must be >= 1, got {b}")
    if m % b or k % b:
        raise ValueError(f"shape {W.shape} is not divisible by blocksize {b}")
    # (mb, b, kb, b) -> (mb, kb, b, b)
    return W.reshape(m // b, b, k // b, b).swapaxes(1, 2)


def block_magnitude_mask(W, density: float, blocksize: int) -> np.ndarray:
    """Boolean block mask ``(m/b, k/b)``: the ``round(density*nblocks)`` blocks of largest norm."""
    W = _as_2d(W)
    blocks = _block_view(W, int(blocksize))
    norms = np.sqrt(np.square(blocks.astype(np.float64)).sum(axis=(2, 3)))
    keep = _top(norms, kept_count(norms.size, density))
    mask = np.zeros(norms.size, dtype=bool)
    mask[keep] = True
    return mask.reshape(norms.shape)


def _bsr_from_blocks(blocks: np.ndarray, keep: np.ndarray, shape, b: int, dtype) -> sp.bsr_matrix:
    mb, kb = blocks.shape[:2]
    brow, bcol = np.divmod(keep, kb)
    data = blocks.reshape(mb * kb, b, b)[keep].astype(dtype)
    indptr = np.zeros(mb + 1, dtype=np.int64)
    np.add.at(indptr, brow + 1, 1)
    np.cumsum(indptr, out=indptr)
    idx_t = np.int32 if max(kb, keep.size) < 2**31 else np.int64
    return sp.bsr_matrix((data, bcol.astype(idx_t), indptr.astype(idx_t)), shape=shape,
                         blocksize=(b, b))


def block_magnitude(W, density: float, blocksize: int, *, dtype=None) -> sp.bsr_matrix:
    """Block magnitude pruning: keep the ``b×b`` blocks of largest Frobenius norm, as BSR.

    ``density`` is the fraction of *blocks* kept (= fraction of stored values)."""
    W = _as_2d(W)
    b = int(blocksize)
    dtype = np.dtype(dtype or W.dtype)
    blocks = _block_view(W, b)
    norms = np.sqrt(np.square(blocks.astype(np.float64)).sum(axis=(2, 3)))
    keep = _top(norms, kept_count(norms.size, density))
    return _bsr_from_blocks(blocks, keep, W.shape, b, dtype)


def prune(W, density: float, blocksize: Optional[int] = None, *, dtype=None):
    """``magnitude`` when ``blocksize`` is None or 1, else ``block_magnitude``."""
    if blocksize is None or int(blocksize) == 1:
        return magnitude(W, density, dtype=dtype)
    return block_magnitude(W, density, int(blocksize), dtype=dtype)


def dense_weights(m: int, k: int, *, seed: int = 0, dtype=np.float32) -> np.ndarray:
    """Seeded dense weights ``(m, k)`` drawn from ``N(0, 1/k)`` (the scale of an initialised layer)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((int(m), int(k))) / np.sqrt(max(int(k), 1))).astype(dtype)


def _choose(rng: np.random.Generator, total: int, count: int) -> np.ndarray:
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    if count >= total:
        return np.arange(total, dtype=np.int64)
    if count * 4 > total:
        keep = rng.permutation(total)[:count]
    else:
        keep = rng.choice(total, size=count, replace=False)
    return np.sort(keep).astype(np.int64)


def random_pattern(m: int, k: int, density: float, *, blocksize: Optional[int] = None,
                   seed: int = 0, dtype=np.float32) -> Union[sp.csr_matrix, sp.bsr_matrix]:
    """Seeded random sparse ``(m, k)`` matrix with exactly ``round(density*total)`` stored
    entries (unstructured, CSR) or blocks (``blocksize`` > 1, BSR), values ``N(0, 1/k)``.

    The same ``(m, k, density, blocksize, seed, dtype)`` always gives the same matrix."""
    m, k = int(m), int(k)
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    scale = 1.0 / np.sqrt(max(k, 1))
    if blocksize is None or int(blocksize) == 1:
        keep = _choose(rng, m * k, kept_count(m * k, density))
        rows, cols = np.divmod(keep, k)
        data = (rng.standard_normal(keep.size) * scale).astype(dtype)
        indptr = np.zeros(m + 1, dtype=np.int64)
        np.add.at(indptr, rows + 1, 1)
        np.cumsum(indptr, out=indptr)
        idx_t = np.int32 if max(k, keep.size) < 2**31 else np.int64
        return sp.csr_matrix((data, cols.astype(idx_t), indptr.astype(idx_t)), shape=(m, k))
    b = int(blocksize)
    if b < 1 or m % b or k % b:
        raise ValueError(f"shape {(m, k)} is not divisible by blocksize {b}")
    mb, kb = m // b, k // b
    keep = _choose(rng, mb * kb, kept_count(mb * kb, density))
    brow, bcol = np.divmod(keep, kb)
    data = (rng.standard_normal((keep.size, b, b)) * scale).astype(dtype)
    indptr = np.zeros(mb + 1, dtype=np.int64)
    np.add.at(indptr, brow + 1, 1)
    np.cumsum(indptr, out=indptr)
    idx_t = np.int32 if max(kb, keep.size) < 2**31 else np.int64
    return sp.bsr_matrix((data, bcol.astype(idx_t), indptr.astype(idx_t)), shape=(m, k),
                         blocksize=(b, b))
