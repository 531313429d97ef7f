"""A/B of the public call's wall per call (this tree vs another, run as separate processes by the caller):
BERT-large ffn.up/down BSR64 d=0.1 fp16, 2048 tokens (cupy, julia-cuda, public and direct), and
prepared (decode) BSR64 / bitmap at n=1 and 16. Prints one line per case."""
import sys, time, statistics
import cupy, numpy as np
import sparsejl
from sparsejl.backends import cupy_backend, julia_cuda
from sparsejl.bench.gpu_operands import make_bsr, make_csr, make_dense

def stream_us(f, calls=1000, reps=9):
    for i in range(100):
        f(i)
    cupy.cuda.Device().synchronize()
    w = []
    for _ in range(reps):
        t = time.perf_counter()
        for i in range(calls):
            f(i)
        cupy.cuda.Device().synchronize()
        w.append((time.perf_counter() - t) / calls * 1e6)
    return statistics.median(w)

tag = sys.argv[1]
out = []
for name, (m, k) in (("up", (4096, 1024)), ("down", (1024, 4096))):
    A = make_bsr(m, k, 64, 0.1, np.float16, 7)
    Bs = [make_dense(k, 2048, np.float16, 10 + i) for i in range(3)]
    ref = cupy.asnumpy(cupy_backend.spmm(A, Bs[0]).astype(np.float64))
    for be, mod in (("cupy", cupy_backend), ("julia-cuda", julia_cuda)):
        got = cupy.asnumpy(sparsejl.spmm(A, Bs[0], backend=be).astype(np.float64))
        assert np.linalg.norm(got - ref) <= 1e-3 * np.linalg.norm(ref)
        pub = stream_us(lambda i: sparsejl.spmm(A, Bs[i % 3], backend=be))
        dire = stream_us(lambda i: mod.spmm(A, Bs[i % 3]))
        out.append(f"{tag} bert-large {name} bsr64 {be:10s} public {pub:6.1f} us  direct {dire:6.1f} us  ratio {pub/dire:.3f}")
for kind in ("bsr64", "csr"):
    m, k = 4096, 1024
    A = make_bsr(m, k, 64, 0.1, np.float16, 8) if kind == "bsr64" else make_csr(m, k, 0.1, np.float16, 8)
    P = sparsejl.prepare(A)
    for n in (1, 16):
        Bs = [make_dense(k, n, np.float16, 20 + i) for i in range(3)]
        ref = cupy.asnumpy(cupy_backend.spmm(A, Bs[0]).astype(np.float64))
        got = cupy.asnumpy(sparsejl.spmm(P, Bs[0]).astype(np.float64))
        assert np.linalg.norm(got - ref) <= 2e-3 * np.linalg.norm(ref), kind
        pub = stream_us(lambda i: sparsejl.spmm(P, Bs[i % 3]))
        out.append(f"{tag} prepared {kind} 4096x1024 n={n:2d}       public {pub:6.1f} us")
print("\n".join(out), flush=True)
