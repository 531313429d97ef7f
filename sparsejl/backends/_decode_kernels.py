"""Prepared GPU weights (sparsejl.prepare) and their products with few columns (kernels/decode_spmm.cu).

`prepare` converts a validated CSR or BSR view of CuPy arrays, on the device, into the layout the
kernel reads: BSR with 16×16, 32×32 or 64×64 blocks keeps its own arrays (copied, values in the
prepared dtype); everything else becomes bitmap tiles (16 rows × 64 columns: 16 uint64 masks and
the tile's values packed, kernels/bitmap_prepare.cu), 2·density + 1/8 bytes per weight in fp16.
`spmm` picks the kernel's column slice by n (8, 16, 32 or 64 columns per CTA, more columns by more
CTAs) and how many CTAs split a row block's tiles; it never waits for the device.
"""

from __future__ import annotations

import ctypes
import functools
import struct
import threading

import numpy as np

from . import _cuda, _cukernel
from ._gpu_conversions import bsr_to_csr

PARAMS = "<QQQQQQQiiiii"
GROUP_ROWS, BITMAP_TILE, BITMAP_GROUPS_PER_CTA = 16, 64, 4
BSR_BLOCKSIZES = (16, 32, 64)
PREPARED_DTYPES = ("float16", "bfloat16")


def column_slices(n: int) -> int:
    """n8 slices of C per CTA: the fewest that hold n columns, at most 8 (64 columns)."""
    return 1 if n <= 8 else 2 if n <= 16 else 4 if n <= 32 else 8


@functools.lru_cache(maxsize=None)
def decode_kernel(bitmap: bool, bs: int, nj: int, bf16: bool, device: int) -> _cukernel.Kernel:
    opts = (f"-DBITMAP={int(bitmap)}", f"-DBS={bs}", f"-DNJ={nj}", f"-DIS_BF16={int(bf16)}")
    threads = 32 * (BITMAP_GROUPS_PER_CTA if bitmap else bs // 16)
    return _cukernel.load("decode_spmm", opts, PARAMS, (threads,), 0)


@functools.lru_cache(maxsize=None)
def _prepare_module(device: int):
    import cupy
    source, _, _ = _cukernel.kernel_sources("bitmap_prepare")
    return cupy.RawModule(code=source, options=("-std=c++17",))


def prepare(view, dtype=None):
    """The prepared weight (formats.Prepared) of a fully checked CSR/BSR view of CuPy arrays."""
    import cupy
    from ..formats import Prepared
    dtype = np.dtype(dtype) if dtype is not None else view.dtype
    if dtype.name not in PREPARED_DTYPES:
        raise TypeError(f"a prepared weight holds float16 or bfloat16 values, got {dtype.name}; "
                        "pass dtype=cupy.float16 (or bfloat16) to convert")
    m, k = view.shape
    if m >= 2**31 or k >= 2**31:
        raise ValueError(f"shape {view.shape}: the decoding kernels take fewer than 2**31 rows and columns")
    if view.format == "bsr" and view.blocksize in BSR_BLOCKSIZES:
        b = view.blocksize
        nnzb = int(view.indptr[-1])
        if nnzb >= 2**31:
            raise ValueError(f"{nnzb} stored blocks: the decoding kernels index at most 2**31 - 1")
        return Prepared("bsr", view.shape, dtype, values=view.data[:nnzb].astype(dtype, order="C"),
                        index=view.indices[:nnzb].astype(np.int32), tile_ptr=view.indptr.astype(np.int32),
                        blocksize=b, tiles=nnzb, row_blocks=m // b, stored=nnzb * b * b)
    csr = bsr_to_csr(view) if view.format == "bsr" else view
    indptr = csr.indptr.astype(np.int64)
    nnz = int(indptr[-1])
    if nnz >= 2**31:
        raise ValueError(f"{nnz} stored values: the bitmap format indexes them with 32-bit offsets (at most 2**31 - 1)")
    groups = -(-m // GROUP_ROWS)
    row_blocks = -(-groups // BITMAP_GROUPS_PER_CTA)
    padded = row_blocks * BITMAP_GROUPS_PER_CTA       # whole CTAs: the last one's extra groups are empty
    T = -(-k // BITMAP_TILE)
    tiles = padded * T
    masks = cupy.zeros(tiles * GROUP_ROWS, dtype=np.uint64)
    values = cupy.zeros(nnz + 8, dtype=dtype)
    tile_start = cupy.zeros(tiles + 1, dtype=np.int64)
    if nnz and tiles:
        mod = _prepare_module(_cuda.current_device())
        indices = csr.indices[:nnz].astype(np.int64)
        data = csr.data[:nnz].astype(np.float32)
        grid = (min(-(-m // 8), 65535 * 8),)
        mod.get_function("bitmap_mark")(grid, (256,), (indptr, indices, np.int64(m), np.int64(T), masks))
        counts = cupy.empty(tiles, dtype=np.int64)
        mod.get_function("bitmap_count")((min(-(-tiles // 256), 65535 * 8),), (256,), (masks, np.int64(tiles), counts))
        cupy.cumsum(counts, out=tile_start[1:])
        packed = cupy.zeros(nnz + 8, dtype=np.float32)
        mod.get_function("bitmap_pack")(grid, (256,), (indptr, indices, data, np.int64(m), np.int64(T), masks,
                                                       tile_start, packed))
        values = packed.astype(dtype)
    return Prepared("bitmap", view.shape, dtype, values=values, index=masks, tile_ptr=tile_start[:-1].astype(np.int32),
                    blocksize=view.blocksize, tiles=T, row_blocks=row_blocks, stored=nnz)


def splits(P, nj: int, chunks: int, kernel) -> int:
    """CTAs that share one row block's tiles: enough CTAs to fill the device once, each with at
    least 4 tiles (bitmap) or 2 blocks (BSR) to walk."""
    rows = max(1, P.row_blocks * chunks)
    want = -(-kernel.resident // rows)
    per_row = P.tiles if P.layout == "bitmap" else P.tiles // max(1, P.row_blocks)
    most = max(1, per_row // (4 if P.layout == "bitmap" else 2))
    return int(max(1, min(want, most)))


# fp32 partial tiles and arrival counters, by (device, stream): the largest so far is reused and
# none is freed, because a CUDA graph that captured a product keeps the addresses it was given.
_workspaces: dict = {}


def _workspace(floats: int, counters: int, stream: int):
    import cupy
    kept = _workspaces.setdefault((_cuda.current_device(), stream), [])
    if not kept or kept[-1][0].size < floats or kept[-1][1].size < counters:
        size_f = max(floats, kept[-1][0].size if kept else 0)
        size_c = max(counters, kept[-1][1].size if kept else 0)
        kept.append((cupy.empty(max(size_f, 1), dtype=np.float32), cupy.zeros(max(size_c, 1), dtype=np.int32)))
    return kept[-1]


_B_AND_C = struct.Struct("<QQ")
_B_AT = struct.calcsize("<QQQ")     # B and C are the 4th and 5th parameters


def _plan(P, n: int, stream: int, ks) -> _cukernel.Launch:
    """The launch of P's kernel for n columns on `stream`: its parameters packed once, into a
    buffer of the launch's own where each call writes B's and C's addresses (at _B_AT)."""
    m, k = P.shape
    nj = column_slices(n)
    bitmap = P.layout == "bitmap"
    kernel = decode_kernel(bitmap, 64 if bitmap else P.blocksize, nj, P.dtype.name == "bfloat16",
                           _cuda.current_device())
    chunks = -(-n // (8 * nj))
    ks = int(ks) if ks is not None else splits(P, nj, chunks, kernel)
    tile_out = kernel.threads[0] // 32 * GROUP_ROWS * 8 * nj
    ws, cnt = (None, None) if ks == 1 else _workspace(P.row_blocks * chunks * ks * tile_out, P.row_blocks * chunks,
                                                      stream)
    params = struct.pack(PARAMS, P.values.data.ptr, P.index.data.ptr, P.tile_ptr.data.ptr, 0, 0,
                         _cukernel.ptr(ws), _cukernel.ptr(cnt), m, k, n, P.tiles if bitmap else 0, ks)
    return _cukernel.Launch(kernel, (P.row_blocks, ks, chunks), ctypes.create_string_buffer(params, len(params)),
                            (ws, cnt))


def spmm(P, B, C, *, ks=None):
    """C = P @ B (B: k×n, C: m×n, row-major, P's dtype) on the current stream; `ks` overrides the
    split (diagnostics). The launch's plan is kept on P by (n, device, stream, thread)."""
    m = P.shape[0]
    n = B.shape[1]
    if m == 0 or n == 0:
        return C
    stream = _cuda.current_stream_ptr()
    key = (n, _cuda.current_device(), stream, threading.get_ident(), ks)
    plan = P.plans.get(key)
    if plan is None:
        plan = P.plans[key] = _plan(P, n, stream, ks)
    _B_AND_C.pack_into(plan.params, _B_AT, B.data.ptr, C.data.ptr)
    _cukernel.launch(plan, stream)
    return C
