"""GPU products run by Julia: SparseJL.GPU calls cuSPARSE on the device buffers CuPy owns.

Zero-copy: Python passes device pointers, the current device and CuPy's current stream; Julia
makes the device's primary context current on its thread, points its cuSPARSE handle at that
stream and enqueues the work. Outputs are allocated by CuPy here; Julia allocates only
cuSPARSE's workspaces (stream-ordered, cuMemAllocAsync). The entry points are the `cuda_*` keys
of docs/abi.md.

* CSR SpMM: cusparseSpMM, CSR, row-major B and C (algorithm `alg`, default 0).
* BSR SpMM, float16/bfloat16: cusparseSpMM on a Blocked-ELL copy of A (CUSPARSE_SPMM_BLOCKED_ELL_ALG1,
  tensor cores), built once by `to_blocked_ell` and cached; it ran 8-13x faster than cuSPARSE's BSR
  SpMM (CUSPARSE_SPMM_BSR_ALG1) on an H200. float32/float64: BSR_ALG1 on A's own arrays.
* CSR SpGEMM: cusparseSpGEMM in two jobs (compute, then copy into arrays CuPy allocates).
"""

from __future__ import annotations

import collections
import ctypes
import threading

import numpy as np

from . import _cuda
from .. import runtime

NAME, DEVICE = "julia-cuda", "gpu"
VALIDATES_CONTENT = False  # indices live on the device; the caller's check_format(full=True) checks them

CUSPARSE_SPMM_ALG_DEFAULT = 0
CUSPARSE_SPMM_BLOCKED_ELL_ALG1 = 13
CUSPARSE_SPMM_BSR_ALG1 = 14

_init_lock = threading.Lock()
_initialised: dict = {}  # device ordinal -> (cuSPARSE version, driver version)


def __getattr__(name):
    if name == "VALUE_DTYPES":
        return _cuda.value_dtypes()
    raise AttributeError(name)


def availability():
    return _cuda.gpu_reason() or runtime.unavailable_reason()


def _ptr(a) -> int:
    return int(a.data.ptr)


def _ready() -> tuple[runtime.Runtime, int]:
    """The runtime, with SparseJL.GPU bound to CuPy's cuSPARSE and the current device; the device."""
    rt = runtime.get()
    dev = _cuda.current_device()
    if dev not in _initialised:
        with _init_lock:
            if dev not in _initialised:
                path = _cuda.libcusparse_path().encode()
                out = np.zeros(2, dtype=np.int64)
                rt.call("cuda_init", [ctypes.cast(path, ctypes.c_void_p).value, len(path), dev, out.ctypes.data],
                        (path, out))
                _initialised[dev] = (int(out[0]), int(out[1]))
    return rt, dev


def versions() -> dict:
    """cuSPARSE and driver versions as Julia sees them on the current device."""
    _, dev = _ready()
    cusparse, driver = _initialised[dev]
    return {"cusparse": cusparse, "cuda_driver": driver}


def _retyped(A, B):
    from .cupy_backend import _retyped
    return _retyped(A, B)


def spmm(A, B, *, alg: int | None = None, blocked_ell=None):
    """A @ B. BSR runs through cuSPARSE's Blocked-ELL SpMM (tensor cores for 16-bit values) on a
    Blocked-ELL copy of A made once and cached (`blocked_ell` passes one explicitly), unless
    `alg` names another cuSPARSE algorithm (e.g. CUSPARSE_SPMM_BSR_ALG1 on A's BSR arrays)."""
    import cupy
    A, B, out = _retyped(A, B)
    rt, dev = _ready()
    m, k = A.shape
    n = B.shape[1]
    C = cupy.empty((m, n), dtype=out)
    if m == 0 or n == 0:
        return C
    stream = _cuda.current_stream_ptr()
    (indptr, indices), idx = _cuda.common_index(A.indptr, A.indices)
    if len(indices) == 0:  # nothing stored; cuSPARSE writes empty rows itself otherwise (beta = 0)
        C.fill(0)
        return C
    if A.format == "bsr" and blocked_ell is None and alg is None and _cuda.dtype_name(A.data.dtype) in _BELL_DTYPES:
        blocked_ell = _blocked_ell(A)
    if A.format == "bsr" and blocked_ell is not None:
        colind, values, ellcols = blocked_ell
        key = f"cuda_bell_spmm:{_cuda.julia_type(values.dtype)},{_cuda.julia_type(colind.dtype)}," \
              f"{_cuda.julia_type(B.dtype)},{_cuda.julia_type(out)}"
        rt.call(key, [dev, stream, m, k, n, A.blocksize, ellcols, _ptr(colind), _ptr(values), _ptr(B), _ptr(C)],
                (colind, values, B, C))
        return C
    types = f"{_cuda.julia_type(A.data.dtype)},{_cuda.julia_type(idx)},{_cuda.julia_type(B.dtype)},{_cuda.julia_type(out)}"
    if A.format == "csr":
        slots = [dev, stream, m, k, n, len(indices), _ptr(indptr), _ptr(indices), _ptr(A.data), _ptr(B), _ptr(C),
                 CUSPARSE_SPMM_ALG_DEFAULT if alg is None else alg]
        rt.call("cuda_csr_spmm:" + types, slots, (indptr, indices, A.data, B, C))
    else:
        b = A.blocksize
        slots = [dev, stream, m // b, k // b, n, b, len(indices), _ptr(indptr), _ptr(indices), _ptr(A.data),
                 _ptr(B), _ptr(C), CUSPARSE_SPMM_BSR_ALG1 if alg is None else alg]
        rt.call("cuda_bsr_spmm:" + types, slots, (indptr, indices, A.data, B, C))
    return C


# Blocked-ELL copies of BSR matrices, by the identity of A's buffers. The entry holds A's arrays,
# so the addresses in the key cannot be reused while it lives; values changed in place are not
# seen: call clear_cache() after modifying a matrix that was multiplied before.
_BELL_CACHE_SIZE = 8
_bell_cache: "collections.OrderedDict" = collections.OrderedDict()
#: value dtypes that go through Blocked-ELL: its float32 path rounds A and B to TF32 (measured
#: error 3e-4), so float32/float64 use BSR_ALG1, which keeps float32 arithmetic
_BELL_DTYPES = ("float16", "bfloat16")
#: Blocked-ELL pads every block row to the longest; above this much padding BSR_ALG1 is used instead
MAX_BELL_PADDING = 4.0


def clear_cache() -> None:
    _bell_cache.clear()


def _blocked_ell(A):
    key = (_ptr(A.data), _ptr(A.indices), _ptr(A.indptr), A.shape, A.blocksize, A.data.dtype.str)
    hit = _bell_cache.get(key)
    if hit is not None:
        _bell_cache.move_to_end(key)
        return hit[1]
    nnzb = len(A.indices)
    mb = len(A.indptr) - 1
    bell = to_blocked_ell(A)
    if nnzb and bell[2] * mb > MAX_BELL_PADDING * nnzb:
        bell = None  # too skewed: BSR_ALG1 on A itself
    _bell_cache[key] = ((A.data, A.indices, A.indptr), bell)
    while len(_bell_cache) > _BELL_CACHE_SIZE:
        _bell_cache.popitem(last=False)
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


def spgemm(A, B):
    """CSR @ CSR through cuSPARSE SpGEMM (32-bit indices as cuSPARSE needs); BSR through CSR."""
    import cupy
    import cupyx.scipy.sparse as csp
    from ..formats import BSR, CSR
    from .cupy_backend import bsr_to_csr, csr_to_bsr

    if A.format == "bsr":
        C = spgemm(bsr_to_csr(A), bsr_to_csr(B))
        return csr_to_bsr(C, A.blocksize, BSR)
    out = _cuda.result_dtype(A.data.dtype, B.data.dtype)
    work = out if out in (np.float32, np.float64) else np.dtype(np.float32)  # cuSPARSE SpGEMM: no 16-bit
    rt, dev = _ready()
    stream = _cuda.current_stream_ptr()
    m, k = A.shape
    n = B.shape[1]
    (ia, ja, ib, jb), idx = _cuda.common_index(A.indptr, A.indices, B.indptr, B.indices)
    da, db = _cuda.same_dtype(A.data, work), _cuda.same_dtype(B.data, work)
    key = f"cuda_csr_spgemm_compute:{_cuda.julia_type(work)},{_cuda.julia_type(idx)}"
    res = np.zeros(2, dtype=np.int64)
    rt.call(key, [dev, stream, m, k, n, len(ja), _ptr(ia), _ptr(ja), _ptr(da), len(jb), _ptr(ib), _ptr(jb),
                  _ptr(db), res.ctypes.data], (ia, ja, da, ib, jb, db, res))
    state, nnz = int(res[0]), int(res[1])
    try:
        indptr = cupy.empty(m + 1, dtype=idx)
        indices = cupy.empty(nnz, dtype=idx)
        data = cupy.empty(nnz, dtype=work)
    except BaseException:
        rt.call("cuda_csr_spgemm_release", [dev, stream, state])
        raise
    rt.call("cuda_csr_spgemm_copy", [dev, stream, state, _ptr(indptr), _ptr(indices), _ptr(data)],
            (ia, ja, da, ib, jb, db, indptr, indices, data))
    if work == out and idx == np.int32:
        # cuSPARSE writes each row's columns sorted and merged: canonical already
        return csp.csr_matrix((data, indices, indptr), shape=(m, n))
    return CSR(data.astype(out, copy=False), indices, indptr, (m, n))
