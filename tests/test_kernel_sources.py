"""The CUDA kernels and the bench's Julia code are package data: files a compiler reads as they are.

On a machine with nvcc each kernel file compiles on its own (its configuration macros have
defaults); tests/gpu compiles them through NVRTC with the options the backends use.
"""

import importlib.resources
import re
import shutil
import subprocess

import pytest

from sparsejl.backends import _bsr_kernels, _cukernel
from sparsejl.bench import julia_source

KERNELS = {"bsr_spmm_tma": "sm_90a", "bsr_spmm_mma": "sm_80", "bsr_spmm_generic": "sm_80", "decode_spmm": "sm_80"}


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_sources_hold_their_entry_point_and_the_headers_they_include(name):
    source, headers, names = _cukernel.kernel_sources(name)
    assert re.search(rf'extern "C" __global__ void __launch_bounds__\(\w+\)\s*{name}\(', source)
    included = set(re.findall(r'#include "([^"]+)"', source))
    assert included and included <= {n.decode() for n in names}
    assert all(isinstance(h, bytes) and h for h in headers)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc here")
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_each_kernel_file_compiles_on_its_own(name, tmp_path):
    arch = KERNELS[name]
    source = importlib.resources.files("sparsejl.backends").joinpath("kernels", name + ".cu")
    out = subprocess.run(["nvcc", "-std=c++17", f"-gencode=arch=compute_{arch[3:]},code={arch}", "-c", str(source),
                          "-o", str(tmp_path / "k.o")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.parametrize("name", ["sparsearrays_server.jl", "time_entry.jl", "spgemm_probe.jl"])
def test_bench_julia_files_are_there(name):
    assert julia_source(name).strip()


def test_tma_configurations_keep_their_order_and_macros(monkeypatch):
    """The benchmark's ("tma", ...) tuples name the same configurations, compiled with the same -D."""
    cfg = _bsr_kernels._config(("tma", 2, 4, 1, 2, 0, 1))
    assert cfg == _bsr_kernels.TmaConfig(warpgroups=2, stages=4, producer_warp=1, epilogue=2, diagnostic=0,
                                         schedule=1) == _bsr_kernels.TMA_WIDE_SORTED
    loads = []
    monkeypatch.setattr(_cukernel, "load", lambda *args: loads.append(args))
    _bsr_kernels.tma_kernel.__wrapped__(cfg, False, False, "int", 0)
    _bsr_kernels.tma_kernel.__wrapped__(_bsr_kernels._config(("tma", 1, 3, 0, 0, 7)), True, True, "long long", 0)
    assert loads[0] == ("bsr_spmm_tma", ("-DWG=2", "-DSTAGES=4", "-DWS=1", "-DEPI=2", "-DDIAG=0", "-DSCHED=1",
                                         "-DIS_BF16=0", "-DOUT_KIND=0", "-DINDEX_T=int"),
                        "<128s128s128sQQQqQiiQ", (288,), 4 * (64 * 64 + 64 * 256) * 2 + 1024 + 2 * 64 * 128 * 2)
    assert loads[1][1] == ("-DWG=1", "-DSTAGES=3", "-DWS=0", "-DEPI=0", "-DDIAG=7", "-DSCHED=0", "-DIS_BF16=1",
                           "-DOUT_KIND=1", "-DINDEX_T=long long")
    assert loads[1][3] == (128,)


def test_the_c_launch_refuses_parameters_it_cannot_place():
    """_culaunch checks what it copies before it calls the driver: a bad layout is a ValueError, and
    nothing reaches the (here null) cuLaunchKernel."""
    import numpy as np
    launch = pytest.importorskip("sparsejl.backends._culaunch", reason="the C extension is not built").launch
    offsets = np.array([0, 8], dtype=np.int64).tobytes()
    with pytest.raises(ValueError, match="null"):
        launch(0, 1, (1, 1, 1), (1, 1, 1), 0, 0, bytes(16), offsets)
    with pytest.raises(ValueError, match="outside"):
        launch(1, 1, (1, 1, 1), (1, 1, 1), 0, 0, bytes(8), offsets)
    with pytest.raises(ValueError, match="outside"):
        launch(1, 1, (1, 1, 1), (1, 1, 1), 0, 0, bytes(16), np.array([-8], dtype=np.int64).tobytes())
    with pytest.raises(ValueError, match="exceed"):
        launch(1, 1, (1, 1, 1), (1, 1, 1), 0, 0, bytes(5000), offsets)
    with pytest.raises(ValueError, match="int64"):
        launch(1, 1, (1, 1, 1), (1, 1, 1), 0, 0, bytes(16), bytes(7))
    with pytest.raises(TypeError):
        launch(1, 1, (1, 1), (1, 1, 1), 0, 0, bytes(16), offsets)
