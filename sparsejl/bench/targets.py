"""The issue's performance targets, the cases that measure them, and the verdicts.

Speed targets compare medians of the same case: ``ratio = baseline median / our median``
(for "best of" several peers, the fastest of them that ran). A target is met when the ratio
reaches the threshold on every case it names; where not, the verdict says by how much it falls
short (``needs`` = how many times faster we would have to be). The issue's machine: 2 threads
each, float32, 2 cores.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

from .sweep import Case

__all__ = ["Target", "TARGETS", "evaluate", "OVERHEAD_LIMIT_S", "MEMORY_SLACK_BYTES"]

#: Python→Julia call overhead limit on a tiny product, above the kernel's own time.
OVERHEAD_LIMIT_S = 5e-6
#: "Allocates nothing beyond its output": what is left for O(1) bookkeeping (views, slot arrays).
MEMORY_SLACK_BYTES = 64 * 1024


def _spmm(model, layer, n, d, b, dtype):
    from .suites import layer_mk
    m, k = layer_mk(model, layer)
    return Case(model, layer, m, k, n, d, b, dtype, "spmm")


def tiny_case(dtype="float32") -> Case:
    """The call-overhead case: 16×16 at 25 %, one token — the kernel itself takes ~0.1 µs."""
    return Case("tiny", "16x16", 16, 16, 1, 0.25, 1, dtype, "spmm")


@dataclass(frozen=True)
class Target:
    key: str
    text: str                       # the words
    kind: str                       # "speedup", "overhead" or "memory"
    ours: Tuple[str, ...]           # our backend(s) measured
    against: Tuple[str, ...]        # baselines; the best of them counts
    threshold: float                # ratio to reach, seconds (overhead), bytes (memory)
    make_cases: Callable[[str], List[Case]]

    def cases(self, dtype: str = "float32") -> List[Case]:
        return self.make_cases(dtype)


def _bert_ffn(n, d, b):
    return lambda dt: [_spmm("bert-base", "ffn.up", n, d, b, dt),
                       _spmm("bert-base", "ffn.down", n, d, b, dt)]


def _spgemm(dt):
    from .suites import spgemm_cases
    return spgemm_cases(dt)


TARGETS: Tuple[Target, ...] = (
    Target("bsr32-d10", "BSR 32 SpMM, density 0.10, 128 tokens, BERT-base FFN (3072×768 and "
           "768×3072): ≥ 5× dense", "speedup", ("julia:bsr",), ("dense",), 5.0,
           _bert_ffn(128, 0.10, 32)),
    Target("bsr32-d25", "BSR 32 SpMM, density 0.25, same shapes: ≥ 2.5× dense", "speedup",
           ("julia:bsr",), ("dense",), 2.5, _bert_ffn(128, 0.25, 32)),
    Target("decode", "Decode (16 tokens), Llama-2-7B 4096×4096 and 11008×4096, density 0.10, "
           "BSR 32: ≥ 8× dense", "speedup", ("julia:bsr",), ("dense",), 8.0,
           lambda dt: [_spmm("llama-2-7b", "attn.q", 16, 0.10, 32, dt),
                       _spmm("llama-2-7b", "ffn.up", 16, 0.10, 32, dt)]),
    Target("csr-vs-peers", "CSR SpMM, density 0.10, 128 tokens (BERT-base FFN, unstructured): "
           "≥ 1.3× the best of PyTorch CSR and MKL", "speedup", ("julia:csr",),
           ("torch:csr", "mkl:csr"), 1.3, _bert_ffn(128, 0.10, 1)),
    Target("spgemm-vs-scipy", "CSR SpGEMM (random 4096² at 1 %, 8192² at 0.2 %, W·Wᵀ of a pruned "
           "layer): ≥ 2.5× SciPy", "speedup", ("julia:csr",), ("scipy:csr",), 2.5, _spgemm),
    Target("spgemm-vs-peers", "CSR SpGEMM, same cases: ≥ 1.3× the best of MKL and GraphBLAS",
           "speedup", ("julia:csr",), ("mkl:csr", "graphblas:csr"), 1.3, _spgemm),
    Target("call-overhead", "One Python→Julia call on a tiny product: < 5 µs above the kernel "
           "(sparsejl.spmm median − the same kernel entry called in a loop inside Julia)",
           "overhead", ("julia:csr",), ("julia-kernel:csr",), OVERHEAD_LIMIT_S,
           lambda dt: [tiny_case(dt)]),
    Target("spmm-memory", "SpMM allocates nothing beyond its output (peak Python-heap bytes of "
           "one call − output bytes ≤ 64 KiB; Julia's own allocations shown where measured)",
           "memory", ("julia:csr", "julia:bsr"), (), MEMORY_SLACK_BYTES,
           _bert_ffn(128, 0.10, 32)),
)


def _key(rec) -> dict:
    return {f.name: rec[f.name] for f in dataclasses.fields(Case)}


def _find(records, case: Case, backend: str) -> Optional[dict]:
    want = dataclasses.asdict(case)
    for r in records:
        if r["backend"] == backend and _key(r) == want:
            return r
    return None


def _why(rec, backend) -> str:
    if rec is None:
        return f"{backend} not measured"
    return f"{backend} {rec['status']}: {rec['reason']}"


def _verdict_speedup(t: Target, case, records) -> dict:
    ours = _find(records, case, t.ours[0])
    base = [(_find(records, case, b), b) for b in t.against]
    ran = [(r, b) for r, b in base if r is not None and r["status"] == "ok"]
    out = dict(ours=t.ours[0], ours_s=None, baseline=None, baseline_s=None, ratio=None,
               met=None, note="")
    if ours is None or ours["status"] != "ok":
        out["note"] = _why(ours, t.ours[0])
        return out
    out["ours_s"] = ours["median_s"]
    out["threads"] = ours.get("threads")
    if not ran:
        out["note"] = "; ".join(_why(r, b) for r, b in base)
        return out
    best, name = min(ran, key=lambda rb: rb[0]["median_s"])
    ratio = best["median_s"] / ours["median_s"]
    out.update(baseline=name, baseline_s=best["median_s"], ratio=ratio,
               baseline_threads=best.get("threads"), met=ratio >= t.threshold)
    missing = [b for r, b in base if r is None or r["status"] != "ok"]
    if missing:
        out["note"] = "not compared (not there): " + ", ".join(missing)
    if not out["met"]:
        out["note"] = (f"short by {t.threshold / ratio:.2f}×: reaches {ratio:.2f}× of "
                       f"{t.threshold:g}×. " + out["note"]).strip()
    return out


def _verdict_overhead(t: Target, case, records) -> dict:
    call, kernel = _find(records, case, t.ours[0]), _find(records, case, t.against[0])
    out = dict(ours=t.ours[0], ours_s=None, baseline=t.against[0], baseline_s=None, ratio=None,
               met=None, note="")
    if call is None or call["status"] != "ok":
        out["note"] = _why(call, t.ours[0])
        return out
    out["ours_s"] = call["median_s"]
    if kernel is None or kernel["status"] != "ok":
        # the kernel's time is >= 0, so the whole call bounds the overhead from above
        out.update(ratio=call["median_s"], note="kernel time not measured ("
                   + _why(kernel, t.against[0]) + "): whole call time used as the overhead")
        out["met"] = True if call["median_s"] < t.threshold else None
    else:
        overhead = call["median_s"] - kernel["median_s"]
        out.update(baseline_s=kernel["median_s"], ratio=overhead, met=overhead < t.threshold)
    if out["met"] is False:
        out["note"] = f"over by {(out['ratio'] - t.threshold) * 1e6:.2f} µs"
    return out


def _verdict_memory(t: Target, case, records) -> dict:
    rows = []
    for b in t.ours:
        r = _find(records, case, b)
        if r is None or r["status"] != "ok" or r.get("peak_bytes") is None:
            rows.append(dict(ours=b, met=None, ratio=None, note=_why(r, b)))
            continue
        extra = r["peak_bytes"] - (r.get("output_bytes") or 0)
        note = f"peak {r['peak_bytes']} B, output {r['output_bytes']} B"
        if r.get("julia_alloc_bytes") is not None:
            note += f", Julia allocated {r['julia_alloc_bytes']} B"
        met = extra <= t.threshold
        if not met:
            note += f"; {extra - t.threshold} B over the slack"
        rows.append(dict(ours=b, met=met, ratio=extra, note=note))
    return rows


def evaluate(records: Sequence[dict], dtype: str = "float32") -> List[dict]:
    """One verdict row per target and case: target key and text, case label, our median,
    baseline and its median, ratio (speedup; overhead in s; extra bytes), threshold, met
    (True/False, None when it could not be measured), note."""
    rows = []
    for t in TARGETS:
        for case in t.cases(dtype):
            if t.kind == "speedup":
                found = [_verdict_speedup(t, case, records)]
            elif t.kind == "overhead":
                found = [_verdict_overhead(t, case, records)]
            else:
                found = _verdict_memory(t, case, records)
            for v in found:
                v.update(target=t.key, text=t.text, kind=t.kind, threshold=t.threshold,
                         case=case.label())
                rows.append(v)
    return rows


def summary(rows: Sequence[dict]) -> List[dict]:
    """One line per target: met only if every case met it."""
    out = []
    for t in TARGETS:
        mine = [r for r in rows if r["target"] == t.key]
        if not mine:
            continue
        verdicts = [r["met"] for r in mine]
        met = None if None in verdicts else all(verdicts)
        if False in verdicts:
            met = False
        out.append(dict(target=t.key, text=t.text, met=met, cases=len(mine)))
    return out
