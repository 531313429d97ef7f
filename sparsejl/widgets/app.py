"""``sparsejl-explorer``: the density explorer as a standalone web page (Voilà), no notebook.

    sparsejl-explorer                      # http://127.0.0.1:8866/ , opens a browser if it can
    sparsejl-explorer --port 9000 --no-browser
    sparsejl-explorer --report gpu-report.json   # open with a saved report loaded
    python -m sparsejl.widgets.app ...     # the same without the installed script

Voilà serves the notebook shipped in the package (``explorer_page.ipynb``); the launcher's options
reach its kernel as ``SPARSEJL_EXPLORER_*`` environment variables. SIGTERM or SIGINT (Ctrl-C)
stops Voilà and every process it started (its kernels), then the launcher exits.
"""
from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import signal
import subprocess
import sys
from typing import List, Optional

__all__ = ["main", "notebook_path", "voila_command", "explorer_from_environment", "stop_tree"]

_ENV = "SPARSEJL_EXPLORER_"


def notebook_path() -> str:
    """The notebook Voilà serves (package data: a wheel carries it)."""
    return str(importlib.resources.files(__package__).joinpath("explorer_page.ipynb"))


def explorer_from_environment():
    """The explorer the page shows, with the launcher's options (``SPARSEJL_EXPLORER_OPTIONS``:
    DensityExplorer's keywords as JSON; ``SPARSEJL_EXPLORER_REPORT``: a report to load)."""
    from .explorer import DensityExplorer
    options = json.loads(os.environ.get(_ENV + "OPTIONS") or "{}")
    explorer = DensityExplorer(**options)
    report = os.environ.get(_ENV + "REPORT")
    if report:
        explorer.load_report(report)
    return explorer


def voila_command(notebook: str, port: int = 8866, ip: str = "127.0.0.1",
                  open_browser: bool = True, extra: Optional[List[str]] = None) -> List[str]:
    """The Voilà command line that serves ``notebook``."""
    cmd = [sys.executable, "-m", "voila", notebook, f"--port={int(port)}", f"--Voila.ip={ip}",
           "--theme=light", "--show_tracebacks=True",
           "--VoilaConfiguration.file_allowlist=['.*\\.(png|jpg|gif|svg|json|csv)']"]
    if not open_browser:
        cmd.append("--no-browser")
    return cmd + list(extra or [])


def stop_tree(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop ``proc`` and everything it started: SIGTERM to all (Voilà shuts its kernels down),
    then SIGKILL to whatever is left after ``timeout``. Kernels run in sessions of their own, so
    the tree is walked (psutil), not only the process group."""
    import psutil
    try:
        root = psutil.Process(proc.pid)
        tree = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    for p in tree:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _gone, alive = psutil.wait_procs(tree, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    try:
        proc.wait(timeout=1)
    except subprocess.TimeoutExpired:
        pass


class _Stop(Exception):
    def __init__(self, signum: int):
        self.signum = signum


def _raise_stop(signum, _frame):
    raise _Stop(signum)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="sparsejl-explorer", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8866, help="port to serve on (default 8866)")
    p.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.add_argument("--report", help="a saved benchmark report (JSON) to show at start")
    p.add_argument("--model", default="bert-base", help="model preset to start with")
    p.add_argument("--print-notebook", action="store_true", help="print the path of the notebook served and exit")
    args, extra = p.parse_known_args(argv)
    if args.report and not os.path.exists(args.report):
        p.error(f"no such report: {args.report}")
    if args.print_notebook:
        print(notebook_path())
        return 0
    env = dict(os.environ)
    env[_ENV + "OPTIONS"] = json.dumps({"model": args.model, "save_dir": os.path.join(os.getcwd(), "sparsejl-results")})
    env.pop(_ENV + "REPORT", None)
    if args.report:
        env[_ENV + "REPORT"] = os.path.abspath(args.report)
    # the kernel runs beside the notebook: make this sparsejl importable from there too
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(q for q in (root, env.get("PYTHONPATH")) if q)
    cmd = voila_command(notebook_path(), args.port, args.ip, not args.no_browser, extra)
    print(f"sparsejl-explorer: serving on http://{args.ip}:{args.port}/  (Ctrl-C to stop)", flush=True)
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    proc = None
    try:
        proc = subprocess.Popen(cmd, cwd=os.getcwd(), env=env, start_new_session=True)
        return proc.wait()
    except _Stop as stop:
        print(f"sparsejl-explorer: {signal.Signals(stop.signum).name}: stopping Voilà and its kernels", flush=True)
        return 128 + stop.signum
    finally:
        for s in previous:   # a second signal must not cut the cleanup short
            signal.signal(s, signal.SIG_IGN)
        if proc is not None and proc.poll() is None:
            stop_tree(proc)
        for s, h in previous.items():
            signal.signal(s, h)


if __name__ == "__main__":
    sys.exit(main())
