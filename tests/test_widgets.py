"""The explorer's logic with real ipywidgets and real sweeps (tiny BERT-mini cases)."""
import csv
import io
import json
import math

import numpy as np
import pytest


from sparsejl import catalogue
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


def test_break_even_matches_the_plot():
    # 2x at 0.1, 0.5x at 1.0: log(speedup) is halfway at density 0.55, as the plot marks it
    recs = [_rec("x", 0.01, 4.0), _rec("x", 0.1, 2.0), _rec("x", 1.0, 0.5)]
    assert break_even(recs, "x") == pytest.approx(0.55)
    # never crosses: None, and the label says which side
    fast = [_rec("y", 0.1, 3.0), _rec("y", 0.5, 1.5)]
    slow = [_rec("z", 0.1, 0.3), _rec("z", 0.5, 0.1)]
    assert break_even(fast, "y") is None and break_even_label(fast, "y") == "> 0.5 (always faster)"
    assert break_even(slow, "z") is None and break_even_label(slow, "z") == "< 0.1 (always slower)"
    # failed measurements do not count
    assert break_even(recs + [_rec("x", 0.05, None, "error")], "x") == pytest.approx(0.55)
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
    assert names == catalogue.get("llama-3-8b").layer_names and "ffn.gate" in names
    ex.model_w.value = "gpt2-xl"          # attn.k does not exist there: first layer chosen
    assert [v for _, v in ex.layer_w.options] == catalogue.get("gpt2-xl").layer_names
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
    # the sweep times a case's backends together and reports them together: the first density
    # was measured, every later one stopped
    first_d = ex.records[0]["density"]
    assert [r["status"] for r in ex.records if r["density"] == first_d] == ["ok", "ok"]
    assert {r["status"] for r in ex.records if r["density"] != first_d} == {"stopped"}
    assert len(ex.records) == 12
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


def _gpu_report():
    """A report in the GPU records' earlier format (the committed records until 2026-12), built with
    the diagnostics' dataclasses, which still write it."""
    from dataclasses import asdict
    from sparsejl.bench import gpu_diagnostics as gpu
    cases = []
    for d, dense_ms, ours_ms in ((0.05, 2.0, 0.25), (0.1, 2.0, 0.5), (0.25, 2.0, 1.0), (0.5, 2.0, 4.0)):
        c = gpu.CaseResult("spmm", f"bert-large ffn.down n=2048 b=64 d={d}", "bsr", 1024, 4096, 2048,
                           d, 64, "float16", int(d * 1024 * 4096), 1.0, 1.0)
        c.methods = [gpu.MethodResult("cupy-dense", True, 1e-4, dense_ms),
                     gpu.MethodResult("cupy", True, 1e-4, ours_ms),
                     gpu.MethodResult("julia-cuda", False, note="failed: RuntimeError: no GPU"),
                     gpu.MethodResult("diag[tma,2,4,1,2,3,1]", True, None, 0.01, note="diagnostic, output not checked")]
        cases.append(asdict(c))
    return {"environment": {"gpu": "NVIDIA H100 80GB HBM3"}, "ceilings": {}, "cases": cases}


def test_load_gpu_benchmark_report():
    ex = DensityExplorer()
    ex.load_report(json.dumps(_gpu_report()))
    cupy = sorted((r["density"], r["speedup_vs_dense"]) for r in ex.records if r["backend"] == "cupy")
    assert cupy == [(0.05, 8.0), (0.1, 4.0), (0.25, 2.0), (0.5, 0.5)]
    assert {r["status"] for r in ex.records if r["backend"] == "julia-cuda"} == {"error"}
    assert not [r for r in ex.records if r["backend"].startswith("diag[")]  # unchecked timings stay out
    assert all(r["model"] == "bert-large" and r["layer"] == "ffn.down" for r in ex.records)
    # 2x at 0.25, 0.5x at 0.5: the plot's interpolation puts break-even at 0.375
    assert break_even(ex.records, "cupy") == pytest.approx(0.375)
    assert "H100" in ex.status_w.value and "H100" in ex.table_w.value
    assert "8.00×" in ex.table_w.value and ex.png[:4] == b"\x89PNG"
    assert ex.pattern_w.value == 64 and ex.model_w.value == "bert-large"
    with pytest.raises(ValueError, match="not a sparsejl report"):
        ex.load_report('{"something": 1}')


def test_load_gpu_record_of_public_calls():
    """The GPU record (sparsejl.bench.gpu) has the sweep's fields: it loads as it is, with its
    diagnostic rows (internal entry points) left out of the view."""
    from sparsejl.bench import gpu
    records = []
    for d, dense_s, ours_s in ((0.1, 2e-4, 5e-5), (0.25, 2e-4, 1e-4)):
        case = gpu._case("bert-large", "ffn.down", 1024, 4096, 2048, d, 64, "float16", 1)
        records += [gpu._record(case, "cublas", "cupy.matmul", "ok", device_s=dense_s, median_s=dense_s,
                                speedup_vs_dense=1.0),
                    gpu._record(case, "sparsejl:cupy", "sparsejl", "ok", device_s=ours_s, median_s=ours_s,
                                speedup_vs_dense=dense_s / ours_s),
                    gpu._record(case, "direct:cupy", "sparsejl (internal)", "ok", device_s=ours_s, median_s=ours_s,
                                headline=False)]
    ex = DensityExplorer()
    ex.load_report(json.dumps({"environment": {"gpu": "NVIDIA H200"}, "ceilings": {}, "records": records}))
    assert sorted((r["density"], r["speedup_vs_dense"]) for r in ex.records if r["backend"] == "sparsejl:cupy") \
        == [(0.1, 4.0), (0.25, 2.0)]
    assert not [r for r in ex.records if r["backend"].startswith("direct:")]
    # a record written before it carried its "meta" is still named a GPU benchmark against cuBLAS
    assert "GPU benchmark" in ex.status_w.value and "cuBLAS" in ex.status_w.value


def test_committed_gzipped_records_load_as_the_plain_json(tmp_path):
    import gzip
    from pathlib import Path
    committed = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "quick-20261121-onepass" / "results.json.gz"
    plain = tmp_path / "results.json"
    plain.write_bytes(gzip.decompress(committed.read_bytes()))
    seen = []
    for source in (str(committed), committed, plain, committed.read_bytes(), plain.read_bytes()):
        ex = DensityExplorer()
        ex.load_report(source)
        seen.append([(r["model"], r["layer"], r["density"], r["backend"], r["median_s"]) for r in ex.records])
        assert "Loaded report" in ex.status_w.value and ex.png[:4] == b"\x89PNG"
    assert len(seen[0]) > 100 and all(s == seen[0] for s in seen)


def test_report_with_several_groups_offers_a_choice(tmp_path):
    ex = small(points=2)
    ex.run(wait=True)
    first = list(ex.records)
    ex.pattern_w.value = 16
    ex.run(wait=True)
    both = {"records": first + ex.records, "meta": {"title": "two groups"}}
    ex2 = DensityExplorer()
    ex2.load_report(both)
    assert len(ex2.group_w.options) == 2 and ex2.group_w.layout.display != "none"
    shown = ex2.shown_records()
    assert {r["blocksize"] for r in shown} == {1} and "unstructured" in ex2.group_w.label
    png1 = ex2.png
    ex2.group_w.value = 1
    assert {r["blocksize"] for r in ex2.shown_records()} == {16}
    assert ex2.png != png1 and "16×16" in ex2.group_w.label


def test_memory_estimate_guards_runs():
    from sparsejl.widgets.explorer import available_bytes, estimate_bytes
    small_b = estimate_bytes(256, 256, 128, 0.5, "float32")
    big_b = estimate_bytes(13824, 5120, 65536, 1.0, "float64")
    assert 0 < small_b < 2**22 and big_b > 2**33       # a few MiB; tens of GiB
    ex = DensityExplorer(model="llama-2-13b", layer="ffn.up", tokens=65536, density_range=(0.1, 1.0),
                         dtype="float64")
    avail = available_bytes()
    if avail is not None and big_b > 0.8 * avail:
        assert "available" in ex.shape_w.value
        ex.run(wait=True)                              # refused before anything is allocated
        assert ex.error and "needs" in ex.error and not ex.running and not ex.records


def test_gpu_backends_are_listed_with_why_they_cannot_run_here():
    import sparsejl
    ex = DensityExplorer()
    for b in sparsejl.backends():
        if b.device == "gpu":
            assert b.name in ex.backend_boxes, f"{b.name} not shown"
            assert ex.backend_boxes[b.name].disabled and not ex.backend_boxes[b.name].value
            assert ex.backend_status[b.name].reason
    assert not any(ex.backend_status[n].device == "gpu" for n in ex.selected_backends())


def test_voila_launcher_notebook_and_command(tmp_path, capsys):
    import nbformat
    from sparsejl.widgets import app
    nb = app.explorer_notebook(report="r.json", model="gpt2")
    nbformat.validate(nb)
    src = nb.cells[0].source
    assert "DensityExplorer(model='gpt2')" in src and "load_report(" in src and "r.json" in src
    cmd = app.voila_command("x.ipynb", port=9999, open_browser=False)
    assert cmd[1:4] == ["-m", "voila", "x.ipynb"] and "--port=9999" in cmd
    assert "--Voila.ip=127.0.0.1" in cmd and "--no-browser" in cmd
    assert app.main(["--print-notebook", "--model", "bert-mini"]) == 0
    printed = nbformat.reads(capsys.readouterr().out, as_version=4)
    assert "DensityExplorer(model='bert-mini'" in printed.cells[0].source
    with pytest.raises(SystemExit):
        app.main(["--report", str(tmp_path / "missing.json")])
