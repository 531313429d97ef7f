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
    assert break_even_label(recs, "x") == "break-even d≈0.55"
    # never crosses: None, and the label says which side
    fast = [_rec("y", 0.1, 3.0), _rec("y", 0.5, 1.5)]
    slow = [_rec("z", 0.1, 0.3), _rec("z", 0.5, 0.1)]
    assert break_even(fast, "y") is None and "faster than dense at every measured density" in break_even_label(fast, "y")
    assert break_even(slow, "z") is None and "slower than dense at every measured density" in break_even_label(slow, "z")
    # failed measurements do not count
    assert break_even(recs + [_rec("x", 0.05, None, "error")], "x") == pytest.approx(0.55)
    assert break_even_label(recs, "dense") == "baseline"


def test_no_break_even_from_one_density():
    """A stop after one density: nothing can be said of where the curve crosses 1."""
    one = [_rec("x", 0.01, 3.0), _rec("x", 0.1, None, "stopped")]
    assert break_even(one, "x") is None
    assert break_even_label(one, "x") == "no break-even: one density measured"


def test_every_crossing_is_reported():
    """BERT-mini attn.out's shape of curve: below 1, above it, then below again: no single
    break-even, both crossings named, and where it is faster."""
    recs = [_rec("j", 0.01, 0.96), _rec("j", 0.05, 1.42), _rec("j", 0.1, 1.49), _rec("j", 0.3, 0.6)]
    assert break_even(recs, "j") is None
    label = break_even_label(recs, "j")
    assert label.startswith("crosses 1 at d≈") and "↑" in label and "↓" in label
    from sparsejl.bench import curves
    cs = curves.crossings([(r["density"], r["speedup_vs_dense"]) for r in recs])
    assert [c.falling for c in cs] == [False, True]
    assert 0.01 < cs[0].density < 0.05 and 0.1 < cs[1].density < 0.3
    assert f"faster on {cs[0].density:.3g}–{cs[1].density:.3g}" in label


def test_no_break_even_for_dense_methods():
    recs = [dict(_rec("torch-dense", d, s), format="dense") for d, s in ((0.1, 1.2), (0.2, 0.8))]
    assert break_even(recs, "torch-dense") is None
    assert break_even_label(recs, "torch-dense").startswith("dense")


def test_noisy_baseline_is_flagged():
    """Dense time does not depend on the density of A: one median far off the others is noise."""
    from sparsejl.bench import curves
    base = [dict(_rec("dense", d, 1.0), median_s=t) for d, t in ((0.01, 0.019), (0.05, 0.0302), (0.1, 0.0188),
                                                                   (0.2, 0.0191))]
    flagged = curves.noisy_baseline(base)
    assert list(flagged) == [0.05] and "+" in flagged[0.05]
    assert curves.noisy_baseline(base[:1] + base[2:]) == {}
    html = DensityExplorer().table_html(base + [_rec("x", d, 2.0) for d in (0.01, 0.05, 0.1, 0.2)])
    assert html.count("sjl-noisy") == 1


def test_interquartile_range_of_the_speedup():
    from sparsejl.bench import curves
    r = dict(_rec("x", 0.1, 2.0), median_s=1.0, times_s=[0.8, 0.9, 1.0, 1.1, 1.2])
    (p,) = curves.points([r])
    assert p.low == pytest.approx(2.0 / 1.1) and p.high == pytest.approx(2.0 / 0.9)


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
    # the unavailable ones are collapsed into one line, with why
    missing = [n for n, st in ex.backend_status.items() if not st.available]
    if missing:
        assert f"{len(missing)} unavailable here" in ex.backends_w.children[-1].value


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
    # the run controls stay as they were, and the status says so
    assert ex2.model_w.value == "bert-base" and "controls unchanged" in ex2.status_w.value
    before_controls = ex2.controls.values()
    ex2.follow_w.click()                # until asked to follow the group on show
    assert ex2.model_w.value == "bert-mini" and ex2.layer_w.value == "ffn.up"
    assert ex2.controls.values() != before_controls and "model" in ex2.status_w.value
    ex3 = DensityExplorer()
    ex3.load_report(open(paths["json"], "rb").read())   # as the upload widget hands it over
    assert len(ex3.records) == len(before)


def test_bsr_backends_are_marked_skipped_in_an_unstructured_group():
    ex = small(points=2, backends=["scipy:csr", "scipy:bsr"])
    ex.run(wait=True)
    assert {r["status"] for r in ex.records if r["backend"] == "scipy:bsr"} == {"skipped"}
    assert "scipy:bsr" in ex.notes_w.value and "blocksize 1" in ex.notes_w.value


def test_stop_leaves_the_widget_usable():
    ex = small(points=6)
    first = ex._on_record

    def stop_after_first(*args):   # press Stop as the first measurement comes in
        first(*args)
        ex.stop()
    ex._on_record = stop_after_first
    ex.run(wait=True)
    # the sweep times a case's backends together and reports them together: the first density
    # was measured, every later one stopped
    first_d = ex.records[0]["density"]
    assert [r["status"] for r in ex.records if r["density"] == first_d] == ["ok", "ok"]
    assert {r["status"] for r in ex.records if r["density"] != first_d} == {"stopped"}
    assert len(ex.records) == 12
    assert "Stopped" in ex.status_w.value and ex.progress_w.bar_style == "warning"
    assert not ex.run_w.disabled and ex.stop_w.disabled
    assert "no break-even: one density measured" in ex.table_w.value
    legend = ex.view.legend()
    assert any("scipy:csr" in t and "no break-even: one density measured" in t for t in legend)
    assert not any("break-even d≈" in t for t in legend)
    ex._on_record = first
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
                           d, 64, "float16", int(d * 1024 * 4096), 1.0, 1.0, model="bert-large", layer="ffn.down")
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
    assert ex.pattern_w.value == 1 and ex.model_w.value == "bert-base"   # run controls untouched
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


def test_voila_launcher_notebook_and_command(tmp_path, capsys, monkeypatch):
    import nbformat
    from sparsejl.widgets import app
    nb = nbformat.read(app.notebook_path(), as_version=4)     # shipped as package data
    nbformat.validate(nb)
    assert "explorer_from_environment()" in nb.cells[0].source
    assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
    cmd = app.voila_command("x.ipynb", port=9999, open_browser=False)
    assert cmd[1:4] == ["-m", "voila", "x.ipynb"] and "--port=9999" in cmd
    assert "--Voila.ip=127.0.0.1" in cmd and "--no-browser" in cmd
    assert app.main(["--print-notebook"]) == 0
    assert capsys.readouterr().out.strip() == app.notebook_path()
    with pytest.raises(SystemExit):
        app.main(["--report", str(tmp_path / "missing.json")])
    # the page's explorer takes the launcher's options from the environment
    committed = __import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks" / "results" / \
        "quick-20261121-onepass" / "results.json.gz"
    monkeypatch.setenv("SPARSEJL_EXPLORER_OPTIONS", json.dumps({"model": "gpt2", "tokens": 7}))
    monkeypatch.setenv("SPARSEJL_EXPLORER_REPORT", str(committed))
    ex = app.explorer_from_environment()
    assert ex.model_w.value == "gpt2" and ex.tokens_w.value == 7 and "Loaded report" in ex.status_w.value


def test_session_keeps_runs_and_overlays_two():
    """Two runs (unstructured, then 16×16 blocks) stay in the session; overlaid, they share one
    plot of the layer, each line named by its run, and one table."""
    ex = small(points=2)
    ex.run(wait=True)
    ex.pattern_w.value = 16
    ex.run(wait=True)
    assert len(ex.sources) == 2 and ex.compare_box.layout.display != "none"
    ex.compare(list(ex.sources))
    shown = ex.shown_records()
    assert {r["blocksize"] for r in shown} == {1, 16}
    assert "runs overlaid" in ex.figure.axes[0].get_title()
    lines = {r["source"] for r in shown}
    assert any("unstructured" in s for s in lines) and any("16×16" in s for s in lines)
    assert ex.png[:4] == b"\x89PNG" and ex.table_w.value.count("scipy:csr") == 2
    with pytest.raises(KeyError):
        ex.compare(["no such run"])


def test_several_reports_load_side_by_side(tmp_path):
    ex = small(points=2)
    ex.run(wait=True)
    a = ex.save(str(tmp_path / "a"))["json"]
    ex.run(wait=True)
    b = ex.save(str(tmp_path / "b"))["json"]
    before = ex.controls.values()
    ex.load_report(a, b)
    assert ex.controls.values() == before
    shown = ex.shown_records()
    assert len({r["source"] for r in shown}) == 2 and len(ex.group_w.options) <= 1
    assert "Showing" in ex.status_w.value and "controls are unchanged" in ex.status_w.value


def _pruned_weight(m=256, k=128, density=0.2, seed=3):
    from sparsejl import prune
    W = prune.dense_weights(m, k, seed=seed)
    return W, prune.magnitude(W, density)


def test_user_matrix_from_npz_and_safetensors(tmp_path):
    """A weight the user brings is timed with its own pattern, with its weight memory shown."""
    import scipy.sparse as sp
    from sparsejl.bench.usermatrix import UserMatrix, block_size_of
    W, A = _pruned_weight()
    sp.save_npz(tmp_path / "w.npz", A)
    np.savez(tmp_path / "arrays.npz", layer0=A.toarray(), bias=np.zeros(3))
    um = UserMatrix.load(tmp_path / "w.npz")
    assert um.own_pattern and um.shape == (256, 128) and um.sparse.nnz == A.nnz
    assert UserMatrix.load(tmp_path / "arrays.npz").sparse.nnz == A.nnz   # the only 2-D array
    with pytest.raises(KeyError):
        UserMatrix.load(tmp_path / "arrays.npz", "nope")
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file
    lin = torch.nn.Linear(128, 256, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(A.toarray()))
    save_file({"enc.weight": lin.weight.detach().contiguous(), "enc.bias": torch.zeros(256)}, str(tmp_path / "m.safetensors"))
    st = UserMatrix.load(tmp_path / "m.safetensors", "enc.weight")
    assert st.own_pattern and st.sparse.nnz == A.nnz and st.name == "m.safetensors:enc.weight"
    # blocks: a block-pruned weight is recognised as such
    from sparsejl import prune
    B = prune.block_magnitude(W, 0.25, 16).tocsr()
    assert block_size_of(B) == 16 and block_size_of(A) == 1

    ex = small(backends=["scipy:csr"])
    ex.use_matrix(str(tmp_path / "m.safetensors"), "enc.weight")
    assert ex.source_w.value == "user" and "own pattern" in ex.controls.matrix_w.value
    cases = ex.cases()
    assert len(cases) == 1 and cases[0].density == pytest.approx(A.nnz / (256 * 128), rel=1e-5)
    ex.run(wait=True)
    assert ex.error is None, ex.error
    ok = {r["backend"]: r for r in ex.records if r["status"] == "ok"}
    assert set(ok) == {"dense", "scipy:csr"} and ok["scipy:csr"]["nnz"] == A.nnz
    assert "weight MiB" in ex.table_w.value and "no break-even: one density measured" in ex.table_w.value


def test_user_dense_linear_is_pruned_to_each_density():
    torch = pytest.importorskip("torch")
    lin = torch.nn.Linear(128, 256)
    ex = small(points=2, backends=["scipy:csr"])
    ex.use_matrix(lin)
    assert not ex.controls.user_matrix.own_pattern
    ex.run(wait=True)
    assert ex.error is None, ex.error
    dens = sorted({r["density"] for r in ex.records if r["status"] == "ok"})
    assert dens == densities(0.05, 0.5, 2)
    nnz = {r["density"]: r["nnz"] for r in ex.records if r["backend"] == "scipy:csr"}
    assert all(v == round(d * 256 * 128) for d, v in nnz.items())
    with pytest.raises(ValueError):
        ex.use_matrix(torch.zeros(3, 4, 5))


def test_spgemm_fields_are_named_for_spgemm():
    ex = small()
    ex.op_w.value = "spgemm"
    assert ex.tokens_w.description == "Columns of B"
    assert "generated: random, the same density and pattern as W" in ex.shape_w.value
    assert "≈" in ex.estimate_w.value
