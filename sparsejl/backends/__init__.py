"""The one place that knows which backends exist, whether each is usable here, and why not."""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass

# module per backend; GPU modules import their libraries only when asked for availability or work
_MODULES = {
    "julia": "sparsejl.backends.julia",
    "scipy": "sparsejl.backends.scipy",
    "dense": "sparsejl.backends.dense",
    "cupy": "sparsejl.backends.cupy_backend",
    "cupy-dense": "sparsejl.backends.cupy_dense",
    "julia-cuda": "sparsejl.backends.julia_cuda",
}
CPU_DEFAULT_ORDER = ("julia", "scipy")
GPU_DEFAULT_ORDER = ("cupy", "julia-cuda", "cupy-dense")  # fastest first, as measured on an H200


@dataclass(frozen=True)
class BackendStatus:
    name: str
    device: str
    available: bool
    reason: str | None

    def __str__(self) -> str:
        return f"{self.name} ({self.device}): " + ("available" if self.available else f"unavailable: {self.reason}")


_loaded: dict = {}


def backend(name: str):
    """The `Backend` (backends/protocol.py) called `name`; its module is imported on first use."""
    found = _loaded.get(name)
    if found is None:
        if name not in _MODULES:
            raise ValueError(f"unknown backend {name!r}; backends are {', '.join(_MODULES)}")
        found = _loaded[name] = importlib.import_module(_MODULES[name]).BACKEND
    return found


def status(name: str) -> BackendStatus:
    b = backend(name)
    reason = b.availability()
    return BackendStatus(name, b.device, reason is None, reason)


def backends() -> list[BackendStatus]:
    """Every backend with whether it is available here and, if not, why."""
    return [status(name) for name in _MODULES]


_warned_fallback = False


def select(name: str | None, on_gpu: bool):
    """The `Backend` to run: `name`, or the default for where the operands live."""
    global _warned_fallback
    if name is not None:
        chosen = backend(name)
        reason = chosen.availability()
        if reason is not None:
            raise RuntimeError(f"backend {name!r} is unavailable: {reason}")
        if (chosen.device == "gpu") != on_gpu:
            where = "GPU" if on_gpu else "CPU"
            raise TypeError(f"backend {name!r} runs on the {chosen.device.upper()} but the operands are {where} arrays")
        return chosen
    order = GPU_DEFAULT_ORDER if on_gpu else CPU_DEFAULT_ORDER
    for candidate in order:
        chosen = backend(candidate)
        if chosen.availability() is None:
            if candidate != order[0] and not _warned_fallback and not on_gpu:
                _warned_fallback = True
                warnings.warn(f"sparsejl: Julia is unavailable, using the 'scipy' backend. "
                              f"{backend(order[0]).availability()}", RuntimeWarning, stacklevel=3)
            return chosen
    raise RuntimeError("no " + ("GPU" if on_gpu else "CPU") + " backend is available: " +
                       "; ".join(str(status(n)) for n in order))
