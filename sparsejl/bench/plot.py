"""Speedup over dense against density: one line per backend, dense at 1, break-even marked.

:func:`speedup_figure` takes the records of one group (one layer, token count, blocksize, op
and dtype; :func:`sparsejl.bench.records.groups` splits a run into them) and returns a
matplotlib Figure; the Jupyter explorer draws the same figure. What a line claims (break-even,
crossings) comes from :mod:`sparsejl.bench.curves`.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

from . import curves, records as _records
from .curves import break_even
from .records import group_title, groups

__all__ = ["speedup_figure", "break_even", "break_even_text", "groups", "group_title", "line_key"]

#: markers in turn once the colours of matplotlib's cycle (10) repeat
MARKERS = ("o", "s", "^", "D", "v", "P", "*", "X")
#: speedup ticks: 0.1×, 0.3×, 1×, 3×, 10×, …
SPEEDUP_TICKS = (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300)


def break_even_text(points) -> str:
    """What the line says about break-even (:func:`sparsejl.bench.curves.describe`)."""
    return curves.describe(points)


def line_key(r: dict) -> str:
    """The line a record belongs to: its backend, prefixed by its run or report (``source``)
    when several are overlaid."""
    return f"{r['source']} · {r['backend']}" if r.get("source") else str(r["backend"])


def _lines(recs) -> "OrderedDict[str, List[dict]]":
    out: "OrderedDict[str, List[dict]]" = OrderedDict()
    for r in recs:
        if not _records.is_baseline(r):
            out.setdefault(line_key(r), []).append(r)
    return out


def speedup_figure(records: Sequence[dict], *, title: Optional[str] = None, ax=None,
                   backends: Optional[Sequence[str]] = None, baseline: Optional[str] = None,
                   stamp: Optional[str] = None, figsize=(12, 5.2), legend: str = "right",
                   footnote: bool = True):
    """Plot speedup over dense (log scale) against density for every line in ``records``, with
    the interquartile range of each point as an error bar.

    Lines that did not run (missing, error, skipped) are listed beside the plot, not drawn.
    Densities whose baseline is noisy (:func:`sparsejl.bench.curves.noisy_baseline`) are shaded.
    ``baseline`` names the dense baseline (default: the one the records name); ``stamp`` (the
    machine and date, say) is printed above the axes. ``legend="below"`` puts the legend under the
    axes (a narrow figure: the explorer's); ``footnote=False`` leaves out the key and the list of
    lines not drawn (the explorer shows them beside the image). Returns the Figure (``ax.figure`` when an
    Axes is given); without ``ax`` it is made without pyplot, so matplotlib's backend is left as
    it is.
    """
    if ax is None:
        from matplotlib.figure import Figure
        fig = Figure(figsize=figsize)
        ax = fig.add_subplot()
        fig.subplots_adjust(left=0.065, right=0.58, top=0.92, bottom=0.13)
    else:
        fig = ax.figure
    lines = _lines(records)
    if backends is not None:
        lines = OrderedDict((k, v) for k, v in lines.items() if k in backends or v[0]["backend"] in backends)
    if baseline is None:
        base = next((r["backend"] for r in records if _records.is_baseline(r)), "dense")
        baseline = f"{base} ({_records.BASELINES.get(base, base)})"
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1.2, label=f"{baseline} = 1")
    colours = [c["color"] for c in _prop_cycle()]
    drawn, speeds = 0, []
    for name, recs in lines.items():
        pts = curves.points(recs)
        if not pts:
            continue
        dense = _records.is_dense(recs[0])
        threads = next((r.get("threads") for r in recs if r.get("status") == "ok" and r.get("threads")), None)
        thr = f" [{threads} thr]" if threads else ""
        label = f"{name}{thr}\n({curves.describe(pts, dense=dense)})"
        ds = [p.density for p in pts]
        sp = [p.speedup for p in pts]
        speeds += sp + [p.low for p in pts if p.low] + [p.high for p in pts if p.high]
        lo = [p.speedup - p.low if p.low else 0 for p in pts]
        hi = [p.high - p.speedup if p.high else 0 for p in pts]
        colour = colours[drawn % len(colours)]
        marker = MARKERS[(drawn // len(colours)) % len(MARKERS)]
        ax.errorbar(ds, sp, yerr=[lo, hi], marker=marker, color=colour, capsize=2, label=label,
                    linestyle=":" if dense else "-")
        drawn += 1
        be = None if dense else curves.break_even(pts)
        if be is not None:
            ax.plot([be], [1.0], marker="X", markersize=11, color=colour, markeredgecolor="black", zorder=5,
                    linestyle="none")
            ax.axvline(be, color=colour, linestyle=":", linewidth=1)
    for d, why in curves.noisy_baseline(records).items():
        ax.axvspan(d / 1.08, d * 1.08, color="#f0c000", alpha=0.25, zorder=0)
    ax.set_yscale("log")
    _speedup_ticks(ax, speeds + [1.0])
    ax.set_xlabel("density of A (fraction of entries stored)")
    ax.set_ylabel("speedup over dense (log scale)")
    densities = sorted({float(r["density"]) for r in records})
    if densities:
        ax.set_xticks(densities)
        ax.set_xticklabels([f"{d:g}" for d in densities], rotation=30 if len(densities) > 6 else 0)
    ax.grid(True, which="both", alpha=0.3)
    if records:
        ax.set_title(title or group_title(records[0]), fontsize=10, pad=14 if stamp else 6)
    if records and footnote:
        absent = sorted({f"{line_key(r)} ({r['status']}: {str(r.get('reason') or '')[:60]})" for r in records
                         if r["status"] not in ("ok", "stopped") and line_key(r) not in
                         [k for k, v in lines.items() if curves.points(v)] and not _records.is_baseline(r)})
        foot = "✕ = break-even (faster below it); bars: interquartile range; [n thr] = threads"
        if curves.noisy_baseline(records):
            foot += "\nshaded: noisy baseline at that density"
        if absent:
            foot += "\nnot drawn:\n  " + "\n  ".join(absent)
        ax.text(1.02, 0.0, foot, transform=ax.transAxes, fontsize=7, va="bottom", ha="left")
    if stamp:
        ax.text(0.0, 1.01, stamp, transform=ax.transAxes, fontsize=7, color="#555", va="bottom", ha="left")
    if legend == "below":
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), borderaxespad=0, ncol=2)
    else:
        ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


def _prop_cycle():
    import matplotlib
    return list(matplotlib.rcParams["axes.prop_cycle"])


def _speedup_ticks(ax, values: List[float]) -> None:
    """Ticks 0.3×, 1×, 3×, 10× over the range drawn."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    lo, hi = min(values), max(values)
    ticks = [t for t in SPEEDUP_TICKS if lo / 1.5 <= t <= hi * 1.5] or [1]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}×"))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_ylim(min(lo, min(ticks)) / 1.3, max(hi, max(ticks)) * 1.3)
