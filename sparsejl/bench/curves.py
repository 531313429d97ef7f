"""What a backend's speedup-over-dense curve says: its points with interquartile ranges, every
density where it crosses 1, the break-even claim that can be made from them, and baselines too
noisy to trust.

Used by the plot, the reports and the explorer, so that they all claim the same thing:

* no break-even from fewer than two measured densities;
* every crossing of 1 reported, each with its direction;
* a break-even density ("faster below it") only when the curve falls through 1 once and never
  rises through it;
* none for dense methods (they have no pattern: ``records.is_dense``).
"""
from __future__ import annotations

import math
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from . import records as _records

__all__ = ["Point", "Crossing", "points", "crossings", "break_even", "describe", "noisy_baseline",
           "NOISY_BASELINE"]

#: a baseline median this far from the group's typical dense time (or its samples' interquartile
#: range this wide) is flagged: dense time does not depend on the density of A
NOISY_BASELINE = 0.2
#: a baseline whose samples' interquartile range is wider than this share of their median
NOISY_SPREAD = 0.5


class Point(NamedTuple):
    density: float
    speedup: float
    low: Optional[float] = None    # speedup at the backend's 75th percentile time
    high: Optional[float] = None   # at its 25th percentile time


class Crossing(NamedTuple):
    density: float
    falling: bool    # True: faster than dense below, slower above


def _quartiles(times) -> Optional[Tuple[float, float]]:
    ts = sorted(float(t) for t in (times or []) if t)
    if len(ts) < 2:
        return None
    import numpy as np
    q1, q3 = np.percentile(ts, [25, 75])
    return float(q1), float(q3)


def points(recs: Sequence[dict], backend: Optional[str] = None) -> List[Point]:
    """The measured points of one line (``backend``; every record given when None), sorted by
    density, with the speedup's range over the backend's interquartile range of times."""
    out = []
    for r in recs:
        if backend is not None and r.get("backend") != backend:
            continue
        sp = r.get("speedup_vs_dense")
        if r.get("status") != "ok" or sp in (None, "") or not float(sp) > 0:
            continue
        sp, low, high = float(sp), None, None
        q = _quartiles(r.get("times_s"))
        med = r.get("median_s")
        if q and med:   # the baseline's time held fixed: speedup ∝ 1 / time
            low, high = sp * float(med) / q[1], sp * float(med) / q[0]
        out.append(Point(float(r["density"]), sp, low, high))
    return sorted(out)


def crossings(pts: Sequence) -> List[Crossing]:
    """Every density where the line crosses speedup 1, interpolated in log(speedup)."""
    pts = sorted((float(p[0]), float(p[1])) for p in pts)
    out = []
    for (d0, s0), (d1, s1) in zip(pts, pts[1:]):
        if (s0 >= 1.0 > s1) or (s0 < 1.0 <= s1):
            l0, l1 = math.log(s0), math.log(s1)
            d = d0 if l1 == l0 else d0 + (d1 - d0) * (0.0 - l0) / (l1 - l0)
            out.append(Crossing(d, s0 >= 1.0))
    return out


def break_even(pts: Sequence) -> Optional[float]:
    """The density below which the backend is faster than dense and above which it is slower, in
    the measured range; None when fewer than two densities were measured or the line does not
    cross 1 exactly once, falling."""
    if len({float(p[0]) for p in pts}) < 2:
        return None
    cs = crossings(pts)
    return cs[0].density if len(cs) == 1 and cs[0].falling else None


def _faster_spans(pts, cs) -> List[Tuple[float, float]]:
    lo, hi = pts[0][0], pts[-1][0]
    spans, start = [], lo if pts[0][1] >= 1 else None
    for c in cs:
        if c.falling:
            spans.append((start, c.density))
            start = None
        else:
            start = c.density
    if start is not None:
        spans.append((start, hi))
    return spans


def describe(pts: Sequence, dense: bool = False) -> str:
    """What can be said of the line, in a few words: the break-even, every crossing, or why
    there is none."""
    if dense:
        return "dense: no pattern, no break-even"
    pts = sorted((float(p[0]), float(p[1])) for p in pts)
    if len({d for d, _ in pts}) < 2:
        return "no break-even: one density measured" if pts else "no break-even: nothing measured"
    cs = crossings(pts)
    lo, hi = pts[0][0], pts[-1][0]
    if not cs:
        side = "faster" if pts[0][1] >= 1 else "slower"
        return f"{side} than dense at every measured density ({lo:g}–{hi:g})"
    be = break_even(pts)
    if be is not None:
        return f"break-even d≈{be:.3g}"
    spans = ", ".join(f"{a:.3g}–{b:.3g}" for a, b in _faster_spans(pts, cs))
    return ("crosses 1 at d≈" + ", ".join(f"{c.density:.3g}{'↓' if c.falling else '↑'}" for c in cs)
            + f"; faster on {spans}")


def noisy_baseline(recs: Sequence[dict]) -> Dict[float, str]:
    """Densities of one group whose baseline time is not to be trusted, with why: a median more
    than :data:`NOISY_BASELINE` off the group's typical dense time (the dense product does not
    depend on the density of A; needs three densities), or samples whose interquartile range is over :data:`NOISY_SPREAD` of their median.
    Records of several runs (``source``) are judged run by run."""
    sources = {r.get("source") for r in recs}
    if len(sources) > 1:
        out: Dict[float, str] = {}
        for s in sources:
            for d, why in noisy_baseline([r for r in recs if r.get("source") == s]).items():
                out.setdefault(d, f"{s}: {why}")
        return out
    base = [r for r in recs if _records.is_baseline(r) and r.get("status") == "ok" and r.get("median_s")]
    out = {}
    if len(base) >= 3:
        import numpy as np
        typical = float(np.median([float(r["median_s"]) for r in base]))
        for r in base:
            off = float(r["median_s"]) / typical - 1
            if abs(off) > NOISY_BASELINE:
                out[float(r["density"])] = (f"dense took {float(r['median_s']) * 1e3:.3g} ms here, "
                                            f"{off:+.0%} off its typical {typical * 1e3:.3g} ms")
    for r in base:
        q = _quartiles(r.get("times_s"))
        if q and float(r["median_s"]) > 0 and (q[1] - q[0]) / float(r["median_s"]) > NOISY_SPREAD \
                and float(r["density"]) not in out:
            out[float(r["density"])] = (f"dense's samples spread {(q[1] - q[0]) / float(r['median_s']):.0%} "
                                        "of their median (interquartile range)")
    return out
