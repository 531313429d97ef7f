"""SciPy's own sparse products: the reference every other backend is checked against."""

from ..formats import VALUE_DTYPES
from .protocol import Backend


def availability():
    return None


def spmm(A, B, out):
    out[...] = A.to_scipy() @ B   # SciPy allocates its result; this backend is the reference, not the fast path
    return out


def spgemm(A, B):
    out = A.to_scipy() @ B.to_scipy()
    out.sum_duplicates()  # canonical: sorted indices, no duplicates
    return out


# SciPy's C++ trusts its indices: sparsejl checks them first (checks_structure=False)
BACKEND = Backend("scipy", "cpu", checks_structure=False, value_dtypes=lambda: VALUE_DTYPES,
                  availability=availability, spmm=spmm, spgemm=spgemm)
