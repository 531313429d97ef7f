"""The GPU baseline: densify A on the device, then cuBLAS (``cupy.matmul``).

What every GPU speedup is measured against. Densifying is part of `spmm` here; the benchmark
times the matrix product alone, on an A densified beforehand, which favours this baseline.
"""

from __future__ import annotations

import numpy as np

from . import _cuda

NAME, DEVICE = "cupy-dense", "gpu"
VALIDATES_CONTENT = False


def __getattr__(name):
    if name == "VALUE_DTYPES":
        return _cuda.value_dtypes()
    raise AttributeError(name)


def availability():
    return _cuda.gpu_reason()


def spmm(A, B):
    import cupy
    out = _cuda.result_dtype(A.data.dtype, B.dtype)
    return cupy.matmul(_cuda.same_dtype(_cuda.todense(A), out), _cuda.same_dtype(B, out))


def spgemm(A, B):
    import cupy
    import cupyx.scipy.sparse as csp
    from ..formats import BSR, CSR
    out = _cuda.result_dtype(A.data.dtype, B.data.dtype)
    work = out if out in (np.float32, np.float64) else np.dtype(np.float32)
    product = cupy.matmul(_cuda.todense(A).astype(work, copy=False), _cuda.todense(B).astype(work, copy=False))
    C = csp.csr_matrix(product)
    if A.format == "bsr":
        from .cupy_backend import csr_to_bsr
        C = csr_to_bsr(CSR(C.data, C.indices, C.indptr, C.shape), A.blocksize, BSR)
        return BSR(C.data.astype(out, copy=False), C.indices, C.indptr, C.shape, C.blocksize)
    if work == out:
        return C
    return CSR(C.data.astype(out), C.indices, C.indptr, C.shape)
