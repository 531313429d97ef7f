"""Where julia-cuda's CSR SpGEMM time goes, against cupy's (the same cuSPARSE routine).

    python -m sparsejl.bench.gpu_spgemm [--reps 30] [--rounds 2]

1. Side by side: device-event time per call (as sparsejl.bench.gpu times SpGEMM: back-to-back
   calls, an event between each two), cupy and julia-cuda alternating over `rounds`.
2. Phases of julia-cuda's call, in one clock (CLOCK_MONOTONIC on both sides): a copy of the
   compute job with timestamps between its cuSPARSE calls is evaluated into Julia, and called
   with the same slots as `cuda_csr_spgemm_compute`; the copy job is the package's own.
   Variants: workspaces from the package's `workspace` (its own pool), from the device's default
   stream-ordered pool with release threshold 0 (CUDA's default) and unlimited (docs/gpu-notes.md
   says what the package used when); the Python side waiting by spinning instead of sleeping
   (ctypes path only).
3. The same phases for cupy's own sequence (cupyx.cusparse.spgemm, restated with timestamps).
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import time

import numpy as np

from . import julia_source


def _ms(ns):
    return ns / 1e6


def _stats(xs):
    t = sorted(xs)
    return statistics.median(t), t[len(t) // 10], t[(len(t) * 9) // 10]


class Probe:
    def __init__(self):
        from ..backends import julia_cuda
        self.rt, self.dev = julia_cuda._ready()
        answer = self.rt.eval(julia_source("spgemm_probe.jl"))
        if "error" in answer.lower() or len(answer.split()) != 3:
            raise RuntimeError(f"probe did not load: {answer[:2000]}")
        self.f_compute, self.f_copy, taddr = (int(x) for x in answer.split())
        self.T = np.ctypeslib.as_array((ctypes.c_int64 * 32).from_address(taddr))

    def jl(self, src):
        return self.rt.eval(src)

    def set_types(self, work, idx):
        from .. import abi
        self.jl(f'SpGEMMProbe.TV[] = SparseJL.GPU.datatype({abi.julia_type(work)}); '
                f'SpGEMMProbe.TI[] = SparseJL.GPU.indextype({abi.julia_type(idx)})')

    def call(self, A, B, stamps):
        """julia_cuda.spgemm for float32/float64 CSR with int32 indices, through the probe's jobs."""
        import cupy
        import cupyx.scipy.sparse as csp
        from .. import abi
        from ..backends import _cuda
        p0 = time.monotonic_ns()
        rt, dev = self.rt, self.dev
        stream = _cuda.current_stream_ptr()
        m, k = A.shape
        n = B.shape[1]
        ia, ja, da, ib, jb, db = A.indptr, A.indices, A.data, B.indptr, B.indices, B.data
        res = np.zeros(2, dtype=np.int64)
        P = lambda a: int(a.data.ptr)  # noqa: E731
        indptr = cupy.empty(m + 1, dtype=np.int32)
        rt._run(self.f_compute, abi.entry("cuda_csr_spgemm_compute").pack(
            device=dev, stream=stream, m=m, k=k, n=n, nnzA=len(ja), indptrA=P(ia), indicesA=P(ja), dataA=P(da),
            nnzB=len(jb), indptrB=P(ib), indicesB=P(jb), dataB=P(db), out=res.ctypes.data), ())
        p1 = time.monotonic_ns()
        state, nnz = int(res[0]), int(res[1])
        indices = cupy.empty(nnz, dtype=np.int32)
        data = cupy.empty(nnz, dtype=da.dtype)
        p2 = time.monotonic_ns()
        rt._run(self.f_copy, abi.entry("cuda_csr_spgemm_copy").pack(
            device=dev, stream=stream, state=state, indptrC=P(indptr), indicesC=P(indices), dataC=P(data)), ())
        p3 = time.monotonic_ns()
        C = csp.csr_matrix((data, indices, indptr), shape=(m, n))
        p4 = time.monotonic_ns()
        T = self.T
        stamps.append({
            "python: hand-over to the compute job": T[0] - p0,
            "julia: use_device": T[1] - T[0],
            "julia: descriptors": T[2] - T[1],
            "julia: workEstimation (size)": T[3] - T[2],
            "julia: workspace 1": T[4] - T[3],
            "julia: workEstimation": T[5] - T[4],
            "julia: compute (size)": T[6] - T[5],
            "julia: workspace 2": T[7] - T[6],
            "julia: compute (waits for nnz)": T[8] - T[7],
            "julia: size, state": T[9] - T[8],
            "python: compute job returned": p1 - T[9],
            "python: allocate C": p2 - p1,
            "python: hand-over to the copy job": T[10] - p2,
            "julia: copy + release": T[11] - T[10],
            "python: copy job returned": p3 - T[11],
            "python: csr_matrix": p4 - p3,
            "total (host)": p4 - p0,
            "julia GC during call": T[16] - T[15],
        })
        return C


def cupy_phases(A, B, stamps):
    """cupyx.cusparse.spgemm's sequence (CuPy 14), with timestamps."""
    import cupy
    import cupyx.scipy.sparse as csp
    from cupy.cuda import device as _device
    from cupy._core import _dtype
    from cupy_backends.cuda.libs import cusparse as _cusparse
    from cupyx.cusparse import SpMatDescriptor
    t = [time.monotonic_ns()]
    a = csp.csr_matrix((A.data, A.indices, A.indptr), shape=A.shape)
    b = csp.csr_matrix((B.data, B.indices, B.indptr), shape=B.shape)
    m, k = a.shape
    n = b.shape[1]
    c = csp.csr_matrix((m, n), dtype=a.dtype)
    op = _cusparse.CUSPARSE_OPERATION_NON_TRANSPOSE
    alpha = np.array(1, dtype=a.dtype).ctypes
    beta = np.array(0, dtype=a.dtype).ctypes
    ct = _dtype.to_cuda_dtype(a.dtype)
    alg = _cusparse.CUSPARSE_SPGEMM_DEFAULT
    ma, mb, mc = SpMatDescriptor.create(a), SpMatDescriptor.create(b), SpMatDescriptor.create(c)
    h = _device.get_cusparse_handle()
    d = _cusparse.spGEMM_createDescr()
    t.append(time.monotonic_ns())
    s1 = _cusparse.spGEMM_workEstimation(h, op, op, alpha.data, ma.desc, mb.desc, beta.data, mc.desc, ct, alg, d, 0, 0)
    b1 = cupy.empty(s1, cupy.int8)
    _cusparse.spGEMM_workEstimation(h, op, op, alpha.data, ma.desc, mb.desc, beta.data, mc.desc, ct, alg, d, s1,
                                    b1.data.ptr)
    t.append(time.monotonic_ns())
    s2 = _cusparse.spGEMM_compute(h, op, op, alpha.data, ma.desc, mb.desc, beta.data, mc.desc, ct, alg, d, 0, 0)
    b2 = cupy.empty(s2, cupy.int8)
    t.append(time.monotonic_ns())
    _cusparse.spGEMM_compute(h, op, op, alpha.data, ma.desc, mb.desc, beta.data, mc.desc, ct, alg, d, s2, b2.data.ptr)
    t.append(time.monotonic_ns())
    r, cc, nz = (np.array(0, dtype=np.int64) for _ in range(3))
    _cusparse.spMatGetSize(mc.desc, r.ctypes.data, cc.ctypes.data, nz.ctypes.data)
    nnz = int(nz)
    indices = cupy.empty(nnz, "i")
    data = cupy.empty(nnz, c.dtype)
    _cusparse.csrSetPointers(mc.desc, c.indptr.data.ptr, indices.data.ptr, data.data.ptr)
    t.append(time.monotonic_ns())
    _cusparse.spGEMM_copy(h, op, op, alpha.data, ma.desc, mb.desc, beta.data, mc.desc, ct, alg, d)
    t.append(time.monotonic_ns())
    C = csp.csr_matrix((data, indices, c.indptr), shape=(m, n))
    _cusparse.spGEMM_destroyDescr(d)
    t.append(time.monotonic_ns())
    names = ["set-up", "workEstimation x2 + buffer 1", "compute (size) + buffer 2", "compute (waits for nnz)",
             "size, allocate C", "copy", "csr_matrix, destroy"]
    stamps.append({n_: t[i + 1] - t[i] for i, n_ in enumerate(names)} | {"total (host)": t[-1] - t[0]})
    return C


def event_times(fn, reps, warmup=3):
    """Device-event ms of `reps` back-to-back calls (sparsejl.bench.gpu's Timer.gpu_ms, spin=False)."""
    import cupy
    for i in range(warmup):
        fn(i)
    events = [cupy.cuda.Event() for _ in range(reps + 1)]
    cupy.cuda.Device().synchronize()
    events[0].record()
    for i in range(reps):
        fn(i)
        events[i + 1].record()
    events[-1].synchronize()
    return [cupy.cuda.get_elapsed_time(events[i], events[i + 1]) for i in range(reps)]


def show(name, ms):
    med, p10, p90 = _stats(ms)
    print(f"  {name:42s} {med:8.4f} ms  p10-p90 {p10:.4f}-{p90:.4f}", flush=True)
    return med


def show_phases(title, stamps, ms):
    print(f"  phases, {title} (µs: median; mean of the calls slower / faster than the median event time)")
    med = statistics.median(ms)
    slow = [s for s, t in zip(stamps, ms) if t > med]
    fast = [s for s, t in zip(stamps, ms) if t <= med]
    for key in stamps[0]:
        v = [s[key] / 1e3 for s in stamps]
        print(f"    {key:40s} {statistics.median(v):9.1f}   slow {statistics.mean(s[key] for s in slow) / 1e3:9.1f}"
              f"   fast {statistics.mean(s[key] for s in fast) / 1e3:9.1f}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sizes", default="4096:0.01:float32,16384:0.001:float32,4096:0.01:float64")
    args = ap.parse_args(argv)
    import cupy
    from ..backends import cupy_backend, julia_cuda
    from ..julia import transport
    from .gpu import make_csr
    probe = Probe()
    print(f"runtime call path: {'C extension' if probe.rt._c_run is not None else 'ctypes'}; "
          f"python spin tries {transport.SPIN_TRIES}", flush=True)
    seed = 1
    for spec in args.sizes.split(","):
        mm, d, dt = spec.split(":")
        mm, d = int(mm), float(d)
        seed += 10
        A = make_csr(mm, mm, d, dt, seed)
        B = make_csr(mm, mm, d, dt, seed + 1)
        print(f"== random {mm}x{mm} d={d} {dt}: nnz(A) {A.data.size}", flush=True)
        probe.set_types(np.dtype(dt), np.dtype(np.int32))
        ref = cupy_backend.spgemm(A, B)
        got = probe.call(A, B, [])
        assert got.nnz == ref.nnz and bool(cupy.allclose(got.data, ref.data)), "probe product differs from cupy's"
        for r in range(args.rounds):
            show(f"cupy (round {r})", event_times(lambda i: cupy_backend.spgemm(A, B), args.reps))
            show(f"julia-cuda (round {r})", event_times(lambda i: julia_cuda.spgemm(A, B), args.reps))
        variants = [("package (own pool)", "SpGEMMProbe.MODE[] = 0"),
                    ("default pool, threshold 0", "SpGEMMProbe.MODE[] = 1; "
                     "SpGEMMProbe.set_default_threshold(0, UInt64(0))"),
                    ("default pool, threshold max", "SpGEMMProbe.MODE[] = 1; "
                     "SpGEMMProbe.set_default_threshold(0, typemax(UInt64))")]
        for name, setup in variants:
            print(f"  [{name}] {probe.jl(setup)}")
            stamps = []
            ms = event_times(lambda i: probe.call(A, B, stamps), args.reps)
            show(f"julia probe: {name}", ms)
            show_phases(name, stamps[-args.reps:], ms)
        probe.jl("SpGEMMProbe.MODE[] = 0; SpGEMMProbe.set_default_threshold(0, UInt64(0))")
        # the Python side waits on the job by spinning instead of sleeping (ctypes call path only)
        if probe.rt._c_run is None:
            old = transport.SPIN_TRIES
            transport.SPIN_TRIES = 10 ** 9
            stamps = []
            ms = event_times(lambda i: probe.call(A, B, stamps), args.reps)
            show("julia probe: own pool, python spins", ms)
            show_phases("own pool, python spins", stamps[-args.reps:], ms)
            show("julia-cuda, python spins", event_times(lambda i: julia_cuda.spgemm(A, B), args.reps))
            transport.SPIN_TRIES = old
        try:
            stamps = []
            ms = event_times(lambda i: cupy_phases(A, B, stamps), args.reps)
            show("cupy restated", ms)
            show_phases("cupy restated", stamps[-args.reps:], ms)
        except Exception as exc:  # CuPy's private cuSPARSE bindings differ between versions
            print(f"  cupy restated: failed: {type(exc).__name__}: {exc}")
        show("cupy (again)", event_times(lambda i: cupy_backend.spgemm(A, B), args.reps))
        show("julia-cuda (again)", event_times(lambda i: julia_cuda.spgemm(A, B), args.reps))
        A = B = ref = got = None
        cupy.get_default_memory_pool().free_all_blocks()


if __name__ == "__main__":
    main()
