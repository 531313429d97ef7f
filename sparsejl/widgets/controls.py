"""The explorer's run controls: what to measure (a catalogue layer or the user's own weight, the
pattern, densities, value type, backends) and the Run / Stop bar with its progress and estimate.

:class:`Controls` knows nothing of results: it turns its widgets into the sweep's cases and
backend names (:meth:`Controls.cases`, :meth:`Controls.selected_backends`) and says what a run
would cost before it starts. Backends come from :func:`sparsejl.bench.peers.statuses` (the
contenders, and sparsejl's registry for the backends the sweep cannot time).
"""
from __future__ import annotations

import html
from typing import Dict, List, Optional, Sequence

import numpy as np
import ipywidgets as W

from .. import catalogue

__all__ = ["Controls", "densities", "estimate_bytes", "estimate_seconds", "available_bytes", "fmt_bytes",
           "PATTERNS", "DTYPES", "OPS", "DEFAULT_BACKENDS", "BASELINE"]

PATTERNS = [("unstructured", 1), ("block 2×2", 2), ("block 4×4", 4), ("block 8×8", 8),
            ("block 16×16", 16), ("block 32×32", 32), ("block 64×64", 64)]
DTYPES = ["float32", "float64"]
OPS = [("SpMM: sparse W × dense X", "spmm"), ("SpGEMM: sparse W × sparse B", "spgemm")]
#: the CPU baseline every other contender is divided by; always run
BASELINE = "dense"
#: ticked by default (when available): sparsejl's Julia kernels and SciPy, as in the main job
DEFAULT_BACKENDS = ("julia:csr", "julia:bsr", "scipy:csr", "scipy:bsr")
_NARROW = {"description_width": "92px"}
_WIDTH = "318px"


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
    return sorted({float(f"{d:.4g}") for d in np.geomspace(lo, hi, points)})


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


#: rough rates of this kind of machine, for the estimate before Run only (never a result)
_DENSE_FLOPS = 2e10
_SPARSE_FLOPS = 1e9
_PER_MEASUREMENT_S = 0.7    # warm-up (sweep.WARM_S), settling, the check, the user-path calls


def estimate_seconds(m: int, k: int, n: int, dens: Sequence[float], backends: Sequence[str], repeats: int,
                     op: str = "spmm") -> float:
    """A rough wall time of the run: per measurement a fixed cost plus about ``repeats + 25``
    calls (warm-up, samples, check, user-path calls), at rough dense and sparse rates."""
    total = 0.0
    for d in dens:
        dense_call = 2.0 * m * k * n / _DENSE_FLOPS
        sparse_call = 2.0 * m * k * n * (d if op == "spmm" else d * d) / _SPARSE_FLOPS
        reference = 2.0 * m * k * n * (1 if d >= 0.1 else d) / _DENSE_FLOPS * 3
        total += reference
        for b in backends:
            call = dense_call if b == BASELINE else sparse_call
            total += _PER_MEASUREMENT_S + (repeats + 25) * max(call, 1e-4) * (2 if b == BASELINE else 1)
    return total


def available_bytes() -> Optional[int]:
    """Memory available to a new run (psutil; /proc/meminfo without it)."""
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except Exception:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def fmt_bytes(b) -> str:
    b = float(b)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if b < 1024 or unit == "GiB":
            return f"{b:.3g} {unit}"
        b /= 1024
    return f"{b:.3g} TiB"


def _fmt_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


class Controls(W.VBox):
    """The left column: the case to measure, the backends, Run and Stop."""

    def __init__(self, model: str = "bert-base", layer: Optional[str] = None, tokens: int = 128,
                 pattern: int = 1, density_range=(0.01, 0.5), points: int = 6, dtype: str = "float32",
                 op: str = "spmm", repeats: int = 5, backends: Optional[Sequence[str]] = None):
        self.user_matrix = None     # a sparsejl.bench.usermatrix.UserMatrix, when one is loaded
        lay = dict(layout=W.Layout(width=_WIDTH), style=_NARROW)
        mdl = catalogue.get(model)
        self.model_w = W.Dropdown(options=[(m.display, k) for k, m in catalogue.MODELS.items()],
                                  value=mdl.key, description="Model", **lay)
        self.layer_w = W.Dropdown(options=self.layer_options(mdl.key), description="Layer", **lay)
        if layer is not None:
            self.layer_w.value = mdl.layer(layer).name
        self.tokens_w = W.BoundedIntText(value=int(tokens), min=1, max=65536, step=1,
                                         description="Tokens (n)", **lay)
        self.op_w = W.Dropdown(options=OPS, value=op, description="Operation", **lay)
        self.shape_w = W.HTML(layout=W.Layout(width=_WIDTH))
        # the user's own weight, instead of a catalogue layer
        self.source_w = W.ToggleButtons(options=[("catalogue layer", "catalogue"), ("your weight", "user")],
                                        value="catalogue", style={"button_width": "150px"})
        self.matrix_path_w = W.Text(placeholder="path to .npz or .safetensors", description="File", **lay)
        self.matrix_tensor_w = W.Text(placeholder="tensor name (if several)", description="Tensor", **lay)
        self.matrix_load_w = W.Button(description="Load weight", icon="upload", layout=W.Layout(width="auto"))
        self.matrix_w = W.HTML(layout=W.Layout(width=_WIDTH))
        self.matrix_box = W.VBox([self.matrix_path_w, self.matrix_tensor_w, self.matrix_load_w, self.matrix_w],
                                 layout=W.Layout(display="none"))
        self.layer_box = W.VBox([self.model_w, self.layer_w])
        # pattern, densities, value type
        self.pattern_w = W.Dropdown(options=PATTERNS, value=int(pattern), description="Pattern", **lay)
        self.density_w = W.FloatRangeSlider(value=tuple(density_range), min=0.005, max=1.0, step=0.005,
                                            readout_format=".3f", description="Density",
                                            continuous_update=False, **lay)
        self.points_w = W.IntSlider(value=int(points), min=1, max=12, description="Points", **lay)
        self.dtype_w = W.Dropdown(options=DTYPES, value=dtype, description="Value type", **lay)
        self.repeats_w = W.IntSlider(value=max(5, int(repeats)), min=5, max=25, description="Repeats", **lay)
        # backends
        self.backend_boxes: Dict[str, W.Checkbox] = {}
        self.backend_status: Dict[str, object] = {}
        self.backends_w = self._backend_list(set(backends) if backends is not None else set(DEFAULT_BACKENDS))
        # actions
        self.run_w = W.Button(description="Run", button_style="primary", icon="play", layout=W.Layout(width="90px"))
        self.stop_w = W.Button(description="Stop", button_style="warning", icon="stop", disabled=True,
                               layout=W.Layout(width="90px"))
        self.progress_w = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="70px"))
        self.progress_label = W.Label("")
        self.estimate_w = W.HTML("")
        for w, cls in ((self.model_w, "model"), (self.layer_w, "layer"), (self.tokens_w, "tokens"),
                       (self.op_w, "op"), (self.pattern_w, "pattern"), (self.density_w, "density"),
                       (self.points_w, "points"), (self.dtype_w, "dtype"), (self.repeats_w, "repeats"),
                       (self.shape_w, "shape"), (self.run_w, "run"), (self.stop_w, "stop"),
                       (self.progress_w, "progress"), (self.progress_label, "progress-label"),
                       (self.estimate_w, "estimate"), (self.source_w, "source"),
                       (self.matrix_path_w, "matrix-path"), (self.matrix_tensor_w, "matrix-tensor"),
                       (self.matrix_load_w, "matrix-load"), (self.matrix_w, "matrix")):
            w.add_class("sjl-" + cls)
        self.actions = W.VBox([W.HBox([self.run_w, self.stop_w, self.progress_w, self.progress_label]),
                               self.estimate_w])
        self.actions.add_class("sjl-actions")
        # wiring
        self.model_w.observe(self._on_model, names="value")
        for w in (self.layer_w, self.tokens_w, self.op_w, self.pattern_w, self.dtype_w, self.density_w,
                  self.points_w, self.repeats_w):
            w.observe(lambda _c: self.update(), names="value")
        for box in self.backend_boxes.values():
            box.observe(lambda _c: self.update(), names="value")
        self.source_w.observe(lambda _c: self._on_source(), names="value")
        self.matrix_load_w.on_click(lambda _b: self._on_load_matrix())
        self.update()
        head = lambda text: W.HTML(f"<b>{text}</b>", layout=W.Layout(margin="4px 0 0 0"))
        super().__init__([self.actions, head("Weight"), self.source_w, self.layer_box, self.matrix_box,
                          self.tokens_w, self.op_w, self.shape_w, head("Sparsity"), self.pattern_w,
                          self.density_w, self.points_w, self.dtype_w, self.repeats_w, head("Backends"),
                          self.backends_w],
                         layout=W.Layout(width="330px", min_width="330px", flex="0 0 330px"))
        self.add_class("sjl-controls")

    # ------------------------------------------------------------------ backends
    def _backend_list(self, wanted) -> W.VBox:
        """A checkbox per usable backend; the unusable ones in one collapsed line with why."""
        from ..bench import peers
        rows, missing = [], []
        for st in peers.statuses():
            self.backend_status[st.name] = st
            baseline = st.name == BASELINE
            cb = W.Checkbox(value=bool(st.available and (st.name in wanted or baseline)),
                            disabled=(not st.available) or baseline, description=st.name, indent=False,
                            layout=W.Layout(width="150px"))
            cb.add_class("sjl-backend")
            cb.add_class("sjl-backend-" + st.name.replace(":", "-"))
            self.backend_boxes[st.name] = cb
            if not st.available:
                missing.append(st)
                continue
            note = f"{st.library}" + (": baseline, always run" if baseline else "")
            rows.append(W.HBox([cb, W.HTML(f"<span style='color:#666;font-size:85%'>{html.escape(note)}</span>")]))
        if missing:
            items = "".join(f"<li><b>{html.escape(st.name)}</b>: {html.escape(str(st.reason))}</li>" for st in missing)
            line = W.HTML(f"<details class='sjl-unavailable' style='font-size:85%;color:#855'><summary>"
                          f"{len(missing)} unavailable here: {html.escape(', '.join(s.name for s in missing))}"
                          f"</summary><ul style='margin:2px 0;padding-left:16px'>{items}</ul></details>",
                          layout=W.Layout(width=_WIDTH))
            rows.append(line)
        return W.VBox(rows)

    def selected_backends(self) -> List[str]:
        """Backends to run: the ticked available ones, then the dense baseline. BSR ones stay in for
        an unstructured pattern: the sweep marks them skipped in that group, with why."""
        chosen = [n for n, cb in self.backend_boxes.items()
                  if cb.value and self.backend_status[n].available and n != BASELINE]
        if chosen and self.backend_status.get(BASELINE) is not None and self.backend_status[BASELINE].available:
            chosen.append(BASELINE)
        return chosen

    # ------------------------------------------------------------------ the case
    @staticmethod
    def layer_options(model_key: str):
        return [(f"{l.name}  ({l.out_features}×{l.in_features})", l.name) for l in catalogue.get(model_key).layers]

    def _on_model(self, change):
        old = self.layer_w.value
        opts = self.layer_options(change["new"])
        self.layer_w.options = opts
        names = [v for _, v in opts]
        self.layer_w.value = old if old in names else names[0]
        self.update()

    def _on_source(self):
        user = self.source_w.value == "user"
        self.layer_box.layout.display = "none" if user else "flex"
        self.matrix_box.layout.display = "flex" if user else "none"
        self.update()

    def _on_load_matrix(self):
        try:
            if not self.matrix_path_w.value.strip():
                raise ValueError("type the path of a .npz or .safetensors file first")
            self.set_matrix(self.matrix_path_w.value.strip(), self.matrix_tensor_w.value.strip() or None)
        except Exception as exc:
            self.user_matrix = None
            self.matrix_w.value = (f"<span style='color:#b00'>Could not load: {html.escape(type(exc).__name__)}: "
                                   f"{html.escape(str(exc))}</span>")
            self.update()

    def set_matrix(self, source, tensor: Optional[str] = None, name: Optional[str] = None):
        """Time the user's own weight: a path (``.npz``, ``.safetensors`` with ``tensor``), a SciPy
        sparse matrix, an array, a torch tensor or an ``nn.Linear``."""
        from ..bench.usermatrix import UserMatrix
        import os
        um = (UserMatrix.load(source, tensor) if isinstance(source, (str, os.PathLike))
              else UserMatrix.of(source, name))
        self.user_matrix = um
        self.source_w.value = "user"
        self.matrix_w.value = f"<span style='font-size:90%'>{html.escape(um.describe())}</span>"
        if um.own_pattern:
            from ..bench.usermatrix import block_size_of
            self.pattern_w.value = block_size_of(um.sparse)
        self._on_source()
        return um

    def shape(self):
        """``(m, k, where)`` of the weight to time."""
        if self.source_w.value == "user":
            if self.user_matrix is None:
                raise ValueError("load a weight first (a .npz or .safetensors file)")
            m, k = self.user_matrix.shape
            return m, k, self.user_matrix.name
        lay = catalogue.layer(self.model_w.value, self.layer_w.value)
        return lay.m, lay.k, f"{catalogue.get(self.model_w.value).display} {lay.name} ({lay.module})"

    def densities(self) -> List[float]:
        if self.source_w.value == "user" and self.user_matrix is not None and self.user_matrix.own_pattern:
            m, k = self.user_matrix.shape
            return [round(self.user_matrix.sparse.nnz / (m * k), 6)]
        return densities(*self.density_w.value, self.points_w.value)

    def update(self):
        """The shape line, the names of SpGEMM's fields, and the estimate before Run."""
        spgemm = self.op_w.value == "spgemm"
        self.tokens_w.description = "Columns of B" if spgemm else "Tokens (n)"
        try:
            m, k, where = self.shape()
        except (KeyError, ValueError) as exc:
            self.shape_w.value = f"<span style='font-size:90%;color:#b00'>{html.escape(str(exc))}</span>"
            self.estimate_w.value = ""
            return
        n = int(self.tokens_w.value or 1)
        b = int(self.pattern_w.value)
        dt = self.dtype_w.value
        item = np.dtype(dt).itemsize
        if spgemm:
            what = (f"W: {m}×{k} sparse; B: {k}×{n} sparse, generated: random, the same density and "
                    f"pattern as W (seed + 1); C = W·B")
            if self.source_w.value == "user":
                what = f"W: {m}×{k} sparse (your weight); B = Wᵀ ({k}×{m}); C = W·Wᵀ"
        else:
            what = f"W: {m}×{k} ({m * k / 1e6:.3g} M weights); X: {k}×{n} dense"
        msg = f"{html.escape(where)}<br>{what}; dense W: {m * k * item / 2**20:.3g} MiB"
        warn = ""
        try:
            ds = self.densities()
            msg += "<br>densities: " + ", ".join(f"{d:g}" for d in ds)
            need = estimate_bytes(m, k, n, max(ds), dt, self.op_w.value)
            msg += f"; needs ≈ {fmt_bytes(need)}"
            avail = available_bytes()
            if avail is not None and need > 0.8 * avail:
                warn += (f"<br><span style='color:#b00'>more than the {fmt_bytes(avail)} of memory available: "
                         "fewer tokens or a smaller layer</span>")
            secs = estimate_seconds(m, k, n, ds, self.selected_backends(), int(self.repeats_w.value),
                                    self.op_w.value)
            self.estimate_w.value = (f"<span style='font-size:85%;color:#555'>{len(ds)} densities × "
                                     f"{len(self.selected_backends())} backends: ≈ {_fmt_seconds(secs)} "
                                     "(rough estimate)</span>")
        except ValueError as exc:
            warn += f"<br><span style='color:#b00'>{html.escape(str(exc))}</span>"
            self.estimate_w.value = ""
        if b > 1 and (m % b or k % b):
            warn += f"<br><span style='color:#b00'>{m}×{k} is not divisible by {b}</span>"
        self.shape_w.value = f"<span style='font-size:90%'>{msg}{warn}</span>"

    def cases(self, seed: int = 0):
        """The sweep's cases for the controls as they are; refused (ValueError) before anything
        is allocated when they would not fit in memory."""
        from ..bench import sweep
        m, k, _ = self.shape()
        n = int(self.tokens_w.value)
        op = self.op_w.value
        b = int(self.pattern_w.value)
        ds = self.densities()
        need = estimate_bytes(m, k, n, max(ds), self.dtype_w.value, op)
        avail = available_bytes()
        if avail is not None and need > 0.8 * avail:
            raise ValueError(f"{m}×{k} with {n} tokens needs ≈ {fmt_bytes(need)} at density {max(ds):g}; "
                             f"{fmt_bytes(avail)} is available")
        if self.source_w.value == "user":
            return self.user_matrix.cases(n, ds, b, self.dtype_w.value, op, seed)
        if b > 1 and (m % b or k % b):
            raise ValueError(f"{self.layer_w.value} is {m}×{k}, not divisible by blocksize {b}")
        lay = catalogue.layer(self.model_w.value, self.layer_w.value)
        return [sweep.Case(model=self.model_w.value, layer=lay.name, m=m, k=k, n=n, density=d, blocksize=b,
                           dtype=self.dtype_w.value, op=op, seed=seed) for d in ds]

    def operands(self):
        """The sweep's operand maker: the user's weight, or None (seeded random patterns)."""
        return self.user_matrix.operands if self.source_w.value == "user" and self.user_matrix else None

    def values(self) -> dict:
        """Every run control's value (to tell whether something changed them)."""
        return {name: w.value for name, w in (
            ("model", self.model_w), ("layer", self.layer_w), ("tokens", self.tokens_w), ("op", self.op_w),
            ("pattern", self.pattern_w), ("density", self.density_w), ("points", self.points_w),
            ("dtype", self.dtype_w), ("repeats", self.repeats_w), ("source", self.source_w))}

    def follow(self, r: dict) -> List[str]:
        """Set the controls to the case of record ``r`` where they can hold it; what changed."""
        changed = []

        def put(w, value, name):
            if w.value != value:
                w.value = value
                changed.append(name)
        if r.get("model") in catalogue.MODELS:
            put(self.source_w, "catalogue", "weight")
            put(self.model_w, r["model"], "model")
            if r.get("layer") in catalogue.get(r["model"]).layer_names:
                put(self.layer_w, r["layer"], "layer")
        if r.get("n") and r.get("op") in ("spmm", "spgemm"):
            put(self.op_w, r["op"], "operation")
            put(self.tokens_w, int(r["n"]), "tokens")
        if int(r.get("blocksize") or 1) in [v for _, v in PATTERNS]:
            put(self.pattern_w, int(r.get("blocksize") or 1), "pattern")
        if r.get("dtype") in DTYPES:
            put(self.dtype_w, r["dtype"], "value type")
        return changed

    def set_running(self, on: bool):
        self.run_w.disabled = on
        self.stop_w.disabled = not on
