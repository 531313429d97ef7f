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

from .. import shapes

__all__ = ["DensityExplorer", "break_even", "records_to_csv", "densities"]

PATTERNS = [("unstructured", 1), ("block 2×2", 2), ("block 4×4", 4), ("block 8×8", 8),
            ("block 16×16", 16), ("block 32×32", 32)]
DTYPES = ["float32", "float64"]
OPS = [("SpMM: sparse W × dense X", "spmm"), ("SpGEMM: sparse W × sparse X", "spgemm")]
#: dense baselines: the backend every other backend of that device is compared to
BASELINES = {"cpu": "dense"}
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
    """Density at which ``backend``'s speedup over dense crosses 1, interpolated in log–log.

    The highest density at which sparse is still at least as fast as dense, where the curve goes
    from >= 1 to < 1. None when it never crosses inside the measured range (see
    :func:`break_even_label` for which side)."""
    pts = sorted((float(r["density"]), float(r["speedup_vs_dense"])) for r in records
                 if r.get("backend") == backend and r.get("status") == "ok"
                 and r.get("speedup_vs_dense") not in (None, "") and float(r["speedup_vs_dense"]) > 0)
    if len(pts) < 2:
        return None
    best = None
    for (d0, s0), (d1, s1) in zip(pts, pts[1:]):
        if s0 >= 1 > s1:
            x0, x1, y0, y1 = math.log(d0), math.log(d1), math.log(s0), math.log(s1)
            t = y0 / (y0 - y1) if y0 != y1 else 0.0
            best = math.exp(x0 + t * (x1 - x0))
    return best


def break_even_label(records: Sequence[dict], backend: str) -> str:
    if backend in BASELINES.values():
        return "baseline"
    d = break_even(records, backend)
    if d is not None:
        return f"{d:.3g}"
    sp = [float(r["speedup_vs_dense"]) for r in records if r.get("backend") == backend
          and r.get("status") == "ok" and r.get("speedup_vs_dense") not in (None, "")]
    if not sp:
        return "–"
    if all(s >= 1 for s in sp):
        return "above range (faster at all)"
    if all(s < 1 for s in sp):
        return "below range (slower at all)"
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
        self.figure = None
        self.png: bytes = b""
        self.error: Optional[str] = None
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self.seed = int(seed)

        # ---- model / layer / shape
        mdl = shapes.get(model)
        self.model_w = W.Dropdown(options=[(m.display, k) for k, m in shapes.MODELS.items()],
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
                         f" title='{html.escape(note)}'>{html.escape(note[:90])}</span>",
                         layout=W.Layout(width="auto"))
            self.backend_boxes[st.name] = cb
            rows.append(W.HBox([cb, lab]))
        self.backends_w = W.VBox(rows)
        # ---- actions / status
        self.run_w = W.Button(description="Run", button_style="primary", icon="play")
        self.stop_w = W.Button(description="Stop", button_style="warning", icon="stop",
                               disabled=True)
        self.progress_w = W.IntProgress(value=0, min=0, max=1, description="",
                                        layout=W.Layout(width="260px"))
        self.progress_label = W.Label("")
        self.status_w = W.HTML("")
        self.error_w = W.HTML("")
        self.notes_w = W.HTML("")
        self.run_w.add_class("sjl-run")
        self.stop_w.add_class("sjl-stop")
        self.progress_w.add_class("sjl-progress")
        self.status_w.add_class("sjl-status")
        self.error_w.add_class("sjl-error")
        # ---- results
        self.plot_w = W.Image(format="png", layout=W.Layout(width="100%", max_width="760px"))
        self.plot_w.add_class("sjl-plot")
        self.table_w = W.HTML("<i>No results yet: press Run, or load a report.</i>")
        self.table_w.add_class("sjl-table")
        self.downloads_w = W.HTML("")
        self.downloads_w.add_class("sjl-downloads")
        self.save_dir_w = W.Text(value=str(save_dir), description="Folder",
                                 layout=W.Layout(width="280px"))
        self.save_w = W.Button(description="Save CSV, JSON, PNG", icon="save")
        self.save_w.add_class("sjl-save")
        self.upload_w = W.FileUpload(accept=".json", multiple=False,
                                     description="Load report…")
        self.upload_w.add_class("sjl-upload")
        self.load_path_w = W.Text(placeholder="or a path to report.json", description="Report",
                                  layout=W.Layout(width="280px"))
        self.load_w = W.Button(description="Load", icon="folder-open")
        self.load_w.add_class("sjl-load")

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
            self.status_w, self.error_w, self.plot_w, self.table_w, self.notes_w,
            W.HTML("<b>Export</b>"), self.downloads_w, W.HBox([self.save_dir_w, self.save_w]),
            W.HTML("<b>Saved report</b> (explore results measured elsewhere, e.g. on a GPU)"),
            W.HBox([self.upload_w]), W.HBox([self.load_path_w, self.load_w]),
        ], layout=W.Layout(flex="1 1 0%", min_width="420px", padding="0 0 0 16px"))
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
        return out

    @staticmethod
    def _layer_options(model_key: str):
        return [(f"{l.name}  ({l.out_features}×{l.in_features})", l.name)
                for l in shapes.get(model_key).layers]

    def _on_model(self, change):
        old = self.layer_w.value
        opts = self._layer_options(change["new"])
        self.layer_w.options = opts
        names = [v for _, v in opts]
        self.layer_w.value = old if old in names else names[0]
        self._update_shape()

    def _update_shape(self):
        try:
            lay = shapes.layer(self.model_w.value, self.layer_w.value)
        except KeyError:
            return
        n = int(self.tokens_w.value or 1)
        b = int(self.pattern_w.value)
        itemsize = np.dtype(self.dtype_w.value).itemsize
        msg = (f"W: {lay.out_features}×{lay.in_features} ({lay.params / 1e6:.3g} M weights, "
               f"<code>{html.escape(lay.module)}</code>); X: {lay.in_features}×{n}; "
               f"dense W: {lay.params * itemsize / 2**20:.3g} MiB")
        warn = ""
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
        lay = shapes.layer(self.model_w.value, self.layer_w.value)
        b = int(self.pattern_w.value)
        if b > 1 and (lay.m % b or lay.k % b):
            raise ValueError(f"{self.layer_w.value} is {lay.m}×{lay.k}, not divisible by "
                             f"blocksize {b}")
        n = int(self.tokens_w.value)
        op = self.op_w.value
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
        self.report_meta = {"source": "measured in this session"}
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
            stopped = sum(r.get("status") == "stopped" for r in self.records)
            failed = [r for r in self.records if r.get("status") == "error"]
            self._redraw()
            secs = time.monotonic() - t0
            if self._stop.is_set() or stopped:
                self.progress_w.bar_style = "warning"
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
    def _title(self) -> str:
        r = next((r for r in self.records if r.get("m")), None)
        if r is None:
            return "speedup over dense"
        try:
            disp = shapes.get(r["model"]).display
        except Exception:
            disp = str(r.get("model"))
        b = int(r.get("blocksize") or 1)
        pat = "unstructured" if b == 1 else f"{b}×{b} blocks"
        return (f"{disp} {r.get('layer')}: {str(r.get('op', 'spmm')).upper()} "
                f"{r['m']}×{r['k']} · {r['k']}×{r['n']}, {pat}, {r.get('dtype')}")

    def _redraw(self, partial: bool = False):
        self._last_draw = time.monotonic()
        with self._lock:
            recs = list(self.records)
        if not recs:
            return
        self.table_w.value = self.table_html(recs)
        ok = [r for r in recs if r.get("status") == "ok"]
        if not ok:
            return
        plot = _plot()
        fig = plot.speedup_figure(ok, title=self._title())
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        try:
            import matplotlib.pyplot as plt
            plt.close(fig)
        except Exception:
            pass
        self.figure = fig
        self.png = buf.getvalue()
        self.plot_w.value = self.png
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
                 ".sjl-tab td,.sjl-tab th{border:1px solid #ccc;padding:2px 8px;"
                 "text-align:right}</style>")
        meta = ""
        if self.report_meta:
            meta = ("<div style='font-size:85%;color:#555'>" + html.escape(
                "; ".join(f"{k}: {v}" for k, v in self.report_meta.items() if v not in (None, "")))
                + "</div>")
        return (f"{style}{meta}<table class='sjl-tab'><tr><th rowspan=2>density</th>{th}</tr>"
                f"<tr>{sub}</tr>{''.join(rows)}</table>"
                "<div style='font-size:80%;color:#555'>median wall time of the product; speedup ="
                " dense median / backend median on the same device; break-even = density below "
                "which sparse is faster (log–log interpolation)</div>")

    # ------------------------------------------------------------------ export / import
    def to_csv(self) -> str:
        return records_to_csv(self.records)

    def to_json(self) -> str:
        """The records as a JSON report (sparsejl.bench.report's format)."""
        report = _report()
        return report.dumps(self.records, meta=self.report_meta)

    def _update_downloads(self):
        if not self.records:
            self.downloads_w.value = ""
            return
        stem = self._stem()
        links = []
        for label, mime, data in (("CSV", "text/csv", self.to_csv().encode()),
                                  ("JSON report", "application/json", self.to_json().encode()),
                                  ("plot PNG", "image/png", self.png)):
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
        """Show a saved JSON report: a path, JSON text/bytes, or the loaded dict."""
        report = _report()
        if isinstance(source, (bytes, bytearray, memoryview)):
            source = bytes(source).decode()
        if isinstance(source, str) and source.lstrip().startswith("{"):
            records, meta = report.loads(source)
        elif isinstance(source, dict):
            records, meta = report.loads(json.dumps(source))
        else:
            records, meta = report.load(os.fspath(source))
        if self.running:
            raise RuntimeError("a run is in progress; stop it first")
        self.records = [dict(r) for r in records]
        self.report_meta = dict(meta or {})
        self.error = None
        self.error_w.value = ""
        self.progress_w.value = 0
        self.progress_label.value = ""
        self.notes_w.value = self._notes_html(self.records)
        self._redraw()
        first = self.records[0] if self.records else {}
        self._select_from_record(first)
        where = self.report_meta.get("device") or self.report_meta.get("machine") or ""
        self.status_w.value = (f"<b>Loaded report</b> ({len(self.records)} measurements"
                               + (f", {html.escape(str(where))}" if where else "") + ").")
        return self

    def _select_from_record(self, r: dict):
        """Set the controls to the loaded report's case where they exist (for context only)."""
        try:
            if r.get("model") in shapes.MODELS:
                self.model_w.value = r["model"]
                if r.get("layer") in shapes.get(r["model"]).layer_names:
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
