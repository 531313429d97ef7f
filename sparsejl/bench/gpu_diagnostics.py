"""GPU diagnostics: the backends' internal entry points and kernel variants, never headlines.

    python -m sparsejl.bench.gpu_diagnostics --out DIR [--quick] [--only SUBSTRING ...] [--diag]
    python -m sparsejl.bench.gpu_diagnostics --trace MODEL:LAYER:DENSITY | --profile ... | --launch-floor

For the record of what a user's call costs, see sparsejl.bench.gpu (public calls only). This
module times the backends called directly and every kernel configuration, to see where the time
goes; it writes DIR/gpu-diagnostics-<gpu>-<date>.json and .md. Each method is checked
against a float64 reference on fresh random inputs before it is timed; a wrong method is
reported as such and never timed.

Timing: device events around each call, the median of `reps` calls. The calls are queued behind
a kernel that spins on the GPU until all of them are enqueued, so the times are the GPU's own
(kernels and the gaps between one call's kernels) and not the Python launch cost, which is
reported separately (host µs per call, measured without the spin). Inputs rotate over three B
matrices so that repeated calls do not run out of L2 alone.

Methods (one row each):
  cupy-dense     cuBLAS (cupy.matmul) on A densified beforehand: the baseline
  torch-dense    torch.matmul on the same buffers (cuBLAS/cuBLASLt), for reference
  torch-bsr      PyTorch's BSR product (torch.sparse._triton_ops.bsr_dense_mm, Triton)
  cupy           sparsejl's "cupy" backend (BSR: TMA+wgmma kernel for 64x64 fp16/bf16 blocks on
                 Hopper, mma.sync kernel otherwise, both on A's BSR arrays; CSR: cuSPARSE)
  cupy[cfg]      the BSR kernel in another configuration: (BN, WARPS_M, WARPS_N, STAGES) of the
                 mma.sync kernel, ("tma", warpgroups, STAGES, WS, EPI) of the Hopper kernel
  diag[cfg]      a diagnostic variant of the TMA kernel ("tma", ..., DIAG): 1 no MMAs, 2 no C
                 stores, 3 an empty kernel of the same launch shape; timed without a check (its
                 output is wrong on purpose), to place the time of one kernel's parts
  cupy[bell]     cuSPARSE Blocked-ELL SpMM through CuPy's handle, A converted in every call
  cupy[lpt]      the default kernel with the heaviest block rows scheduled first
  julia-cuda     sparsejl's "julia-cuda" backend: Julia launching the cupy backend's cubins
                 (fp16/bf16 BSR; cuSPARSE BSR_ALG1 for float32), cuSPARSE for CSR
  julia-cuda[bell] Julia calling cuSPARSE Blocked-ELL, A converted in every call
  *[prepared]    cupy / julia-cuda on a Blocked-ELL copy of A made once before timing, as a caller
                 that multiplies one weight many times would pass it (blocked_ell=)
  cupyx          CuPy's own csr_matrix @ B (float32 CSR only)
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from . import gpu_report
from .gpu_operands import as_torch, make_bsr, make_csr, make_dense, rel_error, torch_on_cuda
from .gpu_timing import _EMPTY_SRC, Timer, ceilings, environment

TOLERANCE = {"float16": 2e-3, "bfloat16": 1.6e-2, "float32": 1e-5, "float64": 1e-12}
TOKENS = 2048
TARGET_LAYERS = [("llama-2-7b", "ffn.up"), ("llama-2-7b", "ffn.down"),
                 ("bert-large", "ffn.up"), ("bert-large", "ffn.down")]
BERT_BASE_LAYERS = [("bert-base", "ffn.up"), ("bert-base", "ffn.down")]

# ------------------------------------------------------------------ operands (on the device)

# ------------------------------------------------------------------ timing

# ------------------------------------------------------------------ records

@dataclass
class MethodResult:
    method: str
    ok: bool
    rel_error: Optional[float] = None
    median_ms: Optional[float] = None
    p10_ms: Optional[float] = None
    p90_ms: Optional[float] = None
    host_us: Optional[float] = None
    tflops: Optional[float] = None
    note: str = ""


@dataclass
class CaseResult:
    op: str
    label: str
    fmt: str
    m: int
    k: int
    n: int
    density: float
    blocksize: int
    dtype: str
    nnz: int
    flops: float
    bytes_min: float
    floor_compute_ms: Optional[float] = None
    floor_memory_ms: Optional[float] = None
    floor_l2_ms: Optional[float] = None
    methods: List[MethodResult] = field(default_factory=list)
    model: str = ""      # the catalogue's model and layer (records.py reads these, never the label)
    layer: str = ""


def _stats(times):
    t = sorted(times)
    return statistics.median(t), t[len(t) // 10], t[(len(t) * 9) // 10]


def _run_method(case: CaseResult, name: str, fn: Callable[[int], object], ref, timer: Timer, dtype: str,
                check_out=None, note="") -> MethodResult:
    import cupy
    try:
        out = fn(0)
        cupy.cuda.Device().synchronize()
        if check_out is not None:
            out = check_out(out)
        err = rel_error(out, ref)
    except Exception as exc:
        return MethodResult(name, False, note=f"failed: {type(exc).__name__}: {str(exc)[:300]}")
    tol = TOLERANCE[dtype]
    if not err <= tol:
        return MethodResult(name, False, rel_error=err, note=f"wrong: error {err:.2e} > {tol:.0e}; not timed")
    try:
        host = timer.host_us(fn)
        times = timer.gpu_ms(fn)
    except Exception as exc:
        return MethodResult(name, False, rel_error=err, note=f"timing failed: {type(exc).__name__}: {exc}")
    med, p10, p90 = _stats(times)
    return MethodResult(name, True, err, med, p10, p90, host, case.flops / (med * 1e-3) / 1e12, note)


def _time_only(case: CaseResult, name: str, fn, timer: Timer, note="") -> MethodResult:
    """Time a diagnostic variant whose output is wrong on purpose (never a result)."""
    try:
        times = timer.gpu_ms(fn)
    except Exception as exc:
        return MethodResult(name, False, note=f"timing failed: {type(exc).__name__}: {exc}")
    med, p10, p90 = _stats(times)
    return MethodResult(name, True, None, med, p10, p90, None, None, "diagnostic, output not checked: " + note)


# ------------------------------------------------------------------ method builders

def spmm_methods(A, Bs, ref, dense_A, case: CaseResult, timer: Timer, configs):
    import cupy
    from ..backends import _bsr_kernels, cupy_backend, julia_cuda
    torch = torch_on_cuda()
    dt = case.dtype
    res = []
    nB = len(Bs)
    res.append(_run_method(case, "cupy-dense", lambda i: cupy.matmul(dense_A, Bs[i % nB]), ref, timer, dt))
    if torch is not None:
        tA, tBs = as_torch(dense_A, torch), [as_torch(B, torch) for B in Bs]
        res.append(_run_method(case, "torch-dense", lambda i: torch.matmul(tA, tBs[i % nB]), ref, timer, dt,
                               check_out=lambda o: cupy.asarray(o.float()) if dt == "bfloat16" else cupy.asarray(o)))
        if A.format == "bsr" and dt in ("float16", "bfloat16", "float32"):
            try:
                from torch.sparse._triton_ops import bsr_dense_mm
                tbsr = torch.sparse_bsr_tensor(as_torch(A.indptr, torch), as_torch(A.indices, torch),
                                               as_torch(A.data, torch), size=A.shape)
                conv = (lambda o: cupy.asarray(o.float())) if dt == "bfloat16" else (lambda o: cupy.asarray(o))
                res.append(_run_method(case, "torch-bsr", lambda i: bsr_dense_mm(tbsr, tBs[i % nB]), ref, timer,
                                       dt, check_out=conv, note="torch.sparse._triton_ops.bsr_dense_mm"))
                res.append(_run_method(case, "torch-bsr-matmul", lambda i: tbsr @ tBs[i % nB], ref, timer,
                                       dt, check_out=conv, note="bsr_tensor @ dense (PyTorch's dispatch)"))
            except Exception as exc:
                res.append(MethodResult("torch-bsr", False, note=f"unavailable: {type(exc).__name__}: {exc}"))
    res.append(_run_method(case, "cupy", lambda i: cupy_backend.spmm(A, Bs[i % nB]), ref, timer, dt))
    if A.format == "bsr":
        for cfg in configs:
            name = cfg if isinstance(cfg, str) else ",".join(map(str, cfg))
            fn = lambda i, cfg=cfg: cupy_backend.spmm(A, Bs[i % nB], config=cfg)
            if isinstance(cfg, tuple) and cfg[0] == "tma" and len(cfg) > 5 and cfg[5]:   # diagnostic
                res.append(_time_only(case, f"diag[{name}]", fn, timer,
                                      note={1: "no MMAs", 2: "no C stores", 3: "empty kernel, same launch"}.get(cfg[5], "")))
            else:
                res.append(_run_method(case, f"cupy[{name}]", fn, ref, timer, dt))
    if A.format == "bsr":
        counts = cupy.diff(A.indptr.astype(np.int64))
        order = cupy.argsort(-counts).astype(np.int32)  # heaviest block rows first
        res.append(_run_method(case, "cupy[lpt]", lambda i: _bsr_kernels.bsr_spmm(A, Bs[i % nB], Bs[0].dtype,
                                                                                  row_order=order),
                               ref, timer, dt, note="CTAs of the heaviest block rows launched first"))
    if julia_cuda.availability() is None:
        note = "cuSPARSE CSR, ALG_DEFAULT"
        if A.format == "bsr":
            t0 = time.perf_counter()
            bell = julia_cuda.to_blocked_ell(A)
            cupy.cuda.Device().synchronize()
            note = (f"cuSPARSE Blocked-ELL, width {bell[2]} blocks (mean {len(A.indices) / (len(A.indptr) - 1):.1f}); "
                    f"conversion {(time.perf_counter() - t0) * 1e3:.1f} ms")
            res.append(_run_method(case, "julia-cuda[prepared]", lambda i: julia_cuda.spmm(A, Bs[i % nB], blocked_ell=bell),
                                   ref, timer, dt, note=note + ", made once, not timed"))
            res.append(_run_method(case, "cupy[prepared]", lambda i: cupy_backend.spmm(A, Bs[i % nB], blocked_ell=bell),
                                   ref, timer, dt, note=note + ", made once, not timed"))
            note += ", made in every call"
        if A.format == "bsr":
            res.append(_run_method(case, "julia-cuda[bell]", lambda i: julia_cuda.spmm(A, Bs[i % nB], alg=13), ref,
                                   timer, dt, note=note))
            note = "the cupy backend's cubin, launched by Julia (cuLaunchKernel)"
        res.append(_run_method(case, "julia-cuda", lambda i: julia_cuda.spmm(A, Bs[i % nB]), ref, timer, dt, note=note))
        if A.format == "bsr":
            res.append(_run_method(case, "julia-cuda[bsr_alg1]", lambda i: julia_cuda.spmm(A, Bs[i % nB], alg=14),
                                   ref, timer, dt, note="cuSPARSE BSR SpMM, CUSPARSE_SPMM_BSR_ALG1"))
        if A.format == "csr":
            res.append(_run_method(case, "julia-cuda[alg2]", lambda i: julia_cuda.spmm(A, Bs[i % nB], alg=6), ref,
                                   timer, dt, note="cuSPARSE CSR_ALG2"))
    else:
        res.append(MethodResult("julia-cuda", False, note="unavailable: " + str(julia_cuda.availability())))
    if A.format == "csr":
        res.append(_run_method(case, "cupy[alg2]", lambda i: cupy_backend.spmm(A, Bs[i % nB], alg=6), ref, timer, dt,
                               note="cuSPARSE CSR_ALG2"))
        if dt == "float32":
            import cupyx.scipy.sparse as csp
            a = csp.csr_matrix((A.data, A.indices, A.indptr), shape=A.shape)
            res.append(_run_method(case, "cupyx", lambda i: a @ Bs[i % nB], ref, timer, dt,
                                   note="cupyx csr_matrix @ B (copies B to column-major)"))
    return res


# ------------------------------------------------------------------ cases

def spmm_case(label, A, n, dtype, timer, ceil, configs, seed) -> CaseResult:
    import cupy
    from ..backends import _gpu_conversions
    m, k = A.shape
    b = A.blocksize
    nstored = len(A.indices) * b * b
    Bs = [make_dense(k, n, dtype, seed + 100 + i) for i in range(3)]
    dense_A = _gpu_conversions.todense(A)
    ref = dense_A.astype(np.float64) @ Bs[0].astype(np.float64)
    isz = np.dtype(dtype).itemsize if dtype != "bfloat16" else 2
    bytes_min = nstored * isz + A.indices.nbytes + A.indptr.nbytes + k * n * isz + m * n * isz
    case = CaseResult("spmm", label, A.format, m, k, n, round(nstored / (m * k), 4), b, dtype, nstored,
                      2.0 * nstored * n, bytes_min)
    peak = ceil.get(f"cublas_{dtype}_TFLOPs") if dtype in ("float16", "bfloat16") else None
    if peak:
        case.floor_compute_ms = case.flops / (peak * 1e12) * 1e3
    if ceil.get("copy_GBps"):
        case.floor_memory_ms = bytes_min / (ceil["copy_GBps"] * 1e9) * 1e3
    if A.format == "bsr" and ceil.get("l2_read_GBps"):
        # an output-stationary tiling (a CTA owns b rows × 128 columns of C) streams every stored
        # block's b rows of B once per block and A once per 128-column tile, out of L2
        l2_bytes = (len(A.indices) * b * n + nstored * max(1, n // 128)) * isz
        case.floor_l2_ms = l2_bytes / (ceil["l2_read_GBps"] * 1e9) * 1e3
    case.methods = spmm_methods(A, Bs, ref, dense_A, case, timer, configs if A.format == "bsr" else ())
    del Bs, dense_A, ref
    cupy.get_default_memory_pool().free_all_blocks()
    return case


def spgemm_case(label, m, density, dtype, timer, seed) -> CaseResult:
    import cupy
    import scipy.sparse as sp
    from ..backends import cupy_backend, julia_cuda
    A = make_csr(m, m, density, dtype, seed)
    B = make_csr(m, m, density, dtype, seed + 1)
    a_h = sp.csr_matrix((cupy.asnumpy(A.data).astype(np.float64), cupy.asnumpy(A.indices), cupy.asnumpy(A.indptr)),
                        shape=A.shape)
    b_h = sp.csr_matrix((cupy.asnumpy(B.data).astype(np.float64), cupy.asnumpy(B.indices), cupy.asnumpy(B.indptr)),
                        shape=B.shape)
    ref_h = (a_h @ b_h).tocsr()
    ref_h.sort_indices()
    products = int(np.diff(b_h.indptr)[a_h.indices].sum())
    case = CaseResult("spgemm", label, "csr", m, m, m, density, 1, dtype, A.data.size, 2.0 * products,
                      float(A.data.nbytes + B.data.nbytes + ref_h.nnz * (np.dtype(dtype).itemsize + 4)))

    def check(C):
        Ch = sp.csr_matrix((cupy.asnumpy(C.data.astype(np.float32) if C.data.dtype.name == "bfloat16" else C.data)
                            .astype(np.float64), cupy.asnumpy(C.indices), cupy.asnumpy(C.indptr)), shape=C.shape)
        if not Ch.has_sorted_indices:
            raise AssertionError("column indices not sorted")
        diff = Ch - ref_h
        return diff, Ch

    def run(name, fn):
        try:
            C = fn(0)
            cupy.cuda.Device().synchronize()
            diff, Ch = check(C)
            err = float(np.sqrt((diff.data ** 2).sum()) / np.sqrt((ref_h.data ** 2).sum()))
            same = Ch.nnz == ref_h.nnz
        except Exception as exc:
            return MethodResult(name, False, note=f"failed: {type(exc).__name__}: {str(exc)[:300]}")
        if not err <= TOLERANCE[dtype]:
            return MethodResult(name, False, rel_error=err, note=f"wrong: error {err:.2e}")
        times = timer.gpu_ms(fn, spin=False)
        med, p10, p90 = _stats(times)
        return MethodResult(name, True, err, med, p10, p90, timer.host_us(fn, 3), case.flops / (med * 1e-3) / 1e12,
                            note=f"nnz(C) = {Ch.nnz}" + ("" if same else f" vs SciPy {ref_h.nnz}"))

    case.methods.append(run("cupy", lambda i: cupy_backend.spgemm(A, B)))
    if julia_cuda.availability() is None:
        case.methods.append(run("julia-cuda", lambda i: julia_cuda.spgemm(A, B)))
    # SciPy on the host, in A's dtype where SciPy has it (float32/float64), else float32
    hd = dtype if dtype in ("float32", "float64") else "float32"
    ah, bh = a_h.astype(hd), b_h.astype(hd)
    ts = []
    for _ in range(3):
        t0 = time.perf_counter()
        ah @ bh
        ts.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median(ts)
    case.methods.append(MethodResult("scipy-cpu", True, 0.0, med, min(ts), max(ts), None,
                                     case.flops / (med * 1e-3) / 1e12, note=f"SciPy {hd}, host wall time, 1 thread"))
    return case


# ------------------------------------------------------------------ environment

# ------------------------------------------------------------------ report

def _fmt(x, spec=".3f"):
    return "—" if x is None else format(x, spec)


def _median(case: CaseResult, method: str) -> Optional[float]:
    return next((r.median_ms for r in case.methods if r.method == method and r.ok), None)


def targets_table(cases: List[CaseResult], ceil: Optional[Dict[str, float]] = None) -> List[str]:
    """The issue's targets for block-sparse fp16 SpMM: ≥3× cuBLAS at density 0.1, ≥1.5× at 0.25,
    ≥2× PyTorch's BSR product; the default "cupy" backend against each, device time. `floor`: an
    empty kernel's time per call (launch_us, this method's least per call) plus the larger of the
    memory and compute floors; `v9`: the previous default kernel configuration (docs/gpu-notes.md)."""
    launch = (ceil or {}).get("launch_us")
    out = ["## Targets (block-sparse float16, device time)", "",
           "| case | floor ms | cuBLAS ms | PyTorch BSR ms | v9 ms | cupy ms | julia-cuda ms | cupy × cuBLAS (target) "
           "| cupy × PyTorch (target 2) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for c in cases:
        if c.op != "spmm" or c.fmt != "bsr" or c.dtype != "float16":
            continue
        dense, torch_, v9, ours, jl = (_median(c, m) for m in ("cupy-dense", "torch-bsr", "cupy[tma,2,4,1,0]", "cupy",
                                                                "julia-cuda"))
        floor = None
        if launch is not None and c.floor_memory_ms is not None:
            floor = launch * 1e-3 + max(c.floor_memory_ms, c.floor_compute_ms or 0.0)
        want = 3.0 if c.density < 0.175 else 1.5  # the stored density of a 0.10 / 0.25 draw
        vs_dense = dense / ours if dense and ours else None
        vs_torch = torch_ / ours if torch_ and ours else None
        mark = lambda x, t: "—" if x is None else f"{x:.2f}" + (" ✓" if x >= t else " ✗")
        out.append(f"| {c.label} | {_fmt(floor, '.4f')} | {_fmt(dense, '.4f')} | {_fmt(torch_, '.4f')} | {_fmt(v9, '.4f')} "
                   f"| {_fmt(ours, '.4f')} | {_fmt(jl, '.4f')} | {mark(vs_dense, want)} ({want:g}) | {mark(vs_torch, 2.0)} |")
    out.append("")
    return out


def report(env, ceil, cases: List[CaseResult]) -> str:
    lines = gpu_report.header("GPU benchmark (diagnostics: internal entry points)", env, ceil) + [
             "Times: median of device-event times per call (GPU time, queued behind a spin kernel); "
             "`host µs`: Python-side cost per call with an idle queue. `× dense`: cupy-dense median / this "
             "median. Floors: sparse FLOPs at the measured cuBLAS rate; minimum bytes at the measured copy "
             "bandwidth.", ""]
    lines += targets_table(cases, ceil)
    for c in cases:
        dense = next((r.median_ms for r in c.methods if r.method == "cupy-dense" and r.ok), None)
        lines.append(f"## {c.op} {c.label}: {c.fmt.upper()} {c.m}×{c.k} · {c.k}×{c.n}, density {c.density}, "
                     f"block {c.blocksize}, {c.dtype}")
        lines.append("")
        lines.append(f"floors: compute {_fmt(c.floor_compute_ms, '.4f')} ms, memory {_fmt(c.floor_memory_ms, '.4f')} ms, "
                     f"L2 traffic of a 128-column tiling {_fmt(c.floor_l2_ms, '.4f')} ms")
        lines.append("")
        lines.append("| method | median ms | p10–p90 | TFLOP/s (sparse) | × dense | host µs | rel. error | note |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for r in c.methods:
            speed = (dense / r.median_ms) if (dense and r.ok and r.median_ms) else None
            lines.append(f"| {r.method} | {_fmt(r.median_ms, '.4f')} | {_fmt(r.p10_ms, '.4f')}–{_fmt(r.p90_ms, '.4f')} "
                         f"| {_fmt(r.tflops, '.1f')} | {_fmt(speed, '.2f')} | {_fmt(r.host_us, '.1f')} "
                         f"| {_fmt(r.rel_error, '.1e')} | {'' if r.ok else '**not OK** '}{r.note} |")
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------ main

def launch_floor(timer: "Timer"):
    """Device time per call of an empty kernel, back to back, by launch shape: the part of every
    kernel's time that no kernel design removes."""
    import cupy
    from cupy_backends.cuda.api import driver
    kern = cupy.RawKernel(_EMPTY_SRC, "empty_kernel")
    kern.compile()
    driver.funcSetAttribute(kern.kernel.ptr, 8, 200 * 1024)
    for grid, threads, smem in [(1, 32, 0), (132, 32, 0), (132, 288, 0), (132, 288, 100 << 10), (132, 288, 200 << 10),
                                (264, 160, 90 << 10), (528, 288, 0)]:
        t = statistics.median(timer.gpu_ms(lambda i: kern((grid,), (threads,), (0,), shared_mem=smem)))
        print(f"empty kernel grid {grid:4d} threads {threads:4d} smem {smem >> 10:4d} KiB: {t * 1e3:.2f} us per call", flush=True)


def trace(specs, configs, clock_mhz=1980.0):
    """Where the TMA kernel's time goes: each TMA configuration of `configs` rebuilt with DIAG 7
    (consumer thread 0 of every CTA stamps clock64 at set-up, per tile at its first wait, first
    data, MMAs done and C handed off, and at exit). Prints per-CTA means and maxima in µs."""
    import cupy
    from .. import catalogue
    from ..backends import _bsr_kernels
    cfgs = [tuple(x if x == "tma" else int(x) for x in c.split(",")) for c in configs.split(";") if c.startswith("tma")]
    for spec in specs:
        model, layer, density = spec.split(":")
        m, k, n = catalogue.mkn(model, layer, tokens=TOKENS)
        A = make_bsr(m, k, 64, float(density), "float16", 7)
        Bs = [make_dense(k, n, "float16", 8 + i) for i in range(3)]
        counts = cupy.asnumpy(cupy.diff(A.indptr.astype(np.int64)))
        mb = m // 64
        for cfg in cfgs:
            cfg = cfg[:5] + (7,) + cfg[6:] if len(cfg) > 5 else cfg + (7,)
            buf = cupy.zeros(132 * 4 * 64, dtype=np.uint64)
            for i in range(4):   # the last call is the traced one (the others warm L2 and the caches)
                buf.fill(0)
                _bsr_kernels.bsr_spmm(A, Bs[i % 3], np.dtype(np.float16), config=cfg, trace=buf)
            cupy.cuda.Device().synchronize()
            t = cupy.asnumpy(buf).reshape(-1, 64).astype(np.int64)
            t = t[t[:, 1] != 0]
            us = lambda c: c / clock_mhz
            g0 = t[:, 0].min()
            start_ns, end_ns = t[:, 0] - g0, t[:, 3] - g0
            wg = cfg[1]
            ntiles = (n + 128 * wg - 1) // (128 * wg)
            rows = []
            G = len(t)
            sched = cfg[6] if len(cfg) > 6 else 0
            order = cupy.asnumpy(_bsr_kernels.heavy_rows_first(A)) if sched else None
            for c, r in enumerate(t):
                nt = int(r[5])
                qs = list(range(nt))
                if sched:
                    tiles = [q * G + (G - 1 - c if q & 1 else c) for q in qs]
                    nblk = sum(int(counts[order[tt // ntiles]]) for tt in tiles)
                else:
                    nblk = sum(int(counts[(c + q * G) % mb]) for q in qs)
                first_wait = us(r[7] - r[6]) if nt and r[7] else 0.0
                tile_mma = sum(us(r[8 + 4 * j] - (r[7 + 4 * j] or r[6 + 4 * j])) for j in range(min(nt, 12)))
                tile_wait = sum(us((r[7 + 4 * j] or r[6 + 4 * j]) - r[6 + 4 * j]) for j in range(min(nt, 12)))
                tile_epi = sum(us(r[9 + 4 * j] - r[8 + 4 * j]) for j in range(min(nt, 12)))
                rows.append((us(r[2] - r[1]), first_wait, tile_wait, tile_mma, tile_epi, us(r[4] - r[9 + 4 * min(nt, 12) - 4])
                             if nt else 0.0, us(r[4] - r[1]), nt, nblk))
            a = np.array(rows)
            names = ["set-up", "first data", "waits at tile start (all)", "MMA loop (all)", "epilogue (all)",
                     "after last tile", "CTA total", "tiles", "blocks"]
            print(f"trace {spec} config {cfg}: {len(t)} CTAs, {mb * ntiles} tiles; start spread "
                  f"{start_ns.max() / 1e3:.2f} us, end {end_ns.min() / 1e3:.2f}..{end_ns.max() / 1e3:.2f} us after the first start")
            for i, nm in enumerate(names):
                print(f"   {nm:28s} mean {a[:, i].mean():7.2f}  max {a[:, i].max():7.2f}  min {a[:, i].min():7.2f}")
            if cfg[4] == 2:
                parts = ["staging tile free", "barrier 1", "shared stores", "proxy fence", "barrier 2", "store issue"]
                print("   epilogue parts (mean per CTA, us): " + ", ".join(
                    f"{nm} {us(t[:, 58 + i]).mean():.2f}" for i, nm in enumerate(parts)))
            late = int(np.argmax(end_ns))
            print("   latest CTA:", ", ".join(f"{nm} {a[late, i]:.2f}" for i, nm in enumerate(names)),
                  f"start {start_ns[late] / 1e3:.2f} us", flush=True)


def profile(specs, configs, calls=3):
    """Run the default BSR kernel and each TMA configuration of `configs` `calls` times per case
    (for a profiler such as ncu to pick up; nothing is timed here)."""
    import cupy
    from .. import catalogue
    from ..backends import cupy_backend
    cfgs = [None] + [tuple(x if x == "tma" else int(x) for x in c.split(",")) for c in configs.split(";")
                     if c.startswith("tma")]
    for spec in specs:
        model, layer, density = spec.split(":")
        m, k, n = catalogue.mkn(model, layer, tokens=TOKENS)
        A = make_bsr(m, k, 64, float(density), "float16", 7)
        B = make_dense(k, n, "float16", 8)
        for cfg in cfgs:
            for _ in range(calls):
                cupy_backend.spmm(A, B, config=cfg)
            cupy.cuda.Device().synchronize()
            print("profiled", spec, cfg, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".")
    ap.add_argument("--quick", action="store_true", help="a few small cases only")
    ap.add_argument("--only", nargs="*", default=None, help="run cases whose label contains one of these")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--configs", default="tma,2,4,1,0;tma,2,4,1,1;tma,2,4,1,2;tma,1,3,1,2;tma,2,4,1,2,0,1;"
                                         "tma,1,3,1,2,0,1;128,2,2,4;bell",
                    help="extra BSR kernel configurations for blocksize 64: (BN,WARPS_M,WARPS_N,STAGES) of the "
                         "mma.sync kernel, tma,WG,STAGES,WS,EPI[,DIAG] of the TMA kernel")
    ap.add_argument("--diag", action="store_true", help="also time the TMA kernel's diagnostic variants")
    ap.add_argument("--ceilings", action="store_true", help="only measure and print the ceilings")
    ap.add_argument("--launch-floor", action="store_true",
                    help="only time empty kernels of several launch shapes (grid, threads, shared memory)")
    ap.add_argument("--trace", metavar="MODEL:LAYER:DENSITY", action="append",
                    help="only print where the TMA kernel's time goes on this case (in-kernel timestamps, DIAG 7)")
    ap.add_argument("--profile", metavar="MODEL:LAYER:DENSITY", action="append",
                    help="only run the default BSR 64 kernel and --configs a few times on this case (for ncu)")
    ap.add_argument("--configs32", default="128,1,4,4;256,1,8,4;128,2,2,4")
    ap.add_argument("--report-from", metavar="JSON", help="only rewrite the Markdown report of a saved run")
    args = ap.parse_args(argv)
    if args.report_from:
        with open(args.report_from) as f:
            saved = json.load(f)
        cases = []
        for c in saved["cases"]:
            methods = [MethodResult(**m) for m in c.pop("methods")]
            cases.append(CaseResult(**c, methods=methods))
        out = os.path.splitext(args.report_from)[0] + ".md"
        with open(out, "w") as f:
            f.write(report(saved["environment"], saved["ceilings"], cases))
        print("wrote", out)
        return cases
    from .. import catalogue
    from ..backends import _cuda
    if args.profile:
        return profile(args.profile, args.configs)
    if args.trace:
        return trace(args.trace, args.configs)
    if args.launch_floor:
        return launch_floor(Timer(reps=args.reps))
    if args.ceilings:
        print(json.dumps(ceilings(Timer(reps=args.reps))), flush=True)
        return None
    reason = _cuda.gpu_reason()
    if reason is not None:
        sys.exit(f"sparsejl.bench.gpu_diagnostics needs CuPy and a CUDA GPU: {reason}")
    timer = Timer(reps=args.reps)
    env = environment()
    print(json.dumps(env, indent=1), flush=True)
    ceil = ceilings(timer)
    print(json.dumps(ceil), flush=True)
    def parse(spec):
        return [c if c == "bell" else tuple(x if x == "tma" else int(x) for x in c.split(","))
                for c in spec.split(";") if c]
    cfg64, cfg32 = parse(args.configs), parse(args.configs32)
    if args.diag:   # the diagnostic variants of the EPI 2 configurations
        cfg64 += [c[:5] + (d,) + c[6:] for c in cfg64 if isinstance(c, tuple) and c[0] == "tma" and c[4] == 2
                  and c[1:3] in ((2, 4), (1, 3)) and (len(c) > 6 and c[6] == 1) for d in (1, 2, 3)]

    plan = []  # (label, model, layer, thunk)
    layers = TARGET_LAYERS if not args.quick else [("bert-large", "ffn.down")]
    densities = (0.10, 0.25) if not args.quick else (0.10,)
    seed = 1
    for model, layer in layers:
        m, k, n = catalogue.mkn(model, layer, tokens=TOKENS)
        for b in (64, 32):
            for d in densities:
                seed += 10
                label = f"{model} {layer} n={n} b={b} d={d}"
                plan.append((label, model, layer, lambda m=m, k=k, n=n, b=b, d=d, s=seed, label=label: spmm_case(
                    label, make_bsr(m, k, b, d, "float16", s), n, "float16", timer, ceil,
                    cfg64 if b == 64 else cfg32, s)))
    if not args.quick:
        for model, layer in [("llama-2-7b", "ffn.down"), ("bert-large", "ffn.up")]:
            m, k, n = catalogue.mkn(model, layer, tokens=TOKENS)
            seed += 10
            label = f"{model} {layer} n={n} b=64 d=0.1 bf16"
            plan.append((label, model, layer, lambda m=m, k=k, n=n, s=seed, label=label: spmm_case(
                label, make_bsr(m, k, 64, 0.1, "bfloat16", s), n, "bfloat16", timer, ceil, [], s)))
        for model, layer in BERT_BASE_LAYERS:
            m, k, n = catalogue.mkn(model, layer, tokens=512)
            for b in (32,):
                seed += 10
                label = f"{model} {layer} n={n} b={b} d=0.1"
                plan.append((label, model, layer, lambda m=m, k=k, n=n, b=b, s=seed, label=label: spmm_case(
                    label, make_bsr(m, k, b, 0.1, "float16", s), n, "float16", timer, ceil, cfg32, s)))
    for dt in (("float32", "float16") if not args.quick else ("float32",)):
        m, k, n = catalogue.mkn("llama-2-7b", "ffn.down", tokens=TOKENS)
        seed += 10
        label = f"llama-2-7b ffn.down n={n} CSR d=0.1 {dt}"
        plan.append((label, "llama-2-7b", "ffn.down", lambda m=m, k=k, n=n, s=seed, dt=dt, label=label: spmm_case(
            label, make_csr(m, k, 0.1, dt, s), n, dt, timer, ceil, [], s)))
    for mm, d in ([(4096, 0.01), (16384, 0.001)] if not args.quick else [(2048, 0.01)]):
        for dt in ("float32",) if args.quick else ("float32", "float64"):
            seed += 10
            label = f"random {mm}x{mm} d={d} {dt}"
            plan.append((label, "random", f"{mm}x{mm}", lambda mm=mm, d=d, s=seed, dt=dt, label=label: spgemm_case(label, mm, d, dt, timer, s)))

    cases: List[CaseResult] = []
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M")
    gpu = str(env.get("gpu", "gpu")).replace("NVIDIA ", "").replace(" ", "-")
    base = os.path.join(args.out, f"gpu-diagnostics-{gpu}-{stamp}")
    os.makedirs(args.out, exist_ok=True)
    for label, model, layer, thunk in plan:
        if args.only and not any(s in label for s in args.only):
            continue
        t0 = time.perf_counter()
        try:
            case = thunk()
            case.model, case.layer = model, layer
        except Exception:
            print(f"CASE FAILED {label}\n{traceback.format_exc()}", flush=True)
            continue
        cases.append(case)
        dense = next((r.median_ms for r in case.methods if r.method == "cupy-dense" and r.ok), None)
        print(f"== {label} ({time.perf_counter() - t0:.1f} s)", flush=True)
        for r in case.methods:
            sp = f" x{dense / r.median_ms:.2f}" if dense and r.ok and r.median_ms else ""
            print(f"   {r.method:22s} {_fmt(r.median_ms, '.4f')} ms{sp} err={_fmt(r.rel_error, '.1e')} "
                  f"{'' if r.ok else 'NOT OK '}{r.note}", flush=True)
        with open(base + ".json", "w") as f:
            json.dump({"environment": env, "ceilings": ceil, "cases": [asdict(c) for c in cases]}, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(report(env, ceil, cases))
    print("wrote", base + ".json", base + ".md")
    return cases


if __name__ == "__main__":
    main()
