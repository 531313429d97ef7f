"""Diagnostic, not a headline: the public sparsejl.spmm (cupy backend, BERT-large BSR64 fp16 d=0.1,
2048 tokens) with the kernel launched from C or through ctypes, and with the parameters reused or
packed per call (internal variants swapped in by assignment), alternating in one process; then one
kept launch alone. Output: launch-paths.txt. Run on a GPU machine: python launch-paths.py"""
import time, statistics, cupy, sparsejl
from sparsejl.backends import _cukernel, _bsr_kernels, _cuda
from sparsejl.bench.gpu_operands import make_bsr, make_dense
sync = cupy.cuda.Device().synchronize
orig = _cukernel.launch
ctypes_launch = lambda L, s, through_ctypes=False: orig(L, s, through_ctypes=True)
LS = _bsr_kernels._LaunchShape
cached_bind = LS.bind
def packing_bind(self, A, B, C):
    return _cukernel.Launch(self.kernel, self.grid, self._pack(A, B, C), (A.data, B, C) + self.keep)
variants = {"C": (orig, cached_bind), "C, packed per call": (orig, packing_bind), "ctypes, packed per call": (ctypes_launch, packing_bind)}
for (m, k, d) in ((4096, 1024, 0.1), (1024, 4096, 0.1)):
    A = make_bsr(m, k, 64, d, "float16", 1)
    Bs = [make_dense(k, 2048, "float16", 2 + i) for i in range(3)]
    res = {v: ([], []) for v in variants}
    for rnd in range(41):
        for name in (list(variants) if rnd % 2 else list(variants)[::-1]):
            _cukernel.launch, LS.bind = variants[name]
            sync(); t0 = time.perf_counter()
            for i in range(30):
                sparsejl.spmm(A, Bs[i % 3], backend="cupy")
            t1 = time.perf_counter(); sync(); t2 = time.perf_counter()
            if rnd:
                res[name][0].append((t2 - t0) / 30 * 1e6); res[name][1].append((t1 - t0) / 30 * 1e6)
    _cukernel.launch, LS.bind = orig, cached_bind
    print(f"{m}x{k} d={d} public cupy, streams of 30: " + "; ".join(
        f"{n} wall {statistics.median(w):.2f} us, host enqueue {statistics.median(h):.2f} us" for n, (w, h) in res.items()), flush=True)
    C = cupy.empty((m, 2048), cupy.float16); L = _bsr_kernels.plan(A, Bs[0], C); s = _cuda.current_stream_ptr()
    for tc in (False, True, False, True):
        hs = []
        for _ in range(40):
            sync(); t0 = time.perf_counter()
            for _ in range(20): _cukernel.launch(L, s, through_ctypes=tc)
            hs.append((time.perf_counter() - t0) / 20 * 1e6)
        sync()
        print(f"   launch alone, bursts of 20, {'ctypes' if tc else 'C'}: host {statistics.median(hs):.2f} us (min {min(hs):.2f})", flush=True)
