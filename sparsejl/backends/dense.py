"""Densify A once, then NumPy's BLAS: the baseline every speedup is measured against."""

import numpy as np
import scipy.sparse as sp

from ..formats import VALUE_DTYPES  # noqa: F401 (the value types this backend takes)

NAME, DEVICE = "dense", "cpu"
VALIDATES_CONTENT = False
WRITES_OUT = False  # returns a new array


def availability():
    return None


def spmm(A, B):
    return A.toarray() @ B


def spgemm(A, B):
    product = A.toarray() @ B.toarray()
    if A.format == "bsr":
        b = A.blocksize
        return sp.bsr_array(product, blocksize=(b, b))
    return sp.csr_array(product)
