"""spmm, spgemm and prepare: the caller's operands -> validated views -> one backend -> the caller's kind."""

from __future__ import annotations

import numpy as np

from . import interop
from .backends import select as _select_backend
from .formats import BSR, CSR, Prepared, array_module, as_view, check_value_dtype, checked_once

_BOUND_PER_MATRIX = 32    # products bound per matrix (B's shapes and backends); more clear the table
_bound_types: set = set()  # the types of B that a product was bound for (CuPy's ndarray)


def _where(a) -> str:
    return "CPU" if array_module(a) is np else "GPU"


def _same_device(view, B, xp=None) -> bool:
    """Whether A and B live on one side (both host or both device); a mix is a TypeError.
    `xp`: B's array module, where the caller has it already."""
    on_gpu = array_module(view.data) is not np
    if on_gpu != ((xp or array_module(B)) is not np):
        raise TypeError(f"A is on the {_where(view.data)} but B is on the {_where(B)}; "
                        "move one of them (A and B must live on one device)")
    return on_gpu


def _dense_operand(B, xp, k: int, backend):
    """B (of array module `xp`) as a C-contiguous 2-D array of k rows, and whether it came as a vector."""
    if xp is np and not isinstance(B, np.ndarray):
        if hasattr(B, "format") or hasattr(B, "tocsr"):
            raise TypeError("spmm takes a dense B; for sparse × sparse use spgemm")
        B = np.asarray(B)
    allowed = backend.value_dtypes()
    if B.dtype not in allowed:
        check_value_dtype(B.dtype, "B", allowed)
    shape = B.shape
    if len(shape) not in (1, 2):
        raise ValueError(f"B must be a vector or a matrix, got {len(shape)} dimensions")
    if shape[0] != k:
        raise ValueError(f"dimension mismatch: A has {k} columns but B has {shape[0]} rows")
    vector = len(shape) == 1
    if vector:
        B = B.reshape(k, 1)
    if not B.flags.c_contiguous:
        B = xp.ascontiguousarray(B)  # strided or Fortran-ordered B: a contiguous copy
    return B, vector


def _sparse_operand(view, source, backend):
    """The view checked for `backend`: the cheap checks always; the O(nnz) ones on every call on
    the CPU (unless Julia makes them), once per matrix on the GPU, where they wait for the device
    (formats.checked_once)."""
    if backend.checks_structure:
        return view.check_format(full=False, value_dtypes=backend.value_dtypes())
    if backend.device == "gpu":
        return checked_once(view, source, backend.value_dtypes())
    return view.check_format(full=True, value_dtypes=backend.value_dtypes())


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
        if a.size and out.size and xp.may_share_memory(out, a):
            raise ValueError(f"out overlaps {name}")


def spmm(A, B, *, backend: str | None = None, out=None):
    """A @ B for a sparse A (CSR or BSR) and a dense matrix or vector B.

    Returns a dense array of the caller's kind on A's device (NumPy; CuPy for CuPy operands; a
    PyTorch tensor for tensors, on their device and stream) with the dtype NumPy's promotion gives
    (float32 @ float32 -> float32, anything with float64 -> float64). With `out`, the result is
    written there (it must have that shape and dtype, be C-contiguous and writeable, and not
    overlap A or B) and `out` is returned. On the GPU nothing waits for the device: the product is
    queued on the current stream (a CUDA graph may capture it); a repeat call with the same
    sparsejl matrix (its arrays unchanged) or prepared weight, backend and kind of CuPy B skips
    the checks the first one made (_bound_product).
    """
    if out is None:
        bound = _bound_product(A, B, backend)
        if bound is not None:
            product, xp, shape, dtype = bound
            return product(A, B, _allocate(xp, shape, dtype))
    given = B
    prepared = isinstance(A, Prepared)
    view = A if prepared else as_view(A)
    B, caller = interop.native(B)
    xp = array_module(B)
    if prepared:
        chosen = _prepared_backend(backend, A, B)
    else:
        chosen = _select_backend(backend, _same_device(view, B, xp))
        view = _sparse_operand(view, A, chosen)
    B, vector = _dense_operand(B, xp, view.shape[1], chosen)
    if view.format == "prepared" and B.dtype != view.dtype:
        raise TypeError(f"A is a weight prepared in {view.dtype.name} but B has dtype {B.dtype.name}; "
                        f"cast B, or prepare A with dtype={B.dtype.name}")
    dtype = B.dtype if view.data.dtype == B.dtype else np.result_type(view.data.dtype, B.dtype)
    m, n = view.shape[0], B.shape[1]
    made = None if out is not None or caller is None else caller.empty((m, n), dtype)
    if made is not None:
        target, out_of_caller = made
    elif out is None:
        target = _allocate(xp, (m, n), dtype)
    else:
        target, _ = interop.native(out)
        if array_module(target) is not xp:
            raise TypeError(f"out is on the {_where(target)} but the operands are on the {_where(B)}")
        arrays = view.arrays() if view.format == "prepared" else \
            [("A.data", view.data), ("A.indices", view.indices), ("A.indptr", view.indptr)]
        _check_out(target, (m,) if vector else (m, n), dtype, [("B", B), *arrays])
        target = target.reshape(m, n)
    _on_caller_stream(caller, chosen.spmm, view, B, target)
    if caller is None and out is None and B is given and not vector and chosen.device == "gpu":
        _bind(A, B, backend, (chosen.spmm, xp, (m, n), dtype))
    if out is not None:
        return out
    if made is not None:
        return out_of_caller.reshape(m) if vector else out_of_caller
    result = target.reshape(m) if vector else target
    return caller.back(result) if caller is not None else result


def _products(A):
    """The table of products bound for `A` (a sparsejl matrix whose verdict still holds for these
    arrays and values, or a prepared weight), or None."""
    kind = type(A)
    if kind is Prepared:
        return A.products
    if kind is not CSR and kind is not BSR:
        return None
    verdict = A.verdict
    if verdict is None or A.data is not verdict.data or not verdict.holds_for(A):
        return None
    return verdict.products


def _bound_product(A, B, backend):
    """(product, array module, result shape, result dtype) that an earlier GPU call bound for this
    A, `backend` and a B of B's type, dtype, shape and strides (so C-contiguous, as that B was):
    that call checked everything this one would, and nothing it looked at has changed (a sparsejl
    matrix's arrays are the ones its verdict names; a prepared weight is a snapshot). Else None:
    the full path."""
    if type(B) not in _bound_types:
        return None
    products = _products(A)
    return products.get(_bound_key(B, backend)) if products else None


def _bind(A, B, backend, bound):
    """Keep `bound` for later calls with this A, `backend` and a B like `B` (see _bound_product):
    only for sparsejl matrices (multiplied as they are: as_view returns them) and prepared weights."""
    products = _products(A)
    if products is None:
        return
    if len(products) >= _BOUND_PER_MATRIX:
        products.clear()
    products[_bound_key(B, backend)] = bound
    _bound_types.add(type(B))


def _bound_key(B, backend):
    """What a bound product is kept under (see _bound_product)."""
    return backend, type(B), B.dtype, B.shape, B.strides


def _prepared_backend(name, A, B):
    """The GPU backend that multiplies prepared weights (`name`, or the default)."""
    if array_module(B) is np:
        raise TypeError("A is a weight prepared for the GPU but B is on the CPU; move B to the GPU")
    chosen = _select_backend(name, True)
    if chosen.prepare is None:
        raise TypeError(f"backend {chosen.name!r} does not multiply prepared weights; use backend='cupy'")
    return chosen


def prepare(A, *, dtype=None, backend: str | None = None) -> Prepared:
    """A GPU weight prepared once for fast products with few columns (decoding: 1-64 tokens).

    `A` is a CSR or BSR matrix of CuPy arrays (cupyx.scipy.sparse, or sparsejl.CSR/BSR). Its
    structure is checked here, once (this waits for the device); the conversion runs on the GPU.
    Unstructured weights become bitmap tiles (2·density + 1/8 bytes per weight in float16); BSR
    with 16, 32 or 64 blocks keeps its blocks. The values are converted to `dtype` (float16 or
    bfloat16; default A's). The result is a snapshot: changes to A afterwards are not seen.
    `spmm(prepared, B)` then multiplies it by a B of that dtype, without waiting for the device.
    """
    view = as_view(A)
    if array_module(view.data) is np:
        raise TypeError("prepare makes a GPU weight: A must hold CuPy arrays "
                        "(cupyx.scipy.sparse.csr_matrix(A) moves a SciPy matrix to the GPU)")
    chosen = _select_backend(backend, True)
    if chosen.prepare is None:
        raise TypeError(f"backend {chosen.name!r} does not prepare weights; use backend='cupy'")
    view.check_format(full=True, value_dtypes=chosen.value_dtypes())
    return chosen.prepare(view, dtype)


def _on_caller_stream(caller, product, *args):
    """`product(*args)` on the caller's stream where it has one (a PyTorch caller's); without a
    caller no context manager is entered (every GPU call's host path)."""
    if caller is None:
        return product(*args)
    with caller.stream():
        return product(*args)


def _allocate(xp, shape, dtype):
    try:
        return xp.empty(shape, dtype=dtype)
    except MemoryError:
        size = np.prod(shape, dtype=np.float64) * np.dtype(dtype).itemsize
        raise ValueError(f"the {shape[0]}x{shape[1]} {np.dtype(dtype).name} result needs {size / 2**30:.1f} GiB, "
                         "more than can be allocated") from None


def spgemm(A, B, *, backend: str | None = None):
    """A @ B for two sparse matrices: CSR @ CSR -> CSR, BSR @ BSR (one blocksize) -> BSR.

    The result is a SciPy (or CuPy) sparse array in canonical form: sorted indices, no duplicates;
    a PyTorch sparse tensor of A's layout when A is one. On the GPU it waits for the device once,
    to size the result (cuSPARSE counts it first).
    """
    a, b = as_view(A), as_view(B)
    chosen = _select_backend(backend, _same_device(a, b.data))
    a, b = _sparse_operand(a, A, chosen), _sparse_operand(b, B, chosen)
    if a.format != b.format:
        raise ValueError(f"spgemm multiplies two CSR or two BSR matrices, got {a.format} @ {b.format}; "
                         "convert one with .tocsr() or .tobsr()")
    if a.blocksize != b.blocksize:
        raise ValueError(f"block sizes differ: {a.blocksize} for A and {b.blocksize} for B")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"dimension mismatch: A is {a.shape[0]}x{a.shape[1]}, B is {b.shape[0]}x{b.shape[1]}")
    product = chosen.spgemm(a, b)
    return interop.torch_sparse_back(product) if interop.is_torch_sparse(A) else product
