"""Host cost of the public GPU call against the backend's direct call (issue 13, BERT-large FFN,
BSR64 and BSR32, float16, 2048 tokens): wall per call over back-to-back streams, alternating public
and direct, then each step of the public path timed alone, then cProfile of both calls.

    python3 benchmarks/gpu_host_profile.py [cupy julia-cuda]

Run once on an H100 (2026-12-05): benchmarks/results/gpu-H100-20261205-host-profile.txt. The
unpaired stream figures there are noisy (a shared host); the paired ratio of sparsejl.bench.gpu
--direct is the figure to quote.
"""
import cProfile
import pstats
import sys
import time
import timeit

import cupy
import numpy as np

import sparsejl
from sparsejl import interop, ops
from sparsejl.backends import backend as backend_named, select
from sparsejl.bench.gpu_operands import make_bsr, make_dense
from sparsejl.formats import as_view


def stream_us(f, calls=2000, reps=7):
    """Wall per call of `calls` back-to-back calls, to the device's end (best and median of reps)."""
    for i in range(200):
        f(i)
    cupy.cuda.Device().synchronize()
    walls = []
    for _ in range(reps):
        t = time.perf_counter()
        for i in range(calls):
            f(i)
        cupy.cuda.Device().synchronize()
        walls.append((time.perf_counter() - t) / calls * 1e6)
    return sorted(walls)


def step_us(stmt, env, number=20000):
    return min(timeit.repeat(stmt, globals=env, number=number, repeat=5)) / number * 1e6


def main(names):
    for b in (64, 32):
        A = make_bsr(4096, 1024, b, 0.1, "float16", 1)
        Bs = [make_dense(1024, 2048, "float16", 2 + i) for i in range(3)]
        for name in names:
            mod = backend_named(name)
            if mod.availability() is not None:
                print(f"{name}: unavailable: {mod.availability()}")
                continue
            calls = {"public": lambda i: sparsejl.spmm(A, Bs[i % 3], backend=name),
                     "public, default backend": lambda i: sparsejl.spmm(A, Bs[i % 3]),
                     "direct": lambda i: mod.spmm(A, Bs[i % 3])}
            for label, f in calls.items():
                w = stream_us(f)
                print(f"BSR{b} {name} {label}: wall per call µs {[round(x, 1) for x in w]}", flush=True)
            chosen = select(name, True)
            B = Bs[0]
            env = dict(A=A, B=B, interop=interop, ops=ops, as_view=as_view, select=select, name=name,
                       chosen=chosen, cupy=cupy, np=np, mod=mod, view=A)
            steps = {
                "interop.native(B)": "interop.native(B)",
                "as_view(A)": "as_view(A)",
                "select(name, True)": "select(name, True)",
                "ops._same_device(A, B)": "ops._same_device(A, B)",
                "ops._sparse_operand(A, A, chosen)": "ops._sparse_operand(A, A, chosen)",
                "ops._dense_operand(B, k, chosen)": "ops._dense_operand(B, 1024, chosen)",
                "chosen.value_dtypes()": "chosen.value_dtypes()",
                "B.flags.c_contiguous": "B.flags.c_contiguous",
                "cupy.empty(C)": "cupy.empty((4096, 2048), dtype=np.float16)",
            }
            for label, stmt in steps.items():
                print(f"  step {label}: {step_us(stmt, env):.2f} µs", flush=True)
            for label, f in calls.items():
                pr = cProfile.Profile()
                pr.enable()
                for i in range(3000):
                    f(i)
                pr.disable()
                cupy.cuda.Device().synchronize()
                print(f"==== BSR{b} {name} {label}: cProfile of 3000 calls", flush=True)
                pstats.Stats(pr, stream=sys.stdout).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main(sys.argv[1:] or ["cupy", "julia-cuda"])
