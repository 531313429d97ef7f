"""The GPU record's Markdown report: the issue's targets, then every case's methods.

Headline rows are public calls only (sparsejl.spmm / spgemm, cuBLAS, PyTorch); rows of internal
entry points (``headline`` False) are listed apart as diagnostics.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional

from .records import BASELINES

#: what a GPU record is, written as its "meta" (the explorer reads title and baseline from it)
GPU_RECORD_META = {"title": "GPU benchmark", "baseline": BASELINES["cublas"]}


def _us(s: Optional[float]) -> str:
    return "—" if s is None else f"{s * 1e6:.1f}"


def _x(v: Optional[float]) -> str:
    return "—" if v is None else f"{v:.2f}×"


def line(r: dict) -> str:
    """One record in a line, for the log."""
    if r["status"] != "ok":
        return f"{r['backend']:24s} {r['status'].upper()}: {r['reason']}"
    return (f"{r['backend']:24s} device {_us(r['device_s'])} µs ({_x(r['speedup_vs_dense'])}), wall/call "
            f"{_us(r['wall_s'])} µs ({_x(r['wall_speedup_vs_dense'])}), graph {_us(r['graph_device_s'])} / "
            f"{_us(r['graph_wall_s'])} µs ({_x(r['graph_speedup_vs_dense'])}), err {r['check_error']:.1e}")


def _by(records: List[dict], case_key, method: str) -> Optional[dict]:
    return next((r for r in records if _key(r) == case_key and r["backend"] == method and r["status"] == "ok"), None)


def _key(r: dict) -> tuple:
    return tuple(r[k] for k in ("model", "layer", "m", "k", "n", "density", "blocksize", "dtype", "op"))


#: issue 13's targets: (model, density) -> least ratio over cuBLAS, both figures, fp16, 64×64 blocks
TARGETS = {("llama-2-7b", 0.10): 3.0, ("llama-2-7b", 0.25): 1.5, ("bert-large", 0.10): 2.0}


def targets_table(records: List[dict], label: Callable[[dict], str]) -> List[str]:
    out = ["## Targets (fp16, 64×64 blocks, 2048 tokens; sparsejl.spmm, default backend \"cupy\")", "",
           "Ratios over cuBLAS on A densified beforehand, each figure against the same figure of cuBLAS. "
           "BERT-large may meet its target with a CUDA graph (the last column).", "",
           "| case | target | cuBLAS device / wall µs | sparsejl device / wall µs | × device | × wall | "
           "× wall, graph replay | public ÷ direct wall (≤ 1.15) |",
           "|---|---|---|---|---|---|---|---|"]
    seen = set()
    for r in records:
        key = _key(r)
        want = TARGETS.get((r["model"], r["density"]))
        if (want is None or key in seen or r["op"] != "spmm" or r["blocksize"] != 64 or r["dtype"] != "float16"):
            continue
        seen.add(key)
        dense, ours, direct = (_by(records, key, m) for m in ("cublas", "sparsejl:cupy", "direct:cupy"))
        if dense is None or ours is None:
            out.append(f"| {label(r)} | ≥ {want:g}× | not measured |||||")
            continue
        mark = lambda v: "—" if v is None else f"{v:.2f}" + (" ✓" if v >= want else " ✗")
        paired = ours.get("public_over_direct_wall")
        host = "—" if paired is None else f"{paired:.2f}" + (" ✓" if paired <= 1.15 else " ✗")
        out.append(f"| {label(r)} | ≥ {want:g}× | {_us(dense['device_s'])} / {_us(dense['wall_s'])} | "
                   f"{_us(ours['device_s'])} / {_us(ours['wall_s'])} | {mark(ours['speedup_vs_dense'])} | "
                   f"{mark(ours['wall_speedup_vs_dense'])} | {mark(ours['graph_speedup_vs_dense'])} | {host} |")
    return out + [""]


def host_cost_table(records: List[dict], label: Callable[[dict], str]) -> List[str]:
    """The public call's back-to-back wall time over its backend's direct call, every case."""
    rows = [r for r in records if r.get("public_over_direct_wall") is not None]
    if not rows:
        return []
    out = ["## Host cost: sparsejl.spmm's wall time per call ÷ the backend's direct call (target ≤ 1.15)", "",
           "Streams of 30 back-to-back calls of each, alternating, 10 rounds; median of the ratios.", "",
           "| case | backend | ratio |", "|---|---|---|"]
    for r in rows:
        v = r["public_over_direct_wall"]
        out.append(f"| {label(r)} | {r['backend']} | {v:.2f}" + (" ✓" if v <= 1.15 else " ✗") + " |")
    return out + [""]


def header(title: str, env: Dict, ceil: Dict) -> List[str]:
    """A report's title, the machine and library versions, and the ceilings measured in the run."""
    return [f"# {title}", "",
            f"{env.get('gpu')} ({env.get('sm_count')} SMs), driver {env.get('cuda_driver')}, runtime "
            f"{env.get('cuda_runtime')}, cuSPARSE {env.get('cusparse')}, CuPy {env.get('cupy')}, PyTorch "
            f"{env.get('torch')}, Triton {env.get('triton')}, Julia {env.get('julia')}; {env.get('date')}.", "",
            "Ceilings measured in this run: " + ", ".join(f"{k} = {v:.0f}" if isinstance(v, float) else f"{k} = {v}"
                                                        for k, v in ceil.items()), ""]


def report(env: Dict, ceil: Dict, records: List[dict], label: Callable[[dict], str]) -> str:
    lines = header("GPU record: sparsejl's public calls against cuBLAS and PyTorch", env, ceil) + [
             "Per call: `device` is device time with the calls queued behind a spinning kernel (median); `wall` "
             "the wall time per call of a stream of back-to-back calls from the host to the device's end of the "
             "last (median of streams): what a model's forward pass sees; `graph` the same 20 calls captured in a "
             "CUDA graph and replayed (device / wall). `×` is cuBLAS's same figure over this one.", ""]
    lines += targets_table(records, label)
    lines += host_cost_table(records, label)
    cases = []
    for r in records:
        if _key(r) not in [_key(c) for c in cases]:
            cases.append(r)
    for c in cases:
        rows = [r for r in records if _key(r) == _key(c)]
        lines += [f"## {label(c)}", "",
                  "| method | device µs | wall µs/call | graph device / wall µs | × device | × wall | × graph wall "
                  "| rel. error | note |", "|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(rows, key=lambda r: not r["headline"]):
            note = ("" if r["headline"] else "diagnostic: internal entry point; ") + (
                "" if r["status"] == "ok" else f"**{r['status']}**: {r['reason']}")
            err = "—" if r["check_error"] is None else f"{r['check_error']:.1e}"
            lines.append(f"| {r['backend']} | {_us(r['device_s'])} | {_us(r['wall_s'])} | "
                         f"{_us(r['graph_device_s'])} / {_us(r['graph_wall_s'])} | {_x(r['speedup_vs_dense'])} | "
                         f"{_x(r['wall_speedup_vs_dense'])} | {_x(r['graph_speedup_vs_dense'])} | {err} | {note} |")
        lines.append("")
    return "\n".join(lines)
