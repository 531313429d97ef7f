"""The sweep: every case × every backend, checked, then timed.

Stable API (the Jupyter explorer uses it too)::

    from sparsejl.bench.sweep import Case, run
    records = run([Case("bert-base", "ffn.up", 3072, 768, 128, 0.1, 32)],
                  ["dense", "julia:bsr", "scipy:bsr"],
                  repeats=5, warmup=1, progress=None, should_stop=None)

``Case`` fields: ``model, layer, m, k, n, density, blocksize, dtype="float32", op="spmm",
seed=0, operand_b="random"``. SpMM is ``A (m×k sparse) @ B (k×n dense)``; SpGEMM is
``A (m×k) @ B (k×n)``, both sparse, B random with the same density and blocksize, or
``operand_b="transpose"`` for ``A @ Aᵀ`` (then ``n == m``).

``backends`` are names from :data:`sparsejl.bench.peers.CONTENDERS` (``"dense"``,
``"julia:csr"``, ``"julia:bsr"``, ``"scipy:csr"``, ``"torch:bsr"``, ``"mkl:csr"``,
``"graphblas:csr"``, ``"sparsearrays:csc"``, ...) or :class:`~sparsejl.bench.peers.Contender`
objects.

``run`` returns one record (a dict) per case and backend, in order, each with the case's
fields plus:

* ``backend``, ``library``, ``format``, ``threads`` (threads it computed with, None if unknown)
* ``status``: ``"ok"``; ``"missing"`` (library not installed or not working here: ``reason``
  says why); ``"skipped"`` (does not apply to the case, e.g. BSR at blocksize 1, or one call
  took longer than ``max_call_s`` — then higher densities of the same sweep line are skipped
  without running); ``"error"`` (raised, or its result failed the check:
  ``reason`` has the message); ``"stopped"`` (``should_stop()`` said stop before it ran)
* ``reason``: str or None
* ``times_s``: seconds per call of each timed sample (``repeats`` of them), ``median_s``,
  ``calls_per_sample`` (fast calls are repeated within a sample to dwarf the clock's resolution)
* ``speedup_vs_dense``: median of ``"dense"`` on the same case ÷ this median (None when dense
  was not run or failed); dense itself is 1.0. Dense is timed first and again last in each
  case; its ``median_s`` is the lower of the two medians (both in ``baseline_medians_s``), so
  a burst of outside load on one of them does not inflate the case's speedups
* ``cold_s``: one call after 20 ms of idle, ``after_dense_s``: one call right after NumPy's product
  of an attention projection (nothing waited out); medians of 5 (SpMM, ``user_path=True``).
  The warm ``median_s`` is what a stream of calls gets; these are what a model's calls get
* ``peak_bytes``: peak Python-heap bytes (tracemalloc: NumPy and Python allocations, not
  memory allocated inside Julia, PyTorch, MKL or GraphBLAS) of one extra untimed call (only
  where a call takes under ``MEMORY_CALL_S``; None otherwise);
  ``output_bytes``: bytes of the product it returned
* ``nnz``, ``actual_density``: of the sparse operand A as drawn; ``check_error``: the worst
  error over the allowed error (< 1 passed)
* sparsejl's Julia backends add ``julia_alloc_bytes`` (Julia GC bytes per call) when the
  runtime can tell

Each measurement: convert operands (untimed), one call whose result is checked against a
float64 SciPy reference, ``warmup`` untimed calls, then ``repeats`` timed samples; the median
is reported. Each backend is timed alone, after a short pause that lets the previous library's
worker threads go idle. ``progress(record, done, total)`` is called for every record once its
case is finished (with its speedup). ``should_stop()`` is polled before each backend and
before each sample (a record cut short says "stopped" and has no median).
"""
from __future__ import annotations

import dataclasses
import gc
import math
import time
import tracemalloc
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional, Sequence

import numpy as np
import scipy.sparse as sp

from .verify import verify
from . import matrices, peers, records as _records

__all__ = ["Case", "run", "RECORD_FIELDS"]

RECORD_FIELDS = _records.MEASUREMENT_FIELDS   # the one schema: sparsejl.bench.records

#: A timed sample lasts at least this long: fast calls are repeated within it.
MIN_SAMPLE_S = 2e-3
#: Memory is measured by one more call only where that call is cheaper than this.
MEMORY_CALL_S = 0.5
#: Warm-up lasts at least this long (or WARM_CALLS calls), beyond the asked-for warm-up calls:
#: on this VM the first calls after another library ran can take twice as long (fresh output
#: memory faulted in), and a fixed count of one or two calls did not cover that.
WARM_S = 0.2
WARM_CALLS = 20
#: Longest pause before timing a backend, so that the previous library's threads have gone
#: idle; the pause is the previous library's ``spin_s`` up to this.
SETTLE_S = 0.25
#: the user-path columns: idle before a cold call, and samples of each column
IDLE_S = 0.02
USER_PATH_SAMPLES = 5


@dataclass(frozen=True)
class Case:
    """One product to measure. ``m×k`` sparse ``A``; ``n`` tokens (SpMM) or columns of B."""

    model: str
    layer: str
    m: int
    k: int
    n: int
    density: float
    blocksize: int = 1
    dtype: str = "float32"
    op: str = "spmm"
    seed: int = 0
    operand_b: str = "random"

    def label(self) -> str:
        b = f"BSR{self.blocksize}" if self.blocksize > 1 else "unstructured"
        what = f"{self.m}x{self.k}" + (f"·{self.n} tokens" if self.op == "spmm" else
                                        (" · its transpose" if self.operand_b == "transpose"
                                         else f" · {self.k}x{self.n}"))
        return f"{self.model} {self.layer} {self.op} {what} d={self.density:g} {b} {self.dtype}"


class _Timer:
    """One backend's prepared call: warm-up, then samples back to back.

    Each backend is timed alone, after a pause of the previous library's ``spin_s`` (at most
    ``SETTLE_S``): the worker threads of the library timed before it (OpenBLAS spin-waits for
    about 110 ms after a call) are then asleep and take no core from it. Interleaving the backends' samples instead made a 16×16
    product take milliseconds in PyTorch and MKL here, their pools spinning against each other.
    """

    def __init__(self, contender, fn, rec, first_s):
        self.c, self.fn, self.rec, self.first_s = contender, fn, rec, first_s
        self.inside = hasattr(contender, "time_inside")  # timed by the library's own clock
        self.number, self.times = 1, []

    def warm(self, warmup: int) -> None:
        if self.inside:
            self.fn()  # leaves the operands loaded where the contender times them
            self.warmup = warmup
            return
        one, calls, start = self.first_s, 0, time.perf_counter()
        while calls < max(warmup, 1) or (calls < WARM_CALLS and
                                         time.perf_counter() - start < WARM_S):
            t0 = time.perf_counter()
            self.fn()
            one = time.perf_counter() - t0  # the last warm-up call sizes the samples
            calls += 1
        if one < MIN_SAMPLE_S:
            self.number = min(1000, math.ceil(MIN_SAMPLE_S / max(one, 1e-7)))

    def sample(self) -> None:
        if self.inside:
            times, self.number = self.c.time_inside(1, self.warmup, MIN_SAMPLE_S)
            self.warmup = 0
            self.times += times
            return
        fn, number = self.fn, self.number
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        self.times.append((time.perf_counter() - t0) / number)

    def user_path(self, other) -> None:
        """The call as a model makes it: after `IDLE_S` of idle (`cold_s`), and right after
        `other()`, another library's product, with nothing waited out (`after_dense_s`);
        medians of `USER_PATH_SAMPLES` single calls each (bench/user_path.py has the full study)."""
        if self.inside or self.rec["status"] != "ok":
            return
        cold, after = [], []
        for _ in range(USER_PATH_SAMPLES):
            time.sleep(IDLE_S)
            t0 = time.perf_counter()
            self.fn()
            cold.append(time.perf_counter() - t0)
        for _ in range(USER_PATH_SAMPLES):
            other()
            t0 = time.perf_counter()
            self.fn()
            after.append(time.perf_counter() - t0)
        self.rec.update(cold_s=float(np.median(cold)), after_dense_s=float(np.median(after)))

    def finish(self) -> None:
        rec = self.rec
        rec.update(times_s=self.times, median_s=float(np.median(self.times)),
                   calls_per_sample=self.number)
        if not self.inside and rec["median_s"] < MEMORY_CALL_S:
            peak, out = _peak_bytes(self.fn)
            rec.update(peak_bytes=int(peak), output_bytes=_nbytes(self.c.result(out)))
            rec.update(self.c.extras(self.fn))


def _peak_bytes(fn: Callable[[], object]):
    gc.collect()
    tracemalloc.start()
    try:
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, out


def _nbytes(C) -> Optional[int]:
    if sp.issparse(C):
        return int(C.data.nbytes + C.indices.nbytes + C.indptr.nbytes)
    nbytes = getattr(C, "nbytes", None)
    return int(nbytes) if nbytes is not None else None


def _record(case: Case, c: peers.Contender, status: str, reason=None, **extra) -> dict:
    rec = dataclasses.asdict(case)
    rec.update(backend=c.name, library=c.library, format=c.fmt, threads=None, status=status,
               reason=reason, times_s=[], median_s=None, calls_per_sample=None,
               speedup_vs_dense=None, peak_bytes=None, output_bytes=None, nnz=None,
               actual_density=None, check_error=None, cold_s=None, after_dense_s=None)
    rec.update(extra)
    return _records.normalize(rec)


def _checked(case, c, A, B, ref, bound, max_call_s):
    """Prepare ``c`` and check its result: ``(record, timer)``; timer is None when it is not
    to be timed (missing, not applicable, wrong, or too slow)."""
    ok, why = c.availability()
    if not ok:
        return _record(case, c, "missing", why), None
    why = c.applies(case)
    if why:
        return _record(case, c, "skipped", why), None
    try:
        fn = c.prepare(case, A, B)
        t0 = time.perf_counter()
        out = fn()
        first = time.perf_counter() - t0
        err = verify(c.result(out), ref, bound, case.dtype)
        del out
    except Exception as exc:
        return _record(case, c, "error", f"{type(exc).__name__}: {exc}"), None
    rec = _record(case, c, "ok", threads=c.threads(), check_error=err)
    if max_call_s is not None and first > max_call_s:
        t0 = time.perf_counter()  # the first call may have compiled the kernel: once more
        fn()
        first = time.perf_counter() - t0
    if max_call_s is not None and first > max_call_s:
        rec.update(status="skipped", times_s=[first],
                   reason=f"one call took {first:.3g} s > max_call_s={max_call_s:g}")
        return rec, None
    return rec, _Timer(c, fn, rec, first)


def _group(case: Case) -> tuple:
    """A case with its density left out: the line a density sweep draws."""
    d = dataclasses.asdict(case)
    d.pop("density")
    d.pop("seed")
    return tuple(sorted(d.items()))


def _guarded(timer, step, *args) -> bool:
    try:
        step(*args)
        return True
    except Exception as exc:
        timer.rec.update(status="error", reason=f"{type(exc).__name__} while timing: {exc}",
                         times_s=[], median_s=None)
        return False


def _baseline_again(case, recs, built, repeats, warmup, stop, settle_s) -> None:
    """Time ``"dense"`` a second time, after the case's other backends, and keep the faster of
    its two medians: one unlucky baseline (a burst of load from elsewhere) would otherwise
    inflate every speedup of the case. Both medians stay in ``baseline_medians_s``."""
    first = next((r for r in recs if r["backend"] == "dense" and r["status"] == "ok"), None)
    if first is None or len(recs) < 2 or stop():
        return
    again = _one(case, peers.get("dense"), built, {}, repeats, warmup, None, stop, settle_s)
    if again is None or again["status"] != "ok":
        return
    medians = [first["median_s"], again["median_s"]]
    first.update(baseline_medians_s=medians, median_s=min(medians),
                 times_s=first["times_s"] + again["times_s"])


class _Latch:
    """``should_stop`` polled until it first says yes, then yes for good."""

    def __init__(self, should_stop):
        self.should_stop, self.stopped = should_stop, False

    def __call__(self) -> bool:
        self.stopped = self.stopped or bool(self.should_stop and self.should_stop())
        return self.stopped


def _one(case, c, built, too_slow, repeats, warmup, max_call_s, stop, settle_s, user_path=False) -> Optional[dict]:
    """Check, then time, one backend on one case; None when it needs operands not yet built."""
    if stop():
        return _record(case, c, "stopped", "stopped before this measurement")
    slow = too_slow.get((c.name, _group(case)))
    if slow is not None and case.density >= slow[0]:
        return _record(case, c, "skipped", f"at density {slow[0]:g} one call took "
                       f"{slow[1]:.3g} s > max_call_s={max_call_s:g}: not run at higher densities")
    if not c.availability()[0]:
        return _checked(case, c, None, None, None, None, max_call_s)[0]
    if built is None:
        return None
    rec, timer = _checked(case, c, *built, max_call_s)
    rec.update(nnz=int(built[0].nnz), actual_density=built[0].nnz / float(case.m * case.k))
    if timer is None:
        if rec["status"] == "skipped" and rec["times_s"]:  # over max_call_s
            too_slow[(c.name, _group(case))] = (case.density, rec["times_s"][0])
        return rec
    time.sleep(settle_s)
    if not _guarded(timer, timer.warm, warmup):
        return rec
    for _ in range(repeats):
        if stop():
            rec.update(status="stopped", reason="stopped while timing", times_s=timer.times)
            return rec
        if not _guarded(timer, timer.sample):
            return rec
    _guarded(timer, timer.finish)
    if user_path and case.op == "spmm":
        _guarded(timer, timer.user_path, _attention_product(case))
    return rec


def _attention_product(case):
    """NumPy's product of an attention projection beside the layer (tokens × h by h × h, h the
    layer's smaller side, at most 1024): the dense call a model makes between two of ours."""
    h = min(case.m, case.k, 1024)
    rng = np.random.default_rng(case.seed + 11)
    x = rng.standard_normal((max(case.n, 1), h)).astype(case.dtype)
    w = rng.standard_normal((h, h)).astype(case.dtype)
    return lambda: x @ w


def run(cases: Iterable[Case], backends: Sequence, *, repeats: int = 5, warmup: int = 1,
        progress: Optional[Callable[[dict, int, int], None]] = None,
        should_stop: Optional[Callable[[], bool]] = None,
        max_call_s: Optional[float] = None, user_path: bool = True,
        operands: Optional[Callable[[Case], tuple]] = None) -> List[dict]:
    """Measure every backend on every case; see the module docstring for the records.

    ``operands(case)`` gives ``(A, B)`` (A SciPy CSR) instead of the seeded random ones of
    :func:`sparsejl.bench.matrices.operands`: a matrix the user brings, with its own pattern.

    ``repeats`` must be at least 5 (the median of fewer is not reported). ``max_call_s``
    skips timing a backend whose checked call alone took longer (its one time is kept).
    ``user_path`` adds ``cold_s`` and ``after_dense_s`` to each timed record (SpMM cases).
    """
    if repeats < 5:
        raise ValueError("repeats must be >= 5: the report gives the median of at least 5 runs")
    cases = list(cases)
    contenders = [peers.get(b) for b in backends]
    # the baseline goes first in each case, so its median is there for the speedups
    contenders.sort(key=lambda c: c.name != "dense")
    total, done, records = len(cases) * len(contenders), 0, []
    stop = _Latch(should_stop)
    too_slow = {}  # (backend, case but its density) -> (density, seconds) of a call over the cap

    previous = peers.get("dense")  # whose threads may still spin: the caller's BLAS, say
    for case in cases:
        built, recs = None, []
        for c in contenders:
            settle_s = min(SETTLE_S, previous.spin_s)
            rec = _one(case, c, built, too_slow, repeats, warmup, max_call_s, stop, settle_s, user_path)
            if rec is None:  # operands needed: built once per case, on first need
                A, B = (operands or matrices.operands)(case)
                built = (A, B) + matrices.reference(case.op, A, B, case.density)
                rec = _one(case, c, built, too_slow, repeats, warmup, max_call_s, stop, settle_s, user_path)
            recs.append(rec)
            previous = c
        _baseline_again(case, recs, built, repeats, warmup, stop, min(SETTLE_S, previous.spin_s))
        previous = peers.get("dense")
        base = next((r["median_s"] for r in recs if r["backend"] == "dense"
                     and r["status"] == "ok"), None)
        for rec in recs:
            if base and rec["status"] == "ok" and rec["median_s"]:
                rec["speedup_vs_dense"] = base / rec["median_s"]
            records.append(rec)
            done += 1
            if progress:
                progress(rec, done, total)
        del built
    return records
