"""How the GPU benchmarks time: device time behind a spinning kernel, the wall time per call of
a stream of calls, CUDA graph replay; the machine's ceilings, and its description.

Two figures per method, as a model's forward pass sees them:
* device time: CUDA events around each call, the calls queued behind a kernel that spins until
  all are enqueued, so the host's launch cost is out of it;
* wall time per call: a stream of back-to-back calls from the host, timed from the first call
  to the device's end of the last, divided by their number; it is the larger of the host's cost
  and the device's.
"""

from __future__ import annotations

import datetime
import platform
import socket
import statistics
import sys
import time
from typing import Dict, List

import numpy as np

from .gpu_operands import make_dense

_SPIN_SRC = r"""
extern "C" __global__ void spin(long long ns) {
    long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do { __nanosleep(2000); asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); } while (t - t0 < ns);
}
"""


_WRITE_SRC = r"""
extern "C" __global__ void write4(float4* __restrict__ y, long long n4, float v) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += (long long)gridDim.x * blockDim.x)
        y[i] = make_float4(v, v, v, v);
}
"""


_L2_READ_SRC = r"""
extern "C" __global__ void l2read(const float4* __restrict__ x, long long n4, int passes, float* out) {
    float acc = 0.f;
    for (int p = 0; p < passes; ++p)
        for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += (long long)gridDim.x * blockDim.x) {
            float4 v = x[i];
            acc += v.x + v.y + v.z + v.w;
        }
    if (acc == 1234.5f) out[0] = acc;
}
"""


_EMPTY_SRC = r"""
extern "C" __global__ void empty_kernel(int* p) { extern __shared__ int s[]; if (p && threadIdx.x == 1023) p[0] = s[0]; }
"""


class Timer:
    """Times `fn(i)` (the i-th call; callers rotate operands by i) on CuPy's current stream."""

    def __init__(self, reps: int = 30, warmup: int = 3):
        import cupy
        self.reps, self.warmup = reps, warmup
        self._spin = cupy.RawKernel(_SPIN_SRC, "spin")

    def host_us(self, fn, calls: int = 10) -> float:
        """Host time per call with the queue empty at the start (includes launch cost)."""
        import cupy
        cupy.cuda.Device().synchronize()
        t0 = time.perf_counter()
        for i in range(calls):
            fn(i)
        t1 = time.perf_counter()
        cupy.cuda.Device().synchronize()
        return (t1 - t0) / calls * 1e6

    def wall_us(self, fn, calls: int = 0) -> List[float]:
        """Wall time per call of streams of `calls` back-to-back calls, from the host's first call
        to the device's end of the last (a model's forward pass issues its layers this way);
        one figure per stream, `reps // 5` streams (at least 5)."""
        import cupy
        calls = calls or self.reps
        for i in range(self.warmup):
            fn(i)
        out = []
        for _ in range(max(5, self.reps // 5)):
            cupy.cuda.Device().synchronize()
            t0 = time.perf_counter()
            for i in range(calls):
                fn(i)
            cupy.cuda.Device().synchronize()
            out.append((time.perf_counter() - t0) / calls * 1e6)
        return out

    def graph_us(self, fn, calls: int = 20, replays: int = 10):
        """(device µs per call, wall µs per call) of `calls` calls captured in one CUDA graph and
        replayed `replays` times back to back: what replaying a captured forward pass costs."""
        import cupy
        stream = cupy.cuda.Stream(non_blocking=True)
        with stream:
            for i in range(self.warmup):
                fn(i)
            stream.synchronize()
            stream.begin_capture()
            for i in range(calls):
                fn(i)
            graph = stream.end_capture()
            graph.launch(stream)
            stream.synchronize()
            start, end = cupy.cuda.Event(), cupy.cuda.Event()
            walls, devices = [], []
            for _ in range(replays):
                stream.synchronize()
                t0 = time.perf_counter()
                start.record(stream)
                graph.launch(stream)
                end.record(stream)
                end.synchronize()
                walls.append((time.perf_counter() - t0) / calls * 1e6)
                devices.append(cupy.cuda.get_elapsed_time(start, end) * 1e3 / calls)
        return statistics.median(devices), statistics.median(walls)

    def paired_wall_ratio(self, fn, baseline, calls: int = 30, rounds: int = 10) -> float:
        """Median over `rounds` of (wall time of `calls` back-to-back `fn` calls) / (the same of
        `baseline`), the two streams alternating, so that a drift of the host's speed during the
        measurement moves both sides alike."""
        import cupy
        ratios = []
        for _ in range(rounds):
            times = []
            for f in (fn, baseline):
                cupy.cuda.Device().synchronize()
                t0 = time.perf_counter()
                for i in range(calls):
                    f(i)
                cupy.cuda.Device().synchronize()
                times.append(time.perf_counter() - t0)
            ratios.append(times[0] / times[1])
        return statistics.median(ratios)

    def torch_graph_us(self, fn, calls: int = 20, replays: int = 10):
        """As `graph_us`, captured with torch.cuda.graph (CuPy refuses to capture cuBLAS calls)."""
        import torch
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for i in range(self.warmup):
                fn(i)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for i in range(calls):
                fn(i)
        graph.replay()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        walls, devices = [], []
        for _ in range(replays):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            walls.append((time.perf_counter() - t0) / calls * 1e6)
            devices.append(start.elapsed_time(end) * 1e3 / calls)
        return statistics.median(devices), statistics.median(walls)

    def gpu_ms(self, fn, spin: bool = True) -> List[float]:
        """Device-event time of each of `reps` calls; `spin=False` for calls that wait on the host."""
        import cupy
        for i in range(self.warmup):
            fn(i)
        launch_us = self.host_us(fn, 5)
        spin_ns = int(min(0.5, (self.reps + 2) * launch_us * 1e-6 * 1.5 + 2e-3) * 1e9)
        events = [cupy.cuda.Event() for _ in range(self.reps + 1)]
        cupy.cuda.Device().synchronize()
        if spin:
            self._spin((1,), (1,), (np.int64(spin_ns),))
        events[0].record()
        for i in range(self.reps):
            fn(i)
            events[i + 1].record()
        events[-1].synchronize()
        return [cupy.cuda.get_elapsed_time(events[i], events[i + 1]) for i in range(self.reps)]


def ceilings(timer: Timer) -> Dict[str, float]:
    """Measured: an empty kernel's device time per call back to back (launch_us, 132 x 288 threads),
    copy bandwidth (bytes read + written), write-only and read-only HBM bandwidth, L2 read bandwidth,
    cuBLAS fp16/bf16 rates on random data."""
    import cupy
    out = {}
    empty = cupy.RawKernel(_EMPTY_SRC, "empty_kernel")
    out["launch_us"] = statistics.median(timer.gpu_ms(lambda i: empty((132,), (288,), (0,)))) * 1e3
    x = cupy.empty(1 << 30, dtype=np.uint8)
    x[:] = 1
    y = cupy.empty_like(x)
    t = statistics.median(timer.gpu_ms(lambda i: cupy.copyto(y, x)))
    out["copy_GBps"] = 2 * x.nbytes / (t * 1e-3) / 1e9
    write = cupy.RawKernel(_WRITE_SRC, "write4")
    y4 = y.view(np.float32)
    wgrid = cupy.cuda.Device().attributes["MultiProcessorCount"] * 8
    t = statistics.median(timer.gpu_ms(lambda i: write((wgrid,), (256,), (y4, np.int64(y4.size // 4), np.float32(i)))))
    out["write_GBps"] = x.nbytes / (t * 1e-3) / 1e9     # HBM written only, 16-byte stores
    # L2: 64 passes over a 16 MiB buffer that stays resident, read by every SM (bytes read)
    read = cupy.RawKernel(_L2_READ_SRC, "l2read")
    xs = x[: 16 << 20].view(np.float32)
    sink = cupy.zeros(1, dtype=np.float32)
    grid = cupy.cuda.Device().attributes["MultiProcessorCount"] * 8
    t = statistics.median(timer.gpu_ms(lambda i: read((grid,), (256,), (xs, np.int64(xs.size // 4), np.int32(64), sink))))
    out["l2_read_GBps"] = 64 * xs.nbytes / (t * 1e-3) / 1e9
    xf = x.view(np.float32)     # HBM read only: one pass over 1 GiB
    t = statistics.median(timer.gpu_ms(lambda i: read((grid,), (256,), (xf, np.int64(xf.size // 4), np.int32(1), sink))))
    out["read_GBps"] = x.nbytes / (t * 1e-3) / 1e9
    for dt in ("float16", "bfloat16"):
        try:
            a = make_dense(8192, 8192, dt, 1)
            b = make_dense(8192, 8192, dt, 2)
            t = statistics.median(timer.gpu_ms(lambda i: cupy.matmul(a, b)))
            out[f"cublas_{dt}_TFLOPs"] = 2 * 8192**3 / (t * 1e-3) / 1e12
        except Exception as exc:
            out[f"cublas_{dt}_error"] = str(exc)
    return out


def environment() -> Dict[str, object]:
    import cupy
    from cupy_backends.cuda.libs import cusparse
    env: Dict[str, object] = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                              "host": socket.gethostname(), "python": sys.version.split()[0],
                              "platform": platform.platform()}
    props = cupy.cuda.runtime.getDeviceProperties(0)
    env["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    env["sm_count"] = props["multiProcessorCount"]
    env["l2_bytes"] = props["l2CacheSize"]
    env["gpu_memory_bytes"] = props["totalGlobalMem"]
    env["cuda_driver"] = cupy.cuda.runtime.driverGetVersion()
    env["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    env["cusparse"] = cusparse.getVersion(cupy.cuda.device.get_cusparse_handle())
    env["cupy"] = cupy.__version__
    for lib in ("numpy", "scipy", "torch", "triton", "ml_dtypes"):
        try:
            env[lib] = __import__(lib).__version__
        except Exception:
            env[lib] = None
    try:
        import subprocess
        env["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,clocks.mem,power.limit",
                                            "--format=csv,noheader"], capture_output=True, text=True,
                                           timeout=20).stdout.strip()
    except Exception:
        pass
    try:
        from .. import runtime
        from ..backends import julia_cuda
        if julia_cuda.availability() is None:
            env["julia"] = runtime.julia_version()
            env["julia_threads"] = runtime.julia_threads()
            env["julia_cuda"] = julia_cuda.versions()
        else:
            env["julia"] = "unavailable: " + str(julia_cuda.availability())
    except Exception as exc:
        env["julia"] = f"error: {exc}"
    return env
