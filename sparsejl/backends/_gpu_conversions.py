"""Conversions the GPU backends share, all on the device: common value types, BSR <-> CSR,
dense, and cuSPARSE's Blocked-ELL layout. Each takes and returns CuPy-held views or arrays.

`todense`, `bsr_to_csr`, `csr_to_bsr` and `to_blocked_ell` read sizes back from the device (they
wait for it): they serve the dense baseline, SpGEMM and the Blocked-ELL diagnostics, never the
SpMM path of a product.
"""

from __future__ import annotations

import numpy as np

from . import _cuda


def retyped(A, B):
    """A's values and B in their common dtype (copies only what differs) and that dtype."""
    if A.data.dtype == B.dtype:         # the common case, without NumPy's promotion (~2 µs a call)
        return A, B, B.dtype
    out = _cuda.result_dtype(A.data.dtype, B.dtype)
    if np.dtype(A.data.dtype) != out:
        A = with_data(A, A.data.astype(out))
    return A, _cuda.same_dtype(B, out), out


def with_data(A, data):
    """A with other values, keeping A's structure verdict (formats.checked_once)."""
    if A.format == "bsr":
        out = type(A)(data, A.indices, A.indptr, A.shape, A.blocksize)
    else:
        out = type(A)(data, A.indices, A.indptr, A.shape)
    out.verdict = A.verdict
    return out


def derived(A, key, make):
    """`make()`, kept in A's structure verdict (formats.StructureVerdict) where A has one: made once
    per checked structure, never by buffer address, and alive as long as the verdict, so that a
    CUDA graph that captured a product keeps valid pointers."""
    verdict = getattr(A, "verdict", None)
    if verdict is None:
        return make()
    found = verdict.cache.get(key)
    if found is None:
        found = verdict.cache[key] = make()
    return found


def structure_in_one_index_type(A):
    """(indptr, indices) of one integer type, as the kernels take them (int64 if either is)."""
    if A.indptr.dtype == A.indices.dtype:
        return A.indptr, A.indices
    return derived(A, "one index type", lambda: tuple(_cuda.common_index(A.indptr, A.indices)[0]))


def todense(A):
    """A CSR/BSR view with CuPy arrays as a dense CuPy array of A's dtype, on the device."""
    import cupy
    m, k = A.shape
    out = cupy.zeros((m, k), dtype=A.data.dtype)
    nstored = int(A.indptr[-1]) if len(A.indptr) else 0
    if nstored == 0:
        return out
    rows = cupy.repeat(cupy.arange(len(A.indptr) - 1, dtype=np.int64), cupy.diff(A.indptr).astype(np.int64))
    cols = A.indices[:nstored].astype(np.int64)
    if A.format == "csr":
        if _has_duplicates(rows, cols, k):  # duplicates add up, as SciPy's toarray does
            cupy.add.at(out, (rows, cols), A.data[:nstored])
        else:
            out[rows, cols] = A.data[:nstored]
        return out
    b = A.blocksize
    view = out.reshape(m // b, b, k // b, b)
    blocks = A.data[:nstored]
    if _has_duplicates(rows, cols, k // b):
        for i in range(nstored):  # rare: duplicate blocks; keep SciPy's sum semantics
            view[int(rows[i]), :, int(cols[i]), :] += blocks[i]
    else:
        view[rows, :, cols, :] = blocks
    return out


def _has_duplicates(rows, cols, ncols) -> bool:
    import cupy
    key = rows * ncols + cols
    return bool(cupy.unique(key).size != key.size)


def bsr_to_csr(A):
    """A BSR view of CuPy arrays as a CSR view of CuPy arrays (sorted within rows if A's blocks are)."""
    import cupy
    from ..formats import CSR
    b = A.blocksize
    mb = len(A.indptr) - 1
    nnzb = int(A.indptr[-1])
    indptr = A.indptr.astype(np.int64)
    counts = cupy.diff(indptr)                          # blocks per block row
    # row r = i*b + s of the CSR holds counts[i]*b entries: block p's row s, for p in its block row
    row_len = cupy.repeat(counts * b, b)
    new_indptr = cupy.zeros(mb * b + 1, dtype=np.int64)
    new_indptr[1:] = cupy.cumsum(row_len)
    blk = cupy.arange(nnzb, dtype=np.int64)
    brow = cupy.repeat(cupy.arange(mb, dtype=np.int64), counts)
    pos = blk - indptr[brow]                            # position of block p within its block row
    s = cupy.arange(b, dtype=np.int64)
    t = cupy.arange(b, dtype=np.int64)
    # destination of element (p, s, t): row start of (brow*b+s) + pos*b + t
    dest = (new_indptr[brow[:, None, None] * b + s[None, :, None]] + pos[:, None, None] * b + t[None, None, :])
    cols = cupy.broadcast_to(A.indices[:nnzb].astype(np.int64)[:, None, None] * b + t[None, None, :], (nnzb, b, b))
    data = cupy.empty(nnzb * b * b, dtype=A.data.dtype)
    indices = cupy.empty(nnzb * b * b, dtype=np.int64)
    data[dest.ravel()] = A.data[:nnzb].reshape(-1)
    indices[dest.ravel()] = cols.ravel()
    idx = np.int32 if A.shape[1] < 2**31 and nnzb * b * b < 2**31 else np.int64
    return CSR(data, indices.astype(idx), new_indptr.astype(idx), A.shape)


def csr_to_bsr(C, b):
    """A CSR product (canonical) regrouped into b×b blocks: every block holding a structural entry."""
    import cupy
    from ..formats import BSR
    m, n = C.shape
    mb, nb = m // b, n // b
    nnz = int(C.indptr[-1])
    rows = cupy.repeat(cupy.arange(m, dtype=np.int64), cupy.diff(C.indptr.astype(np.int64)))
    cols = C.indices[:nnz].astype(np.int64)
    key = (rows // b) * nb + cols // b
    blocks, inverse = cupy.unique(key, return_inverse=True)
    data = cupy.zeros((blocks.size, b, b), dtype=C.data.dtype)
    data[inverse.ravel(), rows % b, cols % b] = C.data[:nnz]
    brow = blocks // nb
    indptr = cupy.zeros(mb + 1, dtype=np.int64)
    indptr[1:] = cupy.cumsum(cupy.bincount(brow, minlength=mb))
    idx = np.int32 if max(mb, nb, blocks.size) < 2**31 else np.int64
    return BSR(data, (blocks % nb).astype(idx), indptr.astype(idx), (m, n), b)


#: value dtypes that go through Blocked-ELL: its float32 path rounds A and B to TF32 (measured
#: error 3e-4), so float32/float64 use BSR_ALG1, which keeps float32 arithmetic
BELL_DTYPES = ("float16", "bfloat16")
#: Blocked-ELL pads every block row to the longest; above this much padding BSR_ALG1 is used instead
MAX_BELL_PADDING = 4.0


def blocked_ell(A):
    """A's Blocked-ELL copy (colind, values, width), or None where padding would cost too much.

    Made anew on every call: a copy cached by buffer address would silently miss values changed
    in place. Callers that multiply one matrix many times convert it once with `to_blocked_ell`
    and pass the copy (`blocked_ell=` of the GPU backends' spmm).
    """
    nnzb = len(A.indices)
    mb = len(A.indptr) - 1
    bell = to_blocked_ell(A)
    if nnzb and bell[2] * mb > MAX_BELL_PADDING * nnzb:
        return None  # too skewed: BSR_ALG1 on A itself
    return bell


def to_blocked_ell(A, index_dtype=np.int32):
    """BSR -> cuSPARSE Blocked-ELL arrays (colind (mb, w) padded with -1, values (mb*b, w*b)), w = max blocks per row."""
    import cupy
    b = A.blocksize
    mb = len(A.indptr) - 1
    indptr = A.indptr.astype(np.int64)
    counts = cupy.diff(indptr)
    w = max(int(counts.max()) if mb else 0, 1)
    nnzb = int(indptr[-1])
    brow = cupy.repeat(cupy.arange(mb, dtype=np.int64), counts)
    pos = cupy.arange(nnzb, dtype=np.int64) - indptr[brow]
    colind = cupy.full((mb, w), -1, dtype=index_dtype)
    colind[brow, pos] = A.indices[:nnzb].astype(index_dtype)
    values = cupy.zeros((mb, b, w, b), dtype=A.data.dtype)
    values[brow, :, pos, :] = A.data[:nnzb]
    return colind, values.reshape(mb * b, w * b), w
