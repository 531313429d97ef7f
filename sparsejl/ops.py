"""spmm and spgemm: take the caller's operands, validate them, hand them to one backend."""

from __future__ import annotations

import numpy as np

from .backends import select as _select_backend
from .formats import array_module, as_view, check_value_dtype


def _on_gpu(a, b) -> bool:
    return array_module(a) is not np or array_module(b) is not np


def _dense_operand(B, k: int, backend):
    """B as a C-contiguous 2-D array of k rows, and whether it came as a vector."""
    xp = array_module(B)
    if xp is np and not isinstance(B, np.ndarray):
        if hasattr(B, "format") or hasattr(B, "tocsr"):
            raise TypeError("spmm takes a dense B; for sparse × sparse use spgemm")
        B = np.asarray(B)
    check_value_dtype(B.dtype, "B", _value_dtypes(backend))
    if B.ndim not in (1, 2):
        raise ValueError(f"B must be a vector or a matrix, got {B.ndim} dimensions")
    if B.shape[0] != k:
        raise ValueError(f"dimension mismatch: A has {k} columns but B has {B.shape[0]} rows")
    vector = B.ndim == 1
    if vector:
        B = B.reshape(k, 1)
    if not B.flags.c_contiguous:
        B = xp.ascontiguousarray(B)  # strided or Fortran-ordered B: a contiguous copy
    return B, vector


def _value_dtypes(backend):
    """The value types `backend` takes (each backend module names them; the GPU's include 16-bit)."""
    return backend.VALUE_DTYPES


def _sparse_operand(view, backend):
    """The view checked for `backend`: cheap checks always, O(nnz) ones unless Julia makes them."""
    return view.check_format(full=not backend.VALIDATES_CONTENT, value_dtypes=_value_dtypes(backend))


def _check_out(out, shape, dtype, operands):
    """`out` must be exactly what spmm would allocate, writeable, and share no memory with an input."""
    xp = array_module(out)
    if not isinstance(out, xp.ndarray):
        raise TypeError(f"out must be an array, got {type(out).__name__}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"out has dtype {out.dtype}, expected {dtype} (the promoted type of A and B)")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if xp is np and not out.flags.writeable:
        raise ValueError("out is read-only")
    for name, a in operands:
        if xp is np and a.size and out.size and np.may_share_memory(out, a):
            raise ValueError(f"out overlaps {name}")


def _result_shape(view, B, vector):
    return (view.shape[0],) if vector else (view.shape[0], B.shape[1])


def spmm(A, B, *, backend: str | None = None, out=None):
    """A @ B for a sparse A (CSR or BSR) and a dense matrix or vector B.

    Returns a dense array on A's device (NumPy, or CuPy for CuPy operands) with the dtype NumPy's
    promotion gives (float32 @ float32 -> float32, anything with float64 -> float64). With `out`,
    the result is written there (it must have that shape and dtype, be C-contiguous and writeable,
    and not overlap A or B) and `out` is returned.
    """
    view = as_view(A)
    mod = _select_backend(backend, _on_gpu(view.data, B))
    view = _sparse_operand(view, mod)
    B, vector = _dense_operand(B, view.shape[1], mod)
    dtype = B.dtype if view.data.dtype == B.dtype else np.result_type(view.data.dtype, B.dtype)
    m, n = view.shape[0], B.shape[1]
    if out is not None:
        _check_out(out, (m,) if vector else (m, n), dtype,
                   [("B", B), ("A.data", view.data), ("A.indices", view.indices), ("A.indptr", view.indptr)])
    if getattr(mod, "WRITES_OUT", False):  # the backend fills a given array: no copy of the result
        target = out.reshape(m, n) if out is not None else _allocate(array_module(B), (m, n), dtype)
        result = mod.spmm(view, B, out=target)
    else:
        result = mod.spmm(view, B)
        if out is not None:
            out.reshape(m, n)[...] = result
    if out is not None:
        return out
    return result.reshape(m) if vector else result


def _allocate(xp, shape, dtype):
    try:
        return xp.empty(shape, dtype=dtype)
    except MemoryError:
        size = np.prod(shape, dtype=np.float64) * np.dtype(dtype).itemsize
        raise ValueError(f"the {shape[0]}x{shape[1]} {np.dtype(dtype).name} result needs {size / 2**30:.1f} GiB, "
                         "more than can be allocated") from None


def spgemm(A, B, *, backend: str | None = None):
    """A @ B for two sparse matrices: CSR @ CSR -> CSR, BSR @ BSR (one blocksize) -> BSR.

    The result is a SciPy (or CuPy) sparse array in canonical form: sorted indices, no duplicates.
    """
    a, b = as_view(A), as_view(B)
    mod = _select_backend(backend, _on_gpu(a.data, b.data))
    a, b = _sparse_operand(a, mod), _sparse_operand(b, mod)
    if a.format != b.format:
        raise ValueError(f"spgemm multiplies two CSR or two BSR matrices, got {a.format} @ {b.format}; "
                         "convert one with .tocsr() or .tobsr()")
    if a.blocksize != b.blocksize:
        raise ValueError(f"block sizes differ: {a.blocksize} for A and {b.blocksize} for B")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"dimension mismatch: A is {a.shape[0]}x{a.shape[1]}, B is {b.shape[0]}x{b.shape[1]}")
    return mod.spgemm(a, b)
