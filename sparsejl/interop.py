"""Arrays of other libraries in and out, without copies: PyTorch tensors and DLPack arrays (JAX,
say) become NumPy or CuPy arrays on the way in, and results go back as the caller's kind.

NumPy and CuPy arrays pass through untouched, so the common call pays one type check. Nothing
here imports PyTorch, CuPy or JAX unless the caller's array is one of theirs.
"""

from __future__ import annotations

import contextlib

import numpy as np

_DLPACK_CPU, _DLPACK_CUDA = 1, 2


class Caller:
    """The caller's kind of array: converts results back, and says which CUDA stream to work on
    (PyTorch's current stream for CUDA tensors, so that products join the caller's stream, CUDA
    graph capture included)."""

    def __init__(self, library: str, on_gpu: bool, device: int | None = None):
        self.library, self.on_gpu, self.device = library, on_gpu, device

    def stream(self):
        if self.library != "torch" or not self.on_gpu:
            return contextlib.nullcontext()
        import cupy
        import torch
        stack = contextlib.ExitStack()
        stack.enter_context(cupy.cuda.Device(self.device))
        stack.enter_context(cupy.cuda.ExternalStream(torch.cuda.current_stream(self.device).cuda_stream,
                                                     self.device))
        return stack

    def back(self, a):
        """`a` (NumPy or CuPy) as the caller's kind, sharing memory."""
        if self.library == "torch":
            import torch
            if not self.on_gpu:
                return torch.from_numpy(a)
            if a.dtype.name == "bfloat16":   # through a 16-bit integer view: DLPack of bfloat16 varies by version
                return torch.from_dlpack(a.view(np.int16)).view(torch.bfloat16)
            return torch.from_dlpack(a)
        if self.library == "jax":
            import jax.numpy as jnp
            return jnp.from_dlpack(a)
        return a


def native(x):
    """(x as a NumPy or CuPy array, the `Caller` to convert results back, or None for NumPy/CuPy)."""
    t = type(x)
    if t is np.ndarray:
        return x, None
    module = t.__module__
    if module.startswith("cupy"):
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


def _from_torch(x):
    import torch
    if not isinstance(x, torch.Tensor):
        return x, None
    if x.layout != torch.strided:
        raise TypeError(f"a dense tensor is needed here, got layout {x.layout}")
    x = x.detach()
    if x.device.type == "cpu":
        if x.dtype == torch.bfloat16:
            raise TypeError("bfloat16 tensors are taken on the GPU only (the CPU kernels take float32/float64)")
        return x.numpy(), Caller("torch", False)
    if x.device.type == "cuda":
        import cupy
        device = x.device.index if x.device.index is not None else torch.cuda.current_device()
        with cupy.cuda.Device(device):
            if x.dtype == torch.bfloat16:
                from .backends import _cuda
                return cupy.from_dlpack(x.view(torch.int16)).view(_cuda.bfloat16()), Caller("torch", True, device)
            return cupy.from_dlpack(x), Caller("torch", True, device)
    raise TypeError(f"tensors on {x.device.type} are not supported; sparsejl takes CPU and CUDA tensors")
