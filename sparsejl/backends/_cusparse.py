"""The few cuSPARSE calls of the "cupy" backend's SpMM, bound through ctypes in the libcusparse
CuPy loaded (so that they share CuPy's handle). CuPy's own bindings refuse to run while a stream
is captured into a CUDA graph; these do not, and a captured SpMM replays like any kernel.

A mechanical layer: each function is the C call, and a non-zero status is a RuntimeError.
"""

from __future__ import annotations

import ctypes
import functools

from . import _cuda

_p, _i64, _i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
_SIGNATURES = {
    "cusparseSetStream": [_p, _p],
    "cusparseCreateCsr": [ctypes.POINTER(_p), _i64, _i64, _i64, _p, _p, _p, _i32, _i32, _i32, _i32],
    "cusparseCreateBlockedEll": [ctypes.POINTER(_p), _i64, _i64, _i64, _i64, _p, _p, _i32, _i32, _i32],
    "cusparseCreateDnMat": [ctypes.POINTER(_p), _i64, _i64, _i64, _p, _i32, _i32],
    "cusparseDestroySpMat": [_p],
    "cusparseDestroyDnMat": [_p],
    "cusparseSpMM_bufferSize": [_p, _i32, _i32, _p, _p, _p, _p, _p, _i32, _i32, ctypes.POINTER(ctypes.c_size_t)],
    "cusparseSpMM": [_p, _i32, _i32, _p, _p, _p, _p, _p, _i32, _i32, _p],
}


@functools.lru_cache(maxsize=None)
def _fn(name: str):
    fn = getattr(ctypes.CDLL(_cuda.libcusparse_path()), name)
    fn.argtypes, fn.restype = _SIGNATURES[name], ctypes.c_int
    return fn


def call(name: str, *args) -> None:
    status = _fn(name)(*args)
    if status != 0:
        raise RuntimeError(f"{name} failed with cusparseStatus_t {status}")


def create(name: str, *args) -> int:
    """A descriptor made by `name` (cusparseCreateCsr, ...), as an int."""
    out = _p()
    call(name, ctypes.byref(out), *args)
    return int(out.value)


def buffer_size(*args) -> int:
    size = ctypes.c_size_t()
    call("cusparseSpMM_bufferSize", *args, ctypes.byref(size))
    return int(size.value)
