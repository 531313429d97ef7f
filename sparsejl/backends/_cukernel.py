"""Compiled CUDA kernels that both GPU backends launch: NVRTC -> cubin -> driver launch.

A `Kernel` is one cubin and one entry point in it, with its launch shape (threads, dynamic shared
memory, resident CTAs) and its parameter layout (a `struct` format). The "cupy" backend launches it
with `cuLaunchKernel` on CuPy's current stream, from the C extension `_culaunch` (through ctypes
where that is not built: 5.9–6.6 against 3.4–4.0 µs a launch on an H100 host); "julia-cuda" hands the
same cubin to Julia once (`cuModuleLoadData` there) and then the same packed parameters for each
launch, so the two backends time the very same machine code.

Parameters go by value through `kernelParams` (pointers into one packed host buffer), which lets a
kernel take 128-byte CUtensorMaps as `__grid_constant__` parameters: no device copy of the maps.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.resources
import struct
import threading
from dataclasses import dataclass, field

import numpy as np

try:  # cuLaunchKernel called from C (setup.py builds it); without it, the same call through ctypes
    from . import _culaunch
except ImportError:
    _culaunch = None

CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8


@dataclass(eq=False)
class Kernel:
    name: str
    cubin: bytes
    function: int           # CUfunction in the CuPy-side module (primary context)
    threads: tuple          # block shape (x, y, z)
    smem: int               # dynamic shared memory, bytes
    resident: int           # CTAs that fit on the device at once
    fmt: str                # struct format of the parameters, little-endian, unpadded
    offsets: np.ndarray = field(repr=False, default=None)   # int64 byte offset of each parameter
    module: object = field(repr=False, default=None)        # keeps the CuPy module alive

    def __post_init__(self):
        self.offsets = _offsets(self.fmt)
        self.offsets_address = self.offsets.ctypes.data     # read per launch by julia-cuda
        self.offsets_bytes = self.offsets.tobytes()         # read per launch by _culaunch
        self.size = struct.calcsize(self.fmt)


def _offsets(fmt: str) -> np.ndarray:
    """Byte offset of each parameter of a '<'-format ('128s' is one parameter of 128 bytes)."""
    import re
    out, pos = [], 0
    for count, code in re.findall(r"(\d*)([a-zA-Z?])", fmt.lstrip("<")):
        if code == "s":
            out.append(pos)
            pos += int(count or 1)
        else:
            for _ in range(int(count or 1)):
                out.append(pos)
                pos += struct.calcsize("<" + code)
    return np.array(out, dtype=np.int64)


@dataclass(eq=False)
class Launch:
    """One launch of `kernel`: grid (x, y, z), and the parameter bytes (`kernel.fmt` packed; bytes,
    or a ctypes buffer that its owner rewrites between launches)."""
    kernel: Kernel
    grid: tuple
    params: object
    keepalive: tuple = ()   # the device arrays behind the pointers in `params`


def arch() -> str:
    """NVRTC target of the current device: sm_90a on compute capability 9.0 (wgmma, setmaxnreg), else sm_XY."""
    import cupy
    cc = cupy.cuda.Device().compute_capability
    return "sm_90a" if cc == "90" else f"sm_{cc}"


def kernel_sources(name: str) -> tuple:
    """The source of kernel `name` (package data: kernels/<name>.cu) and the headers of that folder
    that it may include, as CuPy's nvrtc.createProgram takes them: (source, header sources, header
    names), the headers as bytes (it hands them to NVRTC as char*)."""
    folder = importlib.resources.files(__package__).joinpath("kernels")
    headers = sorted(p.name for p in folder.iterdir() if p.name.endswith(".cuh"))
    return (folder.joinpath(name + ".cu").read_text(), tuple(folder.joinpath(h).read_bytes() for h in headers),
            tuple(h.encode() for h in headers))


@functools.lru_cache(maxsize=None)
def compile_cubin(name: str, options: tuple, target: str) -> bytes:
    """NVRTC's cubin of kernel `name` (kernels/<name>.cu) for `target` with `options` (-D...)."""
    from cupy_backends.cuda.libs import nvrtc
    source, headers, include_names = kernel_sources(name)
    prog = nvrtc.createProgram(source, name + ".cu", headers, include_names)
    try:
        try:
            nvrtc.compileProgram(prog, (f"--gpu-architecture={target}", "-std=c++17") + tuple(options))
        except Exception as exc:
            raise RuntimeError(f"NVRTC failed on {name}: {exc}\n{nvrtc.getProgramLog(prog)}") from None
        return nvrtc.getCUBIN(prog)
    finally:
        nvrtc.destroyProgram(prog)


def load(name: str, options, fmt: str, threads, smem: int) -> Kernel:
    """Compile kernel `name` (kernels/<name>.cu) for the current device, load it in CuPy's context
    and size its launch."""
    import cupy
    from cupy_backends.cuda.api import driver
    threads = tuple(threads) + (1,) * (3 - len(tuple(threads)))
    cubin = compile_cubin(name, tuple(options), arch())
    module = cupy.cuda.function.Module()
    module.load(cubin)
    fn = module.get_function(name)
    if smem > 48 * 1024:
        driver.funcSetAttribute(fn.ptr, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem)
    nthreads = threads[0] * threads[1] * threads[2]
    try:
        per_sm = driver.occupancyMaxActiveBlocksPerMultiprocessor(fn.ptr, nthreads, smem)
    except Exception:
        per_sm = max(1, (227 * 1024) // max(smem, 1))
    sms = cupy.cuda.Device().attributes["MultiProcessorCount"]
    return Kernel(name, cubin, int(fn.ptr), threads, smem, max(1, per_sm) * sms, fmt, module=module)


@functools.lru_cache(maxsize=None)
def _cu_launch():
    fn = ctypes.CDLL("libcuda.so.1").cuLaunchKernel
    fn.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    fn.restype = ctypes.c_int
    return fn


_entry = 0                             # the address of cuLaunchKernel, for _culaunch
_PARAM_SPACE = 4096                    # bytes; the largest parameter list (TMA kernel) is ~450
_scratch = threading.local()           # per thread: a parameter buffer, and each kernel's pointers into it


def _param_space(k: Kernel):
    """(address of this thread's parameter buffer, address of `k`'s kernelParams table into it), for
    the ctypes path. cuLaunchKernel copies the parameters before it returns (also while a graph
    captures), so one buffer per thread serves every launch."""
    tables = getattr(_scratch, "tables", None)
    if tables is None:
        _scratch.buffer = ctypes.create_string_buffer(_PARAM_SPACE)
        tables = _scratch.tables = {}
    table = tables.get(k)
    if table is None:
        if k.size > _PARAM_SPACE:
            raise ValueError(f"{k.name} takes {k.size} bytes of parameters, more than {_PARAM_SPACE}")
        base = ctypes.addressof(_scratch.buffer)
        table = tables[k] = (base, (ctypes.c_void_p * len(k.offsets))(*[base + int(o) for o in k.offsets]))
    return table


def launch(L: Launch, stream: int, *, through_ctypes: bool = False) -> None:
    """cuLaunchKernel of `L` on `stream` (a CUstream address; 0 = legacy default): from C, or
    through ctypes where the extension is not built (or `through_ctypes`, which tests compare)."""
    global _entry
    k = L.kernel
    g = L.grid                                        # (x, y, z)
    if _culaunch is not None and not through_ctypes:
        if not _entry:
            _entry = ctypes.cast(_cu_launch(), ctypes.c_void_p).value
        status = _culaunch.launch(_entry, k.function, g, k.threads, k.smem, stream, L.params, k.offsets_bytes)
    else:
        base, pointers = _param_space(k)
        ctypes.memmove(base, L.params, len(L.params))
        status = _cu_launch()(k.function, g[0], g[1], g[2], k.threads[0], k.threads[1], k.threads[2], k.smem,
                              stream, pointers, None)
    if status != 0:
        raise RuntimeError(f"cuLaunchKernel({k.name}) failed with CUresult {status}")


def ptr(a) -> int:
    """Device address of a CuPy array, or 0 for None."""
    return 0 if a is None else int(a.data.ptr)


# ------------------------------------------------------------------ tensor maps (host, by value)

_CU_TENSOR_MAP_DATA_TYPE = {"float16": 6, "bfloat16": 9, "float32": 7}


@functools.lru_cache(maxsize=None)
def _encode_tiled():
    lib = ctypes.CDLL("libcuda.so.1")
    fn = lib.cuTensorMapEncodeTiled
    u64p, u32p = ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint32)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p, u64p, u64p, u32p, u32p,
                   ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


@functools.lru_cache(maxsize=4096)
def tensor_map_2d(address: int, inner: int, outer: int, dtype_name: str, box_inner: int = 64,
                  box_outer: int = 64) -> bytes:
    """A CUtensorMap (128 bytes) of a row-major outer x inner matrix at `address`: 128-byte swizzle,
    256-byte L2 promotion, out-of-bounds reads as zero (stores clipped). It holds only the address,
    sizes and strides, so a cached map stays right for any buffer later found there: nothing goes stale."""
    host = ctypes.create_string_buffer(128 + 64)
    at = ctypes.addressof(host) + (-ctypes.addressof(host)) % 64   # CUtensorMap is 64-byte aligned
    isz = 4 if dtype_name == "float32" else 2
    dims = (ctypes.c_uint64 * 2)(inner, outer)
    strides = (ctypes.c_uint64 * 1)(inner * isz)
    box = (ctypes.c_uint32 * 2)(box_inner, box_outer)
    one = (ctypes.c_uint32 * 2)(1, 1)
    status = _encode_tiled()(at, _CU_TENSOR_MAP_DATA_TYPE[dtype_name], 2, address, dims, strides, box, one,
                             0, 3, 3, 0)  # interleave none, swizzle 128B, L2 promotion 256B, OOB fill none
    if status != 0:
        raise RuntimeError(f"cuTensorMapEncodeTiled failed with CUresult {status}")
    return ctypes.string_at(at, 128)
