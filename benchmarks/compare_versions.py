"""Do two versions of sparsejl time the same? The public calls of the quick benchmark's target
cases, timed in alternating processes: one of the old version (a git worktree of OLD_REF), one of
this checkout, and again, ``rounds`` times. A refactor should leave every ratio within noise.

Usage: python benchmarks/compare_versions.py OLD_REF [rounds] [only: cases whose name contains this]
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONLY = ""

CHILD = r"""
import json, statistics, sys, time, numpy as np, scipy.sparse as sp, sparsejl
rng = np.random.default_rng(0)
def bsr(m, k, b, d):
    p = sp.random_array((m // b, k // b), density=d, format="csr", rng=rng)
    data = rng.standard_normal((p.nnz, b, b)).astype(np.float32)
    return sp.bsr_array((data, p.indices, p.indptr), shape=(m, k), blocksize=(b, b))
def csr(m, k, d):
    return sp.random_array((m, k), density=d, format="csr", dtype=np.float32, rng=rng)
cases = {
    "spmm bert-base ffn.up BSR32 d=0.1 n=128": (bsr(3072, 768, 32, 0.1), rng.standard_normal((768, 128)).astype(np.float32)),
    "spmm bert-base ffn.down BSR32 d=0.1 n=128": (bsr(768, 3072, 32, 0.1), rng.standard_normal((3072, 128)).astype(np.float32)),
    "spmm bert-base ffn.up CSR d=0.1 n=128": (csr(3072, 768, 0.1), rng.standard_normal((768, 128)).astype(np.float32)),
    "spmm llama ffn.up BSR32 d=0.1 n=16": (bsr(11008, 4096, 32, 0.1), rng.standard_normal((4096, 16)).astype(np.float32)),
    "spmm 16x16 (call overhead)": (csr(16, 16, 0.3), rng.standard_normal((16, 16)).astype(np.float32)),
    "spgemm random 4096^2 1%": (csr(4096, 4096, 0.01), csr(4096, 4096, 0.01)),
}
out = {}
only = sys.argv[1] if len(sys.argv) > 1 else ""
for name, (A, B) in cases.items():
    if only not in name:
        continue
    op = sparsejl.spgemm if name.startswith("spgemm") else sparsejl.spmm
    got = op(A, B, backend="julia")
    ref = A.astype(np.float64) @ B.astype(np.float64)
    got = got.toarray() if hasattr(got, "toarray") else got
    ref = ref.toarray() if hasattr(ref, "toarray") else ref
    assert np.allclose(got, ref, rtol=1e-4, atol=1e-3), f"{name}: result differs from SciPy, not timing it"
    reps = 201 if "overhead" in name else 21
    for _ in range(5):
        op(A, B, backend="julia")
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); op(A, B, backend="julia"); ts.append(time.perf_counter() - t)
    out[name] = statistics.median(ts)
print(json.dumps(out))
"""


def run(checkout: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout), JULIA_NUM_THREADS=os.environ.get("JULIA_NUM_THREADS", "2"))
    done = subprocess.run([sys.executable, "-c", CHILD, ONLY], cwd=tempfile.gettempdir(), env=env,
                          capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise SystemExit(f"{checkout}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    old_ref = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    global ONLY
    ONLY = sys.argv[3] if len(sys.argv) > 3 else ""
    old = Path(tempfile.mkdtemp(prefix="sparsejl-old-")) / "old"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), old_ref],
                   check=True, capture_output=True)
    try:
        subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=old, check=True,
                       capture_output=True)
        times = {"old": [], "new": []}
        for _ in range(rounds):
            times["old"].append(run(old))
            times["new"].append(run(ROOT))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                       capture_output=True)
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    print(f"old {old_ref}, new {rev}; {rounds} alternating rounds of one process each; "
          f"median of the rounds' medians; JULIA_NUM_THREADS={os.environ.get('JULIA_NUM_THREADS', '2')}; "
          f"{os.cpu_count()} CPUs\n")
    print("| case | old | new | new ÷ old |\n|---|---|---|---|")
    for name in times["old"][0]:
        o = statistics.median(r[name] for r in times["old"])
        n = statistics.median(r[name] for r in times["new"])
        print(f"| {name} | {o * 1e6:.1f} µs | {n * 1e6:.1f} µs | {n / o:.2f} |")


if __name__ == "__main__":
    main()
