"""The one record format of every measurement: the CPU sweep, the GPU record and the explorer.

A record is a flat dict: the case (:data:`CASE_FIELDS`), then what was measured on it by one
backend (:data:`MEASUREMENT_FIELDS`); harnesses may add figures of their own (the GPU record's
``device_s``, ``graph_wall_s``, …). A report is ``{"meta", "environment", "records"}`` (plus the
CPU sweep's ``targets`` and the GPU record's ``ceilings``), written by :func:`dumps` and read
back by :func:`load`, which also reads every report committed under ``benchmarks/results``:
plain or gzipped JSON, and the GPU diagnostics' ``{"cases": [{"methods": [...]}, ...]}``
(each case carries its ``model`` and ``layer`` fields; a case without them loads with them
empty: nothing is read back out of a label).
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
from collections import OrderedDict
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

__all__ = ["CASE_FIELDS", "MEASUREMENT_FIELDS", "GROUP_FIELDS", "OVERLAY_FIELDS", "BASELINES", "Report", "record",
           "normalize", "is_dense", "is_baseline", "group_key", "groups", "group_title", "load",
           "from_data", "dumps", "to_csv", "weight_bytes"]

#: what was multiplied (``device`` is "cpu" or "gpu")
CASE_FIELDS = ("model", "layer", "op", "m", "k", "n", "density", "blocksize", "dtype", "seed",
               "operand_b", "device")
#: what one backend measured on the case
MEASUREMENT_FIELDS = ("backend", "library", "format", "threads", "status", "reason", "times_s",
                      "median_s", "calls_per_sample", "speedup_vs_dense", "peak_bytes",
                      "output_bytes", "nnz", "actual_density", "check_error", "headline")
#: records that share these draw one line per backend across densities
GROUP_FIELDS = ("op", "model", "layer", "m", "k", "n", "blocksize", "dtype", "operand_b")
#: the dense baseline each harness divides by: NumPy BLAS (sweep), cuBLAS (GPU record), cuBLAS
#: through CuPy (GPU diagnostics)
BASELINES = {"dense": "NumPy BLAS", "cublas": "cuBLAS (torch.matmul)", "cupy-dense": "cuBLAS (CuPy)"}
#: dense methods that are not the baseline: they have no pattern, so no break-even
_DENSE_METHODS = {"cublas-cupy", "torch-dense"}
CSV_FIELDS = ["model", "layer", "op", "m", "k", "n", "density", "blocksize", "dtype", "seed",
              "device", "backend", "status", "reason", "median_s", "speedup_vs_dense",
              "peak_bytes", "nnz", "times_s"]
_DEFAULTS = {"op": "spmm", "blocksize": 1, "operand_b": "random", "device": "cpu",
             "times_s": [], "headline": True}


class Report(NamedTuple):
    records: List[dict]
    meta: Dict
    environment: Dict


def record(**fields) -> dict:
    """A record with every field of the schema, None where not given."""
    return normalize(fields)


def normalize(r: dict) -> dict:
    """``r`` with every schema field present (defaults where missing) and ``format`` set for
    the dense baselines."""
    out = {f: _DEFAULTS.get(f) for f in CASE_FIELDS + MEASUREMENT_FIELDS}
    out["times_s"] = []
    out.update(r)
    for f, v in _DEFAULTS.items():
        if out.get(f) is None:
            out[f] = list(v) if isinstance(v, list) else v
    if out.get("format") is None and (out["backend"] in BASELINES or out["backend"] in _DENSE_METHODS):
        out["format"] = "dense"
    return out


def is_baseline(r: dict) -> bool:
    return r.get("backend") in BASELINES


def is_dense(r: dict) -> bool:
    """A dense product (the baseline or another dense library): no pattern, no break-even."""
    return r.get("format") == "dense" or is_baseline(r) or r.get("backend") in _DENSE_METHODS


def group_key(r: dict, fields: Sequence[str] = GROUP_FIELDS) -> Tuple:
    return tuple(r.get(f) for f in fields)


def groups(records: Iterable[dict], fields: Sequence[str] = GROUP_FIELDS) -> "OrderedDict[Tuple, List[dict]]":
    """Records keyed by everything but density and backend (or by ``fields``), in first-seen order."""
    out: "OrderedDict[Tuple, List[dict]]" = OrderedDict()
    for r in records:
        out.setdefault(group_key(r, fields), []).append(r)
    return out


def _model_name(key) -> str:
    from .. import catalogue
    try:
        return catalogue.get(key).display
    except Exception:
        return str(key or "")


#: an overlay of runs shares a plot per product shape: patterns and value types become lines
OVERLAY_FIELDS = ("op", "model", "layer", "m", "k", "n", "operand_b")


def group_title(r: dict, pattern: bool = True) -> str:
    """``"BERT-base ffn.up: SpMM 3072×768 · 768×128 (128 tokens), 16×16 blocks, float32"``
    (without the pattern and value type when ``pattern`` is False)."""
    b = int(r.get("blocksize") or 1)
    kind = "unstructured" if b == 1 else f"{b}×{b} blocks"
    m, k, n = r.get("m"), r.get("k"), r.get("n")
    if (r.get("op") or "spmm") == "spmm":
        what = f"SpMM {m}×{k} · {k}×{n} ({n} tokens)"
    elif r.get("operand_b") == "transpose":
        what = f"SpGEMM {m}×{k} · its transpose"
    else:
        what = f"SpGEMM {m}×{k} · {k}×{n} (B random, same density and pattern)"
    where = " ".join(p for p in (_model_name(r.get("model")), str(r.get("layer") or "")) if p)
    if pattern:
        what = f"{what}, {kind}, {r.get('dtype')}"
    return f"{where}: {what}" if where else what


def weight_bytes(m: int, k: int, nnz: Optional[int], blocksize: int, dtype: str, fmt: str) -> Optional[int]:
    """Bytes of an ``m × k`` weight stored dense, as CSR, or as BSR with ``blocksize`` blocks
    (``nnz`` stored entries; int32 indices where they fit, as sparsejl stores them)."""
    import numpy as np
    item = np.dtype(dtype).itemsize if dtype != "bfloat16" else 2
    if fmt == "dense":
        return m * k * item
    if nnz is None:
        return None
    idx = 4 if max(m, k, nnz) < 2**31 else 8
    if fmt == "csr":
        return nnz * (item + idx) + (m + 1) * idx
    b = max(int(blocksize), 1)
    nnzb = -(-nnz // (b * b))
    return nnz * item + nnzb * idx + (m // b + 1) * idx


# ----------------------------------------------------------------------------- reading

def load(source) -> Report:
    """A report from a path (``.json`` or ``.json.gz``), JSON text, bytes (gzipped or not), or
    the parsed object (dict, or a bare list of records)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
        data = json.loads((gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8"))
    elif isinstance(source, (dict, list)):
        data = source
    elif isinstance(source, str) and source.lstrip()[:1] in ("{", "["):
        data = json.loads(source)
    else:
        path = os.fspath(source)
        with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
    return from_data(data)


def from_data(data) -> Report:
    """A report from its parsed JSON; see :func:`load`. Records of internal entry points
    (``headline`` False: diagnostics) are left out."""
    if isinstance(data, list):
        data = {"records": data}
    if not isinstance(data, dict):
        raise ValueError("not a sparsejl report: expected a JSON object")
    meta = dict(data.get("meta") or {})
    if "records" in data:
        for i, r in enumerate(data["records"]):
            missing = [f for f in ("backend", "density", "status") if f not in r]
            if missing:
                raise ValueError(f"record {i} lacks {', '.join(missing)}")
        records = [normalize(r) for r in data["records"]]
    elif "cases" in data:
        records = _from_cases(data["cases"])
        meta.setdefault("baseline", BASELINES["cupy-dense"])
    else:
        raise ValueError("not a sparsejl report: it has neither 'records' nor 'cases'")
    if any(r["device"] == "gpu" for r in records):
        meta.setdefault("title", "GPU benchmark")
        base = next((r["backend"] for r in records if is_baseline(r)), "cublas")
        meta.setdefault("baseline", BASELINES.get(base, base))
    return Report([r for r in records if r["headline"]], meta, dict(data.get("environment") or {}))


def _from_cases(cases: Sequence[dict]) -> List[dict]:
    """The GPU diagnostics' cases, one record per case and checked method; the speedup is over
    ``cupy-dense``. Methods named ``diag[...]`` (parts of a kernel left out) were never checked."""
    out = []
    for c in cases:
        dense = next((x.get("median_ms") for x in c.get("methods", [])
                      if x.get("method") == "cupy-dense" and x.get("ok")), None)
        case = {f: c.get(f) for f in ("model", "layer", "op", "m", "k", "n", "density", "blocksize", "dtype")}
        case.update(device="gpu", model=c.get("model") or "", layer=c.get("layer") or "")
        for x in c.get("methods", []):
            if str(x.get("method", "")).startswith("diag["):
                continue
            med = x.get("median_ms") if x.get("ok") else None
            out.append(normalize(dict(
                case, backend=x.get("method"), format=None if x.get("method") != "cupy-dense" else "dense",
                status="ok" if x.get("ok") else "error", reason=x.get("note") or None,
                median_s=med / 1e3 if med else None,
                speedup_vs_dense=(dense / med) if (dense and med) else None,
                nnz=c.get("nnz"), actual_density=c.get("density"), check_error=x.get("rel_error"))))
    return out


# ----------------------------------------------------------------------------- writing

def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):   # NumPy scalars
        try:
            x = x.item()
        except Exception:
            return str(x)
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def dumps(records: Sequence[dict], environment: Optional[dict] = None, meta: Optional[dict] = None,
          **extra) -> str:
    """The report as JSON text (``extra``: ``targets=``, ``ceilings=``)."""
    body = {"meta": meta or {}, "environment": environment or {}, **extra, "records": list(records)}
    return json.dumps(_jsonable(body), indent=1, default=str)


def to_csv(records: Iterable[dict]) -> str:
    """CSV text, one row per (case, backend); ``times_s`` joined with ';'."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in records:
        row = {k: r.get(k) for k in CSV_FIELDS}
        row["times_s"] = ";".join(f"{t:.6g}" for t in (r.get("times_s") or []))
        w.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()
