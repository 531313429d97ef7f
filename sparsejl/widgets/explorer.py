"""DensityExplorer: pick a real layer (or bring your own weight), a sparsity pattern and densities;
see where sparse beats dense.

It composes four parts, each usable alone (a model view builds on them too):

* :class:`~sparsejl.widgets.controls.Controls` — what to measure, Run and Stop;
* :class:`~sparsejl.widgets.runner.Runner` — :func:`sparsejl.bench.sweep.run` on a thread;
* :class:`~sparsejl.widgets.view.ResultsView` — the group on show: plot, table, notes;
* :mod:`sparsejl.bench.records` — the one record format it reads and writes.

The session keeps every run and every loaded report (:attr:`DensityExplorer.sources`); several of
them can be shown together (:meth:`DensityExplorer.compare`): the same case from each, side by side
on one plot and one table. It does no timing of its own.
"""
from __future__ import annotations

import html
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import ipywidgets as W

from .. import catalogue
from ..bench import curves, records as R
from .controls import Controls, available_bytes, densities, estimate_bytes
from .model_view import ModelView
from .runner import Outcome, Runner
from .view import ResultsView, table_html, where

__all__ = ["DensityExplorer", "break_even", "break_even_label", "densities", "estimate_bytes",
           "available_bytes", "read_report", "records_to_csv"]

records_to_csv = R.to_csv


def read_report(data) -> tuple:
    """``(records, meta, environment)`` of a report (see :func:`sparsejl.bench.records.load`)."""
    return tuple(R.load(data))


def break_even(records: Sequence[dict], backend: str) -> Optional[float]:
    """The density below which ``backend`` is faster than dense and above which it is slower (the
    plot's ✕); None from fewer than two densities, for dense methods, or when the curve does not
    fall through 1 exactly once (:func:`break_even_label` says what it does)."""
    mine = [r for r in records if r.get("backend") == backend]
    if not mine or R.is_dense(mine[0]):
        return None
    return curves.break_even(curves.points(mine))


def break_even_label(records: Sequence[dict], backend: str) -> str:
    if backend in R.BASELINES:
        return "baseline"
    mine = [r for r in records if r.get("backend") == backend]
    if not mine:
        return "–"
    return curves.describe(curves.points(mine), R.is_dense(mine[0]))


_STYLE = """<style>
.sjl-explorer .sjl-actions{position:sticky;top:0;z-index:20;background:var(--jp-layout-color0,#fff);
  padding:4px 0;border-bottom:1px solid #ddd;flex-shrink:0}
.sjl-explorer .sjl-plot{height:auto}
.sjl-explorer .sjl-controls>*,.sjl-explorer .sjl-results>*{flex-shrink:0}
.sjl-explorer .widget-html-content{white-space:normal}
.sjl-explorer .sjl-table .widget-html-content{display:block;overflow-x:auto;max-width:100%}
.sjl-explorer .sjl-tab-scroll{max-width:100%;overflow-x:auto}
</style>"""


#: each column is at most a screen high and scrolls inside, so that Run, Stop and the plot are on
#: screen together however far the results go
_SCREEN = "calc(100vh - 110px)"


class DensityExplorer(W.VBox):
    """Explore the speedup of sparse over dense for one layer across densities.

    **Run** measures the controls' case with :func:`sparsejl.bench.sweep.run` on a background
    thread; **Stop** ends it after the measurement in progress. Results: speedup over dense (one
    line per backend, interquartile ranges, break-even where there is one), a table of times,
    downloads (CSV, JSON report, PNG) and :meth:`save`. **Load report** shows saved reports
    (one or several: measured on a GPU machine, say) without running anything and without
    touching the run controls. Every run and report stays in the session; **Compare** overlays them.

    For scripts and notebooks: ``ex.run(wait=True)``, ``ex.records``, ``ex.load_report(path)``,
    ``ex.use_matrix(weight)``, ``ex.compare([...])``, ``ex.save(folder)``, ``ex.stop()``.
    """

    def __init__(self, model: str = "bert-base", layer: Optional[str] = None, tokens: int = 128,
                 pattern: int = 1, density_range=(0.01, 0.5), points: int = 6, dtype: str = "float32",
                 op: str = "spmm", repeats: int = 5, seed: int = 0, backends: Optional[Sequence[str]] = None,
                 save_dir: str = "sparsejl-results"):
        self.seed = int(seed)
        self.error: Optional[str] = None
        self.sources: "OrderedDict[str, R.Report]" = OrderedDict()   # runs and reports of the session
        self._shown: List[str] = []
        self._runs = 0
        self.controls = Controls(model, layer, tokens, pattern, density_range, points, dtype, op, repeats, backends)
        self.controls.layout.max_height = _SCREEN
        self.controls.layout.overflow_y = "auto"
        self.view = ResultsView()
        self.runner = Runner(on_record=lambda *a: self._on_record(*a), on_done=lambda o: self._on_done(o))
        c = self.controls
        for name in ("model_w", "layer_w", "tokens_w", "op_w", "shape_w", "pattern_w", "density_w", "points_w",
                     "dtype_w", "repeats_w", "backend_boxes", "backend_status", "backends_w", "run_w", "stop_w",
                     "progress_w", "progress_label", "estimate_w", "source_w"):
            setattr(self, name, getattr(c, name))
        for name in ("group_w", "variants_w", "plot_w", "table_w", "notes_w", "downloads_w"):
            setattr(self, name, getattr(self.view, name))
        self.status_w = W.HTML("")
        self.error_w = W.HTML("")
        self.status_w.add_class("sjl-status")
        self.error_w.add_class("sjl-error")
        self.follow_w = W.Button(description="Set controls to this group", icon="sliders",
                                 layout=W.Layout(width="auto", display="none"),
                                 tooltip="copy the case on show into the run controls")
        self.follow_w.add_class("sjl-follow")
        # session: runs and reports, compared side by side
        self.compare_w = W.SelectMultiple(options=[], rows=3, description="Compare",
                                          style={"description_width": "60px"}, layout=W.Layout(width="98%"))
        self.compare_btn = W.Button(description="Overlay selected", icon="clone", layout=W.Layout(width="auto"))
        self.compare_box = W.VBox([self.compare_w, self.compare_btn], layout=W.Layout(display="none"))
        self.compare_w.add_class("sjl-compare")
        self.compare_btn.add_class("sjl-overlay")
        # export and import
        self.save_dir_w = W.Text(value=str(save_dir), description="Folder", layout=W.Layout(width="260px"),
                                 style={"description_width": "50px"})
        self.save_w = W.Button(description="Save CSV, JSON, PNG", icon="save", layout=W.Layout(width="auto"),
                               tooltip="write the CSV, the JSON report and the plot into the folder")
        self.upload_w = W.FileUpload(accept=".json,.gz", multiple=True, description="Load reports…")
        self.load_path_w = W.Text(placeholder="or paths of reports, comma-separated", description="Report",
                                  layout=W.Layout(width="340px"), style={"description_width": "50px"})
        self.load_w = W.Button(description="Load", icon="folder-open", layout=W.Layout(width="auto"))
        for w, cls in ((self.save_w, "save"), (self.upload_w, "upload"), (self.load_path_w, "load-path"),
                       (self.load_w, "load")):
            w.add_class("sjl-" + cls)
        # wiring
        c.run_w.on_click(lambda _b: self.run(wait=False))
        c.stop_w.on_click(lambda _b: self.stop())
        self.save_w.on_click(lambda _b: self._on_save())
        self.load_w.on_click(lambda _b: self._on_load_path())
        self.upload_w.observe(self._on_upload, names="value")
        self.follow_w.on_click(lambda _b: self._follow_group())
        self.compare_btn.on_click(lambda _b: self._on_compare())
        results = W.VBox([self.status_w, self.error_w, self.follow_w, self.view, self.compare_box,
                          W.HTML("<b>Export</b>"), self.view.downloads_w, W.HBox([self.save_dir_w, self.save_w]),
                          W.HTML("<b>Saved reports</b> (measured elsewhere, e.g. on a GPU; the run controls stay "
                                 "as they are)"),
                          W.HBox([self.upload_w]), W.HBox([self.load_path_w, self.load_w])],
                         layout=W.Layout(flex="1 1 0%", min_width="0", padding="0 0 0 12px",
                                         max_height=_SCREEN, overflow_y="auto"))
        results.add_class("sjl-results")
        head = W.HTML(_STYLE + "<h3 style='margin:2px 0'>sparsejl density explorer: when does a pruned layer run "
                      "faster than dense?</h3>")
        # the whole model: each layer of the chosen model timed, the model's speedup predicted
        self.model_view = ModelView(model=model if model in catalogue.MODELS else "bert-base", tokens=tokens)
        self.model_w_box = W.Accordion(children=[self.model_view], selected_index=None)
        self.model_w_box.set_title(0, "Whole model: every linear layer, and the model's predicted speedup")
        self.model_w_box.add_class("sjl-model-view")
        super().__init__([head, W.HBox([c, results], layout=W.Layout(flex_flow="row nowrap", width="100%")),
                          self.model_w_box])
        self.add_class("sjl-explorer")

    # ------------------------------------------------------------------ state
    @property
    def records(self) -> List[dict]:
        return self.view.records

    @records.setter
    def records(self, value):
        self.view.records = list(value)

    @property
    def report_meta(self) -> Dict:
        return self.view.meta

    @property
    def environment(self) -> Dict:
        return self.view.environment

    @property
    def figure(self):
        return self.view.figure

    @property
    def png(self) -> bytes:
        return self.view.png

    @property
    def running(self) -> bool:
        return self.runner.running

    def cases(self):
        return self.controls.cases(self.seed)

    def selected_backends(self) -> List[str]:
        return self.controls.selected_backends()

    def shown_records(self) -> List[dict]:
        return self.view.shown_records()

    def table_html(self, records: Optional[Sequence[dict]] = None) -> str:
        return table_html(self.records if records is None else records, self.environment, self.report_meta)

    # ------------------------------------------------------------------ running
    def use_matrix(self, source, tensor: Optional[str] = None, name: Optional[str] = None):
        """Time your own weight: a ``.npz`` / ``.safetensors`` path (with ``tensor``), a SciPy
        sparse matrix, an array, a torch tensor or an ``nn.Linear``. A pruned weight is timed with
        its own pattern; a dense one is pruned (``sparsejl.prune``) to each density."""
        return self.controls.set_matrix(source, tensor, name)

    def run(self, wait: bool = True):
        """Measure the controls' case. ``wait=False`` returns at once (the Run button)."""
        if self.running:
            self.status_w.value = "<b>Already running</b>: press Stop first."
            return None
        self._clear_error()
        try:
            cases = self.cases()
            backends = self.selected_backends()
            if not backends:
                raise ValueError("no available backend is selected")
        except Exception as exc:
            self._show_error(f"Cannot run: {html.escape(str(exc))}")
            return None
        self._runs += 1
        self._run_name = f"run {self._runs}: {R.group_title(vars(cases[0]))}"
        meta = {"title": "sparsejl density explorer", "suite": "explorer", "cases": len(cases),
                "backends": list(backends), "repeats": int(self.repeats_w.value), "warmup": 1,
                "command": "sparsejl.widgets.DensityExplorer"}
        self.view.set_records([], meta, {})
        self._shown = []
        self.follow_w.layout.display = "none"
        total = len(cases) * len(backends)
        self._total = total
        self.progress_w.max = max(total, 1)
        self.progress_w.value = 0
        self.progress_w.bar_style = "info"
        self.progress_label.value = f"0 / {total}"
        self.status_w.value = f"Running {len(cases)} densities × {len(backends)} backends ({', '.join(backends)}) …"
        self.controls.set_running(True)
        self.load_w.disabled = self.upload_w.disabled = True
        self._last_draw = 0.0
        self.runner.start(cases, backends, repeats=int(self.repeats_w.value), operands=self.controls.operands())
        if wait:
            self.runner.wait()
        return self

    def stop(self):
        """Ask a running sweep to stop after the measurement in progress."""
        if self.running:
            self.runner.stop()
            self.stop_w.disabled = True
            self.status_w.value = "Stopping after the measurement in progress …"

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self.runner.wait(timeout)

    def _on_record(self, record: dict, done: int, total: int):
        import time
        self.view.records.append(record)
        self.progress_w.value = min(done, self.progress_w.max)
        self.progress_label.value = f"{done} / {total}"
        if time.monotonic() - self._last_draw > 1.0:
            try:   # a live redraw must never end the measurement
                self._last_draw = time.monotonic()
                self.view.regroup()
                self.view.redraw()
            except Exception:
                self._last_draw = time.monotonic() + 3600

    def _on_done(self, out: Outcome):
        try:
            self.view.meta["wall_s"] = out.seconds
            if out.error is not None:
                self.progress_w.bar_style = "danger"
                self._show_error(f"Run failed: {type(out.error).__name__}: {html.escape(str(out.error))}",
                                 detail=out.traceback)
                self.view.set_records(out.records)
                self.view.redraw()
                return
            self.view.set_records(out.records, environment=out.environment)
            self.view.redraw()
            self._remember(self._run_name, R.Report(list(out.records), dict(self.view.meta), dict(out.environment or {})))
            self._shown = [self._run_name]
            stopped = sum(r.get("status") == "stopped" for r in out.records)
            if out.stopped:
                self.progress_w.bar_style = "warning"
                self.progress_w.value = self._total - stopped
                self.progress_label.value = f"{self._total - stopped} / {self._total} (stopped)"
                self.status_w.value = (f"<b>Stopped</b> after {out.seconds:.1f} s: {len(out.records) - stopped} of "
                                       f"{self._total} measured.")
            else:
                self.progress_w.value = self.progress_w.max
                self.progress_w.bar_style = "success"
                self.status_w.value = f"<b>Done</b> in {out.seconds:.1f} s: {self._total} measurements."
            failed = [r for r in out.records if r.get("status") == "error"]
            if failed:
                self._show_error("Some products failed (see the table):<br>" + "<br>".join(
                    html.escape(f"{r['backend']} at density {r['density']:g}: {r.get('reason')}") for r in failed[:5]),
                    keep_status=True)
            self._update_downloads()
        finally:
            self.controls.set_running(False)
            self.load_w.disabled = self.upload_w.disabled = False

    # ------------------------------------------------------------------ messages
    def _clear_error(self):
        self.error = None
        self.error_w.value = ""

    def _show_error(self, msg: str, detail: str = "", keep_status: bool = False):
        self.error = msg
        det = (f"<details><summary>details</summary><pre style='font-size:80%'>{html.escape(detail)}</pre></details>"
               if detail else "")
        self.error_w.value = (f"<div style='color:#a00;border:1px solid #d88;padding:4px 8px;background:#fff4f4'>"
                              f"{msg}{det}</div>")
        if not keep_status:
            self.status_w.value = ""

    # ------------------------------------------------------------------ session and comparison
    def _remember(self, name: str, report: R.Report):
        self.sources[name] = report
        self.compare_w.options = list(self.sources)
        self.compare_box.layout.display = "flex" if len(self.sources) > 1 else "none"

    def compare(self, names: Sequence[str]):
        """Show several runs or reports of the session together: each line is named by its source;
        the same case from each (the same group) shares one plot and one table."""
        names = list(names)
        unknown = [n for n in names if n not in self.sources]
        if unknown:
            raise KeyError(f"not in this session: {', '.join(unknown)}; it has {', '.join(self.sources)}")
        if len(names) < 1:
            raise ValueError("pick at least one run or report")
        recs = []
        for n in names:
            recs += [dict(r, source=n if len(names) > 1 else None) for r in self.sources[n].records]
        if len(names) > 1:   # overlay: lines of different patterns or devices share the layer's plot
            for r in recs:
                b = int(r.get("blocksize") or 1)
                extra = ["unstructured" if b == 1 else f"{b}×{b}", str(r.get("dtype")), str(r.get("device") or "cpu")]
                r["source"] = f"{r['source'].split(':')[0]} ({', '.join(extra)})"
        first = self.sources[names[0]]
        envs = [self.sources[n].environment for n in names]
        self.view.set_records(recs, dict(first.meta, title=None if len(names) > 1 else first.meta.get("title")),
                              envs[0] if len(names) == 1 else {"overlay": envs}, prefer_plottable=True,
                              overlay=len(names) > 1)
        self.view.redraw()
        self._shown = names
        self.status_w.value = (f"<b>Showing</b> {len(names)} of this session's runs and reports together: "
                               + html.escape("; ".join(names)) + ". The run controls are unchanged.")
        self._update_downloads()
        return self

    def _on_compare(self):
        try:
            self.compare(self.compare_w.value)
        except Exception as exc:
            self._show_error(f"Cannot compare: {html.escape(str(exc))}")

    # ------------------------------------------------------------------ reports
    def load_report(self, source, *more):
        """Show saved reports: paths (``.json`` / ``.json.gz``), JSON text or bytes, or parsed dicts.
        Several at once are shown together (:meth:`compare`). Nothing is run, and the run controls
        are left as they are (``Set controls to this group`` copies the case on show into them)."""
        if self.running:
            raise RuntimeError("a run is in progress; stop it first")
        names = []
        for i, src in enumerate((source,) + more):
            rep = R.load(src)
            base = (os.path.basename(os.fspath(src)) if isinstance(src, (str, os.PathLike))
                    and not str(src).lstrip().startswith(("{", "[")) else f"report {len(self.sources) + 1}")
            names.append(self._unique(base))
            self._remember(names[-1], rep)
        self._clear_error()
        self.progress_w.value = 0
        self.progress_w.bar_style = ""
        self.progress_label.value = ""
        if len(names) > 1:
            self.compare(names)
        else:
            rep = self.sources[names[0]]
            self.view.set_records(rep.records, rep.meta, rep.environment, prefer_plottable=True)
            self.view.redraw()
            self._shown = names
            line = where(rep.environment, rep.meta)
            self.status_w.value = (f"<b>Loaded report</b> {html.escape(names[0])}: {len(rep.records)} measurements, "
                                   f"{len(self.view.group_keys)} group(s)" + (f"; {html.escape(line)}" if line else "")
                                   + ". Run controls unchanged (they measure what they showed before).")
            self._update_downloads()
        self.follow_w.layout.display = "flex"
        return self

    def _unique(self, name: str) -> str:
        out, i = name, 2
        while out in self.sources:
            out, i = f"{name} ({i})", i + 1
        return out

    def _follow_group(self):
        """Copy the case on show into the run controls, and say what changed."""
        recs = self.shown_records()
        if not recs:
            return
        changed = self.controls.follow(recs[0])
        self.status_w.value = ("Run controls set to the group on show: " + (", ".join(changed) or "nothing to change")
                               + ".")

    def _on_load_path(self):
        paths = [p.strip() for p in self.load_path_w.value.split(",") if p.strip()]
        try:
            if not paths:
                raise ValueError("type the path of a report (.json or .json.gz) first")
            self.load_report(*paths)
        except Exception as exc:
            self._show_error(f"Could not load report: {html.escape(str(exc))}")

    def _on_upload(self, change):
        files = change["new"]
        if not files:
            return
        files = list(files) if isinstance(files, (list, tuple)) else list(files.values())
        try:
            self.load_report(*[bytes(f["content"]) for f in files])
            self.status_w.value += " From " + ", ".join(
                f"<code>{html.escape(str(f.get('name', '')))}</code>" for f in files) + "."
        except Exception as exc:
            self._show_error(f"Could not load {html.escape(', '.join(str(f.get('name', 'upload')) for f in files))}: "
                             f"{html.escape(str(exc))}")

    # ------------------------------------------------------------------ export
    def to_csv(self) -> str:
        return R.to_csv(self.records)

    def to_json(self) -> str:
        """The records as a report (:func:`sparsejl.bench.records.dumps`), which :meth:`load_report`
        and ``sparsejl-bench``'s readers read."""
        return R.dumps(self.records, self.environment, self.report_meta)

    def _stem(self) -> str:
        r = self.records[0] if self.records else {}
        b = int(r.get("blocksize") or 1)
        parts = [str(r.get("model") or "sparsejl"), str(r.get("layer") or ""), str(r.get("op") or ""),
                 f"n{r.get('n', '')}", "unstr" if b == 1 else f"b{b}", str(r.get("dtype") or "")]
        return "-".join(p for p in parts if p).replace("/", "_").replace(" ", "_").replace(":", "_")

    def _update_downloads(self):
        if not self.records:
            self.view.downloads_w.value = ""
            return
        self.view.downloads(self._stem(), (("CSV", "text/csv", "csv", lambda: self.to_csv().encode()),
                                           ("JSON report", "application/json", "json", lambda: self.to_json().encode()),
                                           ("plot PNG", "image/png", "png", lambda: self.png)))

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
            self.status_w.value = "Saved " + ", ".join(f"<code>{html.escape(p)}</code>" for p in paths.values())
        except Exception as exc:
            self._show_error(f"Save failed: {html.escape(str(exc))}")
