"""BlockSparseLinear against nn.Linear and PyTorch's own BSR weight, on the CPU, as a model calls them.

    python -m sparsejl.bench.torch_linear [--out DIR] [--repeats N] [--threads T]

BERT-base's feed-forward block (768 -> 3072 -> 768, GELU between), 128 tokens, float32, density
0.10 of 32×32 blocks, PyTorch and Julia each with T threads (2 by default). Three weights of one
pattern and one set of values: `BlockSparseLinear` (sparsejl), `nn.Linear` with the masked dense
weight (the baseline), and that weight as a PyTorch sparse BSR tensor through `F.linear`.

Every case is timed through the public APIs, in the order a model makes its calls: a sample is
the mean time of the whole block (up, GELU, down) over RUN calls made back to back, nothing
waited out between calls, so that PyTorch's intra-op threads and Julia's meet as they do in a
model (a stack of RUN such blocks), after one untimed call that lets the previous candidate's
threads go. Forward under `torch.no_grad()`; forward + backward with the input and the parameters
requiring gradients. The candidates take turns, a sample each, for `repeats` rounds after
warm-up; medians are reported. Every output and
gradient is checked against a float64 dense reference first; a candidate that fails or is not
supported is reported with PyTorch's message.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import time

IN, HIDDEN, TOKENS, DENSITY, BLOCK = 768, 3072, 128, 0.10, 32
RUN = 6
TARGETS = {("forward", "nn.Linear"): 5.0, ("forward+backward", "nn.Linear"): 3.0,
           ("forward", "torch BSR"): 1.5, ("forward+backward", "torch BSR"): 1.5}


def _models(torch):
    from torch import nn

    from ..torch import BlockSparseLinear

    torch.manual_seed(0)
    up = BlockSparseLinear(IN, HIDDEN, density=DENSITY, blocksize=BLOCK)
    down = BlockSparseLinear(HIDDEN, IN, density=DENSITY, blocksize=BLOCK)

    def dense_of(layer):
        d = nn.Linear(layer.in_features, layer.out_features)
        with torch.no_grad():
            d.weight.copy_(layer.dense_weight())
            d.bias.copy_(layer.bias)
        return d

    class TorchBSR(nn.Module):
        def __init__(self, layer):
            super().__init__()
            self.weight = nn.Parameter(layer.dense_weight().detach().to_sparse_bsr((BLOCK, BLOCK)))
            self.bias = nn.Parameter(layer.bias.detach().clone())

        def forward(self, x):
            return nn.functional.linear(x, self.weight, self.bias)

    def block(u, d):
        return lambda x: d(nn.functional.gelu(u(x)))

    return {"sparsejl": (block(up, down), [up, down]),
            "nn.Linear": (block(dense_of(up), dense_of(down)), None),
            "torch BSR": (block(TorchBSR(up), TorchBSR(down)), None)}, (up, down)


def _reference(torch, layers, x):
    """The block in float64 on dense weights: output, and the gradients of sum(out * g)."""
    from torch import nn
    up, down = layers
    x64 = x.double().requires_grad_()
    Wu = up.dense_weight().detach().double().requires_grad_()
    Wd = down.dense_weight().detach().double().requires_grad_()
    out = nn.functional.linear(nn.functional.gelu(nn.functional.linear(x64, Wu, up.bias.double())), Wd, down.bias.double())
    return out, x64, Wu


def _check(torch, name, fn, x, ref):
    out64, x64, Wu = ref
    with torch.no_grad():
        y = fn(x)
    err = float((y.double() - out64).abs().max())
    if err > 1e-3 * float(out64.abs().max()):
        raise AssertionError(f"{name}: forward differs from the float64 reference by {err:.3g}")


def _sample(torch, fn, x, g, mode):
    """Mean seconds per block over RUN calls back to back, after one untimed call."""
    if mode == "forward":
        with torch.no_grad():
            fn(x)
            t0 = time.perf_counter()
            for _ in range(RUN):
                fn(x)
            return (time.perf_counter() - t0) / RUN
    fn(x.detach().requires_grad_()).backward(g)
    t0 = time.perf_counter()
    for _ in range(RUN):
        fn(x.detach().requires_grad_()).backward(g)
    return (time.perf_counter() - t0) / RUN


def _breakdown(torch, layers, repeats):
    """Where the time goes: each product of the two layers alone, back to back, through the public
    entries (sparsejl.linear, linear_input_grad, sddmm on the layers' tensors) and PyTorch's dense
    equivalents on the same weights; medians in seconds."""
    import sparsejl
    from ..torch.ops import weight
    out = {}
    for layer in layers:
        name = f"{layer.in_features}->{layer.out_features}"
        W = weight(layer.weight_blocks.detach(), layer.indptr, layer.indices, (layer.out_features, layer.in_features))
        Wd, bias = layer.dense_weight().detach(), layer.bias.detach()
        x, dy = torch.randn(TOKENS, layer.in_features), torch.randn(TOKENS, layer.out_features)
        cases = {"sparsejl.linear": lambda: sparsejl.linear(x, W, bias),
                 "sparsejl.linear_input_grad": lambda: sparsejl.linear_input_grad(dy, W),
                 "sparsejl.sddmm": lambda: sparsejl.sddmm(W, dy, x),
                 "F.linear": lambda: torch.nn.functional.linear(x, Wd, bias),
                 "dY @ W": lambda: dy @ Wd, "dY.T @ X": lambda: dy.T @ x}
        for what, fn in cases.items():
            for _ in range(3):
                fn()
            samples = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - t0)
            out[f"{name} {what}"] = statistics.median(samples)
    return out


def run(repeats: int = 30, threads: int = 2, warmup: int = 5) -> dict:
    os.environ.setdefault("JULIA_NUM_THREADS", str(threads))
    import torch
    torch.set_num_threads(threads)
    candidates, layers = _models(torch)
    x = torch.randn(TOKENS, IN)
    g = torch.randn(TOKENS, IN)
    ref = _reference(torch, layers, x)
    ref[0].backward(g.double())
    status, usable = {}, {}
    for mode in ("forward", "forward+backward"):
        for name, (fn, _) in candidates.items():
            try:
                if mode == "forward":
                    _check(torch, name, fn, x, ref)
                else:
                    xg = x.detach().requires_grad_()
                    fn(xg).backward(g)
                    err = float((xg.grad.double() - ref[1].grad).abs().max())
                    if err > 1e-3 * float(ref[1].grad.abs().max()):
                        raise AssertionError(f"input gradient differs from the float64 reference by {err:.3g}")
                status[(mode, name)] = "ok"
                usable.setdefault(mode, []).append(name)
            except Exception as e:    # an unsupported candidate is a result, with its message
                status[(mode, name)] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    # sparsejl's weight gradient against the reference, on the blocks
    up = layers[0]
    up.weight_blocks.grad = None
    xg = x.detach().requires_grad_()
    candidates["sparsejl"][0](xg).backward(g)
    Wg = ref[2].grad.reshape(HIDDEN // BLOCK, BLOCK, IN // BLOCK, BLOCK).permute(0, 2, 1, 3)[up.pattern]
    werr = float((up.weight_blocks.grad.double() - Wg).abs().max()) / float(Wg.abs().max())
    assert werr < 1e-3, f"sparsejl's weight gradient differs from the reference by {werr:.3g} (relative)"

    times = {}
    for mode, names in usable.items():
        samples = {n: [] for n in names}
        for r in range(warmup + repeats):
            for name in names:
                fn = candidates[name][0]
                t = _sample(torch, fn, x, g, mode)
                if r >= warmup:
                    samples[name].append(t)
        for name in names:
            times[(mode, name)] = statistics.median(samples[name])
    return {"status": status, "times": times, "repeats": repeats, "threads": threads,
            "breakdown_s": _breakdown(torch, layers, repeats),
            "density": layers[0].density, "weight_grad_relative_error": werr}


def report(result: dict, environment: dict) -> str:
    lines = ["# BlockSparseLinear vs nn.Linear and PyTorch's BSR weight (CPU)", "",
             f"BERT-base FFN block ({IN} -> {HIDDEN} -> GELU -> {IN}), {TOKENS} tokens, float32, "
             f"density {DENSITY} of {BLOCK}x{BLOCK} blocks, {result['threads']} threads for PyTorch and Julia; "
             f"median of {result['repeats']} samples, each the mean of {RUN} blocks called back to back; "
             "candidates taking turns.", "",
             f"CPU: {environment.get('cpu_model')}; torch {environment.get('versions', {}).get('torch')}", "",
             "| mode | candidate | status | median ms | sparsejl's speedup | target |",
             "| --- | --- | --- | --- | --- | --- |"]
    times = result["times"]
    for (mode, name), st in result["status"].items():
        t = times.get((mode, name))
        ours = times.get((mode, "sparsejl"))
        speed = f"{t / ours:.2f}x" if t and ours and name != "sparsejl" else ""
        target = TARGETS.get((mode, name))
        if target is None:
            verdict = ""
        elif not (t and ours):
            verdict = f">= {target}x: not measurable ({name if not t else 'sparsejl'} fails)"
        else:
            verdict = f">= {target}x: " + ("met" if t / ours >= target else f"missed by {target / (t / ours):.2f}x")
        lines.append(f"| {mode} | {name} | {st} | {t * 1e3:.3f} | {speed} | {verdict} |" if t else
                     f"| {mode} | {name} | {st} | - | - | {verdict} |")
    lines += ["", "Each product alone, back to back (median ms):", "", "| product | ms |", "| --- | --- |"]
    lines += [f"| {k} | {v * 1e3:.3f} |" for k, v in result["breakdown_s"].items()]
    return "\n".join(lines) + "\n"


def _unflatten(flat: dict) -> dict:
    """The result as `run` returns it, from its record (for re-rendering a report)."""
    result = dict(flat)
    result["status"] = {tuple(k.split("|")): v for k, v in flat["status"].items()}
    result["times"] = {tuple(k.split("|")): v for k, v in flat.pop("times_s").items()}
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="folder for torch-linear.json.gz and report.md")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--render", help="re-render report.md from a saved torch-linear.json.gz, without running")
    args = ap.parse_args(argv)
    from . import env as _env
    if args.render:
        with gzip.open(args.render, "rt") as f:
            saved = json.load(f)
        text = report(_unflatten(saved["result"]), saved["environment"])
        with open(os.path.join(os.path.dirname(args.render), "report.md"), "w") as f:
            f.write(text)
        print(text)
        return None
    result = run(args.repeats, args.threads)
    environment = _env.capture()
    text = report(result, environment)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        flat = {"status": {f"{m}|{n}": s for (m, n), s in result["status"].items()},
                "times_s": {f"{m}|{n}": t for (m, n), t in result["times"].items()},
                **{k: v for k, v in result.items() if k not in ("status", "times")}}
        with gzip.open(os.path.join(args.out, "torch-linear.json.gz"), "wt") as f:
            json.dump({"environment": environment, "result": flat}, f, indent=1, default=str)
        with open(os.path.join(args.out, "report.md"), "w") as f:
            f.write(text)
    return result


if __name__ == "__main__":
    main()
