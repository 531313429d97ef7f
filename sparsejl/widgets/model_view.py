"""The explorer's model view: a whole model's predicted speedup from its layers' measured ones.

Pick a catalogue model, a density and a block size, press Measure: every linear layer of one
block is timed dense and sparse (``sparsejl.bench.model_predict``), at the forward's token count
and at one token (decoding). The whole model's forward and decode speedups are predicted from
those and the dense rest of the model, whose share comes from a whole-model record where one
exists (the measured end-to-end speedup is shown beside it) and otherwise from the slider.
"""

from __future__ import annotations

import html
from typing import List, Optional

import ipywidgets as W

from .. import catalogue
from ..bench import model_predict

BLOCKSIZES = [("unstructured", 1), ("16×16", 16), ("32×32", 32), ("64×64", 64)]


def _table(layers: List[model_predict.LayerTime], decode: List[model_predict.LayerTime]) -> str:
    rows = ["<table class='sparsejl-model'><tr><th>layer</th><th>out × in</th><th>per model</th>"
            "<th>dense ms</th><th>sparse ms</th><th>speedup</th><th>decode speedup</th>"
            "<th>MiB dense → sparse</th></tr>"]
    for l, d in zip(layers, decode):
        rows.append(f"<tr><td>{html.escape(l.name)}</td><td>{l.out_features} × {l.in_features}</td>"
                    f"<td>{l.per_model}</td><td>{l.dense_s * 1e3:.3f}</td><td>{l.sparse_s * 1e3:.3f}</td>"
                    f"<td>{l.speedup:.2f}×</td><td>{d.speedup:.2f}×</td>"
                    f"<td>{l.dense_mib:.2f} → {l.sparse_mib:.2f}</td></tr>")
    return "".join(rows) + "</table>"


class ModelView(W.VBox):
    """Controls, a Measure button, the per-layer table and the whole-model prediction."""

    def __init__(self, model: str = "bert-base", density: float = 0.1, blocksize: int = 32,
                 tokens: int = 128, backend: Optional[str] = None):
        self.backend = backend
        self.model_w = W.Dropdown(options=[(m.display, k) for k, m in catalogue.MODELS.items()],
                                  value=catalogue.get(model).key, description="model")
        self.density_w = W.BoundedFloatText(value=density, min=0.01, max=1.0, step=0.05, description="density")
        self.block_w = W.Dropdown(options=BLOCKSIZES, value=blocksize, description="blocks")
        self.tokens_w = W.BoundedIntText(value=tokens, min=1, max=8192, description="tokens")
        rest = lambda what: W.FloatSlider(value=0.3, min=0.0, max=0.95, step=0.05, readout_format=".2f",
                                          description=f"rest, {what}", style={"description_width": "initial"},
                                          tooltip="share of the dense model's time outside its linear layers")
        self.rest_w, self.rest_decode_w = rest("forward"), rest("decode")
        self.measure_w = W.Button(description="Measure", button_style="primary", icon="play")
        self.status = W.HTML()
        self.summary = W.HTML()
        self.table = W.HTML()
        self.layers: List[model_predict.LayerTime] = []
        self.decode: List[model_predict.LayerTime] = []
        self.measure_w.on_click(lambda _: self.measure())
        for w in (self.rest_w, self.rest_decode_w):
            w.observe(lambda _: self._summarise(), "value")
        for w in (self.model_w, self.density_w, self.block_w):
            w.observe(lambda _: self._find_record(), "value")
        super().__init__([W.HBox([self.model_w, self.density_w, self.block_w, self.tokens_w]),
                          W.HBox([self.rest_w, self.rest_decode_w, self.measure_w]), self.status, self.summary, self.table])
        self._find_record()

    def _find_record(self):
        """Take the dense rest from a whole-model record of this model, where one exists."""
        key = self.model_w.value
        self.forward_record = model_predict.matching_record(key, self.density_w.value, self.block_w.value,
                                                            "encoder")
        self.decode_record = model_predict.matching_record(key, self.density_w.value, self.block_w.value,
                                                           "decoder")
        notes = []
        for what, rec, slider in (("forward", self.forward_record, self.rest_w),
                                  ("decode", self.decode_record, self.rest_decode_w)):
            if rec is None:
                notes.append(f"{what}: no whole-model record of this model, the dense rest is the slider's assumption")
            else:
                slider.value = round(model_predict.rest_share(rec), 2)
                notes.append(f"{what}: dense rest {slider.value:.0%} of the dense model's time, measured in "
                             f"{html.escape(rec['record'])}")
        self.status.value = "; ".join(notes) + "."
        self._summarise()

    def measure(self):
        """Time every layer of one block, at the token count and at one token (decoding)."""
        key, d, b, n = self.model_w.value, self.density_w.value, self.block_w.value, self.tokens_w.value
        self.measure_w.disabled = True
        try:
            step = lambda what: (lambda i, total: setattr(self.status, "value", f"Timing {what}: layer {i + 1 if i < total else total} of {total}…"))
            self.layers = model_predict.layer_times(key, d, b, n, self.backend, progress=step(f"{n} tokens"))
            self.decode = model_predict.layer_times(key, d, b, 1, self.backend, progress=step("1 token"))
        finally:
            self.measure_w.disabled = False
        self.table.value = _table(self.layers, self.decode)
        self._find_record()

    def _summarise(self):
        if not self.layers:
            self.summary.value = ""
            return
        rest, rest_decode = self.rest_w.value, self.rest_decode_w.value
        fwd, dec = model_predict.predict(self.layers, rest), model_predict.predict(self.decode, rest_decode)
        lines = [f"<b>Predicted forward speedup {fwd['speedup']:.2f}×</b> ({self.tokens_w.value} tokens; "
                 f"linear layers alone {fwd['linear_speedup']:.2f}×, dense rest {rest:.0%}). "
                 f"<b>Predicted decode speedup {dec['speedup']:.2f}×</b> (one token; layers "
                 f"{dec['linear_speedup']:.2f}×, dense rest {rest_decode:.0%}).",
                 f"Linear-layer weights {fwd['dense_mib']:.1f} MiB dense → {fwd['sparse_mib']:.1f} MiB sparse."]
        for rec in (self.forward_record, self.decode_record):
            if rec is not None and abs(rec["density"] - self.density_w.value) < 1e-9:
                what = "forward" if rec["kind"] == "encoder" else "decoding"
                lines.append(f"Measured end to end ({what}, {html.escape(rec['record'])}): "
                             f"{rec['speedup']:.2f}× (predicted there {rec['predicted']:.2f}×).")
        self.summary.value = "<br>".join(lines)
