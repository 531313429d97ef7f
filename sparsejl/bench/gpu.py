"""GPU benchmark: sparsejl's public calls against cuBLAS and PyTorch, as a model would make them.

    python -m sparsejl.bench.gpu --out DIR [--quick] [--only TEXT ...]

writes DIR/gpu-<gpu>-<date>.json (one record per case and method, the CPU sweep's fields plus the
GPU figures) and .md (the report). Every method goes through its public entry point —
``sparsejl.spmm`` / ``sparsejl.spgemm`` for sparsejl's backends, ``cupy.matmul`` / ``torch.matmul``
on A densified beforehand for cuBLAS — and is checked against a float64 reference on fresh
random inputs before it is timed; a wrong method is reported as such and never timed.

Figures per method (sparsejl.bench.gpu_timing):
* ``device_s``: device time per call, queued behind a spinning kernel (median of ``reps``);
* ``wall_s``: wall time per call of a stream of back-to-back calls (median of streams);
* ``graph_device_s`` / ``graph_wall_s``: per call, with 20 calls captured in one CUDA graph and
  the graph replayed.
Internal entry points (the backends called directly, other kernel configurations) are
diagnostics: ``--direct`` adds the direct backend calls (labelled ``direct:``, kept out of the
headline tables) to show the public call's host cost; sparsejl.bench.gpu_diagnostics has the rest.
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
from typing import Callable, List, Optional

import numpy as np

from . import gpu_report, records
from .gpu_operands import TOLERANCE, as_torch, make_bsr, make_csr, make_dense, rel_error, torch_on_cuda
from .gpu_timing import Timer, ceilings, environment

TOKENS = 2048
TARGET_LAYERS = [("llama-2-7b", "ffn.up"), ("llama-2-7b", "ffn.down"),
                 ("bert-large", "ffn.up"), ("bert-large", "ffn.down")]
#: sparsejl's backends on the GPU, each timed through sparsejl.spmm(..., backend=name)
SPARSEJL_BACKENDS = ("cupy", "julia-cuda")


def _format(case: dict, method: str) -> str:
    if method.startswith("cublas"):
        return "dense"
    return "bsr" if case["blocksize"] > 1 and case["op"] == "spmm" else "csr"


def _record(case: dict, method: str, library: str, status: str, reason: Optional[str] = None, **figures) -> dict:
    """A record of sparsejl.bench.records' schema, with the GPU figures."""
    rec = dict(case, backend=method, library=library, format=_format(case, method), status=status, reason=reason,
               device_s=None, wall_s=None, graph_device_s=None, graph_wall_s=None, wall_speedup_vs_dense=None,
               graph_speedup_vs_dense=None)
    rec.update(figures)
    return records.record(**rec)


def _time(case: dict, method: str, library: str, fn: Callable[[int], object], ref, timer: Timer, *, graph,
          to_cupy=lambda o: o, device_time: bool = True, headline: bool = True) -> dict:
    """Check `fn` against `ref`, then time it; one record."""
    import cupy
    try:
        out = fn(0)
        cupy.cuda.Device().synchronize()
        err = rel_error(to_cupy(out), ref)
        del out
    except Exception as exc:
        return _record(case, method, library, "error", f"{type(exc).__name__}: {str(exc)[:300]}", headline=headline)
    if not err <= TOLERANCE[case["dtype"]]:
        return _record(case, method, library, "error", f"wrong: error {err:.2e} > {TOLERANCE[case['dtype']]:.0e}; "
                       "not timed", check_error=err, headline=headline)
    rec = _record(case, method, library, "ok", check_error=err, headline=headline)
    try:
        if device_time:
            rec["device_s"] = statistics.median(timer.gpu_ms(fn)) * 1e-3
        rec["wall_s"] = statistics.median(timer.wall_us(fn)) * 1e-6
        if graph:   # True: CuPy's stream capture; "torch": torch.cuda.graph
            device_us, wall_us = (timer.torch_graph_us if graph == "torch" else timer.graph_us)(fn)
            rec["graph_device_s"], rec["graph_wall_s"] = device_us * 1e-6, wall_us * 1e-6
    except Exception as exc:
        rec.update(status="error", reason=f"timing failed: {type(exc).__name__}: {str(exc)[:300]}")
    rec["median_s"] = rec["device_s"] if rec["device_s"] is not None else rec["wall_s"]
    return rec


def spmm_case(case: dict, A, timer: Timer, *, direct: bool, graph: bool = True) -> List[dict]:
    """Every method on A @ B (B rotated over three matrices, so that no call finds B in L2)."""
    import cupy
    import sparsejl
    from ..backends import _gpu_conversions, cupy_backend, julia_cuda, status
    m, k = A.shape
    n, dt, seed = case["n"], case["dtype"], case["seed"]
    Bs = [make_dense(k, n, dt, seed + 100 + i) for i in range(3)]
    dense_A = _gpu_conversions.todense(A)
    ref = dense_A.astype(np.float64) @ Bs[0].astype(np.float64)
    torch = torch_on_cuda()
    back = (lambda o: cupy.asarray(o.float())) if dt == "bfloat16" else (lambda o: cupy.asarray(o))
    recs = []
    if torch is not None:   # the baseline: cuBLAS through PyTorch, which a graph can capture
        tA, tBs = as_torch(dense_A, torch), [as_torch(B, torch) for B in Bs]
        recs.append(_time(case, "cublas", "torch.matmul", lambda i: torch.matmul(tA, tBs[i % 3]), ref, timer,
                          graph="torch" if graph else False, to_cupy=back))
    recs.append(_time(case, "cublas" if torch is None else "cublas-cupy", "cupy.matmul",
                      lambda i: cupy.matmul(dense_A, Bs[i % 3]), ref, timer, graph=False))
    if torch is not None:
        if A.format == "bsr" and dt in ("float16", "bfloat16", "float32"):
            try:
                from torch.sparse._triton_ops import bsr_dense_mm
                tbsr = torch.sparse_bsr_tensor(as_torch(A.indptr, torch), as_torch(A.indices, torch),
                                               as_torch(A.data, torch), size=A.shape)
                recs.append(_time(case, "torch-bsr", "torch.sparse._triton_ops.bsr_dense_mm",
                                  lambda i: bsr_dense_mm(tbsr, tBs[i % 3]), ref, timer, graph=False, to_cupy=back))
            except Exception as exc:
                recs.append(_record(case, "torch-bsr", "torch", "missing", f"{type(exc).__name__}: {exc}"))
    for name in SPARSEJL_BACKENDS:
        reason = status(name).reason
        if reason is not None:
            recs.append(_record(case, f"sparsejl:{name}", "sparsejl", "missing", reason))
            continue
        recs.append(_time(case, f"sparsejl:{name}", "sparsejl",
                          lambda i, name=name: sparsejl.spmm(A, Bs[i % 3], backend=name), ref, timer, graph=graph))
    if direct:   # the backends' own entry points: only to show what the public call adds on the host
        for name, mod in (("cupy", cupy_backend), ("julia-cuda", julia_cuda)):
            if mod.availability() is None:
                call = lambda i, mod=mod: mod.spmm(A, Bs[i % 3])
                recs.append(_time(case, f"direct:{name}", "sparsejl (internal)", call, ref, timer, graph=False,
                                  headline=False))
                public = next(r for r in recs if r["backend"] == f"sparsejl:{name}")
                if public["status"] == "ok" and recs[-1]["status"] == "ok":
                    public["public_over_direct_wall"] = timer.paired_wall_ratio(
                        lambda i, name=name: sparsejl.spmm(A, Bs[i % 3], backend=name), call)
    dense = next((r for r in recs if r["backend"] == "cublas" and r["status"] == "ok"), None)
    for r in recs:
        if dense is None or r["status"] != "ok":
            continue
        for figure, key in (("device_s", "speedup_vs_dense"), ("wall_s", "wall_speedup_vs_dense"),
                            ("graph_wall_s", "graph_speedup_vs_dense")):
            if dense.get(figure) and r.get(figure):
                r[key] = dense[figure] / r[figure]
    return recs


def spgemm_case(case: dict, timer: Timer) -> List[dict]:
    """CSR SpGEMM through sparsejl.spgemm on each GPU backend, and SciPy on the host. SpGEMM waits for
    the device once per call (cuSPARSE sizes its output), so only the wall time per call is taken."""
    import cupy
    import scipy.sparse as sp
    import sparsejl
    from ..backends import status
    m, d, dt, seed = case["m"], case["density"], case["dtype"], case["seed"]
    A, B = make_csr(m, m, d, dt, seed), make_csr(m, m, d, dt, seed + 1)
    host = [sp.csr_matrix((cupy.asnumpy(X.data).astype(np.float64), cupy.asnumpy(X.indices), cupy.asnumpy(X.indptr)),
                          shape=X.shape) for X in (A, B)]
    ref = (host[0] @ host[1]).toarray()
    ref_gpu = cupy.asarray(ref)
    recs = []
    for name in SPARSEJL_BACKENDS:
        reason = status(name).reason
        if reason is not None:
            recs.append(_record(case, f"sparsejl:{name}", "sparsejl", "missing", reason))
            continue
        to_dense = lambda C: _csr_to_dense(C)
        recs.append(_time(case, f"sparsejl:{name}", "sparsejl", lambda i, name=name: sparsejl.spgemm(A, B, backend=name),
                          ref_gpu, timer, graph=False, to_cupy=to_dense, device_time=False))
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        host[0] @ host[1]
        times.append(time.perf_counter() - t0)
    recs.append(_record(case, "scipy-cpu", "scipy", "ok", wall_s=statistics.median(times),
                        median_s=statistics.median(times), check_error=0.0))
    return recs


def _csr_to_dense(C):
    import cupyx.scipy.sparse as csp
    data = C.data.astype(np.float32) if C.data.dtype.name in ("float16", "bfloat16") else C.data
    return csp.csr_matrix((data, C.indices, C.indptr), shape=C.shape).toarray()


def free_device_memory():
    import cupy
    cupy.get_default_memory_pool().free_all_blocks()


def _case(model, layer, m, k, n, density, blocksize, dtype, seed, op="spmm") -> dict:
    return dict(model=model, layer=layer, m=m, k=k, n=n, density=density, blocksize=blocksize, dtype=dtype, op=op,
                seed=seed, device="gpu")


def plan(quick: bool) -> List[tuple]:
    """(case, thunk making A) of the record: the issue's fp16 BSR cases at 2048 tokens, their
    BSR 32 and bf16 variants, CSR at 2048 tokens and at decode sizes, and CSR SpGEMM."""
    from .. import catalogue
    out = []
    seed = 1
    layers = TARGET_LAYERS if not quick else [("bert-large", "ffn.down")]
    for model, layer in layers:
        m, k, n = catalogue.mkn(model, layer, tokens=TOKENS)
        for b in ((64, 32) if not quick else (64,)):
            for d in ((0.10, 0.25) if not quick else (0.10,)):
                seed += 10
                out.append((_case(model, layer, m, k, n, d, b, "float16", seed),
                            lambda m=m, k=k, b=b, d=d, s=seed: make_bsr(m, k, b, d, "float16", s)))
    if not quick:
        for model, layer in [("llama-2-7b", "ffn.down"), ("bert-large", "ffn.up")]:
            m, k, n = catalogue.mkn(model, layer, tokens=TOKENS)
            seed += 10
            out.append((_case(model, layer, m, k, n, 0.1, 64, "bfloat16", seed),
                        lambda m=m, k=k, s=seed: make_bsr(m, k, 64, 0.1, "bfloat16", s)))
    for tokens in ((TOKENS, 16, 64) if not quick else (16,)):
        for dt in (("float16", "float32") if tokens == TOKENS and not quick else ("float16",)):
            m, k, n = catalogue.mkn("llama-2-7b", "ffn.down", tokens=tokens)
            seed += 10
            out.append((_case("llama-2-7b", "ffn.down", m, k, n, 0.1, 1, dt, seed),
                        lambda m=m, k=k, s=seed, dt=dt: make_csr(m, k, 0.1, dt, s)))
    for mm, d in ([(4096, 0.01), (16384, 0.001)] if not quick else [(2048, 0.01)]):
        seed += 10
        out.append((_case("random", f"{mm}x{mm}", mm, mm, mm, d, 1, "float32", seed, op="spgemm"), None))
    return out


def label(case: dict) -> str:
    fmt = f"BSR{case['blocksize']}" if case["blocksize"] > 1 else "CSR"
    if case["op"] == "spgemm":
        return f"SpGEMM random {case['m']}² d={case['density']:g} {case['dtype']}"
    return f"{case['model']} {case['layer']} {case['m']}×{case['k']} · {case['n']} tokens, {fmt} d={case['density']:g} {case['dtype']}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".")
    ap.add_argument("--quick", action="store_true", help="a few small cases only")
    ap.add_argument("--only", nargs="*", default=None, help="run cases whose label contains one of these")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--direct", action="store_true", help="also time the backends' direct entry points (diagnostic)")
    ap.add_argument("--report-from", metavar="JSON", help="only rewrite the Markdown report of a saved run")
    args = ap.parse_args(argv)
    if args.report_from:
        with open(args.report_from) as f:
            saved = json.load(f)
        path = os.path.splitext(args.report_from)[0] + ".md"
        with open(path, "w") as f:
            f.write(gpu_report.report(saved["environment"], saved["ceilings"], saved["records"], label))
        print("wrote", path)
        return saved["records"]
    from ..backends import _cuda
    reason = _cuda.gpu_reason()
    if reason is not None:
        sys.exit(f"sparsejl.bench.gpu needs CuPy and a CUDA GPU: {reason}")
    timer = Timer(reps=args.reps)
    env = environment()
    print(json.dumps(env, indent=1), flush=True)
    ceil = ceilings(timer)
    print(json.dumps(ceil), flush=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M")
    gpu = str(env.get("gpu", "gpu")).replace("NVIDIA ", "").replace(" ", "-")
    base = os.path.join(args.out, f"gpu-{gpu}-{stamp}")
    os.makedirs(args.out, exist_ok=True)
    found: List[dict] = []
    for case, make_A in plan(args.quick):
        if args.only and not any(s in label(case) for s in args.only):
            continue
        t0 = time.perf_counter()
        try:
            recs = spgemm_case(case, timer) if case["op"] == "spgemm" else spmm_case(case, make_A(), timer,
                                                                                      direct=args.direct)
        except Exception:
            print(f"CASE FAILED {label(case)}\n{traceback.format_exc()}", flush=True)
            continue
        found += recs
        free_device_memory()
        print(f"== {label(case)} ({time.perf_counter() - t0:.1f} s)", flush=True)
        for r in recs:
            print("   " + gpu_report.line(r), flush=True)
        with open(base + ".json", "w") as f:
            f.write(records.dumps(found, env, gpu_report.GPU_RECORD_META, ceilings=ceil))
    with open(base + ".md", "w") as f:
        f.write(gpu_report.report(env, ceil, found, label))
    print("wrote", base + ".json", base + ".md")
    return found


if __name__ == "__main__":
    main()
