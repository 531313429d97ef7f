"""What the GPU backends share: whether CuPy and a GPU are here, dtypes, densifying on the device.

Nothing here imports CuPy at module import time; every function that needs it imports it inside.
"""

from __future__ import annotations

import os
import functools

import numpy as np

#: value dtypes of the GPU backends by name; bfloat16 is ml_dtypes', which CuPy >= 14 understands
_VALUE_NAMES = ("float16", "bfloat16", "float32", "float64")
# The CUDA and cuSPARSE enums that Python passes (Julia's copy: src/cuda/libcusparse.jl).
# cudaDataType of library_types.h
CUDA_R_32F, CUDA_R_64F, CUDA_R_16F, CUDA_R_16BF = 0, 1, 2, 14
_CUDA_TYPES = {"float16": CUDA_R_16F, "bfloat16": CUDA_R_16BF, "float32": CUDA_R_32F, "float64": CUDA_R_64F}
# cusparseIndexType_t, cusparseIndexBase_t, cusparseOrder_t, cusparseOperation_t
CUSPARSE_INDEX_32I, CUSPARSE_INDEX_64I = 2, 3
CUSPARSE_INDEX_BASE_ZERO = 0
CUSPARSE_ORDER_ROW = 2
CUSPARSE_OPERATION_NON_TRANSPOSE = 0
# cusparseSpMMAlg_t
CUSPARSE_SPMM_ALG_DEFAULT = 0
CUSPARSE_SPMM_BLOCKED_ELL_ALG1 = 13
CUSPARSE_SPMM_BSR_ALG1 = 14


@functools.lru_cache(maxsize=None)
def value_dtypes() -> tuple:
    """The value dtypes the GPU backends take: float16, float32, float64, and bfloat16 where ml_dtypes is."""
    out = [np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)]
    bf16 = bfloat16()
    if bf16 is not None:
        out.insert(1, bf16)
    return tuple(out)


@functools.lru_cache(maxsize=None)
def bfloat16():
    """ml_dtypes' bfloat16 as a NumPy dtype, or None where ml_dtypes is missing."""
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(ml_dtypes.bfloat16)


_dtype_names: dict = {}


def dtype_name(dtype) -> str:
    """np.dtype(dtype).name, from a table (computing it costs 2-3 µs, and a product asks ~10 times)."""
    try:
        return _dtype_names[dtype]
    except (KeyError, TypeError):
        name = np.dtype(dtype).name
        try:
            _dtype_names[dtype] = name
        except TypeError:
            pass
        return name


def cuda_type(dtype) -> int:
    return _CUDA_TYPES[dtype_name(dtype)]


def index_type(dtype) -> int:
    return CUSPARSE_INDEX_32I if np.dtype(dtype) == np.int32 else CUSPARSE_INDEX_64I


def result_dtype(a_dtype, b_dtype) -> np.dtype:
    """NumPy's promotion, as the CPU backends give it: f16@f16 -> f16, bf16@bf16 -> bf16, f16@f32 -> f32."""
    return np.result_type(np.dtype(a_dtype), np.dtype(b_dtype))


@functools.lru_cache(maxsize=None)
def gpu_reason() -> str | None:
    """Why CuPy on a GPU cannot be used here, or None. Imports CuPy (only when asked)."""
    if not any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg")):
        return "no NVIDIA GPU on this machine (no /dev/nvidiactl or /dev/nvidia0)"
    try:
        import cupy
    except ImportError as exc:
        return f"CuPy is not installed ({exc}); install cupy-cuda12x or cupy-cuda13x to use the GPU"
    except Exception as exc:  # a broken CUDA install can raise anything at import
        return f"CuPy failed to import: {type(exc).__name__}: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"no usable CUDA GPU: {type(exc).__name__}: {exc}"
    if count < 1:
        return "no CUDA GPU is visible (cudaGetDeviceCount is 0)"
    return None


def current_stream_ptr() -> int:
    import cupy
    return int(cupy.cuda.get_current_stream().ptr)


def current_device() -> int:
    import cupy
    return int(cupy.cuda.runtime.getDevice())


def common_index(*arrays):
    """The index arrays in one dtype (int32 when every one is, else int64), copying only those that differ."""
    target = np.int32 if all(np.dtype(a.dtype) == np.int32 for a in arrays) else np.int64
    return [a if np.dtype(a.dtype) == target else a.astype(target) for a in arrays], np.dtype(target)


def contiguous(a):
    import cupy
    return a if a.flags.c_contiguous else cupy.ascontiguousarray(a)


def same_dtype(a, dtype):
    return a if np.dtype(a.dtype) == np.dtype(dtype) else a.astype(dtype)


def libcusparse_path() -> str:
    """Path of the libcusparse that CuPy loaded in this process (so Julia uses the same copy)."""
    import cupy
    cupy.cuda.device.get_cusparse_handle()  # makes CuPy load cuSPARSE
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if line.strip() else ""
                if "libcusparse.so" in path:
                    return path
    except OSError:
        pass
    return "libcusparse.so.12"
