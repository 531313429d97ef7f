"""Decoding on the GPU (issue 17): sparsejl.prepare + sparsejl.spmm with 1-64 columns against cuBLAS
(torch.matmul on the densified weight) and the CSR path of spmm (cuSPARSE), Llama-2-7B shapes.

Two figures per call (sparsejl.bench.gpu_timing): device time (calls queued behind a spinning
kernel, CUDA events) and wall time per call of back-to-back calls. Every method's result is checked
against a float64 reference before it is timed. Bandwidth: the bytes the method must move (weight
as stored, B, C) over its device time, beside the copy rate measured in the same run.

    python3 -m sparsejl.bench.gpu_decode --out DIR [--quick]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from .gpu_operands import TOLERANCE, as_torch, make_bsr, make_csr, make_dense, rel_error, torch_on_cuda
from .gpu_report import header
from .gpu_timing import Timer, ceilings, environment

SHAPES = {"ffn.gate/up 11008×4096": (11008, 4096), "ffn.down 4096×11008": (4096, 11008), "attn 4096×4096": (4096, 4096)}
KINDS = (("unstructured", 1, 0.3), ("unstructured", 1, 0.1), ("bsr64", 64, 0.1))
NS = (1, 16, 64)
#: issue 17's targets: (kind, density) -> {n: least ratio over cuBLAS}; and over cuSPARSE
TARGETS = {("unstructured", 0.3): {1: 1.5, 16: 1.5, 64: 1.2}, ("unstructured", 0.1): {1: 2.5, 16: 2.5, 64: 2.0},
           ("bsr64", 0.1): {1: 4.0, 16: 4.0, 64: 3.0}}
CUSPARSE_TARGET = 10.0


def _median_us(ms):
    return statistics.median(ms) * 1e3


def _time(timer, fn):
    return {"device_us": _median_us(timer.gpu_ms(fn)), "wall_us": statistics.median(timer.wall_us(fn))}


def case(timer, torch, layer, m, k, kind, b, density, dtype, seed, ceil, diag):
    import cupy
    import sparsejl
    from sparsejl.backends import _decode_kernels
    from sparsejl.backends._gpu_conversions import todense
    A = make_csr(m, k, density, dtype, seed) if b == 1 else make_bsr(m, k, b, density, dtype, seed)
    sparsejl.prepare(A)                                   # compiles the conversion kernels
    cupy.cuda.Device().synchronize()
    t0 = time.perf_counter()
    P = sparsejl.prepare(A)
    cupy.cuda.Device().synchronize()
    prepare_ms = (time.perf_counter() - t0) * 1e3
    W = todense(A)
    Wt = as_torch(W, torch)
    A64 = W.astype(np.float64)
    out = []
    for n in NS:
        Bs = [make_dense(k, n, dtype, seed + 7 * i + n) for i in range(3)]
        Bt = [as_torch(x, torch) for x in Bs]
        ref = A64 @ Bs[0].astype(np.float64)
        io = (k * n + m * n) * 2
        methods = {"sparsejl.spmm(prepared)": (lambda i: sparsejl.spmm(P, Bs[i % 3]), P.nbytes + io),
                   "cuBLAS torch.matmul": (lambda i: torch.matmul(Wt, Bt[i % 3]), 2 * m * k + io),
                   "sparsejl.spmm(A) (cuSPARSE CSR)" if b == 1 else "sparsejl.spmm(A) (BSR tensor-core kernel)":
                       (lambda i: sparsejl.spmm(A, Bs[i % 3]), int(A.data.nbytes + A.indices.nbytes) + io)}
        if diag:
            for ks in (1, 4, 16):
                methods[f"diag: prepared, {ks} splits"] = (
                    lambda i, ks=ks: _decode_kernels.spmm(P, Bs[i % 3], cupy.empty((m, n), dtype), ks=ks),
                    P.nbytes + io)
        for name, (fn, nbytes) in methods.items():
            r = {"layer": layer, "m": m, "k": k, "n": n, "kind": kind, "blocksize": b, "density": density,
                 "dtype": str(np.dtype(dtype).name), "method": name, "bytes": nbytes, "prepare_ms": prepare_ms,
                 "prepared_bytes": P.nbytes, "layout": P.layout, "headline": not name.startswith("diag")}
            got = fn(0)
            got = cupy.asarray(got) if not hasattr(got, "data_ptr") else cupy.asarray(got.float())
            err = rel_error(got, ref)
            r["check_error"] = err
            if not err <= TOLERANCE[r["dtype"]]:
                r["status"] = f"wrong (error {err:.2e}): not timed"
                out.append(r)
                print(r, flush=True)
                continue
            r.update(_time(timer, fn), status="ok")
            r["GBps"] = nbytes / (r["device_us"] * 1e-6) / 1e9
            r["of_copy_rate"] = r["GBps"] * 1e9 / ceil["copy_GBps"] / 1e9 if "copy_GBps" in ceil else None
            r["bound_us"] = nbytes / (ceil["copy_GBps"] * 1e9) * 1e6
            out.append(r)
            print(f"{layer:24s} {kind:12s} d={density} n={n:3d} {name:40s} device {r['device_us']:8.1f} wall "
                  f"{r['wall_us']:8.1f} µs  {r['GBps']:7.0f} GB/s  err {err:.1e}", flush=True)
    return out


def _ratio(rows, case_of, a, b, fig):
    x = next((r for r in rows if r["method"] == a and case_of(r) and r["status"] == "ok"), None)
    y = next((r for r in rows if r["method"] == b and case_of(r) and r["status"] == "ok"), None)
    return None if x is None or y is None else y[fig] / x[fig]


def report(env, ceil, rows) -> str:
    ours, dense = "sparsejl.spmm(prepared)", "cuBLAS torch.matmul"
    lines = header("GPU decoding (issue 17): sparsejl.prepare + spmm with 1-64 columns", env, ceil)
    lines += ["`device`: device µs per call (queued behind a spinning kernel, median of 30); `wall`: wall µs per "
              "call of back-to-back calls from the host (median of streams). × = the baseline's figure over ours. "
              "GB/s: the bytes the method must move (weight as stored, B, C) over its device time; % of the copy "
              f"rate measured here ({ceil.get('copy_GBps', 0):.0f} GB/s).", "",
              "## Targets (fp16): ratio over cuBLAS (device / wall), and over cuSPARSE CSR at density 0.3", "",
              "| layer | kind | density | n | cuBLAS dev / wall µs | ours dev / wall µs | × cuBLAS dev | × cuBLAS wall "
              "| target | ours GB/s (% copy) | bound µs | × cuSPARSE dev / wall |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = []
    for r in rows:
        key = (r["layer"], r["kind"], r["density"], r["n"])
        if key not in keys:
            keys.append(key)
    for key in keys:
        same = lambda r, key=key: (r["layer"], r["kind"], r["density"], r["n"]) == key
        o = next((r for r in rows if same(r) and r["method"] == ours), None)
        d = next((r for r in rows if same(r) and r["method"] == dense), None)
        if o is None or d is None or o["status"] != "ok" or d["status"] != "ok":
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | not measured: "
                         f"{(o or {}).get('status')} / {(d or {}).get('status')} |||||||")
            continue
        want = TARGETS[(key[1], key[2])][key[3]]
        xd, xw = d["device_us"] / o["device_us"], d["wall_us"] / o["wall_us"]
        mark = lambda v, w: f"{v:.2f}" + (" ✓" if v >= w else " ✗")
        cs = ""
        if key[1] == "unstructured" and key[2] == 0.3:
            cdev = _ratio(rows, same, ours, "sparsejl.spmm(A) (cuSPARSE CSR)", "device_us")
            cwall = _ratio(rows, same, ours, "sparsejl.spmm(A) (cuSPARSE CSR)", "wall_us")
            cs = "—" if cdev is None else f"{mark(cdev, CUSPARSE_TARGET)} / {mark(cwall, CUSPARSE_TARGET)}"
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {d['device_us']:.1f} / {d['wall_us']:.1f} | "
                     f"{o['device_us']:.1f} / {o['wall_us']:.1f} | {mark(xd, want)} | {mark(xw, want)} | ≥ {want:g} | "
                     f"{o['GBps']:.0f} ({100 * o['of_copy_rate']:.0f} %) | {o['bound_us']:.1f} | {cs} |")
    lines += ["", "## Every method", "",
              "| layer | kind | density | n | method | device µs | wall µs | GB/s | % copy | rel. error | prepare ms |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['layer']} | {r['kind']} | {r['density']} | {r['n']} | {r['method']} | {r['status']} |||||")
            continue
        lines.append(f"| {r['layer']} | {r['kind']} | {r['density']} | {r['n']} | {r['method']} | {r['device_us']:.1f} "
                     f"| {r['wall_us']:.1f} | {r['GBps']:.0f} | {100 * r['of_copy_rate']:.0f} | {r['check_error']:.1e} "
                     f"| {r['prepare_ms']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="one layer, no diagnostics")
    ap.add_argument("--diag", action="store_true", help="also time forced split counts (internal entry point)")
    ap.add_argument("--report-from", help="rewrite report.md from a record (.json.gz)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_from:
        rec = json.loads(gzip.open(args.report_from, "rt").read())
        (out / "report.md").write_text(report(rec["env"], rec["ceilings"], rec["records"]))
        return 0
    torch = torch_on_cuda()
    if torch is None:
        print("PyTorch with CUDA is needed for the cuBLAS baseline", file=sys.stderr)
        return 2
    env, timer = environment(), Timer(reps=30, warmup=3)
    ceil = ceilings(timer)
    print("ceilings", ceil, flush=True)
    rows = []
    shapes = list(SHAPES.items())[:1] if args.quick else SHAPES.items()
    rec = {"meta": {"title": "GPU decoding (issue 17)", "baseline": "cuBLAS (torch.matmul)"}, "env": env,
           "ceilings": ceil, "records": rows}
    for layer, (m, k) in shapes:
        for kind, b, density in KINDS:
            rows += case(timer, torch, layer, m, k, kind, b, density, np.float16, 1234, ceil, args.diag)
            with gzip.open(out / "record.json.gz", "wt") as f:     # after each case: a cut-off run keeps its rows
                json.dump(rec, f, default=str)
    text = report(env, ceil, rows)
    (out / "report.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
