"""Does multithreading pay? The same BSR SpMM timed with 1 and with 2 (or more) Julia threads.

Julia's thread count is fixed when it starts, so each count runs in its own process; the parent
prints them side by side with the machine. Usage: python benchmarks/thread_scaling.py [1 2 ...]
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time

CHILD = """
import json, sys, time, statistics, numpy as np, scipy.sparse as sp, sparsejl
rng = np.random.default_rng(0)
b, mb, kb, n, density = 32, 128, 128, 512, 0.10   # 4096x4096 weight, 10% of its 32x32 blocks, 512 tokens
pattern = sp.random_array((mb, kb), density=density, format="csr", rng=rng)
data = rng.uniform(0.5, 1.5, (pattern.nnz, b, b)).astype(np.float32)
A = sp.bsr_array((data, pattern.indices, pattern.indptr), shape=(mb * b, kb * b), blocksize=(b, b))
B = rng.standard_normal((kb * b, n)).astype(np.float32)
C = sparsejl.spmm(A, B, backend="julia")
ref = A.astype(np.float64) @ B.astype(np.float64)
assert np.allclose(C, ref, rtol=1e-4, atol=1e-3), "result differs from SciPy: not timing it"
times = []
for _ in range(7):
    t = time.perf_counter(); sparsejl.spmm(A, B, backend="julia"); times.append(time.perf_counter() - t)
from sparsejl import runtime
print(json.dumps({"threads": runtime.julia_threads(), "median_s": statistics.median(times), "times_s": times}))
"""


def main(counts):
    rows = []
    for threads in counts:
        env = dict(os.environ, JULIA_NUM_THREADS=str(threads))
        out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    print(f"BSR SpMM, float32, 4096x4096 weight with 10% of its 32x32 blocks, times 4096x512; {cpu}, {os.cpu_count()} CPUs")
    print(f"{'Julia threads':>14} {'median ms':>10} {'speedup':>8}")
    for row in rows:
        print(f"{row['threads']:>14} {row['median_s'] * 1e3:>10.2f} {rows[0]['median_s'] / row['median_s']:>8.2f}")


if __name__ == "__main__":
    main([int(x) for x in sys.argv[1:]] or [1, 2])
