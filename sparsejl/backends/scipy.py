"""SciPy's own sparse products: the reference every other backend is checked against."""

from ..formats import VALUE_DTYPES  # noqa: F401 (the value types this backend takes)

NAME, DEVICE = "scipy", "cpu"
VALIDATES_CONTENT = False  # SciPy's C++ trusts its indices: sparsejl checks them first
WRITES_OUT = False  # returns a new array


def availability():
    return None


def spmm(A, B):
    return A.to_scipy() @ B


def spgemm(A, B):
    out = A.to_scipy() @ B.to_scipy()
    out.sum_duplicates()  # canonical: sorted indices, no duplicates
    return out
