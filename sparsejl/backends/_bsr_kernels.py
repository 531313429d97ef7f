"""Block-sparse (BSR) × dense SpMM kernels of the GPU backends: which kernel, which launch.

Three kernels, all reading SciPy's BSR arrays and row-major B/C in place (sources in kernels/,
one .cu file each with the header they share; compiled by NVRTC into cubins, _cukernel.py):

* ``bsr_spmm_tma`` (64×64 fp16/bf16 blocks on compute capability 9.0): TMA bulk tensor copies
  feed warpgroup MMAs (wgmma) in persistent CTAs; configurations in `TmaConfig`.
* ``bsr_spmm_mma``: tensor cores through ``mma.sync`` m16n8k16 with a ``cp.async`` pipeline;
  blocksizes 16, 32, 64; fp16/bf16; ``n`` a multiple of 8.
* ``bsr_spmm_generic``: CUDA cores, any value dtype and blocksize up to 128, any ``n``.

`plan` picks the kernel and packs its launch; the "cupy" backend launches it from Python
(`bsr_spmm`), "julia-cuda" hands the same cubin and parameters to Julia. cuSPARSE's BSR and
Blocked-ELL SpMM are compared in the benchmark (docs/gpu-notes.md).
"""

from __future__ import annotations

import functools
import struct
from typing import NamedTuple

import numpy as np

from . import _cuda, _cukernel
from ._gpu_conversions import derived, structure_in_one_index_type


class TmaConfig(NamedTuple):
    """A configuration of the TMA + wgmma kernel, also written as a tuple
    ("tma", warpgroups, stages, producer_warp, epilogue, diagnostic, schedule); the kernel's macros
    WG, STAGES, WS, EPI, DIAG, SCHED (kernels/bsr_spmm_tma.cu)."""
    warpgroups: int = 2     # consumer warpgroups: a CTA's tile is 64 × 128·warpgroups columns of C
    stages: int = 4         # pipeline depth
    producer_warp: int = 1  # 1: a producer warp issues the copies; 0: consumer thread 0 does
    epilogue: int = 0       # how C is written: 0 a 16-byte store loop; 1 a bulk copy per row; 2 TMA tensor stores
    diagnostic: int = 0     # output wrong on purpose: 1 no MMA, 2 no C stores, 3 empty; 7 the work, traced
    schedule: int = 0       # 0: CTA c takes tiles c, c+G, ...; 1: heaviest block rows first, snake order


#: tile configurations of the mma.sync kernel: blocksize -> (BN, WARPS_M, WARPS_N, STAGES)
MMA_CONFIGS = {
    16: (128, 1, 4, 4),
    32: (128, 1, 4, 4),
    64: (128, 2, 2, 3),
}
MAX_GENERIC_BLOCKSIZE = 128
#: dynamic shared memory a CTA may have on compute capability 9.0 (227 KiB) less the kernel's 1 KiB
#: of static shared memory (its mbarriers, padded by the 1 KiB alignment of the dynamic part)
MAX_SMEM = 226 * 1024

#: version 9 of docs/gpu-notes.md (`v9` there): two consumer warpgroups
#: (tiles 64 × 256), a producer warp, four stages, C through the 16-byte store loop
TMA_V9 = TmaConfig(2, 4, 1, 0)
TMA_WIDE = TmaConfig(2, 4, 1, 2)             # 64 × 256 tiles, one CTA per SM, TMA tensor stores
TMA_WIDE_SORTED = TmaConfig(2, 4, 1, 2, 0, 1)    # the same, heaviest block rows first, snake order
TMA_NARROW_SORTED = TmaConfig(1, 3, 1, 2, 0, 1)  # 64 × 128 tiles, two CTAs per SM, sorted, snake


def default_tma_config(mb: int, n: int, nnzb: int, sms: int) -> TmaConfig:
    """The configuration that measured fastest in each regime on an H200 (docs/gpu-notes.md):
    no more 64 × 256 tiles than SMs: wide tiles as they come (sorting cannot balance one tile per
    CTA); up to 4 per SM with short block rows (≤ 8 blocks): narrow tiles, sorted; else wide, sorted."""
    tiles = mb * ((n + 255) // 256)
    if tiles <= sms:
        return TMA_WIDE
    if tiles <= 4 * sms and nnzb <= 8 * mb:
        return TMA_NARROW_SORTED
    return TMA_WIDE_SORTED


def _config(config) -> TmaConfig:
    return config if isinstance(config, TmaConfig) else TmaConfig(*config[1:])


def _index_name(index) -> str:
    return "int" if _cuda.dtype_name(index) == "int32" else "long long"


@functools.lru_cache(maxsize=None)
def tma_kernel(cfg: TmaConfig, bf16: bool, out_f32: bool, index: str, device: int) -> _cukernel.Kernel:
    epi, stages, wg = cfg.epilogue, cfg.stages, cfg.warpgroups
    out_size = 4 if out_f32 else 2
    ep = wg * 64 * 128 * 2 if epi == 2 else wg * 64 * (128 * out_size + 16)
    smem = lambda st: st * (64 * 64 + 64 * 128 * wg) * 2 + 1024 + ep   # + room to align the stages to 1 KiB
    while smem(stages) > MAX_SMEM and stages > 2:    # a float32 C's staging tile is twice as large
        stages -= 1
    opts = (f"-DWG={wg}", f"-DSTAGES={stages}", f"-DWS={cfg.producer_warp}", f"-DEPI={epi}",
            f"-DDIAG={cfg.diagnostic}", f"-DSCHED={cfg.schedule}",
            f"-DIS_BF16={int(bf16)}", f"-DOUT_KIND={int(out_f32)}", f"-DINDEX_T={index}")
    threads = wg * 128 + (32 if cfg.producer_warp else 0)
    return _cukernel.load("bsr_spmm_tma", opts, "<128s128s128sQQQqQiiQ", (threads,), smem(stages))


@functools.lru_cache(maxsize=None)
def mma_kernel(bs: int, bn: int, wm: int, wn: int, stages: int, bf16: bool, out_f32: bool, index: str,
               device: int) -> _cukernel.Kernel:
    opts = (f"-DBS={bs}", f"-DBN={bn}", f"-DWARPS_M={wm}", f"-DWARPS_N={wn}", f"-DSTAGES={stages}",
            f"-DIS_BF16={int(bf16)}", f"-DOUT_KIND={int(out_f32)}", f"-DINDEX_T={index}")
    smem = stages * (bs * (bs + 8) + bs * (bn + 8)) * 2
    return _cukernel.load("bsr_spmm_mma", opts, "<QQQQQqQ", (wm * wn * 32,), smem)


_VAL_KIND = {"float16": 0, "bfloat16": 1, "float32": 2, "float64": 3}
_OUT = {"float16": ("unsigned short", 2), "bfloat16": ("unsigned short", 1),
        "float32": ("float", 0), "float64": ("double", 0)}


@functools.lru_cache(maxsize=None)
def generic_kernel(val: str, out: str, index: str, device: int) -> _cukernel.Kernel:
    out_t, out_kind = _OUT[out]
    acc = "double" if "float64" in (val, out) else "float"
    opts = (f"-DVAL_KIND={_VAL_KIND[val]}", f"-DOUT_T={out_t}", f"-DOUT_KIND={out_kind}", f"-DACC_T={acc}",
            f"-DINDEX_T={index}")
    return _cukernel.load("bsr_spmm_generic", opts, "<QQQQQqi", (64, 4), 0)


@functools.lru_cache(maxsize=None)
def _is_sm90(device: int) -> bool:
    import cupy
    return cupy.cuda.Device(device).compute_capability == "90"


@functools.lru_cache(maxsize=None)
def _sm_count(device: int) -> int:
    import cupy
    return int(cupy.cuda.Device(device).attributes["MultiProcessorCount"])


def mma_eligible(A, B, out_dtype, C=None) -> bool:
    """Whether the tensor-core kernels take this product (else the generic one does). They read and
    write 16 bytes at a time, so A's values, B and C (an `out` may be a view at any offset) must
    start on a 16-byte boundary."""
    name = _cuda.dtype_name(A.data.dtype)
    return (name in ("float16", "bfloat16") and np.dtype(B.dtype) == np.dtype(A.data.dtype)
            and _cuda.dtype_name(out_dtype) in (name, "float32") and A.blocksize in MMA_CONFIGS
            and B.shape[1] % 8 == 0 and B.data.ptr % 16 == 0 and A.data.data.ptr % 16 == 0
            and (C is None or C.data.ptr % 16 == 0))


def wgmma_eligible(A, B, out_dtype, C=None) -> bool:
    return A.blocksize == 64 and mma_eligible(A, B, out_dtype, C) and _is_sm90(_cuda.current_device())


_NO_MAP = bytes(128)
_PACKED_KEPT = 16          # parameter lists kept per launch shape


def plan(A, B, C, *, config=None, row_order=None, trace=None):
    """The launch that computes C = A @ B (C allocated by the caller, of the output dtype), or None
    where nothing needs launching (C was zero-filled here).

    `config` picks the kernel: a `TmaConfig` or its tuple ("tma", warpgroups, stages, ...) for the TMA
    kernel, (BN, WARPS_M, WARPS_N, STAGES) for the mma.sync kernel; `row_order` (int32 block-row
    permutation) sets the order in which block rows are taken (SCHED 1 configurations compute and
    cache one when none is given); `trace`: a uint64 device buffer of 64 per CTA for DIAG 7.

    With the defaults, and A checked once (its structure verdict, formats.checked_once), the choice
    of kernel and everything but the addresses of A's values, B and C is kept in the verdict per
    (n, dtypes, device, alignments): a later call only packs those addresses, or reuses the
    parameters packed for the same three addresses (CuPy's memory pool hands a freed C back, so a
    model's stream of calls finds them; on an H100 this saved 1.7-1.9 µs of the call's ~15).
    """
    if A.shape[0] == 0 or B.shape[1] == 0:
        return None
    if config is None and row_order is None and trace is None and getattr(A, "verdict", None) is not None:
        key = ("spmm launch", B.shape[1], B.dtype, C.dtype, A.data.dtype, _cuda.current_device(),
               B.data.ptr % 16 == 0, C.data.ptr % 16 == 0, A.data.data.ptr % 16 == 0)
        shape = derived(A, key, lambda: _launch_shape(A, B, C, None, None, None))
    else:
        shape = _launch_shape(A, B, C, config, row_order, trace)
    return shape.bind(A, B, C)


class _LaunchShape(NamedTuple):
    """A launch less the addresses of A's values, B and C: the kernel, its grid, and the other
    parameters (`kind` "tma", "mma" or "generic"; "zero": no stored block, C is zero-filled)."""
    kind: str
    kernel: object = None
    grid: tuple = ()
    n: int = 0
    k: int = 0
    m: int = 0
    extra: tuple = ()       # tma: (indptr, indices, order, trace, mb, ntiles, nnzb, dtype, out dtype, C map?)
    keep: tuple = ()        # the structure arrays the launch points into
    packed: dict = None     # (address of A's values, of B, of C) -> their parameters, the last few packed

    def bind(self, A, B, C):
        if self.kind == "zero":
            C.fill(0)
            return None
        addresses = (A.data.data.ptr, B.data.ptr, C.data.ptr)   # CuPy's pool hands the same C back
        params = self.packed.get(addresses)
        if params is None:
            params = self._pack(A, B, C)
            if len(self.packed) >= _PACKED_KEPT:
                self.packed.clear()
            self.packed[addresses] = params
        return _cukernel.Launch(self.kernel, self.grid, params, (A.data, B, C) + self.keep)

    def _pack(self, A, B, C) -> bytes:
        ptr = _cukernel.ptr
        if self.kind == "tma":
            indptr, indices, order, trace, mb, ntiles, nnzb, dname, oname, c_map = self.extra
            tm_a = _cukernel.tensor_map_2d(int(A.data.data.ptr), 64, nnzb * 64, dname)
            tm_b = _cukernel.tensor_map_2d(int(B.data.ptr), self.n, self.k, dname)
            tm_c = _cukernel.tensor_map_2d(int(C.data.ptr), self.n, self.m, oname) if c_map else _NO_MAP
            params = struct.pack(self.kernel.fmt, tm_a, tm_b, tm_c, ptr(indptr), ptr(indices), ptr(C), self.n,
                                 ptr(order), mb, ntiles, ptr(trace))
        elif self.kind == "mma":
            indptr, indices, order = self.extra
            params = struct.pack(self.kernel.fmt, ptr(indptr), ptr(indices), ptr(A.data), ptr(B), ptr(C), self.n,
                                 ptr(order))
        else:
            indptr, indices, b = self.extra
            params = struct.pack(self.kernel.fmt, ptr(indptr), ptr(indices), ptr(A.data), ptr(B), ptr(C), self.n, b)
        return params


def _launch_shape(A, B, C, config, row_order, trace) -> _LaunchShape:
    m, k = A.shape
    n = B.shape[1]
    b = A.blocksize
    mb = m // b
    out_dtype = C.dtype
    indptr, indices = structure_in_one_index_type(A)
    index = _index_name(indices.dtype)
    dev = _cuda.current_device()
    is_tma = isinstance(config, TmaConfig) or (isinstance(config, tuple) and len(config) > 0 and config[0] == "tma")
    wgmma = wgmma_eligible(A, B, out_dtype, C)
    if config is None and wgmma:
        config, is_tma = default_tma_config(mb, n, len(indices), _sm_count(dev)), True
    order = row_order
    if is_tma:
        if not wgmma:
            raise ValueError("the TMA kernel takes blocksize 64, float16/bfloat16, n % 8 == 0, operands on 16-byte "
                             "boundaries, on compute capability 9.0")
        cfg = _config(config)
        if cfg.epilogue == 2 and _cuda.dtype_name(out_dtype) == "float32":
            cfg = cfg._replace(epilogue=0)   # TMA stores: 16-bit C
        nnzb = len(indices)
        if nnzb == 0:
            return _LaunchShape("zero")
        dname = _cuda.dtype_name(A.data.dtype)
        kern = tma_kernel(cfg, dname == "bfloat16", _cuda.dtype_name(out_dtype) == "float32", index, dev)
        ntiles = (n + 128 * cfg.warpgroups - 1) // (128 * cfg.warpgroups)
        grid = min(mb * ntiles, kern.resident)     # persistent: every CTA resident at once
        if cfg.schedule == 1 and order is None:
            order = heavy_rows_first(A)
        return _LaunchShape("tma", kern, (grid, 1, 1), n, k, m,
                            (indptr, indices, order, trace, mb, ntiles, nnzb, dname, _cuda.dtype_name(out_dtype),
                             cfg.epilogue == 2), (indptr, indices, order), {})
    if wgmma or mma_eligible(A, B, out_dtype, C):
        bn, wm, wn, stages = config or MMA_CONFIGS[b]
        kern = mma_kernel(b, bn, wm, wn, stages, _cuda.dtype_name(A.data.dtype) == "bfloat16",
                          _cuda.dtype_name(out_dtype) == "float32", index, dev)
        return _LaunchShape("mma", kern, (mb, (n + bn - 1) // bn, 1), n, k, m, (indptr, indices, order),
                            (indptr, indices, order), {})
    if b > MAX_GENERIC_BLOCKSIZE:
        raise ValueError(f"blocksize {b} is above the {MAX_GENERIC_BLOCKSIZE} the GPU kernels take")
    if np.dtype(B.dtype) != np.dtype(A.data.dtype):
        raise TypeError(f"bsr_spmm takes A and B of one dtype, got {A.data.dtype} and {B.dtype}")
    kern = generic_kernel(_cuda.dtype_name(A.data.dtype), _cuda.dtype_name(out_dtype), index, dev)
    return _LaunchShape("generic", kern, (mb, (n + 63) // 64, 1), n, k, m, (indptr, indices, b), (indptr, indices), {})


def heavy_rows_first(A):
    """int32 permutation of A's block rows, most stored blocks first."""
    import cupy
    mb = A.shape[0] // A.blocksize

    def make():
        counts = cupy.diff(A.indptr[: mb + 1].astype(np.int64))
        return cupy.argsort(-counts).astype(np.int32)
    return derived(A, "heavy rows first", make)


def bsr_spmm(A, B, out_dtype, *, config=None, row_order=None, out=None, trace=None):
    """C = A @ B for a BSR view A and a C-contiguous B, CuPy arrays of one dtype; C is fresh (or `out`),
    computed by the kernel `plan` picks, launched from Python on CuPy's current stream."""
    import cupy
    C = out if out is not None else cupy.empty((A.shape[0], B.shape[1]), dtype=out_dtype)
    launch = plan(A, B, C, config=config, row_order=row_order, trace=trace)
    if launch is not None:
        _cukernel.launch(launch, _cuda.current_stream_ptr())
    return C
