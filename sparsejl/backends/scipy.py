"""SciPy's own sparse products: the reference every other backend is checked against."""

NAME, DEVICE = "scipy", "cpu"
VALIDATES_CONTENT = False  # SciPy's C++ trusts its indices: sparsejl checks them first


def availability():
    return None


def spmm(A, B):
    return A.to_scipy() @ B


def spgemm(A, B):
    out = A.to_scipy() @ B.to_scipy()
    out.sum_duplicates()  # canonical: sorted indices, no duplicates
    return out
