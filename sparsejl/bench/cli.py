"""``sparsejl-bench``: the benchmark from the command line.

    sparsejl-bench                      # main job: BERT-base FFN 3072×768, 128 tokens, a table
    sparsejl-bench --quick --out DIR    # target cases + one sweep, all peers, report (minutes)
    sparsejl-bench --full --out DIR     # the whole sweep (long; run it on a quiet machine)

Threads are pinned (``--threads``, default 2) before Julia starts and before any timing.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import List, Optional

__all__ = ["main", "terminal_table", "targets_text"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sparsejl-bench",
        description="Time sparsejl's SpMM/SpGEMM against SciPy, dense BLAS and peer libraries "
                    "on transformer-layer shapes. Without --quick/--full: the main job, BERT-base "
                    "FFN 3072×768 at 128 tokens over densities 0.5…0.05, printed as a table.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="every target case plus one density sweep, all peers (a few minutes)")
    mode.add_argument("--full", action="store_true", help="the full sweep (long)")
    mode.add_argument("--models", action="store_true",
                      help="whole models, dense against sparsified (sparsejl.bench.model_bench; "
                           "its options: sparsejl-bench --models --help)")
    p.add_argument("--threads", type=int, default=2,
                   help="threads for Julia, BLAS, OpenMP, MKL, PyTorch, GraphBLAS (default 2)")
    p.add_argument("--out", help="folder for results.json, report.md/.html and plots "
                                 "(default for --quick/--full: ./sparsejl-bench-<suite>)")
    p.add_argument("--backends", help="comma-separated backends (default: main job "
                                      "dense,julia:csr,julia:bsr,scipy:csr,scipy:bsr; "
                                      "--quick/--full: all)")
    p.add_argument("--peers", action="store_true", help="main job: add every peer library")
    p.add_argument("--blocksize", type=int, default=32, help="main job: block size (default 32)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=5, help="timed samples, >= 5 (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls before timing (default 1)")
    p.add_argument("--max-call-s", type=float, default=None,
                   help="skip timing a backend whose checked call took longer (default: none; "
                        "1 s for --full; denser cases of that sweep line are then skipped too)")
    p.add_argument("--time-limit", type=float, default=None, metavar="MIN",
                   help="stop after this many minutes; the rest is recorded as 'stopped'")
    p.add_argument("--only", action="append", metavar="TEXT",
                   help="keep only cases whose label contains TEXT (repeatable: any of them), "
                        "e.g. --only llama --only 'd=0.1 '")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-html", action="store_true", help="Markdown report only")
    p.add_argument("--list", action="store_true", help="list backends and whether each is here")
    return p


class _Progress:
    """tqdm when installed, else one line per measurement on stderr."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        self.enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="meas", file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                pass

    def __call__(self, rec: dict, done: int, total: int) -> None:
        if not self.enabled:
            return
        what = f"{rec['model']} {rec['layer']} d={rec['density']:g} {rec['backend']}"
        if self.bar is not None:
            self.bar.set_description_str(what[:60])
            self.bar.update(1)
        else:
            print(f"[{done}/{total}] {what}: {rec['status']}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _fmt(s: Optional[float]) -> str:
    from .report import fmt_time
    return fmt_time(s)


def terminal_table(records: List[dict]) -> str:
    """Densities down, backends across: median time and speedup over dense in each cell."""
    from .plot import break_even_text
    backends = list(dict.fromkeys(r["backend"] for r in records))
    ran = [b for b in backends if any(r["backend"] == b and r["status"] == "ok" for r in records)]
    cells = {(r["density"], r["backend"]): r for r in records}
    densities = sorted({r["density"] for r in records}, reverse=True)
    width = 22
    lines = ["density  " + "".join(b.rjust(width) for b in ran)]
    for d in densities:
        row = f"{d:<9g}"
        for b in ran:
            r = cells.get((d, b))
            if r is None or r["status"] != "ok":
                cell = r["status"] if r else ""
            else:
                sp = r.get("speedup_vs_dense")
                cell = f"{_fmt(r['median_s'])} {sp:5.2f}x" if sp else _fmt(r["median_s"])
            row += cell.rjust(width)
        lines.append(row)
    be = []
    for b in ran:
        if b == "dense":
            continue
        pts = [(r["density"], r["speedup_vs_dense"]) for r in records
               if r["backend"] == b and r["status"] == "ok" and r.get("speedup_vs_dense")]
        be.append(f"  {b}: {break_even_text(pts)}")
    lines.append("break-even density (speedup over dense = 1):")
    lines += be
    threads = {r["backend"]: r["threads"] for r in records if r["status"] == "ok"}
    lines.append("threads: " + ", ".join(f"{b}={t}" for b, t in threads.items()))
    for b in backends:
        bad = next((r for r in records if r["backend"] == b and r["status"] != "ok"), None)
        if bad is not None:
            lines.append(f"{b}: {bad['status']}: {bad['reason']}")
    return "\n".join(lines)


def targets_text(records: List[dict]) -> str:
    """The issue's targets, one line each, as measured in ``records``."""
    from . import targets
    rows = targets.evaluate(records)
    words = {True: "met", False: "NOT met", None: "not measured"}
    lines = ["targets:"]
    for s in targets.summary(rows):
        lines.append(f"  {words[s['met']]:>12}  {s['target']}")
        for r in rows:
            if r["target"] == s["target"] and r["met"] is not True and r.get("note"):
                lines.append(f"{'':16}{r['case']}: {r['note']}")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--models" in argv:
        from . import model_bench
        return model_bench.main([a for a in argv if a != "--models"])
    args = _parser().parse_args(argv)
    if args.repeats < 5:
        print("sparsejl-bench: --repeats must be at least 5", file=sys.stderr)
        return 2
    from . import env, peers, report, suites, threads
    from .sweep import WARM_CALLS, WARM_S, run

    if args.list:
        threads.pin(args.threads)
        for name, c in peers.CONTENDERS.items():
            ok, why = c.availability()
            print(f"{name:20s} {c.library:32s} {'available' if ok else 'missing: ' + str(why)}")
        return 0

    suite = "full" if args.full else "quick" if args.quick else "main"
    if suite == "main":
        cases = suites.main_job(args.dtype, args.blocksize)
        default = peers.CPU_DEFAULT if args.peers else peers.MAIN_JOB
    else:
        cases = suites.SUITES[suite](args.dtype)
        default = peers.CPU_DEFAULT
    if args.only:
        cases = [c for c in cases if any(t in c.label() for t in args.only)]
        if not cases:
            print("sparsejl-bench: no case matches --only " + " ".join(args.only), file=sys.stderr)
            return 2
    backends = args.backends.split(",") if args.backends else list(default)
    try:
        for b in backends:
            peers.get(b)
    except KeyError as exc:
        print(f"sparsejl-bench: {exc.args[0]}", file=sys.stderr)
        return 2
    threads.pin(args.threads, backends)  # before Julia starts: JULIA_NUM_THREADS is read once
    max_call = args.max_call_s if args.max_call_s is not None else (1.0 if args.full else None)
    deadline = time.monotonic() + 60 * args.time_limit if args.time_limit else None
    stop = (lambda: time.monotonic() > deadline) if deadline else None

    out = args.out or (None if suite == "main" else f"sparsejl-bench-{suite}")
    environment = env.capture()  # load average before we add ours
    progress = _Progress(len(cases) * len(backends), enabled=not args.no_progress)
    t0 = time.monotonic()
    try:
        records = run(cases, backends, repeats=args.repeats, warmup=args.warmup,
                      progress=progress, should_stop=stop, max_call_s=max_call)
    finally:
        progress.close()
    wall = time.monotonic() - t0
    environment["threads"] = threads.report()  # now that every library is loaded
    environment["julia"] = env.julia_info()
    environment["versions"] = env.versions()

    main_group = [r for r in records if r["op"] == "spmm" and r["model"] == "bert-base"
                  and r["layer"] == "ffn.up" and r["n"] == 128
                  and r["blocksize"] == args.blocksize]
    print(terminal_table(main_group if suite != "main" else records))
    if out:
        load = environment.get("load_average") or [0.0]
        banner = []
        if suite != "full":
            banner.append(f"**{suite.upper()} MODE** — the target cases and one density sweep "
                          "only; not the full sweep.")
        if load[0] > 0.5:
            banner.append(f"**Machine not quiet**: load average {load[0]:.2f} at start, "
                          "so other work shared the cores; timings are indicative only.")
        meta = dict(title=f"sparsejl benchmark ({suite})", suite=suite, cases=len(cases),
                    backends=backends, repeats=args.repeats, warmup=args.warmup, warm_s=WARM_S,
                    warm_calls=WARM_CALLS, wall_s=wall,
                    threads=args.threads, banner=" ".join(banner),
                    command="sparsejl-bench " + " ".join(map(shlex.quote, sys.argv[1:]
                                                              if argv is None else argv)))
        paths = report.write(out, records, environment, meta, html_too=not args.no_html)
        if suite != "main":
            print(targets_text(records))
        print("wrote " + ", ".join(paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
