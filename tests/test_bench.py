"""The benchmark harness itself: records, the result check, missing peers, a tiny sweep, the
report. No timing is asserted anywhere: only that measurements happen and are reported."""
import json
import os
import time

import numpy as np
import pytest

try:  # before any test starts Julia: importing pyplot after that aborted the process here
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
except ImportError:
    pass

from sparsejl.bench import Case, matrices, peers, plot, report, run, suites, targets, verify
from sparsejl.bench.sweep import RECORD_FIELDS

TINY = Case("tiny", "t", 64, 32, 8, 0.25, 8)
TINY_CSR = Case("tiny", "t", 48, 40, 4, 0.2, 1)
TINY_GEMM = Case("tiny", "g", 48, 40, 24, 0.1, 1, op="spgemm")
TINY_GRAM = Case("tiny", "gram", 32, 64, 32, 0.1, 1, op="spgemm", operand_b="transpose")
CPU_BASE = ["dense", "scipy:csr", "scipy:bsr"]


class Wrong(peers.Contender):
    """Returns the product with one entry changed."""
    name, library = "wrong:csr", "test"

    def prepare(self, case, A, B):
        def f():
            C = np.asarray(A @ B).copy()
            C[0, 0] += 1.0
            return C
        return f


class SlowFirstCall(peers.Contender):
    """A correct product whose first call takes 0.3 s, as a kernel compiled on first use does."""
    name, library = "slowfirst:csr", "test"

    def prepare(self, case, A, B):
        calls = []

        def f():
            calls.append(1)
            if len(calls) == 1:
                time.sleep(0.3)
            return np.asarray(A @ B)
        return f


class Absent(peers.Contender):
    name, library = "absent:csr", "test"
    install = "pip install nothing"

    def _probe(self):
        raise ImportError("No module named 'absent'")


def test_operands_seeded_block_sparse_and_never_zero():
    A1, B1 = matrices.operands(TINY)
    A2, B2 = matrices.operands(TINY)
    assert (A1 != A2).nnz == 0 and np.array_equal(B1, B2)
    assert A1.dtype == np.float32 and B1.dtype == np.float32 and B1.flags.c_contiguous
    assert np.all(A1.data != 0) and np.all(B1 != 0)
    bsr = A1.tobsr(blocksize=(8, 8))
    assert bsr.nnz == A1.nnz  # whole 8×8 blocks, no partly filled block
    assert 0 < A1.nnz / (64 * 32) <= 1
    big = matrices.sparse_operand(512, 512, 0.1, 1, np.float64, 3)
    assert abs(big.nnz / 512**2 - 0.1) < 0.01


def test_operands_reject_shapes_not_made_of_blocks():
    with pytest.raises(ValueError):
        matrices.sparse_operand(30, 32, 0.1, 8, np.float32, 0)


def test_check_accepts_rounding_and_rejects_a_wrong_result():
    A, B = matrices.operands(TINY)
    ref, bound = matrices.reference("spmm", A, B, TINY.density)
    C = np.asarray(A @ B)  # float32 rounding only
    assert verify.verify(C, ref, bound, "float32") < 1
    bad = C.copy()
    bad[3, 2] += 0.01
    with pytest.raises(verify.WrongResult):
        verify.verify(bad, ref, bound, "float32")
    with pytest.raises(verify.WrongResult):
        verify.verify(C.T.copy(), ref, bound, "float32")  # wrong shape
    nan = C.copy()
    nan[0, 0] = np.nan
    with pytest.raises(verify.WrongResult):
        verify.verify(nan, ref, bound, "float32")


def test_check_sparse_products_including_an_entry_outside_the_pattern():
    A, B = matrices.operands(TINY_GEMM)
    ref, bound = matrices.reference("spgemm", A, B, TINY_GEMM.density)
    C = (A @ B).tocsr()
    assert verify.verify(C, ref, bound, "float32") < 1
    extra = C.tolil()
    zero = np.argwhere(ref.toarray() == 0)[0]
    extra[zero[0], zero[1]] = 1e-3
    with pytest.raises(verify.WrongResult):
        verify.verify(extra.tocsr(), ref, bound, "float32")


@pytest.fixture(autouse=True)
def no_settle_pause(monkeypatch):
    """The pause between backends matters for real timings, not for these tests."""
    from sparsejl.bench import sweep
    monkeypatch.setattr(sweep, "SETTLE_S", 0.0)


def test_records_have_every_field_and_dense_is_the_baseline():
    recs = run([TINY], CPU_BASE)
    assert [r["backend"] for r in recs] == CPU_BASE
    for r in recs:
        for f in RECORD_FIELDS + ("model", "layer", "m", "k", "n", "density", "blocksize",
                                  "dtype", "op", "seed"):
            assert f in r
        assert r["status"] == "ok", r["reason"]
        assert len(r["times_s"]) == (10 if r["backend"] == "dense" else 5) and r["median_s"] > 0
        assert r["speedup_vs_dense"] > 0 and r["check_error"] < 1
        assert r["peak_bytes"] is not None and r["threads"] is not None
    assert recs[0]["speedup_vs_dense"] == 1.0
    dense = recs[0]  # timed first and last: the lower median is the baseline
    assert len(dense["baseline_medians_s"]) == 2 and len(dense["times_s"]) == 10
    assert dense["median_s"] == min(dense["baseline_medians_s"])
    json.dumps(recs)  # records are JSON as they are


def test_wrong_result_is_an_error_and_not_timed():
    (rec,) = run([TINY_CSR], [Wrong()])
    assert rec["status"] == "error" and "WrongResult" in rec["reason"]
    assert rec["times_s"] == [] and rec["median_s"] is None


def test_missing_peer_is_reported_missing_with_its_reason():
    recs = run([TINY_CSR], ["dense", Absent()])
    rec = recs[1]
    assert rec["backend"] == "absent:csr" and rec["status"] == "missing"
    assert "absent" in rec["reason"] and "pip install nothing" in rec["reason"]


def test_bsr_at_blocksize_1_is_skipped_not_dropped():
    recs = run([TINY_CSR], ["scipy:bsr"])
    assert recs[0]["status"] == "skipped" and "blocksize 1" in recs[0]["reason"]


def test_should_stop_marks_the_rest_stopped():
    calls = []
    recs = run([TINY, TINY_CSR], ["dense", "scipy:csr"], should_stop=lambda: len(calls) >= 1,
               progress=lambda rec, done, total: calls.append((done, total, rec["status"])))
    assert [r["status"] for r in recs] == ["ok", "ok", "stopped", "stopped"]
    assert calls == [(1, 4, "ok"), (2, 4, "ok"), (3, 4, "stopped"), (4, 4, "stopped")]


def test_stop_while_timing_leaves_no_median():
    polls = iter(range(100))
    recs = run([TINY], ["dense", "scipy:csr"], should_stop=lambda: next(polls) >= 3)
    assert [r["status"] for r in recs] == ["stopped", "stopped"]
    assert all(r["median_s"] is None and r["speedup_vs_dense"] is None for r in recs)


def test_fewer_than_five_repeats_is_refused():
    with pytest.raises(ValueError):
        run([TINY], ["dense"], repeats=3)


def test_spgemm_and_gram_cases_run_and_check():
    recs = run([TINY_GEMM, TINY_GRAM], ["dense", "scipy:csr"])
    assert all(r["status"] == "ok" for r in recs), [r["reason"] for r in recs]


def test_installed_peers_pass_the_check_on_a_tiny_case():
    names = ["torch:csr", "torch:bsr", "mkl:csr", "mkl:bsr", "graphblas:csr"]
    recs = run([TINY, TINY_GEMM], names)
    for r in recs:
        assert r["status"] in ("ok", "missing", "skipped"), (r["backend"], r["reason"])
        if r["status"] == "missing":
            assert r["reason"]


@pytest.mark.skipif(not __import__("sparsejl.bench.juliapeer", fromlist=["x"]).julia_executable(),
                    reason="no julia executable")
def test_julia_sparsearrays_peer_runs_in_julia():
    recs = run([TINY_CSR, TINY_GEMM], ["sparsearrays:csc"])
    for r in recs:
        assert r["status"] == "ok", r["reason"]
        assert len(r["times_s"]) == 5


def test_quick_suite_has_every_target_case_and_the_layers_are_published_shapes():
    quick = suites.quick()
    for t in targets.TARGETS:
        for c in t.cases():
            assert c in quick
    assert suites.layer_mk("bert-base", "ffn.up") == (3072, 768)
    assert suites.layer_mk("bert-base", "attn.qkv") == (2304, 768)
    assert suites.layer_mk("llama-2-7b", "ffn.up") == (11008, 4096)
    assert suites.layer_mk("gpt2-xl", "ffn.down") == (1600, 6400)


def test_break_even_is_interpolated_where_speedup_crosses_one():
    assert plot.break_even([(0.05, 4.0), (0.1, 2.0), (0.2, 0.5)]) == pytest.approx(0.1 + 0.1 * 0.5)
    assert plot.break_even([(0.1, 2.0), (0.2, 1.5)]) is None


def test_targets_say_by_how_much_they_are_missed():
    case = targets.TARGETS[0].cases()[0]
    base = dict(case.__dict__)
    recs = [dict(base, backend="dense", status="ok", median_s=1.0, threads=2, reason=None),
            dict(base, backend="julia:bsr", status="ok", median_s=0.5, threads=2, reason=None)]
    row = [r for r in targets.evaluate(recs) if r["target"] == "bsr32-d10"][0]
    assert row["ratio"] == pytest.approx(2.0) and row["met"] is False
    assert "2.50×" in row["note"]  # needs 2.5× more to reach 5×


def test_tiny_sweep_writes_json_markdown_html_and_plots(tmp_path):
    cases = [Case("tiny", "t", 64, 32, 8, d, 8) for d in (0.5, 0.25, 0.1)]
    recs = run(cases, CPU_BASE + [Absent()])
    from sparsejl.bench import env
    meta = dict(suite="test", cases=3, backends=CPU_BASE, repeats=5, warmup=1, wall_s=1.0,
                command="pytest")
    paths = report.write(str(tmp_path), recs, env.capture(), meta)
    data = json.load(open(paths["json"]))
    assert len(data["records"]) == 12 and data["environment"]["cpu_model"] is not None
    assert data["targets"]
    md = open(paths["markdown"]).read()
    assert "Targets" in md and "absent:csr" in md and "plots/" in md
    assert os.path.getsize(paths["html"]) > 0
    pngs = os.listdir(tmp_path / "plots")
    assert len(pngs) == 1 and pngs[0].endswith(".png")
    fig = plot.speedup_figure(recs)
    assert fig.axes[0].get_yscale() == "log"


def test_cli_main_job_prints_a_table(monkeypatch, capsys):
    from sparsejl.bench import cli, threads
    for name in threads.ENV_VARS:   # --threads writes them into os.environ: restored after the test, as
        if name in os.environ:      # later tests' subprocesses inherit them (JULIA_NUM_THREADS=1 did)
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(suites, "main_job",
                        lambda dtype, b: [Case("bert-base", "ffn.up", 64, 32, 8, d, b, dtype)
                                          for d in (0.5, 0.1)])
    assert cli.main(["--backends", "dense,scipy:csr,scipy:bsr", "--blocksize", "8",
                     "--no-progress", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "density" in out and "scipy:bsr" in out and "break-even" in out


def _julia_reason():
    try:
        from sparsejl import runtime
        return runtime.unavailable_reason()
    except Exception as exc:  # the core not importable is a reason too
        return str(exc)


@pytest.mark.skipif(_julia_reason() is not None, reason=f"Julia runtime: {_julia_reason()}")
def test_sparsejl_julia_backends_and_bare_kernel_pass_the_check():
    tiny = targets.tiny_case()
    recs = run([TINY, tiny, TINY_GEMM], ["dense", "julia:csr", "julia:bsr", "julia-kernel:csr"])
    by = {(r["layer"], r["backend"]): r for r in recs}
    for key in [("t", "julia:csr"), ("t", "julia:bsr"), ("16x16", "julia:csr"),
                ("16x16", "julia-kernel:csr"), ("g", "julia:csr")]:
        assert by[key]["status"] == "ok", (key, by[key]["reason"])
    assert by[("g", "julia-kernel:csr")]["status"] == "skipped"  # SpMM only
    assert by[("g", "julia:bsr")]["status"] == "skipped"  # blocksize 1
    rows = [r for r in targets.evaluate(recs) if r["target"] == "call-overhead"]
    assert rows and rows[0]["ratio"] is not None  # measured; no verdict on its size here


def test_a_call_over_max_call_s_is_skipped_and_so_are_denser_cases_of_its_line():
    line = [Case("tiny", "t", 64, 32, 8, d, 8) for d in (0.1, 0.25)]
    recs = run(line, ["scipy:csr"], max_call_s=1e-12)
    assert recs[0]["status"] == "skipped" and "max_call_s" in recs[0]["reason"]
    assert len(recs[0]["times_s"]) == 1 and recs[0]["median_s"] is None
    assert recs[1]["status"] == "skipped" and "higher densities" in recs[1]["reason"]


def test_a_slow_first_call_is_timed_again_before_max_call_s_skips_it():
    (rec,) = run([TINY_CSR], [SlowFirstCall()], max_call_s=0.1)
    assert rec["status"] == "ok" and len(rec["times_s"]) == 5  # timed, not skipped


def test_break_even_only_where_speedup_falls_through_one_once():
    # a line that rises through 1 before falling has no "faster below" density: both crossings
    # are reported instead
    wavy = [(0.01, 0.8), (0.05, 3.0), (0.1, 2.0), (0.2, 0.5)]
    assert plot.break_even(wavy) is None
    assert plot.break_even_text(wavy).startswith("crosses 1 at d≈") and "0.15↓" in plot.break_even_text(wavy)
    assert plot.break_even([(0.01, 0.5), (0.1, 2.0)]) is None
    assert plot.break_even_text([(0.01, 0.5), (0.1, 2.0)]).startswith("crosses 1 at d≈")
    assert plot.break_even([(0.1, 2.0)]) is None   # one density: nothing to interpolate


def _line(backend, speedups, densities=(0.01, 0.03, 0.1, 0.3)):
    return [dict(backend=backend, density=d, status="ok", speedup_vs_dense=s, median_s=1e-3, times_s=[],
                 threads=None, op="spmm", model="bert-mini", layer="ffn.up", m=1024, k=256, n=16, blocksize=1,
                 dtype="float32", format="csr") for d, s in zip(densities, speedups)]


def test_speedup_figure_ticks_markers_and_stamp():
    """Ticks read 0.3×, 1×, 3×, 10×; once the ten colours repeat the markers change; the machine
    and date given as the stamp are printed on the figure (so on an exported PNG)."""
    recs = _line("dense", [1, 1, 1, 1])
    recs = [dict(r, format="dense") for r in recs]
    for i in range(12):
        recs += _line(f"b{i}", [12 / (i + 1), 3, 1.2, 0.31])
    fig = plot.speedup_figure(recs, stamp="Test CPU, 2 cores · 2026-12-05 07:00 UTC")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert {"0.3×", "1×", "3×", "10×"} <= set(labels)
    lines = [l for l in ax.get_lines() if l.get_marker() in plot.MARKERS and l.get_linestyle() != "None"]
    markers = [l.get_marker() for l in lines]
    colours = [l.get_color() for l in lines]
    assert markers[0] == markers[9] and markers[10] != markers[0]        # colours repeat from the 11th
    assert colours[10] == colours[0]
    assert any("Test CPU, 2 cores" in t.get_text() for t in fig.texts + ax.texts)


def test_user_path_study_times_checked_products_and_a_same_time_reference():
    """bench/user_path.py on a small case: every contender checked and timed in every scenario,
    the same-time NumPy reference sized from sparsejl's warm call."""
    from sparsejl.bench import user_path
    case = Case("bert-base", "ffn.up", 256, 128, 16, 0.1, 32, "float32", "spmm")
    records = user_path.measure(case, repeats=5)
    assert [r["contender"] for r in records] == ["sparsejl", "dense", "NumPy, same time"]
    for r in records:
        assert r["check_error"] < 1e-4
        assert all(r[k] > 0 for k in ("warm_s", "idle_20ms_s", "idle_200ms_s", "after_NumPy_s", "NumPy_after_s"))
    assert records[2]["columns"] >= 8
    text = user_path.report(records, {})
    assert "NumPy, same time (" in text and text.count("| bert-base ffn.up BSR32") == 3
