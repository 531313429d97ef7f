"""Write a run out: ``results.json`` (environment + records + target verdicts), ``report.md``,
``report.html`` and one PNG per group under ``plots/``.

The report is built once as a list of blocks (heading, text, table, image) and rendered to
Markdown and to HTML, so the two always say the same thing.
"""
from __future__ import annotations

import html
import json
import os
import re
from typing import List, Optional, Sequence

from . import plot, records as _records, targets

__all__ = ["write", "write_json", "render_markdown", "render_html", "blocks", "fmt_time"]


def fmt_time(s: Optional[float]) -> str:
    if s is None:
        return "—"
    if s < 1e-3:
        return f"{s * 1e6:.2f} µs"
    if s < 1:
        return f"{s * 1e3:.3f} ms"
    return f"{s:.3f} s"


def _fmt_bytes(b: Optional[int]) -> str:
    if b is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(b) < 1024 or unit == "GiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024.0
    return str(b)


def spread(times) -> str:
    """Half the interquartile range of the samples, as a percentage of their median."""
    import numpy as np
    if not times or len(times) < 2:
        return "—"
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return f"±{50 * (q3 - q1) / med:.0f}%" if med > 0 else "—"


def _verdict(met) -> str:
    return {True: "met", False: "NOT met", None: "not measured"}[met]


def _ratio(row) -> str:
    if row["ratio"] is None:
        return "—"
    if row["kind"] == "speedup":
        return f"{row['ratio']:.2f}×"
    if row["kind"] == "overhead":
        return f"{row['ratio'] * 1e6:.2f} µs"
    return _fmt_bytes(row["ratio"])


def _threshold(row) -> str:
    if row["kind"] == "speedup":
        return f"≥ {row['threshold']:g}×"
    if row["kind"] == "overhead":
        return f"< {row['threshold'] * 1e6:g} µs"
    return f"≤ {_fmt_bytes(row['threshold'])} extra"


def _note(r: dict) -> str:
    if r["status"] != "ok":
        return r["reason"] or ""
    if r.get("baseline_medians_s"):
        first, last = r["baseline_medians_s"]
        return f"timed first ({fmt_time(first)}) and last ({fmt_time(last)}); the lower is used"
    return ""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80]


def write_json(path: str, records: Sequence[dict], env: dict, meta: dict, verdicts) -> None:
    """The report in :mod:`sparsejl.bench.records`' format, with the targets' verdicts."""
    with open(path, "w") as f:
        f.write(_records.dumps(records, env, meta, targets=verdicts))


def _env_rows(env: dict) -> List[List[str]]:
    th = env.get("threads", {})
    v = env.get("versions", {})
    jl = env.get("julia", {})
    blas = env.get("numpy_blas") or {}
    pools = th.get("threadpools") or []
    return [
        ["CPU", f"{env.get('cpu_model')} ({', '.join(env.get('cpu_flags') or [])})"],
        ["cores (logical / usable)", f"{env.get('logical_cores')} / {env.get('usable_cores')}"],
        ["memory", _fmt_bytes(env.get("memory_bytes"))],
        ["load average at start (1, 5, 15 min)",
         ", ".join(f"{x:.2f}" for x in env.get("load_average") or [])],
        ["threads pinned", json.dumps(th.get("env", {}))],
        ["threads in use", f"Julia runtime {jl.get('runtime_threads')}, "
                           f"BLAS pools {[p.get('num_threads') for p in pools]}, "
                           f"torch {th.get('torch')}, MKL {th.get('mkl')}, "
                           f"GraphBLAS {th.get('graphblas')}, SciPy sparse 1"],
        ["NumPy BLAS", f"{blas.get('name')} {blas.get('version')} "
                       f"({blas.get('openblas configuration', '')})"],
        ["Julia", f"runtime {jl.get('runtime_version')}; executable {jl.get('executable')} "
                  f"({jl.get('executable_version')})"],
        ["versions", ", ".join(f"{k} {val}" for k, val in v.items() if val)],
        ["not installed", ", ".join(k for k, val in v.items() if not val) or "—"],
        ["platform / Python", f"{env.get('platform')} / {env.get('python')}"],
        ["measured at (UTC)", str(env.get("timestamp_utc"))],
    ]


def blocks(records: Sequence[dict], env: dict, meta: dict, verdicts, plot_files) -> list:
    """The report's content: ("h", level, text) | ("p", text) | ("table", head, rows) |
    ("img", path, alt)."""
    out: list = [("h", 1, meta.get("title", "sparsejl benchmark"))]
    if meta.get("banner"):
        out.append(("p", meta["banner"]))
    out.append(("p", f"Suite `{meta.get('suite')}`: {meta.get('cases')} cases × "
                     f"{len(meta.get('backends', []))} backends, {meta.get('repeats')} timed "
                     f"samples after {meta.get('warmup')} warm-up call(s) per measurement"
                     + (f" (continued up to {meta['warm_calls']} calls while less than "
                        f"{meta['warm_s']:g} s had passed)" if meta.get("warm_s") else "") + "; "
                     f"wall time {meta.get('wall_s', 0):.0f} s. Every result was checked "
                     "against a float64 SciPy reference before it was timed; the median is "
                     "reported. Command: `" + meta.get("command", "") + "`"))
    out.append(("h", 2, "Environment"))
    out.append(("table", ["what", "value"], _env_rows(env)))

    out.append(("h", 2, "Targets"))
    summ = targets.summary(verdicts)
    out.append(("table", ["target", "verdict", "cases"],
                [[s["text"], _verdict(s["met"]), str(s["cases"])] for s in summ]))
    out.append(("table", ["target", "case", "ours", "baseline", "measured", "needed", "verdict",
                          "note"],
                [[r["target"], r["case"],
                  f"{r['ours']} {fmt_time(r.get('ours_s'))}" if r["kind"] != "memory" else r["ours"],
                  (f"{r.get('baseline')} {fmt_time(r.get('baseline_s'))}"
                   if r.get("baseline") else "—"),
                  _ratio(r), _threshold(r), _verdict(r["met"]), r.get("note", "")]
                 for r in verdicts]))
    out.append(("p", "Ratios are baseline median ÷ our median on the same matrices; thread "
                     "counts of each side are in the results tables below and in results.json."))

    absent = {}
    for r in records:
        if r["status"] == "missing":
            absent.setdefault(r["backend"], r["reason"])
    out.append(("h", 2, "Peers missing on this machine"))
    if absent:
        out.append(("table", ["backend", "why"], [[b, why] for b, why in absent.items()]))
    else:
        out.append(("p", "None: every peer ran."))

    out.append(("h", 2, "Results"))
    for key, recs in _records.groups(records).items():
        title = _records.group_title(recs[0])
        out.append(("h", 3, title))
        if key in plot_files:
            out.append(("img", plot_files[key], title))
        rows = []
        for r in sorted(recs, key=lambda r: (r["density"], r["backend"] != "dense")):
            rows.append([f"{r['density']:g}", r["backend"], r["status"], str(r["threads"]),
                         fmt_time(r["median_s"]),
                         spread(r["times_s"]) if r["status"] == "ok" else "—",
                         f"{r['speedup_vs_dense']:.2f}×" if r.get("speedup_vs_dense") else "—",
                         _against(r, "cold_s"), _against(r, "after_dense_s"),
                         _fmt_bytes(r.get("peak_bytes")), _fmt_bytes(r.get("output_bytes")),
                         _fmt_bytes(r.get("julia_alloc_bytes")),
                         _note(r)])
        out.append(("table", ["density", "backend", "status", "threads", "median", "spread",
                              "speedup vs dense", "after 20 ms idle", "after NumPy", "peak Python heap",
                              "output", "Julia alloc",
                              "note"], rows))
    out.append(("p", "After 20 ms idle: one call after that much sleep; after NumPy: one call right after "
                     "NumPy's product of an attention projection, nothing waited out (medians of 5; in "
                     "brackets, over the warm median)."))
    out.append(("p", "Spread: half the interquartile range of the timed samples, as a share of "
                     "their median. Peak Python heap: tracemalloc's peak during one untimed call (NumPy and "
                     "Python allocations; memory allocated inside Julia, PyTorch, MKL or "
                     "GraphBLAS is not seen there). Julia alloc: bytes Julia's GC counted per "
                     "call, where sparsejl's runtime can tell."))
    return out


def _against(r: dict, key: str) -> str:
    v, warm = r.get(key), r.get("median_s")
    return "—" if not v or not warm else f"{fmt_time(v)} ({v / warm:.2f}×)"


def _md_cell(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def render_markdown(content: list) -> str:
    lines = []
    for b in content:
        if b[0] == "h":
            lines += ["#" * b[1] + " " + b[2], ""]
        elif b[0] == "p":
            lines += [b[1], ""]
        elif b[0] == "table":
            lines.append("| " + " | ".join(map(_md_cell, b[1])) + " |")
            lines.append("|" + "---|" * len(b[1]))
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in b[2]]
            lines.append("")
        elif b[0] == "img":
            lines += [f"![{b[2]}]({b[1]})", ""]
    return "\n".join(lines)


def render_html(content: list) -> str:
    body = []
    for b in content:
        if b[0] == "h":
            body.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            text = html.escape(b[1])
            text = re.sub(r"`([^`]*)`", r"<code>\1</code>", text)
            body.append("<p>" + re.sub(r"\*\*([^*]*)\*\*", r"<b>\1</b>", text) + "</p>")
        elif b[0] == "table":
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row)
                           + "</tr>" for row in b[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b[0] == "img":
            body.append(f'<img src="{html.escape(b[1])}" alt="{html.escape(b[2])}">')
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
             "table{border-collapse:collapse;margin:.5em 0;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
             "img{max-width:100%}code{background:#f3f3f3}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>sparsejl benchmark</title>"
            f"<style>{style}</style></head><body>" + "\n".join(body) + "</body></html>\n")


def write(out_dir: str, records: Sequence[dict], env: dict, meta: dict, *, html_too: bool = True,
          plots: bool = True) -> dict:
    """Write everything into ``out_dir``; returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    verdicts = targets.evaluate(records)
    paths = {"json": os.path.join(out_dir, "results.json")}
    write_json(paths["json"], records, env, meta, verdicts)
    plot_files = {}
    if plots:
        os.makedirs(os.path.join(out_dir, "plots"), exist_ok=True)
        for key, recs in _records.groups(records).items():
            if len({r["density"] for r in recs}) < 2:
                continue  # one density is a table, not a line
            name = os.path.join("plots", _slug(_records.group_title(recs[0])) + ".png")
            fig = plot.speedup_figure(recs)
            fig.savefig(os.path.join(out_dir, name), dpi=100)
            plot_files[key] = name
    content = blocks(records, env, meta, verdicts, plot_files)
    paths["markdown"] = os.path.join(out_dir, "report.md")
    with open(paths["markdown"], "w") as f:
        f.write(render_markdown(content))
    if html_too:
        paths["html"] = os.path.join(out_dir, "report.html")
        with open(paths["html"], "w") as f:
            f.write(render_html(content))
    return paths
