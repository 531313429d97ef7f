"""What a user's call costs on the CPU: warm, after idle, and between other libraries' calls.

    python -m sparsejl.bench.user_path [--out DIR] [--repeats N]

The sweep times each library alone, back to back, after waiting out the previous library's
spinning threads. A model cannot wait: its first call after a pause finds cold caches and
sleeping threads, and every layer follows another library's product. For each case this times,
in one process, through the public ``sparsejl.spmm``:

* ``warm``: back to back (the sweep's figure);
* ``idle 20 ms`` / ``idle 200 ms``: one call after that much sleep, repeated;
* ``after NumPy`` / ``after PyTorch``: right after a dense product of the other library
  (tokens × h times h × h, h the smaller side of the layer: an attention projection), nothing
  waited out; and that
  product's own time right after ours (``NumPy after``, ``PyTorch after``) against its time alone.

NumPy and PyTorch keep their default thread settings. Each figure is the median of ``repeats``
samples; every product is checked against a float64 reference before it is timed. The same
figures are taken for dense NumPy on the case (the baseline of every speedup), so that the cost
of idling is seen side by side, and for a dense NumPy product sized to take as long as
sparsejl's warm call (``NumPy, same time``): what the machine charges any multithreaded call of
that length for idling and for following another library.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Callable, Dict, List

import numpy as np

from . import env as _env
from . import matrices
from .sweep import Case

IDLE_S = (0.02, 0.2)


def cases() -> List[Case]:
    """The issue's case (BERT-base ffn.up, BSR 32, density 0.10, 128 tokens) and its neighbours."""
    from .suites import layer_mk
    out = []
    for layer, b in (("ffn.up", 32), ("ffn.down", 32), ("ffn.up", 1)):
        m, k = layer_mk("bert-base", layer)
        out.append(Case("bert-base", layer, m, k, 128, 0.10, b, "float32", "spmm"))
    return out


def _seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def warm(fn, repeats: int) -> float:
    for _ in range(5):
        fn()
    return statistics.median(_seconds(fn) for _ in range(repeats))


def after_idle(fn, idle_s: float, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        time.sleep(idle_s)
        times.append(_seconds(fn))
    return statistics.median(times)


def alternating(ours, other, repeats: int):
    """Medians of (our call right after `other`, `other` right after our call)."""
    for _ in range(3):
        other()
        ours()
    mine, theirs = [], []
    for _ in range(repeats):
        theirs.append(_seconds(other))
        mine.append(_seconds(ours))
    return statistics.median(mine), statistics.median(theirs)


def _others(case: Case, rng) -> Dict[str, Callable[[], object]]:
    """The other libraries' products, at their default thread settings."""
    h = min(case.m, case.k)
    x = rng.standard_normal((case.n, h)).astype(case.dtype)
    w = rng.standard_normal((h, h)).astype(case.dtype)
    found = {"NumPy": lambda: x @ w}
    try:
        import torch
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        found["PyTorch"] = lambda: tx @ tw
    except ImportError:
        pass
    return found


def same_time_product(case: Case, seconds: float, rng):
    """(call, reference, out): a dense NumPy product of the case's tokens, sized so that one call
    takes about `seconds` (its width scaled from a first timing)."""
    x = rng.standard_normal((case.n, case.k)).astype(case.dtype)

    def product(cols):
        w = rng.standard_normal((case.k, cols)).astype(case.dtype)
        out = np.empty((case.n, cols), dtype=case.dtype)
        return (lambda: np.matmul(x, w, out=out)), x.astype(np.float64) @ w.astype(np.float64), out
    cols = 256
    call = product(cols)[0]
    cols = max(8, int(cols * seconds / warm(call, 11)))
    return product(cols)


def measure(case: Case, repeats: int = 21) -> List[dict]:
    """One record per (case, contender): sparsejl's default backend, dense NumPy on the case, and
    a dense NumPy product as long as sparsejl's warm call."""
    import sparsejl
    A, B = matrices.operands(case)
    if case.blocksize > 1:
        A = A.tobsr(blocksize=(case.blocksize, case.blocksize))
    out = np.empty((case.m, case.n), dtype=case.dtype)
    ref = np.asarray(A.astype(np.float64) @ B.astype(np.float64))
    dense_A = A.toarray()
    ours = lambda: sparsejl.spmm(A, B, out=out)
    contenders = {"sparsejl": (ours, ref, out), "dense": (lambda: np.matmul(dense_A, B, out=out), ref, out)}
    contenders["NumPy, same time"] = same_time_product(case, warm(ours, repeats), np.random.default_rng(case.seed + 9))
    others = _others(case, np.random.default_rng(case.seed + 7))
    records = []
    for name, (fn, ref, got) in contenders.items():
        fn()
        err = float(np.abs(got - ref).max() / np.abs(ref).max())
        if not err < 1e-4:
            raise AssertionError(f"{name} on {case.label()}: error {err:.1e}; not timed")
        time.sleep(0.3)
        rec = dict(case.__dict__, contender=name, check_error=err, warm_s=warm(fn, repeats))
        if name == "NumPy, same time":
            rec["columns"] = got.shape[1]
        for idle in IDLE_S:
            rec[f"idle_{int(idle * 1000)}ms_s"] = after_idle(fn, idle, max(5, repeats // 2))
        for lib, other in others.items():
            time.sleep(0.3)
            rec[f"{lib}_alone_s"] = warm(other, repeats)
            time.sleep(0.3)
            rec[f"after_{lib}_s"], rec[f"{lib}_after_s"] = alternating(fn, other, repeats)
        records.append(rec)
    return records


def ratios(rec: dict) -> Dict[str, float]:
    """Each scenario over its undisturbed figure: ours over warm, theirs over alone."""
    out = {k[:-2]: rec[k] / rec["warm_s"] for k in rec if k.startswith(("idle_", "after_")) and k.endswith("_s")}
    for k in rec:
        if k.endswith("_after_s"):
            lib = k[: -len("_after_s")]
            out[f"{lib} after"] = rec[k] / rec[f"{lib}_alone_s"]
    return out


def _settings(environment: dict) -> str:
    """The thread variables set in the environment (bench/threads.py's list), or "none"."""
    found = (environment.get("threads") or {}).get("env") or {}
    return ", ".join(f"{k}={v}" for k, v in found.items() if v is not None) or "none"


def report(records: List[dict], environment: dict) -> str:
    lines = ["# The user's path on the CPU: warm, after idle, between other libraries' calls", "",
             f"{environment.get('cpu_model')}, {environment.get('usable_cores')} usable cores; Julia threads "
             f"{environment.get('julia_threads')}; PyTorch {environment.get('torch')} "
             f"({environment.get('torch_threads')} threads); NumPy {np.__version__}; "
             f"{environment.get('timestamp_utc')}. Thread settings from the environment: "
             f"{_settings(environment)}.", "",
             "ms per call (median); in brackets, the ratio to the undisturbed figure (ours: warm; "
             "the other library: alone). Targets of issue 13: after idle ≤ 1.3×, alternating ≤ 1.2× "
             "for both sides. `NumPy, same time`: a dense NumPy product (the case's tokens × k times "
             "k × the columns given) as long as sparsejl's warm call, at NumPy's default threads: "
             "what this machine charges any call of that length.", ""]
    libs = sorted({k[len("after_"):-2] for r in records for k in r if k.startswith("after_")})
    head = (["case", "contender", "warm"] + [f"idle {int(i * 1000)} ms" for i in IDLE_S]
            + [f"after {lib}" for lib in libs] + [f"{lib} after (alone)" for lib in libs])
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        q = ratios(r)
        contender = r["contender"] + (f" ({r['columns']} columns)" if "columns" in r else "")
        cells = [f"{r['model']} {r['layer']} {'BSR' + str(r['blocksize']) if r['blocksize'] > 1 else 'CSR'} "
                 f"d={r['density']:g}, {r['n']} tokens", contender, f"{r['warm_s'] * 1e3:.3f}"]
        cells += [f"{r[f'idle_{int(i * 1000)}ms_s'] * 1e3:.3f} ({q[f'idle_{int(i * 1000)}ms']:.2f}×)" for i in IDLE_S]
        cells += [f"{r[f'after_{lib}_s'] * 1e3:.3f} ({q[f'after_{lib}']:.2f}×)" for lib in libs]
        cells += [f"{r[f'{lib}_after_s'] * 1e3:.3f} ({q[f'{lib} after']:.2f}×; {r[f'{lib}_alone_s'] * 1e3:.3f})"
                  for lib in libs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> List[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="folder for user-path.json and user-path.md")
    ap.add_argument("--repeats", type=int, default=21)
    args = ap.parse_args(argv)
    import sparsejl
    from sparsejl import runtime
    environment = _env.capture()
    environment["julia_threads"] = runtime.julia_threads()
    try:
        import torch
        environment["torch"] = torch.__version__
        environment["torch_threads"] = torch.get_num_threads()
    except ImportError:
        environment["torch"] = "not installed"
    records = [r for c in cases() for r in measure(c, args.repeats)]
    text = report(records, environment)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "user-path.json"), "w") as f:
            json.dump({"environment": environment, "records": records}, f, indent=1, default=str)
        with open(os.path.join(args.out, "user-path.md"), "w") as f:
            f.write(text)
    del sparsejl
    return records


if __name__ == "__main__":
    main()
