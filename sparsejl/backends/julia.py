"""sparsejl's Julia kernels on the CPU: operands go to Julia as pointers, never as copies.

Each function turns validated views into the slots of one job (docs/abi.md) and lets the Julia
entry point check the sparse structure before its @inbounds loops run.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .. import runtime
from ..formats import VALUE_DTYPES  # noqa: F401 (the value types this backend takes)

NAME, DEVICE = "julia", "cpu"
VALIDATES_CONTENT = True  # every entry point checks indptr/indices itself, in Julia
WRITES_OUT = True
_JULIA_TYPES = {np.dtype(t): name for t, name in [(np.float16, "Float16"), (np.float32, "Float32"), (np.float64, "Float64"),
                                                   (np.int32, "Int32"), (np.int64, "Int64")]}
_INT32_MAX = np.iinfo(np.int32).max


def availability():
    return runtime.unavailable_reason()


def _key(kernel: str, *arrays) -> str:
    """The entry point's key (docs/abi.md), e.g. csr_spmm:Float32,Int32,Float32,Float32."""
    return f"{kernel}:{','.join(_JULIA_TYPES[a.dtype] for a in arrays)}"


_SPMM_KEYS = {}  # (format, dtypes of A.data, A.indices, B, out) -> entry point key


def spmm(A, B: np.ndarray, out: np.ndarray) -> np.ndarray:
    """A (m×k CSR/BSR) @ B (k×n, C-contiguous) into `out` (m×n, C-contiguous, the promoted dtype)."""
    m, k = A.shape
    if A.format == "csr":
        slots = (m, k, B.shape[1], len(A.indices))
    else:
        b = A.blocksize
        slots = (m // b, k // b, B.shape[1], b, len(A.indices))
    signature = (A.format, A.data.dtype, A.indices.dtype, B.dtype, out.dtype)
    key = _SPMM_KEYS.get(signature)
    if key is None:
        key = _SPMM_KEYS[signature] = _key(f"{A.format}_spmm", A.data, A.indices, B, out)
    runtime.get().call_arrays(key, slots, (A.indptr, A.indices, A.data, B, out))
    return out


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def _structure(A):
    return [len(A.indices), _ptr(A.indptr), _ptr(A.indices)]


def spgemm(A, B):
    """A @ B for two CSR or two BSR of one blocksize, as a canonical SciPy sparse array."""
    rt = runtime.get()
    b = A.blocksize
    m, kk, n = A.shape[0] // b, A.shape[1] // b, B.shape[1] // b
    indptr = np.empty(m + 1, dtype=np.int64)
    # CSR may be computed in one pass into arrays with room for every multiply-add (Julia says
    # how many, or -1 after counting C's rows into indptr), then shrunk to C's size.
    room = np.full(1, -1, dtype=np.int64)
    rt.call(_key("csr_spgemm_symbolic", A.indices, B.indices),
            [m, kk, n, *_structure(A), *_structure(B), _ptr(indptr),
             _ptr(room) if A.format == "csr" else 0],
            (A.indptr, A.indices, B.indptr, B.indices, indptr, room))
    room = int(room[0])
    size = room if room >= 0 else int(indptr[-1])
    index_dtype = np.int32 if max(size, n) <= _INT32_MAX else np.int64  # SciPy's choice
    dtype = np.result_type(A.dtype, B.dtype)
    indices = np.empty(size, dtype=index_dtype)
    data = np.empty((size, b, b) if A.format == "bsr" else size, dtype=dtype)
    arrays = (A.indptr, A.indices, A.data, B.indptr, B.indices, B.data, indptr, indices, data)
    head = [m, kk, n] if A.format == "csr" else [m, kk, n, b]
    tail = [room] if A.format == "csr" else []
    rt.call(_key(f"{A.format}_spgemm_numeric", A.data, A.indices, B.data, B.indices, indices, data),
            head + [len(A.indices), *map(_ptr, arrays[:3]), len(B.indices), *map(_ptr, arrays[3:])]
            + tail, arrays)
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
