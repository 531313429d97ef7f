"""Pin every library's thread count to one number, and say what each ended up with.

Julia reads ``JULIA_NUM_THREADS`` once, when sparsejl's runtime starts (lazily, on the first
product), so :func:`pin` must run before that. BLAS/OpenMP pools already loaded are limited
through threadpoolctl; PyTorch, MKL and GraphBLAS through their own setters.
"""
from __future__ import annotations

import os
import warnings
from typing import Dict, Optional, Sequence

__all__ = ["ENV_VARS", "pin", "report"]

ENV_VARS = ("JULIA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")

_limits = None  # threadpoolctl's limiter, kept alive for the whole process


def pin(n: int, backends: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """Set ``n`` threads everywhere this process can; returns what was set where.

    ``backends`` (names like ``"torch:csr"``) limits which peer libraries are imported to be
    pinned; None pins every one that is installed."""
    global _limits
    n = int(n)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    for var in ENV_VARS:
        os.environ[var] = str(n)
    try:
        from sparsejl import runtime
        if runtime.started() and runtime.julia_threads() != n:
            warnings.warn(f"Julia already runs with {runtime.julia_threads()} threads; "
                          f"JULIA_NUM_THREADS={n} takes effect in a new process")
    except Exception:
        pass
    try:
        from threadpoolctl import threadpool_limits
        _limits = threadpool_limits(limits=n)
    except ImportError:
        pass
    libs = {b.split(":")[0] for b in backends} if backends is not None else None

    def wanted(lib: str) -> bool:
        return libs is None or lib in libs

    if wanted("torch"):
        try:
            import torch
            torch.set_num_threads(n)
        except Exception:  # not installed, or a broken install: that peer reports itself
            pass
    if wanted("mkl"):
        try:
            import sparse_dot_mkl
            sparse_dot_mkl.mkl_set_num_threads(n)
        except Exception:
            pass
    if wanted("graphblas"):
        try:
            import graphblas
            graphblas.ss.config["nthreads"] = n
        except Exception:
            pass
    return report()


def _julia_threads() -> Optional[int]:
    try:
        from sparsejl import runtime
        return runtime.julia_threads() if runtime.started() else None
    except Exception:
        return None


def report() -> Dict[str, object]:
    """Thread settings as they are now, per library (None: not loaded or not known)."""
    out: Dict[str, object] = {"env": {v: os.environ.get(v) for v in ENV_VARS}}
    out["julia"] = _julia_threads()
    try:
        from threadpoolctl import threadpool_info
        out["threadpools"] = [{k: p.get(k) for k in ("user_api", "internal_api", "version",
                                                      "num_threads", "filepath")}
                              for p in threadpool_info()]
    except ImportError:
        out["threadpools"] = None
    import sys
    if "torch" in sys.modules:
        out["torch"] = sys.modules["torch"].get_num_threads()
    if "sparse_dot_mkl" in sys.modules:
        try:
            out["mkl"] = int(sys.modules["sparse_dot_mkl"].mkl_get_max_threads())
        except Exception:
            out["mkl"] = None
    if "graphblas" in sys.modules:
        try:
            out["graphblas"] = int(sys.modules["graphblas"].ss.config["nthreads"])
        except Exception:
            out["graphblas"] = None
    out["scipy_sparse"] = 1
    return out
