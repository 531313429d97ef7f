"""GPU products run by Julia: SparseJL.GPU calls cuSPARSE on the device buffers CuPy owns.

Zero-copy: Python passes device pointers, the current device and CuPy's current stream; Julia
makes the device's primary context current on its thread, points its cuSPARSE handle at that
stream and enqueues the work. Outputs are allocated by CuPy here; Julia allocates only
cuSPARSE's workspaces (stream-ordered, cuMemAllocAsync). The entry points are the `cuda_*` keys
of docs/abi.md.

* CSR SpMM: cusparseSpMM, CSR, row-major B and C (algorithm `alg`, default 0).
* BSR SpMM, float16/bfloat16: cusparseSpMM on a Blocked-ELL copy of A (CUSPARSE_SPMM_BLOCKED_ELL_ALG1,
  tensor cores), built by `to_blocked_ell` (per call, or once by the caller); it ran 8-13x faster than cuSPARSE's BSR
  SpMM (CUSPARSE_SPMM_BSR_ALG1) on an H200. float32/float64: BSR_ALG1 on A's own arrays.
* CSR SpGEMM: cusparseSpGEMM in two jobs (compute, then copy into arrays CuPy allocates).
"""

from __future__ import annotations

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
    Blocked-ELL copy of A made per call (`blocked_ell=to_blocked_ell(A)` passes one made once), unless
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
    if A.format == "bsr" and blocked_ell is None and alg is None and _cuda.dtype_name(A.data.dtype) in _cuda.BELL_DTYPES:
        blocked_ell = _cuda.blocked_ell(A)
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


to_blocked_ell = _cuda.to_blocked_ell
