"""The products of a linear layer with a sparse weight W (out×in), on activations held row-major
as PyTorch holds them: `linear` (X @ W.T + bias), `linear_input_grad` (dY @ W) and `sddmm` (the
weight gradient dY.T @ X, computed at W's stored entries only). Same path as spmm: the caller's
arrays -> validated views -> one backend -> the caller's kind, no copy of a contiguous operand.
"""

from __future__ import annotations

import math

import numpy as np

from . import interop
from .backends import select as _select_backend
from .formats import array_module, as_view, check_value_dtype
from .ops import _allocate, _on_caller_stream, _same_device, _sparse_operand, _where


def _activations(X, width: int, what: str, dtype, backend):
    """X as a C-contiguous (tokens × width) matrix of `dtype` (W's), and its leading shape."""
    xp = array_module(X)
    if xp is np and not isinstance(X, np.ndarray):
        X = np.asarray(X)
    check_value_dtype(X.dtype, what, backend.value_dtypes())
    if X.dtype != dtype:
        raise TypeError(f"{what} has dtype {X.dtype}, expected {dtype} (one dtype for the weight and the activations)")
    if X.ndim < 1 or X.shape[-1] != width:
        raise ValueError(f"dimension mismatch: {what} has shape {tuple(X.shape)}, its last dimension must be {width}")
    lead = tuple(X.shape[:-1])
    X = X.reshape(math.prod(lead), width)
    if not X.flags.c_contiguous:
        X = xp.ascontiguousarray(X)   # a strided X: one contiguous copy
    return X, lead


def _prepare(W, operands, backend_name, what):
    """The checked view of W, the backend, the operands as native arrays and the caller's kind."""
    view = as_view(W)
    natives, caller = [], None
    for a in operands:
        a, c = interop.native(a)
        natives.append(a)
        caller = caller or c
    chosen = _select_backend(backend_name, _same_device(view, natives[0]))
    for a in natives[1:]:
        if a is not None:
            _same_device(view, a)
    if getattr(chosen, what) is None:
        raise ValueError(f"backend {chosen.name!r} has no {what}")
    view = _sparse_operand(view, W, chosen)
    return view, chosen, natives, caller


def _result(caller, xp, shape, dtype):
    """(the array the backend fills, what the caller gets back)."""
    made = None if caller is None else caller.empty(shape, dtype)
    if made is not None:
        return made
    target = _allocate(xp, shape, dtype)
    return target, (caller.back(target) if caller is not None else target)


def linear(X, W, bias=None, *, backend: str | None = None):
    """`X @ W.T + bias` for a sparse weight W (out×in: CSR or BSR, SciPy, sparsejl, PyTorch sparse)
    and dense X (..., in), as `torch.nn.functional.linear` computes it.

    X, W's values and bias share one dtype (float32 or float64 on the CPU). Returns (..., out) in
    the caller's kind (a tensor for tensors). X is read in place when C-contiguous.
    """
    view, chosen, (X, bias), caller = _prepare(W, (X, bias), backend, "linear")
    m, k = view.shape
    X, lead = _activations(X, k, "X", view.data.dtype, chosen)
    if bias is not None:
        if tuple(bias.shape) != (m,):
            raise ValueError(f"bias has shape {tuple(bias.shape)}, expected ({m},)")
        if bias.dtype != view.data.dtype:
            raise TypeError(f"bias has dtype {bias.dtype} but the weight has {view.data.dtype}")
        bias = array_module(bias).ascontiguousarray(bias)
    target, result = _result(caller, array_module(X), (X.shape[0], m), X.dtype)
    _on_caller_stream(caller, chosen.linear, view, X, bias, target)
    return result.reshape(lead + (m,))


def linear_input_grad(dY, W, *, backend: str | None = None):
    """`dY @ W` for a sparse W (out×in) and dense dY (..., out): the input gradient of `linear`.
    Returns (..., in) in the caller's kind."""
    view, chosen, (dY,), caller = _prepare(W, (dY,), backend, "linear_input_grad")
    m, k = view.shape
    dY, lead = _activations(dY, m, "dY", view.data.dtype, chosen)
    target, result = _result(caller, array_module(dY), (dY.shape[0], k), dY.dtype)
    _on_caller_stream(caller, chosen.linear_input_grad, view, dY, target)
    return result.reshape(lead + (k,))


def sddmm(pattern, X, Y, *, backend: str | None = None):
    """`X.T @ Y` sampled at the stored entries of `pattern` (m×k, CSR or BSR; only its structure
    is read), for dense X (..., m) and Y (..., k) whose leading dimensions (the tokens) are summed
    over. Returns the values of those entries, shaped as `pattern.data` ((nnz,) for CSR, (nnzb, b,
    b) for BSR), in the caller's kind; whole products are never formed.

    The weight gradient of `linear(X, W)` is `sddmm(W, dY, X)`: W's stored entries of dY.T @ X.
    Entries stored past `indptr[-1]` are 0; a duplicated CSR entry gets the full value each time.
    """
    view, chosen, (X, Y), caller = _prepare(pattern, (X, Y), backend, "sddmm")
    m, k = view.shape
    dtype = check_value_dtype(getattr(X, "dtype", np.float64), "X", chosen.value_dtypes())
    X, lead = _activations(X, m, "X", dtype, chosen)
    Y, lead_y = _activations(Y, k, "Y", dtype, chosen)
    if lead != lead_y:
        raise ValueError(f"X and Y must have the same leading dimensions, got {lead} and {lead_y}")
    target, result = _result(caller, array_module(X), tuple(view.data.shape), dtype)
    _on_caller_stream(caller, chosen.sddmm, view, X, Y, target)
    return result
