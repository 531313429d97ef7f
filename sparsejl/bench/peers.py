"""Contenders: one small adapter per library that multiplies the benchmark's matrices.

Each adapter says whether its library is there (and why not), whether it applies to a case,
and turns the case's SciPy operands into its own types in :meth:`Contender.prepare` — *before*
timing, so the timed call is the product alone. :meth:`Contender.result` converts the product
back to NumPy/SciPy for the checker, again outside the timing.

Names are ``"<library>:<format>"``; ``"dense"`` is the baseline (A densified once, NumPy BLAS).
"""
from __future__ import annotations

import functools
import warnings
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import scipy.sparse as sp

from . import julia_source

__all__ = ["Contender", "CONTENDERS", "get", "names", "CPU_DEFAULT", "MAIN_JOB", "Status", "statuses"]


class Contender:
    """Base adapter. Subclasses set ``name``, ``library``, ``fmt``, ``ops`` and ``prepare``."""

    name = ""
    library = ""
    fmt = "csr"          # how A is stored for this contender: "csr", "bsr", "csc" or "dense"
    ops: Tuple[str, ...] = ("spmm", "spgemm")
    install = ""         # what makes it available, for the "missing" reason
    #: how long its worker threads keep a core busy after a call: the sweep waits that long
    #: before timing the next library. Measured here (CPU time of the process in 10 ms windows
    #: after one call): Julia, PyTorch, MKL and GraphBLAS at most 10 ms; NumPy's OpenBLAS 110 ms.
    spin_s = 0.03

    def _probe(self) -> None:
        """Import what the library needs; raise ImportError/RuntimeError when it cannot."""

    @functools.lru_cache(maxsize=None)
    def availability(self) -> Tuple[bool, Optional[str]]:
        """``(available, reason)``; the reason says why not and how to get it."""
        try:
            self._probe()
        except Exception as exc:  # any failure to load means "missing", with its message
            hint = f" ({self.install})" if self.install else ""
            return False, f"{type(exc).__name__}: {exc}{hint}"
        return True, None

    def applies(self, case) -> Optional[str]:
        """``None`` if this contender can run ``case``, else why not."""
        if case.op not in self.ops:
            return f"{self.library} has no {case.op} in {self.fmt.upper()}"
        if self.fmt == "bsr" and case.blocksize < 2:
            return "blocksize 1 is unstructured: no BSR"
        return None

    def prepare(self, case, A: sp.csr_matrix, B) -> Callable[[], object]:
        """Convert the operands (untimed) and return the zero-argument call that is timed."""
        raise NotImplementedError

    def result(self, out):
        """The timed call's output as a NumPy array or SciPy sparse matrix."""
        return out

    def threads(self) -> Optional[int]:
        """Threads this contender computes with, as configured now (None if unknown)."""
        return None

    def extras(self, fn: Callable[[], object]) -> dict:
        """Further untimed measurements of the prepared call, merged into its record."""
        return {}


def _bsr(M, b: int):
    return M.tobsr(blocksize=(b, b)) if sp.issparse(M) else M


def _blas_threads() -> Optional[int]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    blas.sort(key=lambda p: "numpy" not in (p.get("filepath") or ""))  # NumPy's own BLAS first
    return blas[0].get("num_threads") if blas else None


class Dense(Contender):
    name, library, fmt = "dense", "NumPy BLAS", "dense"
    spin_s = 0.15
    #: a dense SpGEMM baseline beyond this many multiply-adds takes minutes and is not a target
    MAX_SPGEMM_FLOPS = 4e9

    def applies(self, case):
        if case.op == "spgemm" and case.m * case.k * case.n > self.MAX_SPGEMM_FLOPS:
            return (f"dense {case.m}x{case.k}·{case.k}x{case.n} is "
                    f"{case.m * case.k * case.n:.2g} multiply-adds: not run for SpGEMM "
                    f"beyond {self.MAX_SPGEMM_FLOPS:.0g}")
        return super().applies(case)

    def prepare(self, case, A, B):
        Ad = A.toarray()
        Bd = B.toarray() if sp.issparse(B) else B
        return lambda: Ad @ Bd

    def threads(self):
        return _blas_threads()


class SciPy(Contender):
    library = "SciPy"

    def __init__(self, fmt: str):
        self.fmt, self.name = fmt, f"scipy:{fmt}"

    def prepare(self, case, A, B):
        if self.fmt == "bsr":
            A, B = _bsr(A, case.blocksize), _bsr(B, case.blocksize)
        return lambda: A @ B

    def threads(self):
        return 1  # SciPy's sparse products are single-threaded


class SparsejlCall(Contender):
    """sparsejl's own kernels through its public API: ``sparsejl.spmm`` / ``sparsejl.spgemm``."""

    library = "sparsejl"
    install = "pip install -e . and scripts/install-julia.sh"

    def __init__(self, backend: str, fmt: str):
        self.backend, self.fmt = backend, fmt
        self.name = f"{backend}:{fmt}"

    def _probe(self):
        import sparsejl
        if not hasattr(sparsejl, "backends"):
            raise RuntimeError("sparsejl.backends() is not there (sparsejl core not installed)")
        for b in sparsejl.backends():
            if b.name == self.backend:
                if not b.available:
                    raise RuntimeError(b.reason or "unavailable")
                break
        else:
            raise RuntimeError(f"sparsejl has no backend {self.backend!r}")
        if self.backend == "julia":  # availability is only known once Julia has started
            from sparsejl import runtime
            runtime.get()

    def prepare(self, case, A, B):
        import sparsejl
        if self.fmt == "bsr":
            A, B = _bsr(A, case.blocksize), _bsr(B, case.blocksize)
        f = sparsejl.spgemm if case.op == "spgemm" else sparsejl.spmm
        backend = self.backend
        return lambda: f(A, B, backend=backend)

    def threads(self):
        try:
            from sparsejl import runtime
            return int(runtime.julia_threads())
        except Exception:
            return None

    def extras(self, fn):
        """Bytes Julia's GC counted during one call (``julia_alloc_bytes``), net of the
        counter read itself; needs the runtime's ``eval`` hook."""
        try:
            rt = _julia_runtime()
            reads = [int(rt.eval(_GC_BYTES))]
            reads.append(int(rt.eval(_GC_BYTES)))
            for _ in range(3):
                fn()
            reads.append(int(rt.eval(_GC_BYTES)))
        except Exception:
            return {}
        per_read = reads[1] - reads[0]
        return {"julia_alloc_bytes": max(0, (reads[2] - reads[1] - per_read) // 3)}


_GC_BYTES = "let r = Ref{Int64}(0); Base.gc_bytes(r); r[] end"


def _julia_runtime():
    from sparsejl import runtime
    rt = runtime.get()
    if not hasattr(rt, "eval"):
        raise RuntimeError("sparsejl's runtime has no eval hook")
    return rt


class JuliaKernel(Contender):
    """sparsejl's CSR SpMM entry point called in a loop *inside* Julia: the kernel's own time,
    so that ``julia:csr`` minus this is the cost of one Python→Julia call. Only for small
    products, where that cost matters."""

    name, library, fmt = "julia-kernel:csr", "sparsejl kernel, timed in Julia", "csr"
    ops = ("spmm",)
    install = "sparsejl's Julia runtime with its eval hook"
    MAX_SIZE = 1 << 16

    def _probe(self):
        from sparsejl import runtime
        why = runtime.unavailable_reason()
        if why:
            raise RuntimeError(why)
        _julia_runtime()

    def applies(self, case):
        if case.m * case.k > self.MAX_SIZE:
            return f"times the bare kernel of small products only (m·k ≤ {self.MAX_SIZE})"
        return super().applies(case)

    def prepare(self, case, A, B):
        import ctypes
        rt = _julia_runtime()
        m, k = A.shape
        n = B.shape[1]
        C = np.empty((m, n), dtype=np.result_type(A.dtype, B.dtype))
        from sparsejl import abi
        err = ctypes.create_string_buffer(1024)
        entry = abi.entry("csr_spmm")
        slots = entry.pack(m=m, k=k, n=n, nnz=A.nnz, indptr=A.indptr.ctypes.data, indices=A.indices.ctypes.data,
                           data=A.data.ctypes.data, B=B.ctypes.data, C=C.ctypes.data)
        args = np.array([ctypes.addressof(err), len(err), *slots], dtype=np.int64)
        fptr = rt.entry(entry.key(A.data.dtype, A.indices.dtype, B.dtype, C.dtype))
        self._held = (A, B, C, err, args)  # alive while Julia holds their addresses
        self._call = f"Ptr{{Cvoid}}({fptr}), Ptr{{Int64}}({args.ctypes.data})"
        once = f"ccall(Ptr{{Cvoid}}({fptr}), Int32, (Ptr{{Int64}},), Ptr{{Int64}}({args.ctypes.data}))"
        rt.eval(julia_source("time_entry.jl"))

        def run():
            status = rt.eval(once)
            if status.strip() != "0":
                raise RuntimeError(f"kernel status {status}: {err.value.decode(errors='replace')}")
            return C.copy()
        return run

    def threads(self):
        return SparsejlCall.threads(self)

    def time_inside(self, repeats, warmup, min_time):
        answer = _julia_runtime().eval(
            f"__sparsejl_bench_time({self._call}, {int(repeats)}, {int(warmup)}, {float(min_time)!r})")
        parts = answer.split()
        return [float(t) for t in parts[1:]], int(parts[0])


class Torch(Contender):
    library = "PyTorch"
    install = "pip install torch==2.13.0"

    def __init__(self, fmt: str):
        self.fmt, self.name = fmt, f"torch:{fmt}"
        self.ops = ("spmm", "spgemm") if fmt == "csr" else ("spmm",)

    def _probe(self):
        import torch  # noqa: F401

    def _tensor(self, M, b):
        import torch
        if not sp.issparse(M):
            return torch.from_numpy(M)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.fmt == "bsr":
                M = _bsr(M, b)
                return torch.sparse_bsr_tensor(torch.from_numpy(M.indptr),
                                               torch.from_numpy(M.indices),
                                               torch.from_numpy(M.data), size=M.shape)
            return torch.sparse_csr_tensor(torch.from_numpy(M.indptr), torch.from_numpy(M.indices),
                                           torch.from_numpy(M.data), size=M.shape)

    def prepare(self, case, A, B):
        tA, tB = self._tensor(A, case.blocksize), self._tensor(B, case.blocksize)
        return lambda: tA @ tB

    def result(self, out):
        import torch
        if out.layout == torch.sparse_csr:
            return sp.csr_matrix((out.values().numpy(), out.col_indices().numpy(),
                                  out.crow_indices().numpy()), shape=tuple(out.shape))
        return out.numpy()

    def threads(self):
        import torch
        return torch.get_num_threads()


class MKL(Contender):
    library = "Intel MKL (sparse_dot_mkl)"
    install = "pip install sparse_dot_mkl mkl"

    def __init__(self, fmt: str):
        self.fmt, self.name = fmt, f"mkl:{fmt}"
        self.ops = ("spmm", "spgemm") if fmt == "csr" else ("spmm",)

    def _probe(self):
        import sparse_dot_mkl
        sparse_dot_mkl.mkl_get_max_threads()

    def _mkl_indices(self, M, b):
        """MKL's integer width, so that sparse_dot_mkl does not convert inside the timing."""
        if not sp.issparse(M):
            return M
        import sparse_dot_mkl
        M = _bsr(M, b) if self.fmt == "bsr" else M.copy()
        idt = np.dtype(sparse_dot_mkl.mkl_interface_integer_dtype())
        M.indices, M.indptr = M.indices.astype(idt), M.indptr.astype(idt)
        return M

    def prepare(self, case, A, B):
        from sparse_dot_mkl import dot_product_mkl
        A, B = self._mkl_indices(A, case.blocksize), self._mkl_indices(B, case.blocksize)
        return lambda: dot_product_mkl(A, B)

    def threads(self):
        import sparse_dot_mkl
        return int(sparse_dot_mkl.mkl_get_max_threads())


class GraphBLAS(Contender):
    name, library, fmt = "graphblas:csr", "SuiteSparse:GraphBLAS", "csr"
    install = "pip install python-graphblas"

    def _probe(self):
        import graphblas  # noqa: F401

    def prepare(self, case, A, B):
        import graphblas as gb
        gA = gb.io.from_scipy_sparse(A)
        gB = gb.io.from_scipy_sparse(B) if sp.issparse(B) else gb.Matrix.from_dense(B)
        semiring = gb.semiring.plus_times

        def product():
            C = gA.mxm(gB, semiring).new()
            C.wait()  # no deferred work left outside the timing
            return C
        return product

    def result(self, out):
        import graphblas as gb
        return gb.io.to_scipy_sparse(out, format="csr")

    def threads(self):
        import graphblas as gb
        return int(gb.ss.config["nthreads"])


class JuliaSparseArrays(Contender):
    """Julia's standard library ``A*B`` (SparseMatrixCSC), timed inside a Julia process."""

    name, library, fmt = "sparsearrays:csc", "Julia SparseArrays", "csc"
    install = "scripts/install-julia.sh, or SPARSEJL_JULIA=/path/to/julia"

    def _probe(self):
        from . import juliapeer
        if juliapeer.julia_executable() is None:  # the process itself starts on first use
            raise RuntimeError("no julia executable found")

    def prepare(self, case, A, B):
        from . import juliapeer
        return juliapeer.server().prepare(case, A, B)

    def result(self, out):
        return out.result

    def time_inside(self, repeats: int, warmup: int, min_time: float):
        """Time the last prepared product inside Julia: ``(times_s, calls_per_sample)``."""
        from . import juliapeer
        return juliapeer.server().time_last(repeats, warmup, min_time)

    def threads(self):
        return 1  # SparseArrays' sparse·dense and sparse·sparse products are serial


#: Every contender the harness knows, in report order (the baseline first).
CONTENDERS: Dict[str, Contender] = {c.name: c for c in [
    Dense(),
    SparsejlCall("julia", "csr"), SparsejlCall("julia", "bsr"),
    SciPy("csr"), SciPy("bsr"),
    Torch("csr"), Torch("bsr"),
    MKL("csr"), MKL("bsr"),
    GraphBLAS(),
    JuliaSparseArrays(),
    JuliaKernel(),
]}

#: The CPU contenders of a comparison run: everything above.
CPU_DEFAULT: List[str] = list(CONTENDERS)
#: The main job needs only NumPy, SciPy and sparsejl itself.
MAIN_JOB: List[str] = ["dense", "julia:csr", "julia:bsr", "scipy:csr", "scipy:bsr"]


def get(name) -> Contender:
    """Look up a contender by name (a Contender passes through)."""
    if isinstance(name, Contender):
        return name
    try:
        return CONTENDERS[name]
    except KeyError:
        raise KeyError(f"unknown backend {name!r}; known: {', '.join(CONTENDERS)}") from None


def names() -> List[str]:
    return list(CONTENDERS)


class Status(NamedTuple):
    """A contender as a front end lists it: ``sweepable`` False for sparsejl backends that the
    sweep cannot time (the GPU ones: their numbers come from ``python -m sparsejl.bench.gpu``)."""
    name: str
    device: str
    library: str
    fmt: str
    available: bool
    reason: Optional[str]
    sweepable: bool = True


def statuses() -> List[Status]:
    """Every contender, whether it is usable here and why not; then sparsejl's backends (from
    the one registry, ``sparsejl.backends()``) that no contender times."""
    out = []
    for name, c in CONTENDERS.items():
        try:
            ok, why = c.availability()
        except Exception as exc:
            ok, why = False, f"{type(exc).__name__}: {exc}"
        out.append(Status(name, "cpu", c.library, c.fmt, bool(ok), why))
    from ..backends import backends as registered
    swept = {getattr(c, "backend", None) for c in CONTENDERS.values()}
    for b in registered():
        if b.name in swept or b.device != "gpu":
            continue
        why = b.reason if not b.available else (
            "usable here, but sparsejl.bench.sweep has no GPU contender: measure with "
            "python -m sparsejl.bench.gpu and load its report")
        out.append(Status(b.name, "gpu", "sparsejl", "", False, why, sweepable=False))
    return out
