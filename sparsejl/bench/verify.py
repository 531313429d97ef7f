"""Is a backend's product right? Compared entry by entry with a float64 reference.

An entry passes when ``|C - C_ref| <= rtol * (|A|·|B|) + atol``: the error is measured against
the scale that floating-point summation actually guarantees, so long float32 dot products are
not failed for rounding, while a wrong index, a dropped block or a transposed result is.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["WrongResult", "tolerance", "verify"]

#: Relative tolerance per value type, against |A|·|B|.
RTOL = {"float32": 1e-4, "float64": 1e-10}


class WrongResult(AssertionError):
    """A backend returned a product that does not match the reference."""


def tolerance(dtype) -> float:
    return RTOL.get(np.dtype(dtype).name, 1e-4)


def _as_scipy(C):
    return C if sp.issparse(C) else sp.csr_matrix(np.asarray(C))


def verify(C, ref, bound, dtype) -> float:
    """Raise :class:`WrongResult` unless ``C`` matches ``ref``; return the worst error ratio.

    ``C`` is a NumPy array (SpMM) or a SciPy sparse matrix (SpGEMM); ``ref`` and ``bound`` are
    float64 of the same kind (see :func:`sparsejl.bench.matrices.reference`). The returned ratio
    is ``max |C - ref| / (rtol·bound + atol)``: below 1 passes.
    """
    rtol = tolerance(dtype)
    atol = np.finfo(np.float64).tiny
    if getattr(C, "shape", None) != ref.shape:
        raise WrongResult(f"shape {getattr(C, 'shape', None)} != expected {ref.shape}")
    if sp.issparse(ref):
        err = abs(_as_scipy(C).astype(np.float64) - ref).tocsr()
        err.eliminate_zeros()
        if err.nnz == 0:
            return 0.0
        err.sort_indices()
        # bound at exactly err's positions (a tiny floor keeps entries where bound is 0)
        ones = err.copy()
        ones.data[:] = 1.0
        at = ones.multiply(bound + ones * atol).tocsr()
        at.sort_indices()
        diff = err.data
        scale = rtol * at.data + atol
    else:
        C = C.toarray() if sp.issparse(C) else np.asarray(C)
        if not np.all(np.isfinite(C)):
            raise WrongResult("result holds NaN or Inf")
        diff = np.abs(C.astype(np.float64) - ref).ravel()
        scale = rtol * np.asarray(bound).ravel() + atol
    if not np.all(np.isfinite(diff)):
        raise WrongResult("result holds NaN or Inf")
    ratio = diff / scale
    worst = int(np.argmax(ratio))
    if ratio[worst] > 1.0:
        bad = int(np.count_nonzero(ratio > 1.0))
        raise WrongResult(f"{bad} entries off; worst error {diff[worst]:.3g} exceeds "
                          f"{rtol:g}·|A||B| = {scale[worst]:.3g}")
    return float(ratio[worst])
