"""sparsejl's Julia kernels on the CPU: operands go to Julia as pointers, never as copies.

Each function turns validated views into the slots of one job (docs/abi.md) and lets the Julia
entry point check the sparse structure before its @inbounds loops run.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .. import abi, runtime
from ..formats import VALUE_DTYPES
from .protocol import Backend

_INT32_MAX = np.iinfo(np.int32).max


def availability():
    return runtime.unavailable_reason()


_SPMM = {}  # (format, dtypes of A.data, A.indices, B, out) -> (entry point key, its pack_arrays)


def spmm(A, B: np.ndarray, out: np.ndarray) -> np.ndarray:
    """A (m×k CSR/BSR) @ B (k×n, C-contiguous) into `out` (m×n, C-contiguous, the promoted dtype)."""
    signature = (A.format, A.data.dtype, A.indices.dtype, B.dtype, out.dtype)
    found = _SPMM.get(signature)
    if found is None:
        entry = abi.entry(f"{A.format}_spmm")
        found = _SPMM[signature] = (entry.key(*signature[1:]), entry.pack_arrays)
    key, pack = found
    m, k = A.shape
    if A.format == "csr":
        slots = pack(m=m, k=k, n=B.shape[1], nnz=len(A.indices),
                     indptr=A.indptr, indices=A.indices, data=A.data, B=B, C=out)
    else:
        b = A.blocksize
        slots = pack(mb=m // b, kb=k // b, n=B.shape[1], b=b, nnzb=len(A.indices),
                     indptr=A.indptr, indices=A.indices, data=A.data, B=B, C=out)
    runtime.get().call_arrays(key, *slots)
    return out


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def _weight_slots(W, data) -> dict:
    """The slots that name a linear layer's weight (or an SDDMM's pattern) with `data` as its values."""
    m, k = W.shape
    if W.format == "csr":
        return dict(m=m, k=k, nnz=len(W.indices), indptr=_ptr(W.indptr), indices=_ptr(W.indices))
    b = W.blocksize
    return dict(mb=m // b, kb=k // b, b=b, nnzb=len(W.indices), indptr=_ptr(W.indptr), indices=_ptr(W.indices))


def linear(W, X, bias, out):
    """out (n×m) = X (n×k) @ W.T + bias (None or m values); all C-contiguous, one dtype.

    One token (decoding) is W times a column: X's row is that column and out's row the result,
    so the matrix × vector kernels of spmm serve it, which are made for it."""
    if X.shape[0] == 1:
        spmm(W, X.reshape(-1, 1), out.reshape(-1, 1))
        if bias is not None:
            out += bias
        return out
    entry = abi.entry(f"{W.format}_linear")
    runtime.get().call(entry.key(W.data.dtype, W.indices.dtype),
                       entry.pack(n=X.shape[0], data=_ptr(W.data), X=_ptr(X), Y=_ptr(out),
                                  bias=0 if bias is None else _ptr(bias), **_weight_slots(W, W.data)),
                       (W.data, W.indices, W.indptr, X, out, bias))
    return out


def linear_input_grad(W, dY, out):
    """out (n×k) = dY (n×m) @ W."""
    entry = abi.entry(f"{W.format}_linear_input_grad")
    runtime.get().call(entry.key(W.data.dtype, W.indices.dtype),
                       entry.pack(n=dY.shape[0], data=_ptr(W.data), dY=_ptr(dY), dX=_ptr(out),
                                  **_weight_slots(W, W.data)),
                       (W.data, W.indices, W.indptr, dY, out))
    return out


def sddmm(P, X, Y, out):
    """out (shaped as P.data) = the entries of X.T @ Y (X n×m, Y n×k) at P's stored positions."""
    entry = abi.entry(f"{P.format}_sddmm")
    runtime.get().call(entry.key(out.dtype, P.indices.dtype),
                       entry.pack(n=X.shape[0], X=_ptr(X), Y=_ptr(Y), out=_ptr(out), **_weight_slots(P, out)),
                       (P.indices, P.indptr, X, Y, out))
    return out


def spgemm(A, B):
    """A @ B for two CSR or two BSR of one blocksize, as a canonical SciPy sparse array."""
    rt = runtime.get()
    b = A.blocksize
    m, kk, n = A.shape[0] // b, A.shape[1] // b, B.shape[1] // b
    indptr = np.empty(m + 1, dtype=np.int64)
    # CSR may be computed in one pass into arrays with room for every multiply-add (Julia says
    # how many, or -1 after counting C's rows into indptr), then shrunk to C's size.
    room = np.full(1, -1, dtype=np.int64)
    symbolic = abi.entry("csr_spgemm_symbolic")
    rt.call(symbolic.key(A.indices.dtype, B.indices.dtype),
            symbolic.pack(m=m, k=kk, n=n, nnzA=len(A.indices), indptrA=_ptr(A.indptr), indicesA=_ptr(A.indices),
                          nnzB=len(B.indices), indptrB=_ptr(B.indptr), indicesB=_ptr(B.indices),
                          indptrC=_ptr(indptr), room=_ptr(room) if A.format == "csr" else 0),
            (A.indptr, A.indices, B.indptr, B.indices, indptr, room))
    room = int(room[0])
    size = room if room >= 0 else int(indptr[-1])
    index_dtype = np.int32 if max(size, n) <= _INT32_MAX else np.int64  # SciPy's choice
    dtype = np.result_type(A.dtype, B.dtype)
    indices = np.empty(size, dtype=index_dtype)
    data = np.empty((size, b, b) if A.format == "bsr" else size, dtype=dtype)
    numeric = abi.entry(f"{A.format}_spgemm_numeric")
    operands = dict(indptrA=_ptr(A.indptr), indicesA=_ptr(A.indices), dataA=_ptr(A.data),
                    indptrB=_ptr(B.indptr), indicesB=_ptr(B.indices), dataB=_ptr(B.data),
                    indptrC=_ptr(indptr), indicesC=_ptr(indices), dataC=_ptr(data))
    if A.format == "csr":
        slots = numeric.pack(m=m, k=kk, n=n, nnzA=len(A.indices), nnzB=len(B.indices), room=room, **operands)
    else:
        slots = numeric.pack(mb=m, kb=kk, nb=n, b=b, nnzbA=len(A.indices), nnzbB=len(B.indices), **operands)
    rt.call(numeric.key(A.data.dtype, A.indices.dtype, B.data.dtype, B.indices.dtype, indices.dtype, data.dtype),
            slots, (A, B, indptr, indices, data))
    if room >= 0:  # shrink in place (realloc) to C's entries
        indices.resize(int(indptr[-1]), refcheck=False)
        data.resize(int(indptr[-1]), refcheck=False)
    indptr = indptr.astype(index_dtype, copy=False)
    shape = (A.shape[0], B.shape[1])
    if A.format == "bsr":
        out = sp.bsr_array((data, indices, indptr), shape=shape, blocksize=(b, b), copy=False)
    else:
        out = sp.csr_array((data, indices, indptr), shape=shape, copy=False)
    out.has_sorted_indices = True
    out.has_canonical_format = True
    return out


# every entry point checks indptr/indices itself, in Julia, before its @inbounds loops
BACKEND = Backend("julia", "cpu", checks_structure=True, value_dtypes=lambda: VALUE_DTYPES,
                  availability=availability, spmm=spmm, spgemm=spgemm,
                  linear=linear, linear_input_grad=linear_input_grad, sddmm=sddmm)
