"""Speedup over dense against density: one line per backend, dense at 1, break-even marked.

:func:`speedup_figure` takes the records of one group (one layer, token count, blocksize,
op and dtype; :func:`groups` splits a run into them) and returns a matplotlib Figure; the
Jupyter explorer shows the same figure.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = ["speedup_figure", "break_even", "break_even_text", "groups", "group_title"]

GROUP_FIELDS = ("op", "model", "layer", "m", "k", "n", "blocksize", "dtype", "operand_b")


def groups(records: Sequence[dict]) -> "OrderedDict[Tuple, List[dict]]":
    """Records keyed by everything but density and backend, in first-seen order."""
    out: "OrderedDict[Tuple, List[dict]]" = OrderedDict()
    for r in records:
        out.setdefault(tuple(r.get(f) for f in GROUP_FIELDS), []).append(r)
    return out


def group_title(r: dict) -> str:
    blocks = f"BSR {r['blocksize']}×{r['blocksize']} pattern" if r["blocksize"] > 1 else "unstructured"
    if r["op"] == "spmm":
        what = f"SpMM {r['m']}×{r['k']} · {r['k']}×{r['n']} ({r['n']} tokens)"
    else:
        what = f"SpGEMM {r['m']}×{r['k']} · {r['k']}×{r['n']}"
    return f"{r['model']} {r['layer']}: {what}, {blocks}, {r['dtype']}"


def break_even(points: Sequence[Tuple[float, float]]) -> Optional[float]:
    """The density where speedup falls through 1 (faster than dense below it), interpolated in
    log(speedup); the last such fall where noise makes the line cross more than once; None if it
    never falls through 1 in the measured range."""
    import math
    pts = sorted(points)
    found = None
    for (d0, s0), (d1, s1) in zip(pts, pts[1:]):
        if s0 >= 1.0 > s1:
            l0, l1 = math.log(s0), math.log(s1)
            found = d0 + (d1 - d0) * (0.0 - l0) / (l1 - l0)
    return found


def break_even_text(points: Sequence[Tuple[float, float]]) -> str:
    """``"0.23"``, or where the line lies when it does not cross 1 in the measured range."""
    be = break_even(points)
    if be is not None:
        return f"{be:.2f}"
    if not points:
        return "not measured"
    if min(s for _, s in points) > 1:
        return f"above {max(d for d, _ in points):g} (faster than dense throughout)"
    if max(s for _, s in points) < 1:
        return f"below {min(d for d, _ in points):g} (slower than dense throughout)"
    return "none (faster than dense only at higher densities)"


def _series(records) -> Dict[str, List[Tuple[float, float]]]:
    lines: Dict[str, List[Tuple[float, float]]] = OrderedDict()
    for r in records:
        if r["status"] == "ok" and r.get("speedup_vs_dense") and r["backend"] != "dense":
            lines.setdefault(r["backend"], []).append((r["density"], r["speedup_vs_dense"]))
    return lines


def speedup_figure(records: Sequence[dict], *, title: Optional[str] = None, ax=None,
                   backends: Optional[Sequence[str]] = None, baseline: str = "dense (NumPy BLAS)"):
    """Plot speedup over dense (log scale) against density for every backend in ``records``.

    Backends that did not run (missing, error, skipped) are listed under the plot, not drawn.
    Returns the Figure (``ax.figure`` when an Axes is given). Without ``ax`` the Figure is made
    without pyplot, so matplotlib's backend (a notebook's inline one, say) is left as it is.
    """
    if ax is None:
        from matplotlib.figure import Figure
        fig = Figure(figsize=(12, 5.2))
        ax = fig.add_subplot()
        fig.subplots_adjust(left=0.065, right=0.58, top=0.92, bottom=0.11)
    else:
        fig = ax.figure
    lines = _series(records)
    threads = {r["backend"]: r.get("threads") for r in records if r["status"] == "ok"}
    if backends is not None:
        lines = OrderedDict((b, lines[b]) for b in backends if b in lines)
    densities = sorted({r["density"] for r in records})
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1.2, label=f"{baseline} = 1")
    for name, pts in lines.items():
        pts = sorted(pts)
        be = break_even(pts)
        thr = f" [{threads[name]} thr]" if threads.get(name) else ""
        label = f"{name}{thr} (break-even d" + (
            f"≈{be:.2f})" if be is not None else f" {break_even_text(pts)})".replace(" (", "\n("))
        (line,) = ax.plot([d for d, _ in pts], [s for _, s in pts], marker="o", label=label)
        if be is not None:
            ax.plot([be], [1.0], marker="X", markersize=11, color=line.get_color(),
                    markeredgecolor="black", zorder=5)
            ax.axvline(be, color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("density of A (fraction of entries stored)")
    ax.set_ylabel("speedup over dense (× , log scale)")
    if densities:
        ax.set_xticks(densities)
        ax.set_xticklabels([f"{d:g}" for d in densities])
    ax.grid(True, which="both", alpha=0.3)
    if records:
        ax.set_title(title or group_title(records[0]), fontsize=10)
        absent = sorted({f"{r['backend']} ({r['status']})" for r in records
                         if r["status"] != "ok" and r["backend"] not in lines
                         and r["backend"] != "dense"})
        foot = "✕ = break-even density (speedup 1); [n thr] = threads"
        if absent:
            foot += "\nnot drawn: " + ",\n  ".join(absent)
        ax.text(1.02, 0.0, foot, transform=ax.transAxes, fontsize=7, va="bottom", ha="left")
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig
