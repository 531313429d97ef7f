"""Random operands on the device for the GPU benchmarks, and the error of a result.

Values are |a| in [0.5, 1.5] with random sign, as sparsejl.bench.matrices draws them on the CPU:
never zeros, so no result is timed on data that hides unwritten outputs.
"""

from __future__ import annotations

import math

import numpy as np

#: relative error a product may have against the float64 reference, by value type
TOLERANCE = {"float16": 2e-3, "bfloat16": 1.6e-2, "float32": 1e-5, "float64": 1e-12}


def _rng(seed):
    import cupy
    return cupy.random.RandomState(seed)


def _values(rng, size, dtype):
    import cupy
    mag = rng.uniform(0.5, 1.5, size=size, dtype=np.float32)
    sign = cupy.where(rng.random_sample(size=size, dtype=np.float32) < 0.5, -1.0, 1.0).astype(np.float32)
    return (mag * sign).astype(dtype)


def make_bsr(m, k, b, density, dtype, seed):
    """A random BSR view of CuPy arrays: each b×b block kept with probability `density`,
    values |a| in [0.5, 1.5] with random sign (as sparsejl.bench.matrices draws them)."""
    import cupy
    from ..formats import BSR
    rng = _rng(seed)
    mb, kb = m // b, k // b
    keep = rng.random_sample(size=(mb, kb), dtype=np.float32) < density
    rows, cols = cupy.nonzero(keep)
    nnzb = int(rows.size)
    indptr = cupy.zeros(mb + 1, dtype=np.int64)
    indptr[1:] = cupy.cumsum(cupy.bincount(rows, minlength=mb))
    indptr = indptr.astype(np.int32)
    data = _values(rng, nnzb * b * b, dtype).reshape(nnzb, b, b)
    return BSR(data, cols.astype(np.int32), indptr, (m, k), b)


def make_csr(m, k, density, dtype, seed):
    import cupy
    from ..formats import CSR
    rng = _rng(seed)
    per_row = rng.binomial(k, density, size=m).astype(np.int64)
    nnz = int(per_row.sum())
    # sorted unique columns per row: draw a random key per (row, col) pair and keep the smallest
    # per_row[i] columns of each row would be costly; instead sample with replacement and dedupe
    rows = cupy.repeat(cupy.arange(m, dtype=np.int64), per_row)
    cols = rng.randint(0, k, size=nnz, dtype=np.int64)
    key = cupy.unique(rows * k + cols)
    rows, cols = key // k, key % k
    indptr = cupy.zeros(m + 1, dtype=np.int64)
    indptr[1:] = cupy.cumsum(cupy.bincount(rows, minlength=m))
    indptr = indptr.astype(np.int32)
    data = _values(rng, int(key.size), dtype)
    return CSR(data, cols.astype(np.int32), indptr, (m, k))


def make_dense(k, n, dtype, seed):
    return _values(_rng(seed), k * n, dtype).reshape(k, n)


def rel_error(C, ref) -> float:
    import cupy
    C64 = C.astype(np.float64)
    if not bool(cupy.isfinite(C64).all()):
        return math.inf
    return float(cupy.linalg.norm(C64 - ref) / cupy.linalg.norm(ref))


def torch_on_cuda():
    """PyTorch, where it is installed and sees a GPU; else None."""
    try:
        import torch
        return torch if torch.cuda.is_available() else None
    except Exception:
        return None


def as_torch(a, torch):
    """Zero-copy torch view of a CuPy array (bfloat16 through a 16-bit integer view)."""
    import cupy
    if a.dtype.name == "bfloat16":
        return torch.as_tensor(a.view(cupy.int16), device="cuda").view(torch.bfloat16)
    return torch.as_tensor(a, device="cuda")
