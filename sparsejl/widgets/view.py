"""The explorer's results: the group on show, its figure (:func:`sparsejl.bench.plot.speedup_figure`),
its table and its notes, and the export links. Pure functions render; :class:`ResultsView` holds
the widgets. What a curve claims comes from :mod:`sparsejl.bench.curves`, group titles and the
record fields from :mod:`sparsejl.bench.records`.
"""
from __future__ import annotations

import base64
import html
import io
from typing import Dict, List, Optional, Sequence, Tuple

import ipywidgets as W

from ..bench import curves, records as R
from ..bench.plot import line_key

__all__ = ["ResultsView", "table_html", "figure_png", "notes_html", "where", "fmt_time", "stamp"]


def fmt_time(s) -> str:
    if s in (None, ""):
        return "–"
    s = float(s)
    if s >= 1:
        return f"{s:.3g} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"


def where(environment: dict, meta: dict) -> str:
    """One line on where and when a report was measured."""
    env, meta = environment or {}, meta or {}
    parts = [str(env[k]) for k in ("gpu", "cpu_model") if env.get(k)][:1]
    when = env.get("timestamp_utc") or env.get("time_utc") or env.get("date")
    if when:
        parts.append(str(when))
    if meta.get("title") and meta.get("suite") != "explorer":
        parts.insert(0, str(meta["title"]))
    if meta.get("baseline"):
        parts.append(f"baseline {meta['baseline']}")
    return "; ".join(parts)


def stamp(environment: dict) -> str:
    """The machine and the date, printed on an exported plot."""
    env = environment or {}
    if env.get("overlay"):
        return " | ".join(dict.fromkeys(stamp(e) for e in env["overlay"]))
    machine = env.get("gpu") or env.get("cpu_model") or "machine not recorded"
    cores = f", {env['usable_cores']} cores" if env.get("usable_cores") else ""
    when = env.get("timestamp_utc") or env.get("time_utc") or env.get("date") or "date not recorded"
    return f"{machine}{cores} · {when} · sparsejl"


def lines_of(recs: Sequence[dict]) -> List[str]:
    out = []
    for r in recs:
        if line_key(r) not in out:
            out.append(line_key(r))
    return sorted(out, key=lambda k: not any(R.is_baseline(r) for r in recs if line_key(r) == k))


def title(recs: Sequence[dict]) -> str:
    r = next((r for r in recs if r.get("m")), None)
    if r is None:
        return "speedup over dense"
    sources = sorted({str(r.get("source")) for r in recs if r.get("source")})
    if len(sources) > 1:
        return R.group_title(r, pattern=False) + f" — {len(sources)} runs overlaid"
    return R.group_title(r)


def figure_png(recs: Sequence[dict], meta: dict, environment: dict, figsize=(7.4, 4.0)) -> Tuple[object, bytes]:
    """The figure of one group and its PNG (with the machine and date printed on it); narrow, the
    legend under the axes, so that it reads at the width of the results column."""
    from ..bench import plot
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    base = next((r["backend"] for r in recs if R.is_baseline(r)), None)
    baseline = (meta or {}).get("baseline") or R.BASELINES.get(base or "dense", base)
    plot.speedup_figure(recs, title=title(recs), ax=fig.add_subplot(), baseline=f"dense ({baseline})",
                        stamp=stamp(environment), legend="below", footnote=False)
    _log_density_axis(fig, recs)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", pad_inches=0.15)
    return fig, buf.getvalue()


def _log_density_axis(fig, recs):
    """Densities spaced geometrically read best on a log axis."""
    ds = sorted({float(r["density"]) for r in recs if r.get("density")})
    if len(ds) < 2 or ds[-1] / ds[0] < 4 or not fig.axes:
        return
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator
    ax = fig.axes[0]
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(ds))
    ax.xaxis.set_major_formatter(FixedFormatter([f"{d:.3g}" for d in ds]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(ds[0] / 1.25, ds[-1] * 1.25)
    ax.set_xlabel(ax.get_xlabel() + ", log scale")


def _memory_cell(recs: Sequence[dict], d: float) -> str:
    """Weight memory at density ``d``: dense, CSR and (for a block pattern) BSR, in MiB."""
    r = next((r for r in recs if float(r["density"]) == d and r.get("nnz") and r.get("m")), None)
    if r is None:
        return "<td>–</td>"
    m, k, nnz, b, dt = int(r["m"]), int(r["k"]), int(r["nnz"]), int(r.get("blocksize") or 1), str(r.get("dtype"))
    mib = lambda fmt: (R.weight_bytes(m, k, nnz, b, dt, fmt) or 0) / 2**20
    parts = [f"{mib('dense'):.3g}", f"{mib('csr'):.3g}"] + ([f"{mib('bsr'):.3g}"] if b > 1 else [])
    return f"<td title='dense / CSR{' / BSR' if b > 1 else ''} MiB'>{' / '.join(parts)}</td>"


def table_html(recs: Sequence[dict], environment: Optional[dict] = None, meta: Optional[dict] = None) -> str:
    """One row per density: median time and speedup per line (interquartile range in the cell's
    tooltip), the weight's memory, a flag where the baseline is noisy; then what each line claims."""
    recs = list(recs)
    keys = lines_of(recs)
    dens = sorted({float(r["density"]) for r in recs})
    by = {(float(r["density"]), line_key(r)): r for r in recs}
    noisy = curves.noisy_baseline(recs)
    # weight memory: of one run's pattern (overlaid runs may differ in pattern: left out)
    has_mem = any(r.get("nnz") for r in recs) and len({r.get("source") for r in recs}) == 1
    th = "".join(f"<th colspan=2>{html.escape(k)}</th>" for k in keys)
    sub = "".join("<th>median</th><th>speedup</th>" for _ in keys)
    rows = []
    for d in dens:
        cells = []
        for key in keys:
            r = by.get((d, key))
            if r is None:
                cells.append("<td>–</td><td></td>")
            elif r.get("status") != "ok":
                reason = html.escape(str(r.get("reason") or ""))
                cells.append(f"<td title='{reason}'>{html.escape(str(r.get('status')))}</td><td></td>")
            else:
                sp = r.get("speedup_vs_dense")
                pt = curves.points([r])
                rng = (f" title='interquartile range {pt[0].low:.2f}–{pt[0].high:.2f}×'"
                       if pt and pt[0].low else "")
                spt = "–" if sp in (None, "") else f"{float(sp):.2f}×"
                colour = "" if sp in (None, "") or R.is_baseline(r) else (
                    "color:#070" if float(sp) >= 1 else "color:#a00")
                cells.append(f"<td>{fmt_time(r.get('median_s'))}</td><td style='{colour}'{rng}>{spt}</td>")
        flag = (f" <span class='sjl-noisy' title='{html.escape(noisy[d])}' style='color:#b80'>⚠ noisy "
                "baseline</span>" if d in noisy else "")
        mem = _memory_cell(recs, d) if has_mem else ""
        rows.append(f"<tr><td>{d:g}{flag}</td>{mem}{''.join(cells)}</tr>")
    claims = []
    for key in keys:
        mine = [r for r in recs if line_key(r) == key]
        if R.is_baseline(mine[0]):
            text = "baseline"
        elif not curves.points(mine) and all(r.get("status") != "ok" for r in mine):
            text = "not measured: " + ", ".join(sorted({str(r.get("status")) for r in mine}))
        else:
            text = curves.describe(curves.points(mine), R.is_dense(mine[0]))
        claims.append(f"<td colspan=2>{html.escape(text)}</td>")
    rows.append(f"<tr class='sjl-claims' style='border-top:2px solid #888'><td><b>break-even</b></td>"
                f"{'<td></td>' if has_mem else ''}{''.join(claims)}</tr>")
    style = ("<style>.sjl-tab{border-collapse:separate;border-spacing:0;font-size:90%}"
             ".sjl-tab td,.sjl-tab th{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}"
             ".sjl-tab tr>*:first-child{position:sticky;left:0;background:#fafafa;z-index:1;text-align:left}"
             ".sjl-tab td[colspan]{white-space:normal;min-width:120px}</style>")
    line = where(environment or {}, meta or {})
    top = f"<div style='font-size:85%;color:#555'>{html.escape(line)}</div>" if line else ""
    mem_head = "<th rowspan=2>weight MiB<br>dense / CSR / BSR</th>" if has_mem else ""
    return (f"{style}{top}<div class='sjl-tab-scroll' style='overflow-x:auto;max-width:100%'>"
            f"<table class='sjl-tab'><tr><th rowspan=2>density</th>{mem_head}{th}</tr>"
            f"<tr>{sub}</tr>{''.join(rows)}</table></div>"
            "<div style='font-size:80%;color:#555'>median wall time of the product; speedup = dense median / "
            "median on the same device (hover: interquartile range); break-even = the density below which "
            "the backend is faster than dense and above which it is slower, given only when the curve falls "
            "through 1 once (↑/↓: crosses 1 rising/falling); none from one density, none for dense methods; "
            "⚠ noisy baseline: dense time off its typical value at that density, which bends every curve there"
            "</div>")


def notes_html(recs: Sequence[dict]) -> str:
    """Lines that did not run in this group (missing here, or not applicable), once each, with why."""
    seen: Dict[str, str] = {}
    for r in recs:
        if r.get("status") in ("missing", "skipped") and line_key(r) not in seen:
            seen[line_key(r)] = f"{r.get('status')}: {r.get('reason')}"
    if not seen:
        return ""
    return ("<div style='font-size:85%;color:#666'>In this group: " + "<br>".join(
        f"<b>{html.escape(k)}</b> {html.escape(str(why))}" for k, why in seen.items()) + "</div>")


class ResultsView(W.VBox):
    """The right column: the group menu, the plot, the table, the notes, the exports."""

    def __init__(self):
        self.records: List[dict] = []
        self.meta: Dict = {}
        self.environment: Dict = {}
        self.figure = None
        self.png: bytes = b""
        self.group_keys: List[tuple] = []
        self.group_fields = R.GROUP_FIELDS     # R.OVERLAY_FIELDS when runs are overlaid
        self.group_w = W.Dropdown(options=[], description="Showing", style={"description_width": "60px"},
                                  layout=W.Layout(width="98%", display="none"))
        self.variants_w = W.Checkbox(value=False, indent=False, description="show tuning variants (backend[config])",
                                     layout=W.Layout(display="none"))
        self.plot_w = W.Image(format="png", layout=W.Layout(width="100%", max_width="760px", display="none"))
        self.table_w = W.HTML("<i>No results yet: press Run, or load a report.</i>",
                              layout=W.Layout(width="100%", max_width="100%", overflow="auto"))
        self.notes_w = W.HTML("")
        self.legend_w = W.HTML("", layout=W.Layout(display="none"))   # the legend's words: the image's text
        self.key_w = W.HTML("<div style='font-size:80%;color:#555'>✕ break-even (faster than dense below it); "
                            "bars: interquartile range; shaded: noisy baseline at that density; "
                            "[n thr]: threads</div>", layout=W.Layout(display="none"))
        self.downloads_w = W.HTML("")
        for w, cls in ((self.group_w, "group"), (self.variants_w, "variants"), (self.plot_w, "plot"),
                       (self.table_w, "table"), (self.notes_w, "notes"), (self.downloads_w, "downloads"),
                       (self.legend_w, "legend")):
            w.add_class("sjl-" + cls)
        self._regrouping = False
        self.on_group = None            # called after the group on show changes
        self.group_w.observe(lambda _c: None if self._regrouping else self._group_changed(), names="value")
        self.variants_w.observe(lambda _c: self.redraw(), names="value")
        super().__init__([self.group_w, self.variants_w, self.plot_w, self.key_w, self.legend_w, self.table_w,
                          self.notes_w],
                         layout=W.Layout(width="100%", min_width="0"))

    def _group_changed(self):
        self.redraw()
        if self.on_group:
            self.on_group()

    def set_records(self, recs: Sequence[dict], meta: Optional[dict] = None, environment: Optional[dict] = None,
                    prefer_plottable: bool = False, overlay: bool = False):
        self.records = list(recs)
        self.group_fields = R.OVERLAY_FIELDS if overlay else R.GROUP_FIELDS
        if meta is not None:
            self.meta = dict(meta)
        if environment is not None:
            self.environment = dict(environment)
        self.regroup(prefer_plottable)

    def regroup(self, prefer_plottable: bool = False):
        """One menu entry per group; the first one that can be plotted when asked."""
        keys = list(R.groups(self.records, self.group_fields))
        self.group_keys = keys
        first = 0
        if prefer_plottable:
            first = next((i for i, k in enumerate(keys) if _plottable(
                [r for r in self.records if R.group_key(r, self.group_fields) == k])), 0)
        overlay = self.group_fields != R.GROUP_FIELDS
        self._regrouping = True
        try:
            self.group_w.options = [(R.group_title(dict(zip(self.group_fields, k)), pattern=not overlay), i)
                                    for i, k in enumerate(keys)]
            if keys:
                self.group_w.value = first
        finally:
            self._regrouping = False
        self.group_w.layout.display = "flex" if len(keys) > 1 else "none"
        self.variants_w.layout.display = "flex" if any("[" in str(r.get("backend")) for r in self.records) else "none"

    def shown_records(self) -> List[dict]:
        """The records of the group on show (all of them when there is one group)."""
        recs = list(self.records)
        if not self.variants_w.value:   # "cupy[tma,2,4]": a tuning of "cupy", hidden by default
            recs = [r for r in recs if "[" not in str(r.get("backend"))]
        if len(self.group_keys) <= 1 or self.group_w.value is None:
            return recs
        key = self.group_keys[int(self.group_w.value)]
        return [r for r in recs if R.group_key(r, self.group_fields) == key]

    def redraw(self):
        recs = self.shown_records()
        if not recs:
            self.figure, self.png = None, b""
            self.plot_w.layout.display = self.key_w.layout.display = "none"
            self.notes_w.value = ""
            return
        self.table_w.value = table_html(recs, self.environment, self.meta)
        self.notes_w.value = notes_html(recs)
        if not _plottable(recs):
            self.figure, self.png = None, b""
            self.plot_w.layout.display = self.key_w.layout.display = "none"
            if any(r.get("status") == "ok" for r in recs):
                self.table_w.value = ("<div style='color:#555'>No dense baseline was measured for this group: "
                                      "times only, no speedup plot.</div>" + self.table_w.value)
            return
        self.figure, self.png = figure_png(recs, self.meta, self.environment)
        self.legend_w.value = "<ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in self.legend()) + "</ul>"
        self.plot_w.value = self.png
        self.plot_w.layout.display = "block"
        self.key_w.layout.display = "flex"

    def legend(self) -> List[str]:
        """The words of the plot's legend, one entry per line drawn."""
        if self.figure is None or not self.figure.axes or self.figure.axes[0].get_legend() is None:
            return []
        return [t.get_text().replace("\n", " ") for t in self.figure.axes[0].get_legend().get_texts()]

    def downloads(self, stem: str, makers) -> None:
        """Links that download what ``makers`` (label, mime, ext, thunk) make, in the page."""
        links = []
        for label, mime, ext, make in makers:
            try:
                data = make()
            except Exception as exc:   # an export that cannot be made does not spoil the others
                links.append(f"<span style='color:#a00'>{label}: {html.escape(str(exc))}</span>")
                continue
            if data:
                b64 = base64.b64encode(data).decode()
                links.append(f"<a download='{stem}.{ext}' href='data:{mime};base64,{b64}' class='sjl-dl-{ext}' "
                             f"style='margin-right:1em'>⬇ {label}</a>")
        self.downloads_w.value = " ".join(links)


def _plottable(recs) -> bool:
    return any(r.get("status") == "ok" and r.get("speedup_vs_dense") and not R.is_baseline(r) for r in recs)
