"""Clocks for whole models: end-to-end medians, each linear layer's time inside the model, and
the same layer's time alone, from which the Amdahl breakdown is made.

A layer's time inside the model includes what it loses to the libraries around it (PyTorch's
threads still spinning when sparsejl's start, and the reverse); its time alone does not: every
layer called on the input it last saw, in the model's order with nothing between them, so that
caches are as the model leaves them. Their difference is the time lost to that competition (and
to the forward hooks that clock it, a few µs a layer).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn


def _nothing():
    pass


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1,
                   sync: Callable[[], None] = _nothing) -> float:
    """Median wall time of `fn`; `sync` (torch.cuda.synchronize on a GPU) ends each call."""
    for _ in range(warmup):
        fn()
        sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def paired_median_seconds(fns: Sequence[Callable[[], object]], repeats: int, warmup: int = 1,
                          sync: Callable[[], None] = _nothing) -> List[float]:
    """Median wall time of each of `fns`, timed in turns (a b, b a, a b, ...): a machine whose speed
    drifts during the run slows them alike, so their ratio holds where medians taken one after the
    other would not (on the 2-core VM the same dense model measured 159 and 218 ms minutes apart)."""
    for fn in fns:
        for _ in range(warmup):
            fn()
            sync()
    times: List[List[float]] = [[] for _ in fns]
    for r in range(repeats):
        for i in (range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))):
            t0 = time.perf_counter()
            fns[i]()
            sync()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def linear_layers(model: nn.Module, types: Sequence[type]) -> Dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if name and isinstance(m, tuple(types))}


class LayerClock:
    """Forward hooks that add up each layer's wall time and keep the input it last saw. On a GPU,
    `sync` waits for the device before and after each layer, so that the time is the layer's."""

    def __init__(self, layers: Dict[str, nn.Module], sync: Callable[[], None] = _nothing):
        self.layers, self.sync = layers, sync
        self.seconds: Dict[str, float] = {n: 0.0 for n in layers}
        self.calls: Dict[str, int] = {n: 0 for n in layers}
        self.last_input: Dict[str, torch.Tensor] = {}
        self._start: Dict[str, float] = {}
        self._handles = []

    def __enter__(self):
        for name, mod in self.layers.items():
            self._handles.append(mod.register_forward_pre_hook(self._pre(name)))
            self._handles.append(mod.register_forward_hook(self._post(name)))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _pre(self, name):
        def hook(module, args):
            self.last_input[name] = args[0]
            self.sync()
            self._start[name] = time.perf_counter()
        return hook

    def _post(self, name):
        def hook(module, args, output):
            self.sync()
            self.seconds[name] += time.perf_counter() - self._start[name]
            self.calls[name] += 1
        return hook

    def total(self) -> float:
        return sum(self.seconds.values())


def alone_seconds(layers: Dict[str, nn.Module], inputs: Dict[str, torch.Tensor],
                  repeats: int = 7, sync: Callable[[], None] = _nothing) -> Dict[str, float]:
    """Each layer's median time on its last input with nothing of the model between the layers:
    all of them called in the model's order, round after round, so that each finds the caches
    as the model leaves them (a layer called back to back on itself would find its weight
    cached), but no other library's product runs before it."""
    times: Dict[str, list] = {name: [] for name in layers}
    with torch.inference_mode():
        for round_ in range(repeats + 1):
            for name, mod in layers.items():
                x = inputs[name]
                t0 = time.perf_counter()
                mod(x)
                sync()
                if round_:                       # the first round warms up
                    times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def breakdown(run: Callable[[], object], layers: Dict[str, nn.Module], units: int,
              repeats: int = 3, sync: Callable[[], None] = _nothing) -> Dict[str, object]:
    """Where the time of `run` goes, per unit (a forward pass, or a generated token).

    One clocked run gives each layer's time inside the model; the layers are then timed alone.
    On a GPU the clocked run waits for the device around every layer, so its total is longer than
    the model's stream of calls; the shares, not the sum, are what it tells.
    ``rest`` is everything outside the linear layers (attention, norms, activations, embeddings,
    the sampling loop); ``lost`` is the layers' time in the model beyond their time alone.
    """
    clock = LayerClock(layers, sync)
    with clock:
        t0 = time.perf_counter()
        for _ in range(repeats):
            run()
        sync()
        clocked = (time.perf_counter() - t0) / repeats
    calls = {n: c / repeats for n, c in clock.calls.items()}
    in_model = {n: s / repeats for n, s in clock.seconds.items()}
    alone = alone_seconds(layers, clock.last_input, sync=sync)
    alone_total = sum(alone[n] * calls[n] for n in layers)
    linear = sum(in_model.values())
    return {
        "clocked_s": clocked / units,
        "linear_s": linear / units,
        "linear_alone_s": alone_total / units,
        "lost_s": max(0.0, linear - alone_total) / units,
        "rest_s": (clocked - linear) / units,
        "layers": [{"name": n, "calls": calls[n], "in_model_s": in_model[n] / units,
                    "alone_s": alone[n] * calls[n] / units} for n in layers],
    }
