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
* Prepared weights (sparsejl.prepare: bitmap tiles or BSR 16/32/64 in float16/bfloat16), SpMM
  with few columns: _decode_kernels.py (kernels/decode_spmm.cu).
* CSR SpGEMM: ``cupyx.scipy.sparse``'s product (cuSPARSE SpGEMM), float16/bfloat16 through float32.
"""

from __future__ import annotations


import numpy as np

from . import _bsr_kernels, _cuda, _cusparse, _decode_kernels
from ._cuda import CUSPARSE_SPMM_ALG_DEFAULT, CUSPARSE_SPMM_BLOCKED_ELL_ALG1
from ._cuda import CUSPARSE_INDEX_BASE_ZERO as _BASE_ZERO
from ._cuda import CUSPARSE_OPERATION_NON_TRANSPOSE as _OP_N
from ._cuda import CUSPARSE_ORDER_ROW as _ORDER_ROW
from . import _gpu_conversions, _gpu_linear
from ._gpu_conversions import bsr_to_csr, csr_to_bsr, retyped
from .protocol import Backend


def availability():
    return _cuda.gpu_reason()


def spmm(A, B, out=None, *, alg: int = CUSPARSE_SPMM_ALG_DEFAULT, config=None, blocked_ell=None):
    """A @ B on the GPU, into `out` (fresh when None). `alg` picks cuSPARSE's SpMM algorithm (CSR);
    `config` the BSR kernel's configuration (see _bsr_kernels.plan) or "bell" for cuSPARSE's
    Blocked-ELL SpMM.

    BSR, float16/bfloat16: blocksize 64 on compute capability 9.0 runs the TMA + wgmma kernel;
    other blocksizes run the mma.sync tensor-core kernel on A's BSR arrays as they are. cuSPARSE's
    Blocked-ELL SpMM runs when asked (`config="bell"`, converting A in the call, which reads sizes
    back from the device, or `blocked_ell=to_blocked_ell(A)` made once by a caller that reuses A):
    on an H200, for 32×32 blocks it was no faster than the mma.sync kernel even with the conversion
    made beforehand. Other dtypes: CUDA cores. Nothing here waits for the device."""
    import cupy
    if A.format == "prepared":
        C = out if out is not None else cupy.empty((A.shape[0], B.shape[1]), dtype=A.dtype)
        return _decode_kernels.spmm(A, B, C)
    A, B, dtype = retyped(A, B)
    C = out if out is not None else cupy.empty((A.shape[0], B.shape[1]), dtype=dtype)
    if A.format == "csr":
        csr_spmm(A, B, C, alg=alg)
        return C
    if config == "bell" or blocked_ell is not None:
        bell = blocked_ell if blocked_ell is not None else _gpu_conversions.blocked_ell(A)
        if bell is not None:
            bell_spmm(A.shape, A.blocksize, bell, B, C)
            return C
        config = None
    _bsr_kernels.bsr_spmm(A, B, dtype, config=config, out=C)
    return C


def bell_spmm(shape, b, bell, B, C):
    """cuSPARSE Blocked-ELL SpMM (CUSPARSE_SPMM_BLOCKED_ELL_ALG1) through CuPy's handle."""
    colind, values, width = bell
    m, k = shape
    mat_a = _cusparse.create("cusparseCreateBlockedEll", m, k, b, width * b, colind.data.ptr, values.data.ptr,
                             _cuda.index_type(colind.dtype), _BASE_ZERO, _cuda.cuda_type(values.dtype))
    try:
        _spmm_descr(mat_a, m, k, B, C, _cuda.CUDA_R_32F, CUSPARSE_SPMM_BLOCKED_ELL_ALG1)
    finally:
        _cusparse.call("cusparseDestroySpMat", mat_a)


def _spmm_descr(mat_a, m, k, B, C, compute_type, alg):
    """cusparseSpMM of a ready sparse descriptor (m x k) with row-major B into row-major C, on
    CuPy's current stream."""
    import cupy
    n = B.shape[1]
    scalar = np.float64 if compute_type == _cuda.CUDA_R_64F else np.float32
    alpha, beta = np.ones(1, scalar), np.zeros(1, scalar)
    handle = cupy.cuda.device.get_cusparse_handle()
    stream = _cuda.current_stream_ptr()
    _cusparse.call("cusparseSetStream", handle, stream)
    mat_b = mat_c = 0
    try:
        mat_b = _cusparse.create("cusparseCreateDnMat", k, n, n, B.data.ptr, _cuda.cuda_type(B.dtype), _ORDER_ROW)
        mat_c = _cusparse.create("cusparseCreateDnMat", m, n, n, C.data.ptr, _cuda.cuda_type(C.dtype), _ORDER_ROW)
        operands = (handle, _OP_N, _OP_N, alpha.ctypes.data, mat_a, mat_b, beta.ctypes.data, mat_c, compute_type, alg)
        _cusparse.call("cusparseSpMM", *operands, _workspace(_cusparse.buffer_size(*operands), stream))
    finally:
        if mat_c:
            _cusparse.call("cusparseDestroyDnMat", mat_c)
        if mat_b:
            _cusparse.call("cusparseDestroyDnMat", mat_b)


# cuSPARSE's workspaces, by (device, stream): the largest so far is reused, and none is ever freed,
# because a CUDA graph that captured a product keeps the address it was given.
_workspaces: dict = {}


def _workspace(size: int, stream: int) -> int:
    import cupy
    if size == 0:
        return 0
    kept = _workspaces.setdefault((_cuda.current_device(), stream), [])
    if not kept or kept[-1].nbytes < size:
        kept.append(cupy.empty(size, dtype=np.int8))
    return int(kept[-1].data.ptr)


def csr_spmm(A, B, C, *, alg: int = CUSPARSE_SPMM_ALG_DEFAULT):
    """C = A @ B by cuSPARSE's generic SpMM, row-major B and C, through CuPy's bindings."""
    m, k = A.shape
    n = B.shape[1]
    nnz = len(A.indices)
    if m == 0 or n == 0 or nnz == 0:  # cuSPARSE writes every row of C (beta = 0); here nothing is stored
        C.fill(0)
        return
    indptr, indices = _gpu_conversions.structure_in_one_index_type(A)
    itype = _cuda.index_type(indices.dtype)
    ta, tb, tc = _cuda.cuda_type(A.data.dtype), _cuda.cuda_type(B.dtype), _cuda.cuda_type(C.dtype)
    ct = _cuda.CUDA_R_64F if _cuda.CUDA_R_64F in (ta, tb, tc) else _cuda.CUDA_R_32F
    mat_a = _cusparse.create("cusparseCreateCsr", m, k, nnz, indptr.data.ptr, indices.data.ptr, A.data.data.ptr,
                             itype, itype, _BASE_ZERO, ta)
    try:
        _spmm_descr(mat_a, m, k, B, C, ct, alg)
    finally:
        _cusparse.call("cusparseDestroySpMat", mat_a)


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
    return csr_to_bsr(spgemm(bsr_to_csr(A), bsr_to_csr(B)), A.blocksize)


def linear(W, X, bias, out):
    """X @ W.T + bias through this backend's SpMM on transposed copies (_gpu_linear)."""
    return _gpu_linear.linear(spmm, W, X, bias, out)


def linear_input_grad(W, dY, out):
    return _gpu_linear.linear_input_grad(spmm, W, dY, out)


BACKEND = Backend("cupy", "gpu", checks_structure=False, value_dtypes=_cuda.value_dtypes,
                  availability=availability, spmm=spmm, spgemm=spgemm, prepare=_decode_kernels.prepare,
                  linear=linear, linear_input_grad=linear_input_grad, sddmm=_gpu_linear.sddmm)
