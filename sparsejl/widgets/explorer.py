"""DensityExplorer: pick a real layer, a sparsity pattern and densities; see where sparse beats dense.

The widget is a user interface over :mod:`sparsejl.bench` — it builds
:class:`sparsejl.bench.sweep.Case` objects from the controls, runs them with
:func:`sparsejl.bench.sweep.run` on a background thread (so the Stop button and the progress bar
stay live), draws :func:`sparsejl.bench.plot.speedup_figure`, and reads / writes the JSON report
format of :mod:`sparsejl.bench.report`. It does no timing of its own.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
import threading
import time
import traceback
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import ipywidgets as W

from .. import catalogue
from ..bench.gpu_report import GPU_RECORD_META

__all__ = ["DensityExplorer", "break_even", "records_to_csv", "densities", "read_report"]

PATTERNS = [("unstructured", 1), ("block 2×2", 2), ("block 4×4", 4), ("block 8×8", 8),
            ("block 16×16", 16), ("block 32×32", 32), ("block 64×64", 64)]
DTYPES = ["float32", "float64"]
OPS = [("SpMM: sparse W × dense X", "spmm"), ("SpGEMM: sparse W × sparse X", "spgemm")]
#: dense baselines: the backend every other backend of that device is compared to
BASELINES = {"cpu": "dense"}
#: every name a dense baseline goes by in the reports this explorer reads (sweep, GPU benchmark)
BASELINE_NAMES = ("dense", "cupy-dense", "cublas")
#: ticked by default (when available): sparsejl's Julia kernels and SciPy, as in the main job
DEFAULT_BACKENDS = ("julia:csr", "julia:bsr", "scipy:csr", "scipy:bsr")
CSV_FIELDS = ["model", "layer", "op", "m", "k", "n", "density", "blocksize", "dtype", "seed",
              "backend", "status", "reason", "median_s", "speedup_vs_dense", "peak_bytes", "times_s"]


# ----------------------------------------------------------------------------- helpers (pure)

def densities(lo: float, hi: float, points: int) -> List[float]:
    """``points`` densities from ``lo`` to ``hi``, evenly spaced on a log scale, rounded to 4
    significant digits (so they read well in tables and file names)."""
    lo, hi, points = float(lo), float(hi), int(points)
    if not (0 < lo <= hi <= 1):
        raise ValueError(f"need 0 < low <= high <= 1, got {lo}, {hi}")
    if points < 1:
        raise ValueError("need at least one density")
    if points == 1 or lo == hi:
        return [lo]
    out = [float(f"{d:.4g}") for d in np.geomspace(lo, hi, points)]
    return sorted(set(out))


def break_even(records: Iterable[dict], backend: str) -> Optional[float]:
    """Density at which ``backend``'s speedup over dense crosses 1 — the same value the plot
    marks (:func:`sparsejl.bench.plot.break_even`). None when it does not cross in the measured
    range (:func:`break_even_label` says on which side)."""
    pts = [(float(r["density"]), float(r["speedup_vs_dense"])) for r in records
           if r.get("backend") == backend and r.get("status") == "ok"
           and r.get("speedup_vs_dense") not in (None, "") and float(r["speedup_vs_dense"]) > 0]
    if len(pts) < 2:
        return None
    return _plot().break_even(pts)


def break_even_label(records: Sequence[dict], backend: str) -> str:
    if backend in BASELINE_NAMES:
        return "baseline"
    d = break_even(records, backend)
    if d is not None:
        return f"{d:.3g}"
    sp = [float(r["speedup_vs_dense"]) for r in records if r.get("backend") == backend
          and r.get("status") == "ok" and r.get("speedup_vs_dense") not in (None, "")]
    if not sp:
        return "–"
    ds = [float(r["density"]) for r in records if r.get("backend") == backend
          and r.get("status") == "ok" and r.get("speedup_vs_dense") not in (None, "")]
    if all(s >= 1 for s in sp):
        return f"> {max(ds):g} (always faster)"
    if all(s < 1 for s in sp):
        return f"< {min(ds):g} (always slower)"
    return "–"


def records_to_csv(records: Iterable[dict]) -> str:
    """CSV text, one row per (case, backend); ``times_s`` joined with ';'."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in records:
        row = {k: r.get(k) for k in CSV_FIELDS}
        ts = r.get("times_s") or []
        row["times_s"] = ";".join(f"{t:.6g}" for t in ts)
        for k, v in row.items():
            if v is None:
                row[k] = ""
        w.writerow(row)
    return buf.getvalue()


GROUP_FIELDS = ("op", "model", "layer", "m", "k", "n", "blocksize", "dtype", "operand_b")


def _group_key(r: dict):
    return tuple(r.get(f) for f in GROUP_FIELDS)


def _group_label(key) -> str:
    r = dict(zip(GROUP_FIELDS, key))
    try:
        disp = catalogue.get(r["model"]).display
    except Exception:
        disp = str(r.get("model") or "")
    b = int(r.get("blocksize") or 1)
    pat = "unstructured" if b == 1 else f"{b}×{b} blocks"
    op = str(r.get("op") or "spmm")
    what = (f"SpMM {r['m']}×{r['k']} · {r['k']}×{r['n']} ({r['n']} tokens)" if op == "spmm"
            else f"SpGEMM {r['m']}×{r['k']} · {r['k']}×{r['n']}")
    return f"{disp} {r.get('layer') or ''}: {what}, {pat}, {r.get('dtype')}".replace("  ", " ")


def _where(env: dict, meta: dict) -> str:
    """One line on where a report was measured."""
    env = env or {}
    parts = []
    for key in ("gpu", "cpu_model"):
        if env.get(key):
            parts.append(str(env[key]))
            break
    if env.get("timestamp_utc") or env.get("time_utc"):
        parts.append(str(env.get("timestamp_utc") or env.get("time_utc")))
    if (meta or {}).get("title") and meta.get("suite") != "explorer":
        parts.insert(0, str(meta["title"]))
    if (meta or {}).get("baseline"):
        parts.append(f"baseline {meta['baseline']}")
    return "; ".join(parts)



def _from_gpu_report(data: dict) -> List[dict]:
    """Records (the sweep's fields) from ``python -m sparsejl.bench.gpu``'s JSON: one per case
    and method; the speedup is over ``cupy-dense`` (cuBLAS on the densified matrix)."""
    out = []
    for c in data.get("cases", []):
        words = str(c.get("label", "")).split()   # "bert-large ffn.down n=2048 b=64 d=0.1",
        model = words[0] if words else ""           # "random 4096x4096 d=0.01 float32"
        layer = words[1] if len(words) > 1 else ""
        dense = next((x.get("median_ms") for x in c.get("methods", [])
                      if x.get("method") == "cupy-dense" and x.get("ok")), None)
        for x in c.get("methods", []):
            if str(x.get("method", "")).startswith("diag["):
                continue  # a diagnostic variant (parts of the kernel left out): timed, never checked
            med = x.get("median_ms") if x.get("ok") else None
            out.append({
                "model": model, "layer": layer, "m": c.get("m"), "k": c.get("k"), "n": c.get("n"),
                "density": c.get("density"), "blocksize": c.get("blocksize") or 1,
                "dtype": c.get("dtype"), "op": c.get("op", "spmm"), "seed": None,
                "operand_b": "random", "backend": x.get("method"), "library": None,
                "format": c.get("fmt"), "threads": None,
                "status": "ok" if x.get("ok") else "error", "reason": x.get("note") or None,
                "times_s": [], "median_s": med / 1e3 if med else None,
                "speedup_vs_dense": (dense / med) if (dense and med) else None,
                "peak_bytes": None, "nnz": c.get("nnz"), "actual_density": c.get("density"),
                "check_error": x.get("rel_error"),
            })
    return out


def read_report(data) -> tuple:
    """``(records, meta, environment)`` from a parsed JSON report: the sweep's
    (``{"meta", "environment", "targets", "records"}``), a bare list of records, or the GPU
    benchmark's (``{"environment", "ceilings", "cases"}``)."""
    if isinstance(data, list):
        data = {"records": data}
    if not isinstance(data, dict):
        raise ValueError("not a sparsejl report: expected a JSON object")
    if "records" in data:   # internal entry points of the GPU record are diagnostics, not results
        records = [dict(r) for r in data["records"] if r.get("headline", True)]
        meta = dict(data.get("meta") or {})
        if not meta and any(r.get("device") == "gpu" for r in records):
            meta = dict(GPU_RECORD_META)   # a GPU record written before it carried its meta
    elif "cases" in data:
        records = _from_gpu_report(data)
        meta = {"title": "GPU benchmark", "baseline": "cupy-dense (cuBLAS)"}
    else:
        raise ValueError("not a sparsejl report: it has neither 'records' nor 'cases'")
    need = ("backend", "density", "status")
    for i, r in enumerate(records):
        missing = [f for f in need if f not in r]
        if missing:
            raise ValueError(f"record {i} lacks {', '.join(missing)}")
    return records, meta, dict(data.get("environment") or {})


def _relabel_baseline(fig, baseline: Optional[str]):
    """The plot names NumPy BLAS as the baseline; a GPU report's baseline is cuBLAS. Lines
    whose thread count is unknown (GPU methods) lose their "[None thr]"."""
    if not fig.axes:
        return
    ax = fig.axes[0]
    changed = False
    for line in ax.get_lines():
        label = str(line.get_label())
        new = label.replace(" [None thr]", "")       # threads unknown (a GPU): say nothing
        if baseline and label.startswith("dense ("):
            new = f"dense ({baseline}) = 1"
        if new != label:
            line.set_label(new)
            changed = True
    if changed and ax.get_legend() is not None:
        ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _log_density_axis(fig, recs):
    """The explorer spaces densities geometrically: show them on a log axis, so that the low
    densities (where sparse wins) do not crowd into one corner and their labels stay apart."""
    ds = sorted({float(r["density"]) for r in recs if r.get("density")})
    if len(ds) < 2 or ds[-1] / ds[0] < 4 or not fig.axes:
        return
    from matplotlib.ticker import FixedLocator, FixedFormatter, NullLocator
    ax = fig.axes[0]
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(ds))
    ax.xaxis.set_major_formatter(FixedFormatter([f"{d:.3g}" for d in ds]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(ds[0] / 1.25, ds[-1] * 1.25)
    ax.set_xlabel(ax.get_xlabel() + ", log scale")


def estimate_bytes(m: int, k: int, n: int, density: float, dtype: str, op: str = "spmm") -> int:
    """Rough peak memory of one measurement at ``density``: the sparse operand, its densified
    copy (the dense baseline), the float64 reference and its error bound, the outputs."""
    it = np.dtype(dtype).itemsize
    d = float(density)
    a = m * k * (8 + it + d * (it + 16))        # CSR + float64 copy, dense A (f64 ref + baseline)
    if op == "spgemm":
        b = k * n * d * (it + 16) + k * n * it  # sparse B, and densified for the baseline
    else:
        b = k * n * (it + 16)                   # B, float64 B, |B|
    c = m * n * (16 + 2 * it)                   # reference, bound, two outputs
    return int(a + b + c)


def available_bytes() -> Optional[int]:
    """MemAvailable from /proc/meminfo (None where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _fmt_bytes(b) -> str:
    b = float(b)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if b < 1024 or unit == "GiB":
            return f"{b:.3g} {unit}"
        b /= 1024
    return f"{b:.3g} TiB"


def _fmt_time(s) -> str:
    if s in (None, "") or not np.isfinite(float(s)):
        return "–"
    s = float(s)
    if s >= 1:
        return f"{s:.3g} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _sweep():
    from ..bench import sweep
    return sweep


def _plot():
    from ..bench import plot
    return plot


def _report():
    from ..bench import report
    return report


# ----------------------------------------------------------------------------- the widget

class DensityExplorer(W.VBox):
    """Explore the speedup of sparse over dense for one layer of a real model across densities.

    Controls: model, layer, tokens, operation, pattern (unstructured or b×b blocks), density
    range and points, value type, repeats and the backends (unavailable ones disabled, with the
    reason). **Run** measures with :func:`sparsejl.bench.sweep.run` on a background thread;
    **Stop** ends it after the measurement in progress. Results: a plot of speedup over dense
    (one line per backend, dense at 1, break-even marked), a table of times, downloads (CSV,
    JSON report, PNG) and :meth:`save`. **Load report** shows a saved JSON report (e.g. one
    measured on a GPU machine) without running anything.

    For scripts and notebooks: ``ex.run(wait=True)``, ``ex.records``, ``ex.load_report(path)``,
    ``ex.save(folder)``, ``ex.stop()``.
    """

    def __init__(self, model: str = "bert-base", layer: Optional[str] = None, tokens: int = 128,
                 pattern: int = 1, density_range=(0.01, 0.5), points: int = 6,
                 dtype: str = "float32", op: str = "spmm", repeats: int = 5, seed: int = 0,
                 backends: Optional[Sequence[str]] = None, save_dir: str = "sparsejl-results"):
        self.records: List[dict] = []
        self.report_meta: Dict = {}
        self.environment: Dict = {}
        self.figure = None
        self.png: bytes = b""
        self.error: Optional[str] = None
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self.seed = int(seed)

        # ---- model / layer / shape
        mdl = catalogue.get(model)
        self.model_w = W.Dropdown(options=[(m.display, k) for k, m in catalogue.MODELS.items()],
                                  value=mdl.key, description="Model")
        self.layer_w = W.Dropdown(options=self._layer_options(mdl.key), description="Layer")
        if layer is not None:
            self.layer_w.value = mdl.layer(layer).name
        self.tokens_w = W.BoundedIntText(value=int(tokens), min=1, max=65536, step=1,
                                         description="Tokens (n)")
        self.op_w = W.Dropdown(options=OPS, value=op, description="Operation")
        self.shape_w = W.HTML()
        # ---- pattern / densities / dtype
        self.pattern_w = W.Dropdown(options=PATTERNS, value=int(pattern), description="Pattern")
        self.density_w = W.FloatRangeSlider(value=tuple(density_range), min=0.005, max=1.0,
                                            step=0.005, readout_format=".3f",
                                            description="Density", continuous_update=False,
                                            layout=W.Layout(width="350px"))
        self.points_w = W.IntSlider(value=int(points), min=1, max=12, description="Points",
                                    layout=W.Layout(width="350px"))
        self.dtype_w = W.Dropdown(options=DTYPES, value=dtype, description="Value type")
        self.repeats_w = W.IntSlider(value=max(5, int(repeats)), min=5, max=25, description="Repeats",
                                     layout=W.Layout(width="350px"))
        # ---- backends (the benchmark's contenders: sparsejl's kernels and the field's libraries)
        self.backend_boxes: Dict[str, W.Checkbox] = {}
        self.backend_status: Dict[str, object] = {}
        wanted = set(backends) if backends is not None else set(DEFAULT_BACKENDS)
        rows = []
        for st in self._backend_statuses():
            self.backend_status[st.name] = st
            baseline = st.name in BASELINES.values()
            cb = W.Checkbox(value=bool(st.available and (st.name in wanted or baseline)),
                            disabled=(not st.available) or baseline,
                            description=f"{st.name}", indent=False,
                            layout=W.Layout(width="160px"))
            cb.add_class("sjl-backend")
            cb.add_class("sjl-backend-" + st.name.replace(":", "-"))
            note = (f"{st.library}, {st.device}" + (": baseline, always run" if baseline else "")
                    if st.available else f"unavailable: {st.reason}")
            lab = W.HTML(f"<span style='color:{'#666' if st.available else '#a55'};font-size:85%'"
                         f" title='{html.escape(note)}'>"
                         f"{html.escape(note if len(note) <= 90 else note[:88] + '…')}</span>",
                         layout=W.Layout(width="auto"))
            self.backend_boxes[st.name] = cb
            rows.append(W.HBox([cb, lab]))
        self.backends_w = W.VBox(rows)
        # ---- actions / status
        self.run_w = W.Button(description="Run", button_style="primary", icon="play")
        self.stop_w = W.Button(description="Stop", button_style="warning", icon="stop",
                               disabled=True)
        self.progress_w = W.IntProgress(value=0, min=0, max=1, description="",
                                        layout=W.Layout(width="200px"))
        self.progress_label = W.Label("")
        self.progress_label.add_class("sjl-progress-label")
        self.status_w = W.HTML("")
        self.error_w = W.HTML("")
        self.notes_w = W.HTML("")
        self.run_w.add_class("sjl-run")
        self.stop_w.add_class("sjl-stop")
        self.progress_w.add_class("sjl-progress")
        self.status_w.add_class("sjl-status")
        self.error_w.add_class("sjl-error")
        # ---- results
        self.plot_w = W.Image(format="png", layout=W.Layout(width="100%", max_width="920px",
                                                             display="none"))
        self.plot_w.add_class("sjl-plot")
        self.group_w = W.Dropdown(options=[], description="Showing",
                                  layout=W.Layout(width="95%", display="none"))
        self.group_w.add_class("sjl-group")
        self.variants_w = W.Checkbox(value=False, indent=False,
                                     description="show tuning variants (backend[config])",
                                     layout=W.Layout(display="none"))
        self.variants_w.add_class("sjl-variants")
        self.variants_w.observe(lambda _c: self._redraw(), names="value")
        self._regrouping = False
        self.group_w.observe(lambda _c: None if self._regrouping else self._redraw(),
                             names="value")
        self.table_w = W.HTML("<i>No results yet: press Run, or load a report.</i>",
                              layout=W.Layout(width="100%", max_width="100%", overflow="auto"))
        self.table_w.add_class("sjl-table")
        self.downloads_w = W.HTML("")
        self.downloads_w.add_class("sjl-downloads")
        self.save_dir_w = W.Text(value=str(save_dir), description="Folder",
                                 layout=W.Layout(width="280px"))
        self.save_w = W.Button(description="Save CSV, JSON, PNG", icon="save",
                               tooltip="write the CSV, the JSON report and the plot into the folder",
                               layout=W.Layout(width="auto"))
        self.save_w.add_class("sjl-save")
        self.upload_w = W.FileUpload(accept=".json", multiple=False,
                                     description="Load report…")
        self.upload_w.add_class("sjl-upload")
        self.load_path_w = W.Text(placeholder="or a path to report.json", description="Report",
                                  layout=W.Layout(width="280px"))
        self.load_w = W.Button(description="Load", icon="folder-open", layout=W.Layout(width="auto"))
        self.load_w.add_class("sjl-load")
        self.load_path_w.add_class("sjl-load-path")

        # ---- wiring
        self.model_w.observe(self._on_model, names="value")
        for w in (self.layer_w, self.tokens_w, self.op_w, self.pattern_w, self.dtype_w,
                  self.density_w, self.points_w):
            w.observe(lambda _c: self._update_shape(), names="value")
        self.run_w.on_click(lambda _b: self.run(wait=False))
        self.stop_w.on_click(lambda _b: self.stop())
        self.save_w.on_click(lambda _b: self._on_save())
        self.load_w.on_click(lambda _b: self._on_load_path())
        self.upload_w.observe(self._on_upload, names="value")
        for w, cls in ((self.model_w, "model"), (self.layer_w, "layer"), (self.tokens_w, "tokens"),
                       (self.op_w, "op"), (self.pattern_w, "pattern"), (self.density_w, "density"),
                       (self.points_w, "points"), (self.dtype_w, "dtype"),
                       (self.repeats_w, "repeats"), (self.shape_w, "shape"),
                       (self.notes_w, "notes")):
            w.add_class("sjl-" + cls)
        self._update_shape()

        narrow = W.Layout(width="360px")
        controls = W.VBox([
            W.HTML("<b>Layer</b>"), self.model_w, self.layer_w, self.tokens_w, self.op_w,
            self.shape_w,
            W.HTML("<b>Sparsity</b>"), self.pattern_w, self.density_w, self.points_w,
            self.dtype_w, self.repeats_w,
            W.HTML("<b>Backends</b>"), self.backends_w,
            W.HBox([self.run_w, self.stop_w]),
            W.HBox([self.progress_w, self.progress_label]),
        ], layout=narrow)
        results = W.VBox([
            self.status_w, self.error_w, self.group_w, self.variants_w, self.plot_w, self.table_w, self.notes_w,
            W.HTML("<b>Export</b>"), self.downloads_w, W.HBox([self.save_dir_w, self.save_w]),
            W.HTML("<b>Saved report</b> (explore results measured elsewhere, e.g. on a GPU)"),
            W.HBox([self.upload_w]), W.HBox([self.load_path_w, self.load_w]),
        ], layout=W.Layout(flex="1 1 0%", min_width="640px", padding="0 0 0 16px"))
        title = W.HTML("<h3 style='margin:4px 0'>sparsejl density explorer: when does a pruned "
                       "layer run faster than dense?</h3>")
        super().__init__([title, W.HBox([controls, results],
                                        layout=W.Layout(flex_flow="row wrap"))])
        self.add_class("sjl-explorer")

    # ------------------------------------------------------------------ controls
    @staticmethod
    def _backend_statuses():
        """Every contender of :mod:`sparsejl.bench.peers` with availability and reason."""
        from types import SimpleNamespace
        try:
            from ..bench import peers
        except Exception as exc:  # the widget stays usable to load reports
            return [SimpleNamespace(name="dense", device="cpu", library="NumPy", fmt="dense",
                                    available=False,
                                    reason=f"sparsejl.bench is not importable: {exc}")]
        out = []
        for name, c in peers.CONTENDERS.items():
            try:
                ok, why = c.availability()
            except Exception as exc:
                ok, why = False, f"{type(exc).__name__}: {exc}"
            out.append(SimpleNamespace(name=name, device=getattr(c, "device", "cpu"),
                                       fmt=getattr(c, "fmt", ""),
                                       library=getattr(c, "library", name),
                                       available=bool(ok), reason=why))
        # sparsejl's GPU backends that the sweep cannot time (yet): listed, disabled, with why
        swept = {getattr(c, "backend", None) for c in peers.CONTENDERS.values()}
        try:
            import sparsejl
            gpu = [b for b in sparsejl.backends() if b.device == "gpu" and b.name not in swept]
        except Exception:
            gpu = []
        for b in gpu:
            why = (b.reason if not b.available else
                   "usable here, but sparsejl.bench.sweep has no GPU contender: measure with "
                   "python -m sparsejl.bench.gpu and load its report")
            out.append(SimpleNamespace(name=b.name, device="gpu", fmt="", library="sparsejl",
                                       available=False, reason=why))
        return out

    @staticmethod
    def _layer_options(model_key: str):
        return [(f"{l.name}  ({l.out_features}×{l.in_features})", l.name)
                for l in catalogue.get(model_key).layers]

    def _on_model(self, change):
        old = self.layer_w.value
        opts = self._layer_options(change["new"])
        self.layer_w.options = opts
        names = [v for _, v in opts]
        self.layer_w.value = old if old in names else names[0]
        self._update_shape()

    def _update_shape(self):
        try:
            lay = catalogue.layer(self.model_w.value, self.layer_w.value)
        except KeyError:
            return
        n = int(self.tokens_w.value or 1)
        b = int(self.pattern_w.value)
        itemsize = np.dtype(self.dtype_w.value).itemsize
        msg = (f"W: {lay.out_features}×{lay.in_features} ({lay.params / 1e6:.3g} M weights, "
               f"<code>{html.escape(lay.module)}</code>); X: {lay.in_features}×{n}; "
               f"dense W: {lay.params * itemsize / 2**20:.3g} MiB")
        warn = ""
        need = estimate_bytes(lay.m, lay.k, n, self.density_w.value[1], self.dtype_w.value,
                              self.op_w.value)
        msg += f"; run needs ≈ {_fmt_bytes(need)}"
        avail = available_bytes()
        if avail is not None and need > 0.8 * avail:
            warn += (f"<br><span style='color:#b00'>more than the {_fmt_bytes(avail)} of memory "
                     "available: fewer tokens or a smaller layer</span>")
        if b > 1 and (lay.m % b or lay.k % b):
            warn = f"<br><span style='color:#b00'>{lay.m}×{lay.k} is not divisible by {b}</span>"
        try:
            ds = densities(*self.density_w.value, self.points_w.value)
            msg += "<br>densities: " + ", ".join(f"{d:g}" for d in ds)
        except ValueError as exc:
            warn += f"<br><span style='color:#b00'>{html.escape(str(exc))}</span>"
        self.shape_w.value = f"<span style='font-size:90%'>{msg}{warn}</span>"

    def selected_backends(self) -> List[str]:
        """Backends to run: the ticked available ones plus the dense baseline of their device
        (BSR ones only for block patterns: an unstructured pattern has no blocks)."""
        unstructured = int(self.pattern_w.value) == 1
        chosen = [n for n, cb in self.backend_boxes.items()
                  if cb.value and self.backend_status[n].available
                  and n not in BASELINES.values()
                  and not (unstructured and getattr(self.backend_status[n], "fmt", "") == "bsr")]
        devices = {self.backend_status[n].device for n in chosen}
        for dev, base in BASELINES.items():
            st = self.backend_status.get(base)
            if dev in devices and st is not None and st.available:
                chosen.append(base)
        return chosen

    def cases(self):
        """The sweep's :class:`~sparsejl.bench.sweep.Case` list for the current controls."""
        sweep = _sweep()
        lay = catalogue.layer(self.model_w.value, self.layer_w.value)
        b = int(self.pattern_w.value)
        if b > 1 and (lay.m % b or lay.k % b):
            raise ValueError(f"{self.layer_w.value} is {lay.m}×{lay.k}, not divisible by "
                             f"blocksize {b}")
        n = int(self.tokens_w.value)
        op = self.op_w.value
        need = estimate_bytes(lay.m, lay.k, n, self.density_w.value[1], self.dtype_w.value, op)
        avail = available_bytes()
        if avail is not None and need > 0.8 * avail:
            raise ValueError(f"{lay.m}×{lay.k} with {n} tokens needs ≈ {_fmt_bytes(need)} at "
                             f"density {self.density_w.value[1]:g}; {_fmt_bytes(avail)} is available")
        return [sweep.Case(model=self.model_w.value, layer=lay.name, m=lay.m, k=lay.k, n=n,
                           density=d, blocksize=b, dtype=self.dtype_w.value, op=op,
                           seed=self.seed)
                for d in densities(*self.density_w.value, self.points_w.value)]

    # ------------------------------------------------------------------ running
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _set_running(self, on: bool):
        self.run_w.disabled = on
        self.stop_w.disabled = not on
        self.load_w.disabled = on
        self.upload_w.disabled = on

    def run(self, wait: bool = True):
        """Measure the current selection. ``wait=False`` returns at once (the Run button)."""
        if self.running:
            self.status_w.value = "<b>Already running</b>: press Stop first."
            return
        self.error = None
        self.error_w.value = ""
        self.notes_w.value = ""
        try:
            cases = self.cases()
            backends = self.selected_backends()
            if not backends:
                raise ValueError("no available backend is selected")
        except Exception as exc:
            self._show_error(f"Cannot run: {exc}")
            return
        self._stop.clear()
        self.records = []
        self.environment = {}
        self.report_meta = {"title": "sparsejl density explorer", "suite": "explorer",
                            "cases": len(cases), "backends": list(backends),
                            "repeats": int(self.repeats_w.value), "warmup": 1,
                            "command": "sparsejl.widgets.DensityExplorer"}
        self._set_groups()
        total = len(cases) * len(backends)
        self.progress_w.max = max(total, 1)
        self.progress_w.value = 0
        self.progress_w.bar_style = "info"
        self.progress_label.value = f"0 / {total}"
        self.status_w.value = (f"Running {len(cases)} densities × {len(backends)} backends "
                               f"({', '.join(backends)}) …")
        self._set_running(True)
        self._thread = threading.Thread(target=self._worker, args=(cases, backends, total),
                                        name="sparsejl-explorer", daemon=True)
        self._thread.start()
        if wait:
            self._thread.join()
        return self

    def stop(self):
        """Ask a running sweep to stop after the measurement in progress."""
        if self.running:
            self._stop.set()
            self.stop_w.disabled = True
            self.status_w.value = "Stopping after the measurement in progress …"

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the run ends; True if it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def _progress(self, *args, **kwargs):
        """Progress callback for sweep.run; accepts (done, total[, record]) or a record."""
        done = kwargs.get("done")
        total = kwargs.get("total")
        rec = kwargs.get("record")
        ints = [a for a in args if isinstance(a, (int, np.integer)) and not isinstance(a, bool)]
        for a in args:
            if isinstance(a, dict):
                rec = a
        if len(ints) >= 2:
            done, total = ints[0], ints[1]
        with self._lock:
            if rec is not None:
                self.records.append(dict(rec))
            if done is None:
                done = self.progress_w.value + 1
        if total:
            self.progress_w.max = max(int(total), 1)
        self.progress_w.value = min(int(done), self.progress_w.max)
        self.progress_label.value = f"{int(done)} / {self.progress_w.max}"
        if rec is not None and time.monotonic() - self._last_draw > 1.0:
            try:  # a live redraw must never end the measurement
                self._redraw(partial=True)
            except Exception:
                self._last_draw = time.monotonic() + 3600

    def _worker(self, cases, backends, total):
        sweep = _sweep()
        t0 = time.monotonic()
        try:
            recs = sweep.run(cases, backends, repeats=int(self.repeats_w.value), warmup=1,
                             progress=self._progress, should_stop=self._stop.is_set)
            with self._lock:
                self.records = [dict(r) for r in recs]
            self.report_meta["wall_s"] = time.monotonic() - t0
            try:
                from ..bench import env as _env
                self.environment = _env.capture()
            except Exception as exc:  # the environment is context, not a result
                self.environment = {"error": f"{type(exc).__name__}: {exc}"}
            stopped = sum(r.get("status") == "stopped" for r in self.records)
            failed = [r for r in self.records if r.get("status") == "error"]
            self._redraw()
            secs = time.monotonic() - t0
            if self._stop.is_set() or stopped:
                self.progress_w.bar_style = "warning"
                self.progress_w.value = total - stopped
                self.progress_label.value = f"{total - stopped} / {total} (stopped)"
                self.status_w.value = (f"<b>Stopped</b> after {secs:.1f} s: "
                                       f"{len(self.records) - stopped} of {total} measured.")
            else:
                self.progress_w.value = self.progress_w.max
                self.progress_w.bar_style = "success"
                self.status_w.value = f"<b>Done</b> in {secs:.1f} s: {total} measurements."
            self.notes_w.value = self._notes_html(self.records)
            if failed:
                self._show_error("Some products failed (see the table):<br>" + "<br>".join(
                    html.escape(f"{r['backend']} at density {r['density']:g}: {r.get('reason')}")
                    for r in failed[:5]), keep_status=True)
        except Exception as exc:  # a failed run leaves the widget usable
            self.progress_w.bar_style = "danger"
            self._show_error(f"Run failed: {type(exc).__name__}: {exc}",
                             detail=traceback.format_exc())
            if self.records:
                try:
                    self._redraw(partial=True)
                except Exception:
                    pass
        finally:
            self._set_running(False)

    @staticmethod
    def _notes_html(records) -> str:
        """Backends that did not run (missing here, or not applicable), once each, with why."""
        seen = {}
        for r in records:
            if r.get("status") in ("missing", "skipped") and r.get("backend") not in seen:
                seen[r.get("backend")] = f"{r.get('status')}: {r.get('reason')}"
        if not seen:
            return ""
        return ("<div style='font-size:85%;color:#666'>" + "<br>".join(
            f"<b>{html.escape(str(b))}</b> {html.escape(str(why))}" for b, why in seen.items())
            + "</div>")

    def _show_error(self, msg: str, detail: str = "", keep_status: bool = False):
        self.error = msg
        det = (f"<details><summary>details</summary><pre style='font-size:80%'>"
               f"{html.escape(detail)}</pre></details>") if detail else ""
        self.error_w.value = (f"<div style='color:#a00;border:1px solid #d88;padding:4px 8px;"
                              f"background:#fff4f4'>{msg}{det}</div>")
        if not keep_status:
            self.status_w.value = ""

    # ------------------------------------------------------------------ results
    def _set_groups(self):
        """Offer one entry per group of the records (layer, tokens, pattern, op, dtype)."""
        keys = []
        for r in self.records:
            key = _group_key(r)
            if key not in keys:
                keys.append(key)
        opts = [(_group_label(k), i) for i, k in enumerate(keys)]
        self._group_keys = keys
        self._regrouping = True
        try:
            self.group_w.options = opts          # selects the first entry, or None
            if opts:
                self.group_w.value = 0
        finally:
            self._regrouping = False
        self.group_w.layout.display = "flex" if len(opts) > 1 else "none"
        has_variants = any("[" in str(r.get("backend")) for r in self.records)
        self.variants_w.layout.display = "flex" if has_variants else "none"

    def shown_records(self) -> List[dict]:
        """The records of the group on display (all of them when there is one group)."""
        with self._lock:
            recs = list(self.records)
        if not self.variants_w.value:   # "cupy[tma,2,4]": a tuning of "cupy", hidden by default
            recs = [r for r in recs if "[" not in str(r.get("backend"))]
        keys = getattr(self, "_group_keys", [])
        if len(keys) <= 1 or self.group_w.value is None:
            return recs
        key = keys[int(self.group_w.value)]
        return [r for r in recs if _group_key(r) == key]

    @staticmethod
    def _title(recs) -> str:
        r = next((r for r in recs if r.get("m")), None)
        if r is None:
            return "speedup over dense"
        return _group_label(_group_key(r))

    def _redraw(self, partial: bool = False):
        self._last_draw = time.monotonic()
        recs = self.shown_records()
        if not recs:
            return
        self.table_w.value = self.table_html(recs)
        if not any(r.get("status") == "ok" and r.get("speedup_vs_dense") for r in recs):
            # nothing to plot against dense (no baseline in this group, or nothing ran yet)
            self.figure, self.png = None, b""
            self.plot_w.layout.display = "none"
            if any(r.get("status") == "ok" for r in recs):
                self.table_w.value = ("<div style='color:#555'>No dense baseline was measured "
                                      "for this group: times only, no speedup plot.</div>"
                                      + self.table_w.value)
            if not partial:
                self._update_downloads()
            return
        plot = _plot()
        lines = []
        for r in recs:
            if r.get("backend") not in lines and r.get("backend") not in BASELINE_NAMES:
                lines.append(r.get("backend"))
        # a Figure of our own, not pyplot's: no global state shared with the notebook (this runs
        # on the sweep's thread) and no switch of the notebook's matplotlib backend
        from matplotlib.figure import Figure
        fig = Figure(figsize=(10, 4.8))
        fig.subplots_adjust(left=0.08, right=0.62, top=0.92, bottom=0.12)  # legend on the right
        plot.speedup_figure(recs, title=self._title(recs), backends=lines, ax=fig.add_subplot())
        _log_density_axis(fig, recs)
        _relabel_baseline(fig, self.report_meta.get("baseline"))
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", pad_inches=0.15)
        self.figure = fig
        self.png = buf.getvalue()
        self.plot_w.value = self.png
        self.plot_w.layout.display = "block"
        if not partial:
            self._update_downloads()

    def table_html(self, records: Optional[Sequence[dict]] = None) -> str:
        """The results table: one row per density, median time and speedup per backend."""
        recs = list(self.records if records is None else records)
        backends = []
        for r in recs:
            if r.get("backend") not in backends:
                backends.append(r.get("backend"))
        dens = sorted({float(r["density"]) for r in recs})
        by = {(float(r["density"]), r.get("backend")): r for r in recs}
        th = "".join(f"<th colspan=2>{html.escape(str(b))}</th>" for b in backends)
        sub = "".join("<th>median</th><th>speedup</th>" for _ in backends)
        rows = []
        for d in dens:
            cells = []
            for b in backends:
                r = by.get((d, b))
                if r is None:
                    cells.append("<td>–</td><td></td>")
                elif r.get("status") != "ok":
                    reason = html.escape(str(r.get("reason") or ""))
                    cells.append(f"<td title='{reason}'>{html.escape(str(r.get('status')))}</td>"
                                 "<td></td>")
                else:
                    sp = r.get("speedup_vs_dense")
                    spt = "–" if sp in (None, "") else f"{float(sp):.2f}×"
                    style = "" if sp in (None, "") else (
                        " style='color:#070'" if float(sp) >= 1 else " style='color:#a00'")
                    cells.append(f"<td>{_fmt_time(r.get('median_s'))}</td><td{style}>{spt}</td>")
            rows.append(f"<tr><td>{d:g}</td>{''.join(cells)}</tr>")
        be = "".join(f"<td colspan=2>{html.escape(break_even_label(recs, b))}</td>"
                     for b in backends)
        rows.append(f"<tr style='border-top:2px solid #888'><td><b>break-even</b></td>{be}</tr>")
        style = ("<style>.sjl-tab{border-collapse:collapse;font-size:90%}"
                 ".sjl-tab td,.sjl-tab th{border:1px solid #ccc;padding:2px 6px;"
                 "text-align:right}</style>")
        meta = ""
        where = _where(self.environment, self.report_meta)
        if where:
            meta = f"<div style='font-size:85%;color:#555'>{html.escape(where)}</div>"
        return (f"{style}{meta}<div style='overflow-x:auto;max-width:100%'>"
                f"<table class='sjl-tab'><tr><th rowspan=2>density</th>{th}</tr>"
                f"<tr>{sub}</tr>{''.join(rows)}</table></div>"
                "<div style='font-size:80%;color:#555'>median wall time of the product; speedup ="
                " dense median / backend median on the same device; break-even = density below "
                "which sparse is faster (interpolated as on the plot)</div>")

    # ------------------------------------------------------------------ export / import
    def to_csv(self) -> str:
        return records_to_csv(self.records)

    def to_json(self) -> str:
        """The records as a JSON report, written by :func:`sparsejl.bench.report.write_json`
        (``{"meta", "environment", "targets", "records"}``), the format ``sparsejl-bench``
        writes and :meth:`load_report` reads."""
        report = _report()
        try:
            from ..bench import targets
            verdicts = targets.evaluate(self.records)
        except Exception:  # verdicts are for the suite; an explorer sweep may have none
            verdicts = []
        import tempfile
        fd, path = tempfile.mkstemp(suffix=".json", prefix="sparsejl-report-")
        os.close(fd)
        try:
            report.write_json(path, self.records, self.environment, self.report_meta, verdicts)
            with open(path) as f:
                return f.read()
        finally:
            os.unlink(path)

    def _update_downloads(self):
        if not self.records:
            self.downloads_w.value = ""
            return
        stem = self._stem()
        links = []
        makers = (("CSV", "text/csv", lambda: self.to_csv().encode()),
                  ("JSON report", "application/json", lambda: self.to_json().encode()),
                  ("plot PNG", "image/png", lambda: self.png))
        for label, mime, make in makers:
            try:
                data = make()
            except Exception as exc:  # an export that cannot be made does not spoil the others
                links.append(f"<span style='color:#a00'>{label}: {html.escape(str(exc))}</span>")
                continue
            if not data:
                continue
            b64 = base64.b64encode(data).decode()
            ext = {"text/csv": "csv", "application/json": "json", "image/png": "png"}[mime]
            links.append(f"<a download='{stem}.{ext}' href='data:{mime};base64,{b64}' "
                         f"class='sjl-dl-{ext}' style='margin-right:1em'>⬇ {label}</a>")
        self.downloads_w.value = " ".join(links)

    def _stem(self) -> str:
        r = self.records[0] if self.records else {}
        b = int(r.get("blocksize") or 1)
        parts = [str(r.get("model", "sparsejl")), str(r.get("layer", "")),
                 str(r.get("op", "")), f"n{r.get('n', '')}", "unstr" if b == 1 else f"b{b}",
                 str(r.get("dtype", ""))]
        return "-".join(p for p in parts if p).replace("/", "_").replace(" ", "_")

    def save(self, folder: Optional[str] = None) -> Dict[str, str]:
        """Write ``<stem>.csv``, ``<stem>.json`` (report) and ``<stem>.png`` into ``folder``."""
        if not self.records:
            raise ValueError("nothing to save: run or load a report first")
        folder = folder or self.save_dir_w.value or "."
        os.makedirs(folder, exist_ok=True)
        stem = os.path.join(folder, self._stem())
        out = {"csv": stem + ".csv", "json": stem + ".json"}
        with open(out["csv"], "w", newline="") as f:
            f.write(self.to_csv())
        with open(out["json"], "w") as f:
            f.write(self.to_json())
        if self.png:
            out["png"] = stem + ".png"
            with open(out["png"], "wb") as f:
                f.write(self.png)
        return out

    def _on_save(self):
        try:
            paths = self.save()
            self.status_w.value = "Saved " + ", ".join(
                f"<code>{html.escape(p)}</code>" for p in paths.values())
        except Exception as exc:
            self._show_error(f"Save failed: {exc}")

    def load_report(self, source):
        """Show a saved JSON report: a path, JSON text or bytes (gzipped or not), or the parsed dict.

        Reads the sweep's report (``sparsejl-bench``'s ``results.json``, or this explorer's
        export) and the GPU benchmark's (``python -m sparsejl.bench.gpu``). Nothing is run."""
        import gzip  # committed records are gzipped (benchmarks/README.md)
        if self.running:
            raise RuntimeError("a run is in progress; stop it first")
        if isinstance(source, (bytes, bytearray, memoryview)):
            source = bytes(source)
            source = (gzip.decompress(source) if source[:2] == b"\x1f\x8b" else source).decode("utf-8")
        if isinstance(source, dict):
            data = source
        elif isinstance(source, str) and source.lstrip()[:1] in ("{", "["):
            data = json.loads(source)
        else:
            path = os.fspath(source)
            with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
                data = json.load(f)
        records, meta, env = read_report(data)
        self.records = records
        self.report_meta = meta
        self.environment = env
        self.error = None
        self.error_w.value = ""
        self.progress_w.value = 0
        self.progress_w.bar_style = ""
        self.progress_label.value = ""
        self.notes_w.value = self._notes_html(self.records)
        self._set_groups()
        self._redraw()
        self._select_from_record(self.shown_records()[0] if self.records else {})
        where = _where(env, meta)
        self.status_w.value = (f"<b>Loaded report</b>: {len(self.records)} measurements, "
                               f"{len(self._group_keys)} group(s)"
                               + (f"; {html.escape(where)}" if where else "") + ".")
        return self

    def _select_from_record(self, r: dict):
        """Set the controls to the loaded report's case where they exist (for context only)."""
        try:
            if r.get("model") in catalogue.MODELS:
                self.model_w.value = r["model"]
                if r.get("layer") in catalogue.get(r["model"]).layer_names:
                    self.layer_w.value = r["layer"]
            if r.get("n"):
                self.tokens_w.value = int(r["n"])
            if int(r.get("blocksize") or 1) in dict((v, k) for k, v in PATTERNS):
                self.pattern_w.value = int(r.get("blocksize") or 1)
            if r.get("dtype") in DTYPES:
                self.dtype_w.value = r["dtype"]
        except Exception:
            pass

    def _on_load_path(self):
        path = self.load_path_w.value.strip()
        try:
            if not path:
                raise ValueError("type the path of a report.json first")
            self.load_report(path)
        except Exception as exc:
            self._show_error(f"Could not load report: {html.escape(str(exc))}")

    def _on_upload(self, change):
        files = change["new"]
        if not files:
            return
        f = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
        try:
            self.load_report(bytes(f["content"]))
            self.status_w.value += f" From <code>{html.escape(str(f.get('name', '')))}</code>."
        except Exception as exc:
            self._show_error(f"Could not load {html.escape(str(f.get('name', 'upload')))}: "
                             f"{html.escape(str(exc))}")
