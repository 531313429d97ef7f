"""Arrays of other libraries in and out, without copies: PyTorch tensors and DLPack arrays (JAX,
say) become NumPy or CuPy arrays on the way in, and results go back as the caller's kind.

NumPy and CuPy arrays pass through untouched, so the common call pays one type check. Nothing
here imports PyTorch, CuPy or JAX unless the caller's array is one of theirs.
"""

from __future__ import annotations

import contextlib
import sys

import numpy as np

_DLPACK_CPU, _DLPACK_CUDA = 1, 2
_TORCH_DTYPES = {"float16": lambda t: t.float16, "bfloat16": lambda t: t.bfloat16,
                 "float32": lambda t: t.float32, "float64": lambda t: t.float64}


class Caller:
    """The caller's kind of array: converts results back, and says which CUDA stream to work on
    (PyTorch's current stream for CUDA tensors, so that products join the caller's stream, CUDA
    graph capture included)."""

    def __init__(self, library: str, on_gpu: bool, device: int | None = None):
        self.library, self.on_gpu, self.device = library, on_gpu, device

    def stream(self):
        """Where the product goes: for CUDA tensors, CuPy made to run on PyTorch's current stream
        (no cross-stream wait, which would also break a CUDA graph capture)."""
        if self.library != "torch" or not self.on_gpu:
            return contextlib.nullcontext()
        return _torch_stream(self.device)

    def empty(self, shape, dtype):
        """(an uninitialised result as NumPy/CuPy, the same memory as the caller's kind). PyTorch's
        allocator makes it for tensors, so that CUDA graph capture gets its memory from PyTorch's
        graph pools, as for PyTorch's own results."""
        if self.library != "torch":
            return None
        import torch
        t = torch.empty(shape, dtype=_TORCH_DTYPES[np.dtype(dtype).name](torch),
                        device=f"cuda:{self.device}" if self.on_gpu else "cpu")
        return native(t)[0], t

    def back(self, a):
        """`a` (NumPy or CuPy) as the caller's kind, sharing memory."""
        if self.library == "torch":
            import torch
            if not self.on_gpu:
                return torch.from_numpy(a)
            with _torch_stream(self.device):
                if a.dtype.name == "bfloat16":   # through a 16-bit integer view: DLPack's bfloat16 varies by version
                    return torch.from_dlpack(a.view(np.int16)).view(torch.bfloat16)
                return torch.from_dlpack(a)
        if self.library == "jax":
            import jax.numpy as jnp
            return jnp.from_dlpack(a)
        return a


_MODULES: dict = {np.ndarray: np}   # array types taken as they are -> their module (CuPy's once seen)


def array_module(a):
    """numpy, or cupy for CuPy arrays, without importing cupy otherwise."""
    t = type(a)
    found = _MODULES.get(t)
    if found is None:
        if not t.__module__.startswith("cupy"):
            return np
        import cupy
        found = _MODULES[t] = cupy
    return found


def native(x):
    """(x as a NumPy or CuPy array, the `Caller` to convert results back, or None for NumPy/CuPy)."""
    t = type(x)
    if t in _MODULES:
        return x, None
    module = t.__module__
    if module.startswith("cupy"):
        array_module(x)   # remembered: the next one is taken at the first test
        return x, None
    if module.startswith("torch"):
        return _from_torch(x)
    if hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__"):
        kind, device = x.__dlpack_device__()
        library = "jax" if module.startswith("jax") else "dlpack"
        if kind == _DLPACK_CPU:
            return np.from_dlpack(x), Caller(library, False)
        if kind == _DLPACK_CUDA:
            import cupy
            return cupy.from_dlpack(x), Caller(library, True, int(device))
        raise TypeError(f"{t.__name__} lives on a DLPack device of type {kind}; sparsejl takes CPU and CUDA arrays")
    return x, None


def torch_sparse_parts(t):
    """(format, data, indices, indptr, shape, blocksize) of a PyTorch sparse CSR or BSR tensor, as
    NumPy or CuPy arrays over its memory, or None for anything else."""
    if not type(t).__module__.startswith("torch"):
        return None
    import torch
    if not isinstance(t, torch.Tensor) or t.layout not in (torch.sparse_csr, torch.sparse_bsr):
        return None
    if t.dim() != 2:
        raise ValueError(f"a sparse matrix has 2 dimensions, got a {t.dim()}-D sparse tensor")
    data, _ = native(t.values())
    indices, _ = native(t.col_indices())
    indptr, _ = native(t.crow_indices())
    if t.layout == torch.sparse_csr:
        return "csr", data, indices, indptr, tuple(t.shape), 1
    b = tuple(t.values().shape[1:])
    if len(b) != 2 or b[0] != b[1]:
        raise ValueError(f"sparsejl's BSR uses square blocks, got blocks of shape {b}")
    return "bsr", data, indices, indptr, tuple(t.shape), b[0]


def is_torch_sparse(a) -> bool:
    return type(a).__module__.startswith("torch") and getattr(a, "layout", None) is not None and \
        str(a.layout) in ("torch.sparse_csr", "torch.sparse_bsr")


def torch_sparse_back(result):
    """A SciPy/CuPy/sparsejl CSR or BSR result as a PyTorch sparse tensor over the same arrays."""
    import torch

    def tensor(a):
        a = np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a
        return torch.from_numpy(a) if isinstance(a, np.ndarray) else torch.from_dlpack(a)
    indptr, indices, data = tensor(result.indptr), tensor(result.indices), tensor(result.data)
    indices = indices.to(indptr.dtype)
    if result.format == "bsr":
        return torch.sparse_bsr_tensor(indptr, indices, data, size=tuple(result.shape))
    return torch.sparse_csr_tensor(indptr, indices, data, size=tuple(result.shape))


def _from_torch(x):
    import torch
    if not isinstance(x, torch.Tensor):
        return x, None
    if x.layout != torch.strided:
        raise TypeError(f"a dense tensor is needed here, got layout {x.layout} (sparse tensors go in as A)")
    x = x.detach()
    if x.device.type == "cpu":
        if x.dtype == torch.bfloat16:
            raise TypeError("bfloat16 tensors are taken on the GPU only (the CPU kernels take float32/float64)")
        return x.numpy(), Caller("torch", False)
    if x.device.type == "cuda":
        import cupy
        device = x.device.index if x.device.index is not None else torch.cuda.current_device()
        with _torch_stream(device):
            if x.dtype == torch.bfloat16:
                from .backends import _cuda
                return cupy.from_dlpack(x.view(torch.int16)).view(_cuda.bfloat16()), Caller("torch", True, device)
            return cupy.from_dlpack(x), Caller("torch", True, device)
    raise TypeError(f"tensors on {x.device.type} are not supported; sparsejl takes CPU and CUDA tensors")


@contextlib.contextmanager
def _torch_stream(device: int):
    """For the block: CuPy's current device and stream made PyTorch's current ones, and CuPy's
    allocations served by PyTorch's caching allocator (which, under torch.cuda.graph, takes them
    from the graph's pool: CuPy's own pool would call cudaMalloc, which a capture forbids)."""
    import warnings

    import cupy
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # ExternalStream: CuPy 14 prefers from_external
        stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(device).cuda_stream, device)
    with cupy.cuda.Device(device), stream, cupy.cuda.using_allocator(_torch_allocator(device)):
        yield


class _TorchBlock:
    """Memory from PyTorch's caching allocator, handed back when CuPy lets go of it."""

    def __init__(self, ptr: int, free):
        self.ptr, self.free = ptr, free   # `free` held: at exit, importing torch may no longer work

    def __del__(self, _finalizing=sys.is_finalizing):
        # at interpreter exit torch's modules are already torn down (its free fails on
        # torch._C = None); the process hands the device memory back as it ends
        if not _finalizing():
            self.free(self.ptr)


def _torch_allocator(device: int):
    def allocate(size: int):
        import cupy
        import torch
        ptr = torch.cuda.caching_allocator_alloc(size, device, torch.cuda.current_stream(device))
        return cupy.cuda.MemoryPointer(cupy.cuda.UnownedMemory(ptr, size, _TorchBlock(ptr, torch.cuda.caching_allocator_delete), device), 0)
    return allocate
