"""GPU products through CuPy: cuSPARSE for CSR (SpMM and SpGEMM), NVRTC kernels for BSR SpMM.

Operands stay on the device: a CSR/BSR view whose arrays are CuPy arrays and a C-contiguous CuPy
B go in, a CuPy array (SpMM) or a CuPy-held sparse matrix (SpGEMM) comes out. CuPy is imported
on first use, never when sparsejl is imported.

* CSR SpMM: cuSPARSE's generic SpMM (``cusparseSpMM``, CSR, row-major B and C, algorithm
  default) through CuPy's own cuSPARSE bindings, so float16/bfloat16 work too (CuPy's
  ``csr_matrix @ B`` takes float32/float64 only and copies B to column-major).
* BSR SpMM, float16/bfloat16: sparsejl's own kernels on A's BSR arrays (_bsr_kernels.py): TMA +
  wgmma for 64×64 blocks on Hopper, mma.sync otherwise; cuSPARSE Blocked-ELL SpMM when asked (see
  `spmm`); other dtypes: a CUDA-core kernel.
* CSR SpGEMM: ``cupyx.scipy.sparse``'s product (cuSPARSE SpGEMM), float16/bfloat16 through float32.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from . import _bsr_kernels, _cuda
from ._cuda import CUSPARSE_SPMM_ALG_DEFAULT, CUSPARSE_SPMM_BLOCKED_ELL_ALG1
from ._cuda import CUSPARSE_INDEX_BASE_ZERO as _BASE_ZERO
from ._cuda import CUSPARSE_OPERATION_NON_TRANSPOSE as _OP_N
from ._cuda import CUSPARSE_ORDER_ROW as _ORDER_ROW

NAME, DEVICE = "cupy", "gpu"
VALIDATES_CONTENT = False  # the caller's check_format(full=True) must run: kernels trust indices


def __getattr__(name):  # VALUE_DTYPES is computed on first use (bfloat16 needs ml_dtypes)
    if name == "VALUE_DTYPES":
        return _cuda.value_dtypes()
    raise AttributeError(name)


def availability():
    return _cuda.gpu_reason()


def _retyped(A, B):
    """A's values and B in their common dtype (copies only what differs) and that dtype."""
    out = _cuda.result_dtype(A.data.dtype, B.dtype)
    if np.dtype(A.data.dtype) != out:
        A = _with_data(A, A.data.astype(out))
    return A, _cuda.same_dtype(B, out), out


def _with_data(A, data):
    if A.format == "bsr":
        return type(A)(data, A.indices, A.indptr, A.shape, A.blocksize)
    return type(A)(data, A.indices, A.indptr, A.shape)


def spmm(A, B, *, alg: int = CUSPARSE_SPMM_ALG_DEFAULT, config=None, blocked_ell=None):
    """A @ B on the GPU. `alg` picks cuSPARSE's SpMM algorithm (CSR); `config` the BSR kernel's
    configuration (see _bsr_kernels.plan) or "bell" for cuSPARSE's Blocked-ELL SpMM.

    BSR, float16/bfloat16: blocksize 64 on compute capability 9.0 runs the TMA + wgmma kernel;
    other blocksizes run the mma.sync tensor-core kernel on A's BSR arrays as they are. cuSPARSE's
    Blocked-ELL SpMM runs when asked (`config="bell"`, converting A in the call, or
    `blocked_ell=to_blocked_ell(A)` made once by a caller that reuses A): on an H200, for 32×32
    blocks it was no faster than the mma.sync kernel even with the conversion made beforehand, and
    converting in every call cost 0.5 ms. Other dtypes: CUDA cores."""
    A, B, out = _retyped(A, B)
    if A.format == "csr":
        return csr_spmm(A, B, out, alg=alg)
    if config == "bell" or blocked_ell is not None:
        bell = blocked_ell if blocked_ell is not None else _cuda.blocked_ell(A)
        if bell is not None:
            return bell_spmm(A.shape, A.blocksize, bell, B, out)
        config = None
    return _bsr_kernels.bsr_spmm(A, B, out, config=config)


def bell_spmm(shape, b, bell, B, out_dtype):
    """cuSPARSE Blocked-ELL SpMM (CUSPARSE_SPMM_BLOCKED_ELL_ALG1) through CuPy's handle and bindings;
    the descriptor is made through ctypes in the same libcusparse (CuPy binds no Blocked-ELL)."""
    from cupy_backends.cuda.libs import cusparse as cs

    colind, values, width = bell
    m, k = shape
    mat_a = _create_blocked_ell(m, k, b, width * b, colind.data.ptr, values.data.ptr,
                                _cuda.index_type(colind.dtype), _cuda.cuda_type(values.dtype))
    try:
        return _spmm_descr(mat_a, m, k, B, out_dtype, _cuda.CUDA_R_32F, CUSPARSE_SPMM_BLOCKED_ELL_ALG1)
    finally:
        cs.destroySpMat(mat_a)


def _spmm_descr(mat_a, m, k, B, out_dtype, compute_type, alg):
    """cusparseSpMM of a ready sparse descriptor (m x k) with row-major B; returns a fresh C."""
    import cupy
    from cupy_backends.cuda.libs import cusparse as cs

    n = B.shape[1]
    C = cupy.empty((m, n), dtype=out_dtype)
    scalar = np.float64 if compute_type == _cuda.CUDA_R_64F else np.float32
    alpha, beta = np.ones(1, scalar), np.zeros(1, scalar)
    handle = cupy.cuda.device.get_cusparse_handle()
    mat_b = mat_c = 0
    try:
        mat_b = cs.createDnMat(k, n, n, B.data.ptr, _cuda.cuda_type(B.dtype), _ORDER_ROW)
        mat_c = cs.createDnMat(m, n, n, C.data.ptr, _cuda.cuda_type(out_dtype), _ORDER_ROW)
        size = cs.spMM_bufferSize(handle, _OP_N, _OP_N, alpha.ctypes.data, mat_a, mat_b, beta.ctypes.data,
                                  mat_c, compute_type, alg)
        buf = cupy.empty(max(size, 1), dtype=np.int8)
        cs.spMM(handle, _OP_N, _OP_N, alpha.ctypes.data, mat_a, mat_b, beta.ctypes.data, mat_c, compute_type, alg,
                buf.data.ptr)
    finally:
        if mat_c:
            cs.destroyDnMat(mat_c)
        if mat_b:
            cs.destroyDnMat(mat_b)
    return C


@functools.lru_cache(maxsize=None)
def _create_blocked_ell_fn():
    lib = ctypes.CDLL(_cuda.libcusparse_path())
    fn = lib.cusparseCreateBlockedEll
    fn.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                   ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def _create_blocked_ell(m, k, b, ell_cols, colind_ptr, values_ptr, index_type, value_type) -> int:
    descr = ctypes.c_void_p()
    status = _create_blocked_ell_fn()(ctypes.byref(descr), m, k, b, ell_cols, colind_ptr, values_ptr, index_type,
                                      _BASE_ZERO, value_type)
    if status != 0:
        raise RuntimeError(f"cusparseCreateBlockedEll failed with status {status}")
    return int(descr.value)


def csr_spmm(A, B, out_dtype, *, alg: int = CUSPARSE_SPMM_ALG_DEFAULT):
    """cuSPARSE generic SpMM, row-major B and C, through CuPy's bindings."""
    import cupy
    from cupy_backends.cuda.libs import cusparse as cs

    m, k = A.shape
    n = B.shape[1]
    nnz = len(A.indices)
    if m == 0 or n == 0 or nnz == 0:  # cuSPARSE writes every row of C (beta = 0); here nothing is stored
        return cupy.zeros((m, n), dtype=out_dtype)
    (indptr, indices), idx = _cuda.common_index(A.indptr, A.indices)
    itype = _cuda.index_type(idx)
    ta, tb, tc = _cuda.cuda_type(A.data.dtype), _cuda.cuda_type(B.dtype), _cuda.cuda_type(out_dtype)
    ct = _cuda.CUDA_R_64F if _cuda.CUDA_R_64F in (ta, tb, tc) else _cuda.CUDA_R_32F
    mat_a = cs.createCsr(m, k, nnz, indptr.data.ptr, indices.data.ptr, A.data.data.ptr, itype, itype,
                         _BASE_ZERO, ta)
    try:
        return _spmm_descr(mat_a, m, k, B, out_dtype, ct, alg)
    finally:
        cs.destroySpMat(mat_a)


def spgemm(A, B):
    """CSR @ CSR on the GPU through cupyx.scipy.sparse (cuSPARSE SpGEMM); BSR goes through CSR."""
    import cupyx.scipy.sparse as csp
    from ..formats import CSR

    if A.format == "bsr":
        return _bsr_through_csr(A, B)
    out = _cuda.result_dtype(A.data.dtype, B.data.dtype)
    work = out if out in (np.float32, np.float64) else np.dtype(np.float32)
    a = csp.csr_matrix((A.data.astype(work, copy=False), A.indices, A.indptr), shape=A.shape)
    b = csp.csr_matrix((B.data.astype(work, copy=False), B.indices, B.indptr), shape=B.shape)
    C = a @ b
    if not C.has_canonical_format:
        C.sum_duplicates()
    if work == out:
        return C
    return CSR(C.data.astype(out), C.indices, C.indptr, C.shape)


def _bsr_through_csr(A, B):
    """BSR @ BSR: expand both to CSR on the device, multiply, and regroup the product into blocks."""
    from ..formats import BSR
    C = spgemm(bsr_to_csr(A), bsr_to_csr(B))
    return csr_to_bsr(C, A.blocksize, BSR)


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


def csr_to_bsr(C, b, BSR):
    """A CSR product (canonical) regrouped into b×b blocks: every block holding a structural entry."""
    import cupy
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
