"""The GPU baseline: densify A on the device, then cuBLAS (``cupy.matmul``).

What every GPU speedup is measured against. Densifying is part of `spmm` here; the benchmark
times the matrix product alone, on an A densified beforehand, which favours this baseline.
"""

from __future__ import annotations

import numpy as np

from . import _cuda
from ._gpu_conversions import csr_to_bsr, todense
from .protocol import Backend


def availability():
    return _cuda.gpu_reason()


def spmm(A, B, out=None):
    import cupy
    dtype = _cuda.result_dtype(A.data.dtype, B.dtype)
    return cupy.matmul(_cuda.same_dtype(todense(A), dtype), _cuda.same_dtype(B, dtype), out=out)


def spgemm(A, B):
    import cupy
    from ..formats import BSR, CSR
    out = _cuda.result_dtype(A.data.dtype, B.data.dtype)
    work = out if out in (np.float32, np.float64) else np.dtype(np.float32)
    product = cupy.matmul(todense(A).astype(work, copy=False), todense(B).astype(work, copy=False))
    C = _dense_to_csr(product)
    if A.format == "bsr":
        C = csr_to_bsr(CSR(C.data, C.indices, C.indptr, C.shape), A.blocksize)
        return BSR(C.data.astype(out, copy=False), C.indices, C.indptr, C.shape, C.blocksize)
    if work == out:
        return C
    return CSR(C.data.astype(out), C.indices, C.indptr, C.shape)


def _dense_to_csr(D):
    """The non-zeros of a dense CuPy matrix as a canonical cupyx CSR (rows in order, columns sorted)."""
    import cupy
    import cupyx.scipy.sparse as csp
    rows, cols = cupy.nonzero(D)  # row-major order: sorted within each row
    indptr = cupy.zeros(D.shape[0] + 1, dtype=np.int64)
    indptr[1:] = cupy.cumsum(cupy.bincount(rows, minlength=D.shape[0]))
    return csp.csr_matrix((D[rows, cols], cols.astype(np.int32), indptr.astype(np.int32)), shape=D.shape)


BACKEND = Backend("cupy-dense", "gpu", checks_structure=False, value_dtypes=_cuda.value_dtypes,
                  availability=availability, spmm=spmm, spgemm=spgemm)
