"""What a result was measured on: CPU, cores, memory, load, threads, BLAS, library versions."""
from __future__ import annotations

import datetime
import functools
import io
import os
import platform
import subprocess
import sys
from contextlib import redirect_stdout
from typing import Dict, Optional

from . import threads

__all__ = ["capture", "cpu_model", "versions", "numpy_blas", "julia_info"]

#: distributions whose versions a report gives (read from metadata: nothing is imported)
_DISTRIBUTIONS = ("numpy", "scipy", "sparsejl", "torch", "sparse-dot-mkl", "mkl",
                  "python-graphblas", "suitesparse-graphblas", "matplotlib", "threadpoolctl", "tqdm", "psutil", "py-cpuinfo")


def cpu_model() -> Optional[str]:
    """The processor's name, as py-cpuinfo reads it (``/proc/cpuinfo`` on Linux)."""
    return _cpu_info().get("brand_raw") or platform.processor() or None


@functools.lru_cache(maxsize=1)
def _cpu_info() -> dict:
    try:
        import cpuinfo
        return cpuinfo.get_cpu_info()
    except Exception:   # not installed, or a platform it cannot read
        return {}


def _cpu_flags():
    have = set(_cpu_info().get("flags") or ())
    return [x for x in ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if x in have] or None


def _memory_bytes() -> Optional[int]:
    try:
        import psutil
        return int(psutil.virtual_memory().total)
    except ImportError:
        return None


def _physical_cores() -> Optional[int]:
    try:
        import psutil
        return psutil.cpu_count(logical=False)
    except ImportError:
        return None


def versions() -> Dict[str, Optional[str]]:
    """Versions of the libraries compared (None: not installed); MKL's and GraphBLAS's own
    library versions too once the peers have loaded them."""
    from importlib import metadata
    out: Dict[str, Optional[str]] = {}
    for name in _DISTRIBUTIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if out["sparsejl"] is None:  # run from a source tree that is not pip-installed
        try:
            import sparsejl
            out["sparsejl"] = f"{sparsejl.__version__} (source tree)"
        except Exception:
            pass
    if "sparse_dot_mkl" in sys.modules:
        try:
            out["mkl library"] = sys.modules["sparse_dot_mkl"].mkl_get_version_string()
        except Exception:
            pass
    if "graphblas" in sys.modules:
        try:
            about = sys.modules["graphblas"].ss.about
            out["SuiteSparse:GraphBLAS library"] = str(about["library_version"])
        except Exception:
            pass
    return out


def numpy_blas() -> Optional[dict]:
    """NumPy's BLAS as NumPy reports it (name, version, openblas configuration)."""
    import numpy as np
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return {k: blas.get(k) for k in ("name", "version", "openblas configuration")}
    except TypeError:  # an old NumPy without mode=: keep its text
        buf = io.StringIO()
        with redirect_stdout(buf):
            np.show_config()
        return {"text": buf.getvalue()[:2000]}


def julia_info() -> Dict[str, object]:
    """sparsejl's embedded Julia (version, threads) when started; the ``julia`` executable's
    version either way (that one runs the SparseArrays peer)."""
    out: Dict[str, object] = {"runtime_version": None, "runtime_threads": None}
    try:
        from sparsejl import runtime
        if runtime.started():
            out["runtime_version"] = str(runtime.julia_version())
            out["runtime_threads"] = int(runtime.julia_threads())
            out["runtime_start_s"] = round(runtime.get().start_seconds, 3)
    except Exception as exc:
        out["runtime_error"] = f"{type(exc).__name__}: {exc}"
    from .juliapeer import julia_executable
    exe = julia_executable()
    out["executable"] = exe
    if exe:
        try:
            out["executable_version"] = subprocess.run(
                [exe, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
        except Exception:
            out["executable_version"] = None
    return out


def capture() -> Dict[str, object]:
    """Everything above, plus time, platform and load averages, as one JSON-able dict."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(),
        "cpu_flags": _cpu_flags(),
        "logical_cores": os.cpu_count(),
        "physical_cores": _physical_cores(),
        "usable_cores": affinity,
        "memory_bytes": _memory_bytes(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "threads": threads.report(),
        "numpy_blas": numpy_blas(),
        "versions": versions(),
        "julia": julia_info(),
    }
