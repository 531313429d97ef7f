"""The explorer in a real browser: Voilà (through `sparsejl-explorer`) on localhost, driven by
Debian's headless Chromium through Playwright. Screenshots go to artifacts/.

Skips only when /usr/bin/chromium (or Playwright) is not installed: run scripts/install-browser.sh.
"""
import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

CHROMIUM = os.environ.get("SPARSEJL_CHROMIUM", "/usr/bin/chromium")
ROOT = pathlib.Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is not installed (scripts/install-browser.sh installs Debian's "
                "chromium)", allow_module_level=True)
# with Chromium there, a missing Playwright or Voilà is a setup failure, not a skip
from playwright import sync_api  # noqa: E402  (scripts/install-browser.sh installs it)
import voila  # noqa: E402,F401  (the [jupyter] extra)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc, timeout: float):
    """Until the server accepts connections on 127.0.0.1:port (a GET of the page would start a
    kernel, so only the socket is probed)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


@contextlib.contextmanager
def _server(cmd, cwd, log_path, port, extra_env=None):
    """Run a server in its own session on 127.0.0.1:port, logging to log_path; yield its URL; at
    the end kill it with everything it started (kernels too) and keep its log as an artifact."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("JULIA_NUM_THREADS", "2")
    env.update(extra_env or {})
    try:
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                _wait_listening(port, proc, 60)
                yield f"http://127.0.0.1:{port}/"
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(15)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait(5)
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(log_path, ARTIFACTS / log_path.name)


@pytest.fixture(scope="module")
def explorer_url(tmp_path_factory):
    """`sparsejl-explorer` (the Voilà launcher) on a free port of 127.0.0.1; killed at the end."""
    work = tmp_path_factory.mktemp("explorer")
    port = _free_port()
    cmd = [sys.executable, "-m", "sparsejl.widgets.app", "--port", str(port), "--no-browser", "--model", "bert-mini"]
    with _server(cmd, work, work / "voila.log", port) as url:
        yield url


@pytest.fixture
def page(explorer_url):
    profile = tempfile.mkdtemp(prefix="sparsejl-chromium-")
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1280, "height": 1400}, accept_downloads=True)
        pg = ctx.new_page()
        pg.set_default_timeout(30_000)
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(explorer_url, wait_until="domcontentloaded", timeout=60_000)
        pg.wait_for_selector(".sjl-explorer .sjl-run", timeout=90_000)
        pg.js_errors = errors
        try:
            yield pg
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)


class _ShotOnFailure:
    """Save a screenshot (and the page's text) under artifacts/ when the block fails."""

    def __init__(self, page, name):
        self.page, self.name = page, name

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is not None and kind is not KeyboardInterrupt:
            try:
                ARTIFACTS.mkdir(exist_ok=True)
                self.page.screenshot(path=str(ARTIFACTS / f"failed-{self.name}.png"), full_page=True)
                (ARTIFACTS / f"failed-{self.name}.txt").write_text(
                    self.page.locator("body").inner_text())
            except Exception:
                pass
        return False


def _text(page, sel):
    return page.locator(sel).inner_text()


def _set_tokens(page, n, shape):
    """Type `n` tokens and wait until the shape line shows `shape` (e.g. '256×32')."""
    tokens = page.locator(".sjl-tokens input")
    tokens.fill(str(n))
    tokens.press("Enter")
    page.wait_for_function("(s) => document.querySelector('.sjl-shape').innerText.includes(s)",
                           arg=shape)


def _wait_text(page, sel, words, timeout_ms):
    page.wait_for_function(
        "([sel, words]) => { const e = document.querySelector(sel);"
        " return e && words.some(w => e.innerText.includes(w)); }",
        arg=[sel, words], timeout=timeout_ms)


def _no_error_shown(page):
    assert _text(page, ".sjl-error").strip() == ""
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and "Error" not in _text(page, ".sjl-status")


def _run_to_the_end(page):
    """Press Run; the run must finish ("Done"), show no error, and leave a rendered plot."""
    page.locator(".sjl-run").click()
    _wait_text(page, ".sjl-status", ["Done", "Stopped", "failed"], 120_000)
    assert "Done" in _text(page, ".sjl-status"), _text(page, ".sjl-status")
    _no_error_shown(page)
    page.wait_for_function("() => { const i = document.querySelector('.sjl-plot');"
                           " return i && i.complete && i.naturalWidth > 300; }")


def test_explorer_runs_in_chromium(page):
    with _ShotOnFailure(page, 'voila-run'):
        ARTIFACTS.mkdir(exist_ok=True)
        # it opened with the model the launcher was given, with the layer list of that model
        assert page.locator(".sjl-model select").input_value() != ""
        assert "1024×256" in _text(page, ".sjl-shape") or "256×256" in _text(page, ".sjl-shape")
        # change controls: FFN up-projection (1024×256), 16×16 blocks, 4 densities
        page.locator(".sjl-layer select").select_option(label="ffn.up  (1024×256)")
        page.locator(".sjl-pattern select").select_option(label="block 16×16")
        page.wait_for_function("() => document.querySelector('.sjl-shape').innerText.includes('1024×256')")
        _set_tokens(page, 32, "256×32")
        before_plot = page.locator(".sjl-plot").get_attribute("src") or ""
        _run_to_the_end(page)
        # the plot is a new image
        assert (page.locator(".sjl-plot").get_attribute("src") or "") != before_plot
        # the table has a row per density with the measured backends
        table = _text(page, ".sjl-table")
        assert "dense" in table and "scipy:csr" in table and "break-even" in table
        assert "×" in table and ("ms" in table or "µs" in table)
        rows = page.locator(".sjl-table tr").count()
        assert rows >= 2 + 6 + 1  # two header rows, the default 6 densities, break-even
        prog = page.locator(".sjl-progress .progress-bar")
        assert prog.count() == 1
        page.screenshot(path=str(ARTIFACTS / "explorer-voila.png"), full_page=True)
        page.locator(".sjl-plot").screenshot(path=str(ARTIFACTS / "explorer-plot.png"))
        assert page.js_errors == []

        # export: the JSON download link gives a report, which the upload control loads back
        with page.expect_download(timeout=30_000) as dl:
            page.locator(".sjl-dl-json").click()
        saved = ARTIFACTS / dl.value.suggested_filename
        dl.value.save_as(str(saved))
        assert saved.suffix == ".json" and saved.stat().st_size > 100
        with page.expect_file_chooser(timeout=30_000) as chooser:
            page.locator(".sjl-upload").click()
        chooser.value.set_files(str(saved))
        _wait_text(page, ".sjl-status", ["Loaded report"], 30_000)
        _no_error_shown(page)

        # a GPU benchmark report (the committed one), loaded by path: explored without a GPU
        # (the newest with SpMM cases: a SpGEMM-only record has no dense baseline to plot)
        gpu = sorted(p for p in (ROOT / "benchmarks" / "results").glob("gpu-*.json")
                     if '"op": "spmm"' in p.read_text())
        if gpu:
            before = page.locator(".sjl-plot").get_attribute("src")
            page.locator(".sjl-load-path input").fill(str(gpu[-1]))
            page.locator(".sjl-load").click()
            _wait_text(page, ".sjl-status", ["GPU benchmark"], 30_000)
            _no_error_shown(page)
            assert page.locator(".sjl-group select").is_visible()
            page.wait_for_function("(b) => document.querySelector('.sjl-plot').src !== b",
                                   arg=before)
            assert "cupy" in _text(page, ".sjl-table")
            options = page.locator(".sjl-group select option").all_inner_texts()
            assert len(options) > 1
            shown = page.locator(".sjl-plot").get_attribute("src")
            page.locator(".sjl-group select").select_option(index=1)
            page.wait_for_function("(b) => document.querySelector('.sjl-plot').src !== b",
                                   arg=shown)
            page.screenshot(path=str(ARTIFACTS / "explorer-gpu-report.png"), full_page=True)


def test_stop_button_ends_a_run_and_the_widget_stays_usable(page):
    with _ShotOnFailure(page, 'voila-stop'):
        # a longer sweep: BERT-base's FFN up-projection (3072×768) on 512 tokens
        page.locator(".sjl-model select").select_option(label="BERT-base")
        page.locator(".sjl-layer select").select_option(label="ffn.up  (3072×768)")
        _set_tokens(page, 512, "768×512")
        page.locator(".sjl-run").click()
        page.wait_for_function("() => !document.querySelector('.sjl-stop').disabled", timeout=30_000)
        # press Stop once the first measurement is in: what was measured must stay
        page.wait_for_function("() => /^[1-9]/.test(document.querySelector('.sjl-progress-label')"
                               ".innerText.trim())", timeout=60_000)
        page.locator(".sjl-stop").click()
        _wait_text(page, ".sjl-status", ["Stopped", "Done"], 120_000)
        status = _text(page, ".sjl-status")
        page.screenshot(path=str(ARTIFACTS / "explorer-stopped.png"), full_page=True)
        assert "Stopped" in status, status
        assert page.locator(".sjl-run").is_enabled() and page.locator(".sjl-stop").is_disabled()
        table = _text(page, ".sjl-table")
        assert "stopped" in table and "1.00×" in table   # dense measured at least once, then stopped
        # one density measured: the legend (the plot's words, beside the image) and the table
        # claim no break-even
        page.wait_for_function("() => document.querySelector('.sjl-legend').textContent.includes('one density')")
        legend = page.locator(".sjl-legend").text_content()
        assert "no break-even: one density measured" in legend and "break-even d≈" not in legend
        assert "no break-even: one density measured" in table and "break-even d≈" not in table
        assert _text(page, ".sjl-error").strip() == ""
        # and it runs again after a stop (a small layer, to keep the test short)
        page.locator(".sjl-model select").select_option(label="BERT-mini")
        page.locator(".sjl-layer select").select_option(label="attn.out  (256×256)")
        _set_tokens(page, 16, "256×16")
        page.locator(".sjl-run").click()   # fast: it may be over before Stop could be seen enabled
        _wait_text(page, ".sjl-status", ["Done", "failed"], 150_000)
        assert "Done" in _text(page, ".sjl-status")
        assert "stopped" not in _text(page, ".sjl-table")
        assert page.js_errors == []


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory):
    """JupyterLab on a free port of 127.0.0.1 serving a copy of notebooks/; killed at the end."""
    import jupyterlab  # noqa: F401  (the [jupyter] extra)
    work = tmp_path_factory.mktemp("lab")
    root = work / "notebooks"
    root.mkdir()
    shutil.copy(ROOT / "notebooks" / "explorer.ipynb", root / "explorer.ipynb")
    settings = work / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port = _free_port()
    env = {"JUPYTERLAB_SETTINGS_DIR": str(work / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(work / "workspaces")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
           f"--ServerApp.root_dir={root}", "--LabApp.news_url=None"]
    with _server(cmd, root, work / "jupyterlab.log", port, env) as url:
        yield url


def test_explorer_runs_in_jupyterlab(lab_url):
    ARTIFACTS.mkdir(exist_ok=True)
    profile = tempfile.mkdtemp(prefix="sparsejl-chromium-")
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1400, "height": 1000})   # a laptop's screen
        try:
            page = ctx.new_page()
            page.set_default_timeout(30_000)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(lab_url + "lab/tree/explorer.ipynb", wait_until="domcontentloaded",
                      timeout=60_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                                   timeout=90_000)
            # run the notebook's first code cell: the explorer appears as its output
            cell = page.locator(".jp-Notebook .jp-CodeCell").first
            prompt = cell.locator(".jp-InputArea-prompt")
            for attempt in range(3):  # a key press can land before the editor has the focus
                dialog = page.locator(".jp-Dialog .jp-mod-accept")
                if dialog.count() and dialog.first.is_visible():   # e.g. the kernel chooser: accept it
                    dialog.first.click()
                cell.locator(".jp-InputArea-editor").click()
                page.wait_for_timeout(300)
                page.keyboard.press("Shift+Enter")
                try:
                    page.wait_for_function(
                        "(el) => /\\[(\\*|\\d+)\\]/.test(el.innerText)",
                        arg=prompt.element_handle(), timeout=15_000)
                    break
                except sync_api.TimeoutError:
                    if attempt == 2:
                        raise
            page.wait_for_selector(".sjl-explorer .sjl-run", timeout=90_000)
            page.locator(".sjl-model select").select_option(label="BERT-mini")
            page.locator(".sjl-layer select").select_option(label="attn.out  (256×256)")
            page.wait_for_function(
                "() => document.querySelector('.sjl-shape').innerText.includes('256×256')")
            # the file browser is open beside the notebook, as a new user has it
            if not page.locator(".jp-FileBrowser").is_visible():
                page.locator("[data-id='filebrowser']").click()
            page.wait_for_selector(".jp-FileBrowser", state="visible")
            _run_to_the_end(page)
            table = _text(page, ".sjl-table")
            assert "scipy:csr" in table and "break-even" in table and "×" in table
            # Run and the plot on screen together, the plot beside the controls, nothing clipped
            page.locator(".sjl-plot").scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            view = {"width": 1400, "height": 1000}
            run, plot, controls = (page.locator(s).bounding_box() for s in (".sjl-run", ".sjl-plot", ".sjl-controls"))
            assert 0 <= run["y"] and run["y"] + run["height"] <= view["height"], run
            assert plot["y"] < view["height"] and plot["y"] + plot["height"] > 0, plot
            assert plot["x"] >= controls["x"] + controls["width"] - 1, (plot, controls)   # beside, not below
            assert plot["x"] + plot["width"] <= view["width"], plot
            clipped = page.evaluate("() => { const e = document.querySelector('.sjl-explorer');"
                                    " return e.scrollWidth - e.clientWidth; }")
            assert clipped <= 1, f"the explorer is {clipped} px wider than its cell"
            page.screenshot(path=str(ARTIFACTS / "explorer-jupyterlab.png"))
            page.locator(".sjl-table").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "explorer-jupyterlab-table.png"))
            assert errors == []
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)


def _controls(page):
    """The run controls' values as the page shows them."""
    return {name: page.locator(sel).input_value() for name, sel in (
        ("model", ".sjl-model select"), ("layer", ".sjl-layer select"), ("tokens", ".sjl-tokens input"),
        ("op", ".sjl-op select"), ("pattern", ".sjl-pattern select"), ("dtype", ".sjl-dtype select"))}


def test_report_load_leaves_controls_and_two_runs_overlay(page, tmp_path):
    with _ShotOnFailure(page, 'voila-overlay'):
        page.locator(".sjl-layer select").select_option(label="attn.out  (256×256)")
        _set_tokens(page, 8, "256×8")
        _run_to_the_end(page)
        page.locator(".sjl-pattern select").select_option(label="block 16×16")
        page.locator(".sjl-run").click()
        # the session keeps both runs: overlay them
        page.wait_for_function("() => document.querySelectorAll('.sjl-compare select option').length == 2",
                               timeout=150_000)
        _wait_text(page, ".sjl-status", ["Done"], 30_000)
        page.locator(".sjl-compare select").select_option(index=[0, 1])
        before = page.locator(".sjl-plot").get_attribute("src")
        page.locator(".sjl-overlay").click()
        _wait_text(page, ".sjl-status", ["Showing 2"], 30_000)
        page.wait_for_function("(b) => document.querySelector('.sjl-plot').src !== b", arg=before)
        table = _text(page, ".sjl-table")
        assert "unstructured" in table and "16×16" in table
        page.screenshot(path=str(ARTIFACTS / "explorer-overlay.png"), full_page=True)
        # a report loaded by path: shown, with the run controls exactly as they were
        controls = _controls(page)
        report = ROOT / "benchmarks" / "results" / "quick-20261121-onepass" / "results.json.gz"
        page.locator(".sjl-load-path input").fill(str(report))
        page.locator(".sjl-load").click()
        _wait_text(page, ".sjl-status", ["Loaded report"], 60_000)
        assert "controls unchanged" in _text(page, ".sjl-status")
        assert _controls(page) == controls
        _no_error_shown(page)
        assert page.js_errors == []


def test_user_weight_from_npz_and_safetensors(page, tmp_path):
    import numpy as np
    import scipy.sparse as sp
    from sparsejl import prune
    W = prune.dense_weights(256, 128, seed=5)
    A = prune.magnitude(W, 0.2)
    sp.save_npz(tmp_path / "pruned.npz", A)
    paths = [(tmp_path / "pruned.npz", "")]
    try:
        import torch
        from safetensors.torch import save_file
        save_file({"layer.weight": torch.from_numpy(np.ascontiguousarray(prune.block_magnitude(W, 0.25, 16).toarray())),
                   "layer.bias": torch.zeros(256)}, str(tmp_path / "model.safetensors"))
        paths.append((tmp_path / "model.safetensors", "layer.weight"))
    except ImportError:
        pass
    with _ShotOnFailure(page, 'voila-user-weight'):
        page.locator(".sjl-source button", has_text="your weight").click()
        for path, tensor in paths:
            page.locator(".sjl-matrix-path input").fill(str(path))
            page.locator(".sjl-matrix-tensor input").fill(tensor)
            page.locator(".sjl-matrix-load").click()
            _wait_text(page, ".sjl-matrix", [path.name, "Could not"], 30_000)
            assert "own pattern" in _text(page, ".sjl-matrix"), _text(page, ".sjl-matrix")
            if tensor:
                assert "16×16 blocks" in _text(page, ".sjl-matrix")
            runs = page.locator(".sjl-compare select option").count()
            page.locator(".sjl-run").click()
            page.wait_for_function("(n) => document.querySelectorAll('.sjl-compare select option').length > n"
                                   " || document.querySelector('.sjl-error').innerText.trim() !== ''",
                                   arg=runs, timeout=150_000) if runs else \
                _wait_text(page, ".sjl-status", ["Done", "Stopped", "failed"], 120_000)
            _wait_text(page, ".sjl-status", ["Done", "Stopped", "failed"], 60_000)
            assert "Done" in _text(page, ".sjl-status")
            table = _text(page, ".sjl-table")
            assert "weight MiB" in table and "no break-even: one density measured" in table
            _no_error_shown(page)
        page.screenshot(path=str(ARTIFACTS / "explorer-user-weight.png"), full_page=True)
        assert page.js_errors == []


def test_launcher_stops_on_sigterm_with_voila_and_its_kernel(tmp_path):
    """SIGTERM to `sparsejl-explorer`: Voilà and the kernel it started are gone, the port is free."""
    import psutil
    import urllib.request
    port = _free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    log = open(tmp_path / "launcher.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "sparsejl.widgets.app", "--port", str(port), "--no-browser",
                             "--model", "bert-mini"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, proc, 60)
        try:   # a page request starts a kernel
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=90).read()
        except Exception:
            pass
        end = time.monotonic() + 60
        while time.monotonic() < end:
            tree = psutil.Process(proc.pid).children(recursive=True)
            if any("ipykernel" in " ".join(p.cmdline()) for p in tree if p.is_running()):
                break
            time.sleep(0.5)
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert any("ipykernel" in " ".join(p.cmdline()) for p in tree), "no kernel was started"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 128 + signal.SIGTERM
        _gone, alive = psutil.wait_procs(tree, timeout=10)
        assert alive == [], f"left running: {[p.cmdline() for p in alive]}"
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, "the port is still served"
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(tmp_path / "launcher.log", ARTIFACTS / "launcher-sigterm.log")
