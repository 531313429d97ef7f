"""``sparsejl-explorer``: the density explorer as a standalone web page (Voilà), no notebook.

    sparsejl-explorer                      # http://127.0.0.1:8866/ , opens a browser if it can
    sparsejl-explorer --port 9000 --no-browser
    sparsejl-explorer --report gpu-report.json   # open with a saved report loaded
    python -m sparsejl.widgets.app ...     # the same without the installed script

It writes a one-cell notebook (the explorer) into a temporary folder and serves it with Voilà,
which runs the cell in a fresh kernel per visitor and shows only the widgets.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from typing import List, Optional

import nbformat

__all__ = ["main", "explorer_notebook", "voila_command"]


def explorer_notebook(report: Optional[str] = None, **kwargs) -> nbformat.NotebookNode:
    """The notebook Voilà serves: a title and one cell that shows a DensityExplorer."""
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    code = ["import warnings",
            "warnings.filterwarnings('ignore', category=RuntimeWarning, module='sparsejl')",
            "from sparsejl.widgets import DensityExplorer",
            f"explorer = DensityExplorer({args})"]
    if report:
        code.append(f"explorer.load_report({os.path.abspath(report)!r})")
    code.append("explorer")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("\n".join(code))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["title"] = "sparsejl density explorer"
    return nb


def voila_command(notebook: str, port: int = 8866, ip: str = "127.0.0.1",
                  open_browser: bool = True, extra: Optional[List[str]] = None) -> List[str]:
    """The Voilà command line that serves ``notebook``."""
    cmd = [sys.executable, "-m", "voila", notebook, f"--port={int(port)}", f"--Voila.ip={ip}",
           "--theme=light", "--show_tracebacks=True",
           "--VoilaConfiguration.file_allowlist=['.*\\.(png|jpg|gif|svg|json|csv)']"]
    if not open_browser:
        cmd.append("--no-browser")
    return cmd + list(extra or [])


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="sparsejl-explorer", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8866, help="port to serve on (default 8866)")
    p.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.add_argument("--report", help="a saved benchmark report (JSON) to show at start")
    p.add_argument("--model", default="bert-base", help="model preset to start with")
    p.add_argument("--print-notebook", action="store_true",
                   help="print the notebook that would be served and exit")
    args, extra = p.parse_known_args(argv)
    if args.report and not os.path.exists(args.report):
        p.error(f"no such report: {args.report}")
    nb = explorer_notebook(report=args.report, model=args.model,
                           save_dir=os.path.join(os.getcwd(), "sparsejl-results"))
    if args.print_notebook:
        nbformat.write(nb, sys.stdout)
        return 0
    folder = tempfile.mkdtemp(prefix="sparsejl-explorer-")
    path = os.path.join(folder, "sparsejl-explorer.ipynb")
    nbformat.write(nb, path)
    cmd = voila_command(path, args.port, args.ip, not args.no_browser, extra)
    print(f"sparsejl-explorer: serving on http://{args.ip}:{args.port}/  (Ctrl-C to stop)",
          flush=True)
    env = dict(os.environ)
    # the kernel runs in the temporary folder: make this sparsejl importable from there too
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(cmd, cwd=os.getcwd(), env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
