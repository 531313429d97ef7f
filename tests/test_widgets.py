"""The explorer's logic with real ipywidgets and real sweeps (tiny BERT-mini cases)."""
import csv
import io
import json
import math

import numpy as np
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")

from sparsejl import shapes
from sparsejl.widgets import DensityExplorer, break_even, records_to_csv
from sparsejl.widgets.explorer import break_even_label, densities


def test_densities_geometric_and_validated():
    d = densities(0.01, 1.0, 3)
    assert d == [0.01, 0.1, 1.0]
    assert densities(0.2, 0.2, 5) == [0.2]
    assert len(densities(0.01, 0.5, 6)) == 6 and densities(0.01, 0.5, 6) == sorted(densities(0.01, 0.5, 6))
    for bad in ((0, 0.5, 3), (0.5, 0.1, 3), (0.1, 1.5, 3), (0.1, 0.5, 0)):
        with pytest.raises(ValueError):
            densities(*bad)


def _rec(backend, d, s, status="ok"):
    return {"backend": backend, "density": d, "speedup_vs_dense": s, "status": status}


def test_break_even_log_log_interpolation():
    recs = [_rec("x", 0.01, 4.0), _rec("x", 0.1, 2.0), _rec("x", 1.0, 0.5)]
    assert break_even(recs, "x") == pytest.approx(math.sqrt(0.1))
    # never crosses: None, and the label says which side
    fast = [_rec("y", 0.1, 3.0), _rec("y", 0.5, 1.5)]
    slow = [_rec("z", 0.1, 0.3), _rec("z", 0.5, 0.1)]
    assert break_even(fast, "y") is None and "faster at all" in break_even_label(fast, "y")
    assert break_even(slow, "z") is None and "slower at all" in break_even_label(slow, "z")
    # failed measurements do not count
    assert break_even(recs + [_rec("x", 0.05, None, "error")], "x") == pytest.approx(math.sqrt(0.1))
    assert break_even_label(recs, "dense") == "baseline"


def test_records_to_csv_round_trip():
    recs = [dict(model="bert-mini", layer="ffn.up", op="spmm", m=1024, k=256, n=8, density=0.1,
                 blocksize=4, dtype="float32", seed=0, backend="scipy:csr", status="ok",
                 reason=None, median_s=1.5e-4, speedup_vs_dense=2.0, peak_bytes=123,
                 times_s=[1e-4, 1.5e-4, 2e-4])]
    rows = list(csv.DictReader(io.StringIO(records_to_csv(recs))))
    assert len(rows) == 1
    r = rows[0]
    assert r["backend"] == "scipy:csr" and float(r["median_s"]) == 1.5e-4 and r["reason"] == ""
    assert [float(t) for t in r["times_s"].split(";")] == [1e-4, 1.5e-4, 2e-4]


def test_controls_follow_the_presets():
    ex = DensityExplorer(model="llama-3-8b", layer="attn.k")
    assert ex.layer_w.value == "attn.k"
    assert "1024×4096" in ex.shape_w.value
    names = [v for _, v in ex.layer_w.options]
    assert names == shapes.get("llama-3-8b").layer_names and "ffn.gate" in names
    ex.model_w.value = "gpt2-xl"          # attn.k does not exist there: first layer chosen
    assert [v for _, v in ex.layer_w.options] == shapes.get("gpt2-xl").layer_names
    assert ex.layer_w.value == "attn.qkv" and "4800×1600" in ex.shape_w.value
    ex.model_w.value = "bert-large"
    ex.layer_w.value = "ffn.down"
    ex.tokens_w.value = 64
    ex.pattern_w.value = 8
    cases = ex.cases()
    assert [(c.m, c.k, c.n, c.blocksize) for c in cases] == [(1024, 4096, 64, 8)] * len(cases)
    assert [c.density for c in cases] == densities(*ex.density_w.value, ex.points_w.value)


def test_backends_unavailable_are_disabled_with_reason():
    ex = DensityExplorer()
    assert ex.backend_boxes["dense"].disabled and ex.backend_boxes["dense"].value  # baseline
    for name, st in ex.backend_status.items():
        if not st.available:
            assert ex.backend_boxes[name].disabled and not ex.backend_boxes[name].value
            assert st.reason
    sel = ex.selected_backends()
    assert sel[-1] == "dense"
    # an unstructured pattern has no blocks: BSR contenders are left out
    ex.pattern_w.value = 1
    assert not any(ex.backend_status[n].fmt == "bsr" for n in ex.selected_backends())


def small(**kw):
    args = dict(model="bert-mini", layer="ffn.up", tokens=16, pattern=1, density_range=(0.05, 0.5),
                points=3, backends=["scipy:csr"])
    args.update(kw)
    return DensityExplorer(**args)


def test_run_produces_records_plot_table_and_exports(tmp_path):
    ex = small()
    ex.run(wait=True)
    assert ex.error is None, ex.error
    assert not ex.running and not ex.run_w.disabled and ex.stop_w.disabled
    ok = [r for r in ex.records if r["status"] == "ok"]
    assert {r["backend"] for r in ok} == {"dense", "scipy:csr"}
    assert sorted({r["density"] for r in ok}) == densities(0.05, 0.5, 3)
    assert all(r["m"] == 1024 and r["k"] == 256 and r["n"] == 16 for r in ok)
    assert all(r["speedup_vs_dense"] == pytest.approx(1.0) for r in ok if r["backend"] == "dense")
    assert ex.png[:8] == b"\x89PNG\r\n\x1a\n" and ex.plot_w.value == ex.png
    assert "<table" in ex.table_w.value and "scipy:csr" in ex.table_w.value
    assert "0.1581" in ex.table_w.value and "break-even" in ex.table_w.value
    assert ex.progress_w.value == ex.progress_w.max == 6 and ex.progress_w.bar_style == "success"
    assert "Done" in ex.status_w.value
    for kind in ("csv", "json", "png"):
        assert f"sjl-dl-{kind}" in ex.downloads_w.value
    paths = ex.save(str(tmp_path))
    assert set(paths) == {"csv", "json", "png"}
    rows = list(csv.DictReader(open(paths["csv"])))
    assert len(rows) == len(ex.records)
    # the JSON report reads back into the same records
    before = [(r["backend"], r["density"], r["median_s"]) for r in ex.records]
    ex2 = DensityExplorer()
    ex2.load_report(paths["json"])
    assert [(r["backend"], r["density"], r["median_s"]) for r in ex2.records] == before
    assert "Loaded report" in ex2.status_w.value and ex2.png[:4] == b"\x89PNG"
    assert ex2.model_w.value == "bert-mini" and ex2.layer_w.value == "ffn.up"
    ex3 = DensityExplorer()
    ex3.load_report(open(paths["json"], "rb").read())   # as the upload widget hands it over
    assert len(ex3.records) == len(before)


def test_stop_leaves_the_widget_usable():
    ex = small(points=6)
    first = ex._progress

    def stop_after_first(*args, **kw):   # press Stop as the first measurement comes in
        first(*args, **kw)
        ex.stop()
    ex._progress = stop_after_first
    ex.run(wait=True)
    statuses = [r["status"] for r in ex.records]
    assert statuses[0] == "ok" and statuses.count("stopped") == len(statuses) - 1
    assert "Stopped" in ex.status_w.value and ex.progress_w.bar_style == "warning"
    assert not ex.run_w.disabled and ex.stop_w.disabled
    ex._progress = first
    ex.run(wait=True)                       # and it runs again, completely
    assert all(r["status"] == "ok" for r in ex.records) and "Done" in ex.status_w.value


def test_failed_run_is_reported_and_the_widget_stays_usable():
    ex = small(points=2)
    ex.seed = -1                            # numpy refuses a negative seed inside the sweep
    ex.run(wait=True)
    assert ex.error and "Run failed" in ex.error and "ValueError" in ex.error
    assert "Run failed" in ex.error_w.value and ex.progress_w.bar_style == "danger"
    assert not ex.run_w.disabled and ex.stop_w.disabled
    ex.seed = 0
    ex.run(wait=True)
    assert ex.error is None and ex.error_w.value == ""
    assert all(r["status"] == "ok" for r in ex.records)


def test_invalid_selection_is_refused_before_running():
    ex = small()
    for box in ex.backend_boxes.values():
        if not box.disabled:
            box.value = False
    ex.run(wait=True)
    assert ex.error and "no available backend" in ex.error
    assert not ex.run_w.disabled


def test_load_report_errors_are_shown():
    ex = DensityExplorer()
    ex.load_path_w.value = "/nonexistent/report.json"
    ex._on_load_path()
    assert "Could not load report" in ex.error_w.value
    assert not ex.run_w.disabled
