"""Densify A once, then NumPy's BLAS: the baseline every speedup is measured against."""

import numpy as np
import scipy.sparse as sp

from ..formats import VALUE_DTYPES
from .protocol import Backend


def availability():
    return None


def spmm(A, B, out):
    return np.matmul(A.toarray(), B, out=out)


def spgemm(A, B):
    product = A.toarray() @ B.toarray()
    if A.format == "bsr":
        b = A.blocksize
        return sp.bsr_array(product, blocksize=(b, b))
    return sp.csr_array(product)


BACKEND = Backend("dense", "cpu", checks_structure=False, value_dtypes=lambda: VALUE_DTYPES,
                  availability=availability, spmm=spmm, spgemm=spgemm)
