"""Host cost of the public GPU call against the backend's direct call (issue 13, BERT-large FFN, BSR64 and BSR32):
wall per call over 3000 back-to-back calls, then cProfile of each. Not yet run on a GPU (written 2026-12-05)."""
import cProfile, pstats, sys, time
import cupy
import sparsejl
from sparsejl.bench.gpu_operands import make_bsr, make_dense
from sparsejl.backends import cupy_backend

for b in (64, 32):
    A = make_bsr(4096, 1024, b, 0.1, "float16", 1)
    Bs = [make_dense(1024, 2048, "float16", 2 + i) for i in range(3)]
    calls = {"public": lambda i: sparsejl.spmm(A, Bs[i % 3], backend="cupy"),
             "direct": lambda i: cupy_backend.spmm(A, Bs[i % 3])}
    for name, f in calls.items():
        for i in range(300):
            f(i)
        cupy.cuda.Device().synchronize()
        best = []
        for rep in range(5):
            t = time.perf_counter()
            for i in range(3000):
                f(i)
            cupy.cuda.Device().synchronize()
            best.append((time.perf_counter() - t) / 3000 * 1e6)
        print(f"BSR{b} {name}: wall per call {sorted(best)} µs", flush=True)
    for name, f in calls.items():
        pr = cProfile.Profile()
        pr.enable()
        for i in range(3000):
            f(i)
        pr.disable()
        cupy.cuda.Device().synchronize()
        print(f"==== BSR{b} {name}: cProfile of 3000 calls", flush=True)
        pstats.Stats(pr, stream=sys.stdout).sort_stats("tottime").print_stats(22)
