"""The explorer in a real browser: Voilà (through `sparsejl-explorer`) on localhost, driven by
Debian's headless Chromium through Playwright. Screenshots go to artifacts/.

Skips only when /usr/bin/chromium (or Playwright) is not installed: run scripts/install-browser.sh.
"""
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
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Playwright for Python is not installed "
                                      "(scripts/install-browser.sh)")
pytest.importorskip("voila")


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


@pytest.fixture(scope="module")
def explorer_url(tmp_path_factory):
    """`sparsejl-explorer` (the Voilà launcher) on a free port of 127.0.0.1; killed at the end."""
    work = tmp_path_factory.mktemp("explorer")
    port = _free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("JULIA_NUM_THREADS", "2")
    log = open(work / "voila.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "sparsejl.widgets.app", "--port", str(port),
                             "--no-browser", "--model", "bert-mini"],
                            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_listening(port, proc, 60)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the launcher, Voilà, kernels
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(work / "voila.log", ARTIFACTS / "voila.log")


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


def _text(page, sel):
    return page.locator(sel).inner_text()


def _wait_text(page, sel, words, timeout_ms):
    page.wait_for_function(
        "([sel, words]) => { const e = document.querySelector(sel);"
        " return e && words.some(w => e.innerText.includes(w)); }",
        arg=[sel, words], timeout=timeout_ms)


def _no_error_shown(page):
    assert _text(page, ".sjl-error").strip() == ""
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and "Error" not in _text(page, ".sjl-status")


def test_explorer_runs_in_chromium(page):
    ARTIFACTS.mkdir(exist_ok=True)
    # it opened with the model the launcher was given, with the layer list of that model
    assert page.locator(".sjl-model select").input_value() != ""
    assert "1024×256" in _text(page, ".sjl-shape") or "256×256" in _text(page, ".sjl-shape")
    # change controls: FFN up-projection (1024×256), 16×16 blocks, 4 densities
    page.locator(".sjl-layer select").select_option(label="ffn.up  (1024×256)")
    page.locator(".sjl-pattern select").select_option(label="block 16×16")
    page.wait_for_function("() => document.querySelector('.sjl-shape').innerText.includes('1024×256')")
    tokens = page.locator(".sjl-tokens input")
    tokens.fill("32")
    tokens.press("Enter")
    page.wait_for_function("() => document.querySelector('.sjl-shape').innerText.includes('256×32')")
    before_plot = page.locator(".sjl-plot").get_attribute("src") or ""
    page.locator(".sjl-run").click()
    _wait_text(page, ".sjl-status", ["Done", "Stopped", "failed"], 120_000)
    assert "Done" in _text(page, ".sjl-status"), _text(page, ".sjl-status")
    _no_error_shown(page)
    # the plot is a new, rendered image
    page.wait_for_function("() => { const i = document.querySelector('.sjl-plot');"
                           " return i && i.complete && i.naturalWidth > 300; }")
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


def test_stop_button_ends_a_run_and_the_widget_stays_usable(page):
    # a longer sweep: BERT-base's FFN up-projection (3072×768) on 512 tokens
    page.locator(".sjl-model select").select_option(label="BERT-base")
    page.locator(".sjl-layer select").select_option(label="ffn.up  (3072×768)")
    tokens = page.locator(".sjl-tokens input")
    tokens.fill("512")
    tokens.press("Enter")
    page.wait_for_function("() => document.querySelector('.sjl-shape').innerText.includes('768×512')")
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
    assert _text(page, ".sjl-error").strip() == ""
    # and it runs again after a stop
    page.locator(".sjl-run").click()
    page.wait_for_function("() => !document.querySelector('.sjl-stop').disabled", timeout=30_000)
    _wait_text(page, ".sjl-status", ["Done", "Stopped", "failed"], 150_000)
    assert "Done" in _text(page, ".sjl-status")
    assert page.js_errors == []
