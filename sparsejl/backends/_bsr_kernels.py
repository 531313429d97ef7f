"""Block-sparse (BSR) × dense SpMM kernels of the "cupy" backend, compiled by NVRTC through CuPy.

Two kernels, both reading SciPy's BSR arrays and row-major B/C in place:

* ``bsr_spmm_mma``: tensor cores (``mma.sync`` m16n8k16, fp16 or bf16 in, fp32 accumulate) with a
  ``cp.async`` pipeline; blocksizes 16, 32, 64; ``n`` a multiple of 8. One CTA per
  (block row, ``BN`` columns) tile walks the stored blocks of its block row.
* ``bsr_spmm_tma`` (the default for blocksize 64, fp16/bf16, on compute capability 9.0): Hopper's
  bulk tensor copies (TMA, 128-byte swizzled 64×64 boxes, mbarrier-completed), issued by a
  producer warp, feed warpgroup MMAs (``wgmma``) in persistent CTAs; C leaves through shared
  memory in 16-byte stores. Compiled by
  NVRTC for sm_90a through CuPy's NVRTC bindings (CuPy's RawModule targets sm_90).
* ``bsr_spmm_wgmma``: the same MMAs fed by per-thread ``cp.async`` copies (kept for comparison:
  the address arithmetic of the copies took the warps' issue slots, 1.5x slower than TMA).
* ``bsr_spmm_generic``: CUDA cores, any value dtype and blocksize up to 128, any ``n``.

cuSPARSE has BSR and Blocked-ELL SpMM too; the benchmark compares them (docs/gpu-notes.md).
"""

from __future__ import annotations

import collections
import functools

import numpy as np

from . import _cuda

MMA_SOURCE = r"""// Block-sparse (BSR) x dense SpMM on tensor cores: C[m,n] = A[m,k] (BSR, b x b blocks) @ B[k,n].
// One CTA computes a BS x BN tile of C: block row `brow`, columns n0..n0+BN-1. It walks the
// stored blocks of that block row; for each it copies the A block and the BS rows of B that the
// block's column selects into shared memory (cp.async, STAGES deep) and runs mma.sync m16n8k16
// (fp16 or bf16 in, fp32 accumulate). B and C are row-major with leading dimension n.
typedef unsigned short u16;
typedef unsigned int u32;

#ifndef IS_BF16
#define IS_BF16 0
#endif
#ifndef OUT_KIND
#define OUT_KIND 0   // 0: same 16-bit type as the inputs, 1: float32
#endif

__device__ __forceinline__ void cp_async16(u32 saddr, const void* gptr, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(saddr), "l"(gptr), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(u32 (&r)[4], u32 saddr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(saddr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(u32 (&r)[4], u32 saddr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(saddr));
}
__device__ __forceinline__ void mma16816(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
#if IS_BF16
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
#endif
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ u32 pack2(float lo, float hi) {
    u32 r;
#if IS_BF16
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
#else
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
#endif
    return r;
}

__device__ __forceinline__ void store_pair(void* C, long long idx, float x, float y, bool ok0, bool ok1) {
#if OUT_KIND == 1
    float* c = (float*)C + idx;
    if (ok0 && ok1) { *(float2*)c = make_float2(x, y); }
    else if (ok0) { c[0] = x; }
#else
    u16* c = (u16*)C + idx;
    u32 v = pack2(x, y);
    if (ok0 && ok1) { *(u32*)c = v; }
    else if (ok0) { c[0] = (u16)(v & 0xffffu); }
#endif
}

#define MAX_ROW_BLOCKS 1024
#define A_LD (BS + 8)
#define B_LD (BN + 8)
#define A_TILE (BS * A_LD)
#define B_TILE (BS * B_LD)
#define NTHREADS (WARPS_M * WARPS_N * 32)
#define WM (BS / WARPS_M)
#define WN (BN / WARPS_N)
#define MT (WM / 16)
#define NT (WN / 8)

extern "C" __global__ void __launch_bounds__(NTHREADS)
bsr_spmm_mma(const INDEX_T* __restrict__ indptr, const INDEX_T* __restrict__ indices,
             const u16* __restrict__ data, const u16* __restrict__ B, void* __restrict__ C,
             long long n, const int* __restrict__ row_order)
{
    extern __shared__ __align__(16) u16 smem[];
    u16* As = smem;
    u16* Bs = smem + STAGES * A_TILE;

    const int brow = row_order ? row_order[blockIdx.x] : blockIdx.x;
    const long long n0 = (long long)blockIdx.y * BN;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp / WARPS_N, wn = warp % WARPS_N;

    const long long start = indptr[brow], stop = indptr[brow + 1];
    const int nblk = (int)(stop - start);

    // the block row's column indices, loaded once: the B rows each stage copies depend on them,
    // and a global load inside the pipeline would stall every stage on its latency
    __shared__ int s_col[MAX_ROW_BLOCKS];
    for (int i = tid; i < nblk && i < MAX_ROW_BLOCKS; i += NTHREADS) s_col[i] = (int)indices[start + i];
    __syncthreads();

    auto load_stage = [&](int slot, int it) {
        const long long p = start + it;
        const long long bcol = it < MAX_ROW_BLOCKS ? (long long)s_col[it] : (long long)indices[p];
        const u16* ablk = data + p * (long long)(BS * BS);
        u16* as = As + slot * A_TILE;
        #pragma unroll
        for (int c = tid; c < BS * BS / 8; c += NTHREADS) {
            int r = c / (BS / 8), cc = (c % (BS / 8)) * 8;
            cp_async16((u32)__cvta_generic_to_shared(as + r * A_LD + cc), ablk + r * BS + cc, 16);
        }
        const u16* brows = B + bcol * BS * n;
        u16* bs = Bs + slot * B_TILE;
        #pragma unroll
        for (int c = tid; c < BS * BN / 8; c += NTHREADS) {
            int r = c / (BN / 8), cc = (c % (BN / 8)) * 8;
            long long col = n0 + cc;
            bool ok = col < n;
            const u16* src = brows + r * n + (ok ? col : 0);
            cp_async16((u32)__cvta_generic_to_shared(bs + r * B_LD + cc), src, ok ? 16 : 0);
        }
    };

    float acc[MT][NT][4];
    #pragma unroll
    for (int i = 0; i < MT; ++i)
        #pragma unroll
        for (int j = 0; j < NT; ++j)
            #pragma unroll
            for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.f;

    #pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < nblk) load_stage(s, s);
        cp_async_commit();
    }

    for (int it = 0; it < nblk; ++it) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        {
            int nxt = it + STAGES - 1;
            if (nxt < nblk) load_stage(nxt % STAGES, nxt);
            cp_async_commit();
        }
        const int slot = it % STAGES;
        const u32 as = (u32)__cvta_generic_to_shared(As + slot * A_TILE);
        const u32 bs = (u32)__cvta_generic_to_shared(Bs + slot * B_TILE);
        #pragma unroll
        for (int kk = 0; kk < BS; kk += 16) {
            u32 af[MT][4];
            #pragma unroll
            for (int i = 0; i < MT; ++i) {
                int r = wm * WM + i * 16 + (lane & 15);
                int c = kk + (lane >> 4) * 8;
                ldmatrix_x4(af[i], as + (r * A_LD + c) * 2);
            }
            u32 bf[NT][2];
            #pragma unroll
            for (int j = 0; j < NT; j += 2) {
                int r = kk + (lane & 15);
                int c = wn * WN + j * 8 + (lane >> 4) * 8;
                u32 t[4];
                ldmatrix_x4_trans(t, bs + (r * B_LD + c) * 2);
                bf[j][0] = t[0]; bf[j][1] = t[1]; bf[j + 1][0] = t[2]; bf[j + 1][1] = t[3];
            }
            #pragma unroll
            for (int i = 0; i < MT; ++i)
                #pragma unroll
                for (int j = 0; j < NT; ++j) mma16816(acc[i][j], af[i], bf[j][0], bf[j][1]);
        }
    }
    cp_async_wait<0>();

    const long long row0 = (long long)brow * BS + wm * WM;
    #pragma unroll
    for (int i = 0; i < MT; ++i) {
        #pragma unroll
        for (int j = 0; j < NT; ++j) {
            long long col = n0 + wn * WN + j * 8 + (lane & 3) * 2;
            long long r = row0 + i * 16 + (lane >> 2);
            bool ok0 = col < n, ok1 = col + 1 < n;
            store_pair(C, r * n + col, acc[i][j][0], acc[i][j][1], ok0, ok1);
            store_pair(C, (r + 8) * n + col, acc[i][j][2], acc[i][j][3], ok0, ok1);
        }
    }
}
"""

GENERIC_SOURCE = r"""// BSR x dense SpMM on CUDA cores, for what the tensor-core kernel does not take (float32/64, any
// blocksize up to 128, any n). Thread (tx, ty) of a 64x4 CTA owns column n0+tx of rows ty, ty+4,
// ... of block row blockIdx.x; values accumulate in ACC_T (float, or double for float64).
typedef unsigned short u16;
typedef unsigned int u32;

__device__ __forceinline__ float to_f(u16 v) {
#if VAL_KIND == 1
    return __uint_as_float(((u32)v) << 16);
#else
    float f; asm("cvt.f32.f16 %0, %1;\n" : "=f"(f) : "h"(v)); return f;
#endif
}
#if VAL_KIND == 2
typedef float VAL_T;
#define LOAD(p, i) ((ACC_T)(p)[i])
#elif VAL_KIND == 3
typedef double VAL_T;
#define LOAD(p, i) ((ACC_T)(p)[i])
#else
typedef u16 VAL_T;
#define LOAD(p, i) ((ACC_T)to_f((p)[i]))
#endif

__device__ __forceinline__ void store_out(OUT_T* C, long long i, ACC_T v) {
#if OUT_KIND == 0
    C[i] = (OUT_T)v;
#elif OUT_KIND == 1
    u32 bits = __float_as_uint((float)v);
    bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even (inputs are finite here)
    C[i] = (u16)(bits >> 16);
#else
    u16 h; asm("cvt.rn.f16.f32 %0, %1;\n" : "=h"(h) : "f"((float)v)); C[i] = h;
#endif
}

#define MAXR 32
extern "C" __global__ void __launch_bounds__(256)
bsr_spmm_generic(const INDEX_T* __restrict__ indptr, const INDEX_T* __restrict__ indices,
                 const VAL_T* __restrict__ data, const VAL_T* __restrict__ B, OUT_T* __restrict__ C,
                 long long n, int b)
{
    const long long col = (long long)blockIdx.y * 64 + threadIdx.x;
    const int ty = threadIdx.y;
    const long long brow = blockIdx.x;
    ACC_T acc[MAXR];
    #pragma unroll
    for (int r = 0; r < MAXR; ++r) acc[r] = 0;
    if (col < n) {
        for (long long p = indptr[brow]; p < indptr[brow + 1]; ++p) {
            const VAL_T* blk = data + p * (long long)b * b;
            const VAL_T* bcol = B + (long long)indices[p] * b * n + col;
            for (int kk = 0; kk < b; ++kk) {
                ACC_T bv = LOAD(bcol, (long long)kk * n);
                #pragma unroll
                for (int r = 0; r < MAXR; ++r) {
                    int row = ty + 4 * r;
                    if (row < b) acc[r] += LOAD(blk, row * b + kk) * bv;
                }
            }
        }
        #pragma unroll
        for (int r = 0; r < MAXR; ++r) {
            int row = ty + 4 * r;
            if (row < b) store_out(C, (brow * b + row) * n + col, acc[r]);
        }
    }
}
"""

def _wgmma_source():
    """The wgmma kernel's CUDA source (its 64-register operand lists are written out here)."""
    regs = ", ".join(f"%{i}" for i in range(64))
    outs = ", ".join(f'"+f"(d[{i}])' for i in range(64))
    return r'''// Block-sparse SpMM for 64x64 blocks on Hopper's warpgroup tensor-core instructions (wgmma,
// sm_90a). A persistent CTA of WG warpgroups walks a list of output tiles (one block row x
// WG*128 columns of C) and, inside each, the block row's stored blocks. Every block is one
// pipeline step: the 64x64 A block and the 64 rows of B it selects are copied with cp.async,
// STAGES deep, into shared memory in the 128-byte-swizzled layouts wgmma reads (A K-major as
// stored, B MN-major: row-major B with the transpose flag). The copies run on across tile
// boundaries, so a tile's first blocks are already in flight while the previous tile finishes.
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
#ifndef SWIZZLE
#define SWIZZLE 1
#endif
#define BS 64
#define WN 128
#define BN (WG * WN)
#define NTHREADS (WG * 128)
#define A_BYTES (BS * BS * 2)
#define B_BYTES (BS * BN * 2)
#define STAGE_BYTES (A_BYTES + B_BYTES)

__device__ __forceinline__ void cp_async16(u32 saddr, const void* gptr, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(saddr), "l"(gptr), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(N)); }
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" :: "n"(N) : "memory"); }

// shared-memory matrix descriptor: start, leading/stride byte offsets, swizzle (1 = 128-byte)
__device__ __forceinline__ u64 smem_desc(u32 saddr, u32 lbo, u32 sbo, u32 swizzle) {
    u64 d = 0;
    d |= (u64)((saddr & 0x3FFFF) >> 4);
    d |= (u64)((lbo >> 4) & 0x3FFF) << 16;
    d |= (u64)((sbo >> 4) & 0x3FFF) << 32;
    d |= (u64)swizzle << 62;
    return d;
}

__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[64], u64 da, u64 db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
#if IS_BF16
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
#else
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
#endif
        "{''' + regs + r'''}, %64, %65, p, 1, 1, 0, 1;\n}\n"
        : ''' + outs + r'''
        : "l"(da), "l"(db), "r"(1));
}

__device__ __forceinline__ u32 pack2(float lo, float hi) {
    u32 r;
#if IS_BF16
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
#else
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
#endif
    return r;
}

__device__ __forceinline__ void store_pair(void* C, long long idx, float x, float y, bool ok0, bool ok1) {
#if OUT_KIND == 1
    float* c = (float*)C + idx;
    if (ok0 && ok1) { *(float2*)c = make_float2(x, y); }
    else if (ok0) { c[0] = x; }
#else
    u16* c = (u16*)C + idx;
    u32 v = pack2(x, y);
    if (ok0 && ok1) { *(u32*)c = v; }
    else if (ok0) { c[0] = (u16)(v & 0xffffu); }
#endif
}

// byte offset of 16-byte chunk `c` (0..7) of 128-byte row `r` in a 128B-swizzled atom stack
__device__ __forceinline__ u32 sw128(u32 r, u32 c) { return (r >> 3) * 1024 + (r & 7) * 128 + ((c ^ (r & 7)) << 4); }

extern "C" __global__ void __launch_bounds__(NTHREADS)
bsr_spmm_wgmma(const INDEX_T* __restrict__ indptr, const INDEX_T* __restrict__ indices,
               const u16* __restrict__ data, const u16* __restrict__ B, void* __restrict__ C,
               long long n, const int* __restrict__ row_order, int mb, int ntiles)
{
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const u32 sbase = ((u32)__cvta_generic_to_shared(smem_raw) + 1023u) & ~1023u;
    const int tid = threadIdx.x, lane = tid & 31, warp = (tid >> 5) & 3, wg = tid >> 7;
    const int total = mb * ntiles;

    // ---- the loader's cursor: the next block to copy, its column index loaded one call ahead
    // (a load whose value is first used by the next call does not stall this one)
    int ld_tile = blockIdx.x, ld_it = 0, ld_nblk = 0, ld_step = 0;
    long long ld_start = 0, ld_n0 = 0, ld_bcol = 0;
    auto enter_tiles = [&]() {      // from an exhausted tile to the next one with blocks
        while (ld_tile < total) {
            int ri = ld_tile % mb;
            int row = row_order ? row_order[ri] : ri;
            ld_start = indptr[row];
            ld_nblk = (int)(indptr[row + 1] - ld_start);
            ld_it = 0;
            ld_n0 = (long long)(ld_tile / mb) * BN;
            if (ld_nblk > 0) break;
            ld_tile += gridDim.x;
        }
        if (ld_tile < total) ld_bcol = indices[ld_start];
    };
    enter_tiles();
    auto issue_next = [&]() {
        if (ld_tile < total) {
            const long long p = ld_start + ld_it;
            const long long bcol = ld_bcol;
            const long long n0 = ld_n0;
            // advance first, so that the next column index is in flight during the copies below
            if (++ld_it == ld_nblk) { ld_tile += gridDim.x; enter_tiles(); }
            else ld_bcol = indices[ld_start + ld_it];
            const u16* ablk = data + p * (long long)(BS * BS);
            const u32 as = sbase + (ld_step % STAGES) * STAGE_BYTES;
            #pragma unroll
            for (int c = tid; c < BS * BS / 8; c += NTHREADS) {          // A: row m, chunk kc
                int m = c >> 3, kc = c & 7;
#if SWIZZLE
                cp_async16(as + sw128(m, kc), ablk + m * BS + kc * 8, 16);
#else
                cp_async16(as + kc * 1024 + m * 16, ablk + m * BS + kc * 8, 16);
#endif
            }
            const u16* brows = B + bcol * BS * n;
            const u32 bs = as + A_BYTES;
            #pragma unroll
            for (int c = tid; c < BS * BN / 8; c += NTHREADS) {          // B: row k, chunk nc
                int k = c / (BN / 8), nc = c % (BN / 8);
                const int g = nc >> 4;
                long long col = n0 + nc * 8;
                bool ok = col < n;
#if SWIZZLE
                const int ng = (nc >> 3) & 1, cc = nc & 7;
                const u32 off = (k >> 3) * 2048 + ng * 1024 + (k & 7) * 128 + ((cc ^ (k & 7)) << 4);
#else
                const u32 off = (k >> 3) * (WN * 16) + (nc & 15) * 128 + (k & 7) * 16;
#endif
                cp_async16(bs + g * (BS * WN * 2) + off, brows + k * n + (ok ? col : 0), ok ? 16 : 0);
            }
        }
        ++ld_step;
        cp_async_commit();
    };

    #pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) issue_next();

    float acc[64];
    int step = 0;
    auto row_of = [&](int t) { int ri = t % mb; return row_order ? row_order[ri] : ri; };
    long long nx_lo = 0, nx_hi = 0;       // next tile's indptr pair, loaded a tile ahead
    if (blockIdx.x < total) { int r0 = row_of(blockIdx.x); nx_lo = indptr[r0]; nx_hi = indptr[r0 + 1]; }
    for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
        const int row = row_of(tile);
        const int nblk = (int)(nx_hi - nx_lo);
        const long long n0 = (long long)(tile / mb) * BN;
        if (tile + (int)gridDim.x < total) { int r1 = row_of(tile + gridDim.x); nx_lo = indptr[r1]; nx_hi = indptr[r1 + 1]; }
        #pragma unroll
        for (int i = 0; i < 64; ++i) acc[i] = 0.f;
        for (int it = 0; it < nblk; ++it, ++step) {
            cp_async_wait<STAGES - 2>();
            fence_proxy_async();
            __syncthreads();
            const u32 as = sbase + (step % STAGES) * STAGE_BYTES;
            const u32 bs = as + A_BYTES + wg * (BS * WN * 2);
            wgmma_fence();
            #pragma unroll
            for (int kk = 0; kk < BS / 16; ++kk) {
#if SWIZZLE
                u64 da = smem_desc(as + kk * 32, 16, 1024, 1);
                u64 db = smem_desc(bs + kk * 2 * 2048, 1024, 2048, 1);
#else
                u64 da = smem_desc(as + kk * 2 * 1024, 1024, 128, 0);
                u64 db = smem_desc(bs + kk * 2 * (WN * 16), WN * 16, 128, 0);
#endif
                wgmma_m64n128k16(acc, da, db);
            }
            wgmma_commit();
            wgmma_wait<1>();
            __syncthreads();
            issue_next();
        }
        wgmma_wait<0>();
        const long long r = (long long)row * BS + warp * 16 + (lane >> 2);
        #pragma unroll
        for (int j = 0; j < WN / 8; ++j) {
            long long col = n0 + wg * WN + j * 8 + (lane & 3) * 2;
            bool ok0 = col < n, ok1 = col + 1 < n;
            store_pair(C, r * n + col, acc[j * 4 + 0], acc[j * 4 + 1], ok0, ok1);
            store_pair(C, (r + 8) * n + col, acc[j * 4 + 2], acc[j * 4 + 3], ok0, ok1);
        }
    }
    cp_async_wait<0>();
}
'''


WGMMA_SOURCE = _wgmma_source()


def _tma_source():
    """The TMA + wgmma kernel's CUDA source."""
    regs = ", ".join(f"%{i}" for i in range(64))
    outs = ", ".join(f'"+f"(d[{i}])' for i in range(64))
    return r'''// Block-sparse SpMM for 64x64 blocks: Hopper's bulk tensor copies (TMA) feed warpgroup MMAs
// (wgmma). As the cp.async kernel, but one thread issues each stage's copies (an A block and the
// B rows it selects, 64x64 boxes, 128-byte swizzled by the copy engine) completing on an mbarrier,
// so the warps spend their issue slots on the MMAs and not on address arithmetic.
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
#define BS 64
#define WN 128
#define BN (WG * WN)
#define NTHREADS (WG * 128)
#define A_BYTES (BS * BS * 2)
#define B_BYTES (BS * BN * 2)
#define STAGE_BYTES (A_BYTES + B_BYTES)
#ifndef WS
#define WS 0          // 1: a separate producer warp issues the copies (warp specialisation)
#endif
#ifndef BULKSTORE
#define BULKSTORE 0   // 1: C rows leave shared memory through bulk copies (cp.async.bulk)
#endif
#define NCONSUMERS (WG * 128)
#undef NTHREADS
#define NTHREADS (NCONSUMERS + 32 * WS)
#if OUT_KIND == 1
#define OUT_SIZE 4
#else
#define OUT_SIZE 2
#endif
#define EP_LD (WN * OUT_SIZE + 16)                 // padded row of the epilogue tile, bytes
#define EP_BYTES (64 * EP_LD)
#define EP_ROW_CHUNKS (WN * OUT_SIZE / 16)
#define EP_CHUNKS (64 * EP_ROW_CHUNKS)

// a barrier over one warpgroup's 128 threads (literal ids: a register id reserves all 16 barriers)
__device__ __forceinline__ void warpgroup_bar(int wg) {
    if (wg == 0) asm volatile("bar.sync 1, 128;\n" ::: "memory");
    else asm volatile("bar.sync 2, 128;\n" ::: "memory");
}
__device__ __forceinline__ void fence_tmap(const void* p) {
    asm volatile("fence.proxy.tensormap::generic.acquire.gpu [%0], 128;\n" :: "l"(p) : "memory");
}
__device__ __forceinline__ void mbar_init(u32 bar, u32 count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" :: "r"(bar), "r"(count));
}
__device__ __forceinline__ void mbar_arrive(u32 bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" :: "r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(u32 bar, u32 bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" :: "r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(u32 bar, u32 phase) {
    asm volatile("{\n.reg .pred p;\nWAIT_%=:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
                 "@!p bra WAIT_%=;\n}\n" :: "r"(bar), "r"(phase) : "memory");
}
__device__ __forceinline__ void tma_2d(u32 dst, const void* tmap, int x, int y, u32 bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
                 :: "r"(dst), "l"(tmap), "r"(x), "r"(y), "r"(bar) : "memory");
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" :: "n"(N) : "memory"); }

__device__ __forceinline__ u64 smem_desc(u32 saddr, u32 lbo, u32 sbo, u32 swizzle) {
    u64 d = 0;
    d |= (u64)((saddr & 0x3FFFF) >> 4);
    d |= (u64)((lbo >> 4) & 0x3FFF) << 16;
    d |= (u64)((sbo >> 4) & 0x3FFF) << 32;
    d |= (u64)swizzle << 62;
    return d;
}

__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[64], u64 da, u64 db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
#if IS_BF16
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
#else
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
#endif
        "{''' + regs + r'''}, %64, %65, p, 1, 1, 0, 1;\n}\n"
        : ''' + outs + r'''
        : "l"(da), "l"(db), "r"(1));
}

__device__ __forceinline__ u32 pack2(float lo, float hi) {
    u32 r;
#if IS_BF16
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
#else
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
#endif
    return r;
}

__device__ __forceinline__ void store_pair(void* C, long long idx, float x, float y, bool ok0, bool ok1) {
#if OUT_KIND == 1
    float* c = (float*)C + idx;
    if (ok0 && ok1) { *(float2*)c = make_float2(x, y); }
    else if (ok0) { c[0] = x; }
#else
    u16* c = (u16*)C + idx;
    u32 v = pack2(x, y);
    if (ok0 && ok1) { *(u32*)c = v; }
    else if (ok0) { c[0] = (u16)(v & 0xffffu); }
#endif
}

// tmaps: two 128-byte CUtensorMaps in global memory: [0] A's values as a (nnzb*64) x 64 matrix,
// [1] B (k x n); both 64x64 boxes with 128-byte swizzle
extern "C" __global__ void __launch_bounds__(NTHREADS)
bsr_spmm_tma(const unsigned char* __restrict__ tmaps, const INDEX_T* __restrict__ indptr,
             const INDEX_T* __restrict__ indices, void* __restrict__ C, long long n,
             const int* __restrict__ row_order, int mb, int ntiles)
{
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    __shared__ __align__(8) u64 full[STAGES];
    __shared__ __align__(8) u64 empty[STAGES];
    const u32 sbase = ((u32)__cvta_generic_to_shared(smem_raw) + 1023u) & ~1023u;
    const int tid = threadIdx.x, lane = tid & 31, warp = (tid >> 5) & 3, wg = tid >> 7;
    const int total = mb * ntiles;
    const void* tmA = tmaps;
    const void* tmB = tmaps + 128;
    const int producer = WS ? NCONSUMERS : 0;   // the thread that issues the copies

    if (tid == producer) {
        fence_tmap(tmA);
        fence_tmap(tmB);
        for (int s = 0; s < STAGES; ++s) {
            mbar_init((u32)__cvta_generic_to_shared(&full[s]), 1);
            mbar_init((u32)__cvta_generic_to_shared(&empty[s]), NCONSUMERS / 32);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    // the producer's cursor (thread 0 only): next block to copy
    int ld_tile = blockIdx.x, ld_it = 0, ld_nblk = 0, ld_step = 0;
    long long ld_start = 0, ld_n0 = 0;
    auto enter_tiles = [&]() {
        while (ld_tile < total) {
            int ri = ld_tile % mb;
            int row = row_order ? row_order[ri] : ri;
            ld_start = indptr[row];
            ld_nblk = (int)(indptr[row + 1] - ld_start);
            ld_it = 0;
            ld_n0 = (long long)(ld_tile / mb) * BN;
            if (ld_nblk > 0) break;
            ld_tile += gridDim.x;
        }
    };
    auto issue_next = [&]() {      // the producer thread
        if (ld_tile < total) {
            const long long p = ld_start + ld_it;
            const int bcol = (int)indices[p];
            const int slot = ld_step % STAGES;
#if WS
            if (ld_step >= STAGES)  // the consumers have released this slot's previous use
                mbar_wait((u32)__cvta_generic_to_shared(&empty[slot]), ((ld_step / STAGES) - 1) & 1);
#endif
            const u32 bar = (u32)__cvta_generic_to_shared(&full[slot]);
            const u32 as = sbase + slot * STAGE_BYTES;
            mbar_expect_tx(bar, STAGE_BYTES);
            tma_2d(as, tmA, 0, (int)(p * BS), bar);
            #pragma unroll
            for (int h = 0; h < BN / 64; ++h)
                tma_2d(as + A_BYTES + h * 8192, tmB, (int)(ld_n0 + h * 64), bcol * BS, bar);
            if (++ld_it == ld_nblk) { ld_tile += gridDim.x; enter_tiles(); }
        }
        ++ld_step;
    };
#if WS
    if (tid >= NCONSUMERS) {       // producer warp: one thread walks the whole block sequence
        if (tid == producer) {
            enter_tiles();
            while (ld_tile < total) issue_next();
        }
        return;
    }
#else
    if (tid == 0) {
        enter_tiles();
        for (int s = 0; s < STAGES - 1; ++s) issue_next();
    }
#endif

    float acc[64];
    int step = 0;
    auto row_of = [&](int t) { int ri = t % mb; return row_order ? row_order[ri] : ri; };
    long long nx_lo = 0, nx_hi = 0;
    if (blockIdx.x < total) { int r0 = row_of(blockIdx.x); nx_lo = indptr[r0]; nx_hi = indptr[r0 + 1]; }
    for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
        const int row = row_of(tile);
        const int nblk = (int)(nx_hi - nx_lo);
        const long long n0 = (long long)(tile / mb) * BN;
        if (tile + (int)gridDim.x < total) { int r1 = row_of(tile + gridDim.x); nx_lo = indptr[r1]; nx_hi = indptr[r1 + 1]; }
        #pragma unroll
        for (int i = 0; i < 64; ++i) acc[i] = 0.f;
        for (int it = 0; it < nblk; ++it, ++step) {
            const int slot = step % STAGES;
            mbar_wait((u32)__cvta_generic_to_shared(&full[slot]), (step / STAGES) & 1);
            const u32 as = sbase + slot * STAGE_BYTES;
            const u32 bs = as + A_BYTES + wg * (BS * WN * 2);
            wgmma_fence();
            #pragma unroll
            for (int kk = 0; kk < BS / 16; ++kk) {
                u64 da = smem_desc(as + kk * 32, 16, 1024, 1);
                u64 db = smem_desc(bs + kk * 2 * 1024, 8192, 1024, 1);
                wgmma_m64n128k16(acc, da, db);
            }
            wgmma_commit();
            wgmma_wait<1>();
#if WS
            // this warp's MMAs of the previous step are done: release that step's slot
            if (step > 0 && lane == 0) mbar_arrive((u32)__cvta_generic_to_shared(&empty[(step - 1) % STAGES]));
#else
            __syncthreads();
            if (tid == 0) issue_next();
#endif
        }
        wgmma_wait<0>();
        // epilogue: the warpgroup's 64x128 tile goes through shared memory so that C is written
        // in whole 16-byte pieces (the accumulator layout would write 4-byte pieces, 8 rows apart)
        const u32 ep = sbase + STAGES * STAGE_BYTES + wg * EP_BYTES;
#if BULKSTORE
        // the previous tile's row copies must have read the buffer before it is written again
        if ((tid & 127) < 64) asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
#endif
        warpgroup_bar(wg);
        #pragma unroll
        for (int j = 0; j < WN / 8; ++j) {
            const int rr = warp * 16 + (lane >> 2), cc = j * 8 + (lane & 3) * 2;
#if OUT_KIND == 1
            asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" :: "r"(ep + rr * EP_LD + cc * 4), "f"(acc[j * 4 + 0]), "f"(acc[j * 4 + 1]));
            asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" :: "r"(ep + (rr + 8) * EP_LD + cc * 4), "f"(acc[j * 4 + 2]), "f"(acc[j * 4 + 3]));
#else
            asm volatile("st.shared.b32 [%0], %1;\n" :: "r"(ep + rr * EP_LD + cc * 2), "r"(pack2(acc[j * 4 + 0], acc[j * 4 + 1])));
            asm volatile("st.shared.b32 [%0], %1;\n" :: "r"(ep + (rr + 8) * EP_LD + cc * 2), "r"(pack2(acc[j * 4 + 2], acc[j * 4 + 3])));
#endif
        }
#if BULKSTORE
        // each of 64 threads hands one row of the tile to the copy engine (a bulk copy, not a loop
        // of stores), so the warps go on to the next tile's MMAs while C is written
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        warpgroup_bar(wg);
        {
            const int t = tid & 127;
            const long long col = n0 + wg * WN;
            if (t < 64 && col < n) {
                const long long cols = (n - col) < WN ? (n - col) : WN;
                char* dst = (char*)C + (((long long)row * BS + t) * n + col) * OUT_SIZE;
                asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n"
                             :: "l"(dst), "r"(ep + t * EP_LD), "r"((u32)(cols * OUT_SIZE)) : "memory");
                asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
            }
        }
        continue;
#endif
        warpgroup_bar(wg);
        const int t = tid & 127;
        #pragma unroll
        for (int i = 0; i < EP_CHUNKS / 128; ++i) {
            const int c = t + i * 128, rr = c / EP_ROW_CHUNKS, cc = c % EP_ROW_CHUNKS;
            const long long col = n0 + wg * WN + cc * (16 / OUT_SIZE);
            u32 x, y, z, w;
            asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n" : "=r"(x), "=r"(y), "=r"(z), "=r"(w) : "r"(ep + rr * EP_LD + cc * 16));
            char* dst = (char*)C + (((long long)row * BS + rr) * n + col) * OUT_SIZE;
            if (col + 16 / OUT_SIZE <= n) {
                asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" :: "l"(dst), "r"(x), "r"(y), "r"(z), "r"(w) : "memory");
            } else {
                u32 v[4] = {x, y, z, w};
                for (int e = 0; e < 16 / OUT_SIZE; ++e)
                    if (col + e < n) {
#if OUT_KIND == 1
                        ((float*)dst)[e] = __uint_as_float(v[e]);
#else
                        ((u16*)dst)[e] = (u16)(v[e >> 1] >> (16 * (e & 1)));
#endif
                    }
            }
        }
    }
#if BULKSTORE
    if ((tid & 127) < 64) asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
#endif
}
'''


TMA_SOURCE = _tma_source()

#: tile configurations of the tensor-core kernel: blocksize -> (BN, WARPS_M, WARPS_N, STAGES)
MMA_CONFIGS = {
    16: (128, 1, 4, 4),
    32: (128, 1, 4, 4),
    64: (128, 2, 2, 3),
}
MAX_GENERIC_BLOCKSIZE = 128


@functools.lru_cache(maxsize=None)
def _mma_kernel(bs: int, bn: int, wm: int, wn: int, stages: int, bf16: bool, out_f32: bool, index: str):
    import cupy
    opts = ("-std=c++17", f"-DBS={bs}", f"-DBN={bn}", f"-DWARPS_M={wm}", f"-DWARPS_N={wn}",
            f"-DSTAGES={stages}", f"-DIS_BF16={int(bf16)}", f"-DOUT_KIND={int(out_f32)}",
            f"-DINDEX_T={'int' if index == 'int32' else 'long long'}")
    kern = cupy.RawModule(code=MMA_SOURCE, options=opts).get_function("bsr_spmm_mma")
    smem = stages * (bs * (bs + 8) + bs * (bn + 8)) * 2
    kern.max_dynamic_shared_size_bytes = smem
    return kern, smem, wm * wn * 32


#: the default kernel for 64x64 fp16/bf16 blocks on compute capability 9.0: TMA + wgmma, two
#: consumer warpgroups (CTA tile 64 × 256) and a producer warp, four stages; the fastest
#: configuration measured on an H200 (docs/gpu-notes.md). Elsewhere the mma.sync kernel runs.
TMA_CONFIG = ("tma", 2, 4, 1)


@functools.lru_cache(maxsize=None)
def _wgmma_kernel(wg: int, stages: int, bf16: bool, out_f32: bool, index: str, swizzle: int = 1):
    import cupy
    from cupy_backends.cuda.api import driver
    from cupy_backends.cuda.libs import nvrtc
    opts = ("--gpu-architecture=sm_90a", "-std=c++17", f"-DWG={wg}", f"-DSTAGES={stages}",
            f"-DIS_BF16={int(bf16)}", f"-DOUT_KIND={int(out_f32)}", f"-DSWIZZLE={swizzle}",
            f"-DINDEX_T={'int' if index == 'int32' else 'long long'}")
    prog = nvrtc.createProgram(WGMMA_SOURCE, "bsr_wgmma.cu", (), ())
    try:
        try:
            nvrtc.compileProgram(prog, opts)
        except Exception as exc:
            raise RuntimeError(f"NVRTC failed on the wgmma kernel: {exc}\n{nvrtc.getProgramLog(prog)}") from None
        cubin = nvrtc.getCUBIN(prog)
    finally:
        nvrtc.destroyProgram(prog)
    module = cupy.cuda.function.Module()
    module.load(cubin)
    kern = module.get_function("bsr_spmm_wgmma")
    smem = stages * (64 * 64 + 64 * 128 * wg) * 2 + 1024  # + room to align the stages to 1024 bytes
    driver.funcSetAttribute(kern.ptr, 8, smem)  # CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    threads = wg * 128
    try:
        per_sm = driver.occupancyMaxActiveBlocksPerMultiprocessor(kern.ptr, threads, smem)
    except Exception:
        per_sm = max(1, (227 * 1024) // smem)
    sms = cupy.cuda.Device().attributes["MultiProcessorCount"]
    return module, kern, smem, threads, max(1, per_sm) * sms


def _nvrtc_sm90a(source: str, name: str, opts):
    """Compile `source` for sm_90a with NVRTC (CuPy's RawModule would target sm_90) and load it."""
    import cupy
    from cupy_backends.cuda.libs import nvrtc
    prog = nvrtc.createProgram(source, name + ".cu", (), ())
    try:
        try:
            nvrtc.compileProgram(prog, ("--gpu-architecture=sm_90a", "-std=c++17") + tuple(opts))
        except Exception as exc:
            raise RuntimeError(f"NVRTC failed on {name}: {exc}\n{nvrtc.getProgramLog(prog)}") from None
        cubin = nvrtc.getCUBIN(prog)
    finally:
        nvrtc.destroyProgram(prog)
    module = cupy.cuda.function.Module()
    module.load(cubin)
    return module, module.get_function(name)


def _resident_ctas(kern, threads: int, smem: int) -> int:
    import cupy
    from cupy_backends.cuda.api import driver
    driver.funcSetAttribute(kern.ptr, 8, smem)  # CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    try:
        per_sm = driver.occupancyMaxActiveBlocksPerMultiprocessor(kern.ptr, threads, smem)
    except Exception:
        per_sm = max(1, (227 * 1024) // smem)
    return max(1, per_sm) * cupy.cuda.Device().attributes["MultiProcessorCount"]


@functools.lru_cache(maxsize=None)
def _tma_kernel(wg: int, stages: int, bf16: bool, out_f32: bool, index: str, ws: int = 0, bulk: int = 0):
    module, kern = _nvrtc_sm90a(TMA_SOURCE, "bsr_spmm_tma", (
        f"-DWG={wg}", f"-DSTAGES={stages}", f"-DIS_BF16={int(bf16)}", f"-DOUT_KIND={int(out_f32)}",
        f"-DWS={ws}", f"-DBULKSTORE={bulk}", f"-DINDEX_T={'int' if index == 'int32' else 'long long'}"))
    out_size = 4 if out_f32 else 2
    smem = stages * (64 * 64 + 64 * 128 * wg) * 2 + 1024 + wg * 64 * (128 * out_size + 16)  # + epilogue tiles
    threads = wg * 128 + 32 * ws
    return module, kern, smem, threads, _resident_ctas(kern, threads, smem)


_CU_TENSOR_MAP_DATA_TYPE = {"float16": 6, "bfloat16": 9}


@functools.lru_cache(maxsize=None)
def _encode_tiled():
    import ctypes
    lib = ctypes.CDLL("libcuda.so.1")
    fn = lib.cuTensorMapEncodeTiled
    u64p, u32p = ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint32)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p, u64p, u64p, u32p, u32p,
                   ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


# Device copies of encoded tensor maps. A map holds only an address, sizes and strides, so an entry
# stays valid for any buffer later found at the same address with the same sizes: nothing goes stale.
_MAPS_CACHE_SIZE = 64
_maps_cache: "collections.OrderedDict" = collections.OrderedDict()


def _tensor_maps(values_ptr: int, rows_a: int, b_ptr: int, k: int, n: int, dtype_name: str):
    """Two CUtensorMaps (A's values as rows_a x 64, B as k x n; 64x64 boxes, 128-byte swizzle) on the device."""
    import cupy
    key = (cupy.cuda.runtime.getDevice(), values_ptr, rows_a, b_ptr, k, n, dtype_name)
    maps = _maps_cache.get(key)
    if maps is None:
        maps = _maps_cache[key] = _encode_maps(values_ptr, rows_a, b_ptr, k, n, dtype_name)
        while len(_maps_cache) > _MAPS_CACHE_SIZE:
            _maps_cache.popitem(last=False)
    else:
        _maps_cache.move_to_end(key)
    return maps


def _encode_maps(values_ptr: int, rows_a: int, b_ptr: int, k: int, n: int, dtype_name: str):
    import ctypes
    import cupy
    encode = _encode_tiled()
    host = np.zeros(256 + 64, dtype=np.uint8)
    off = (-host.ctypes.data) % 64  # CUtensorMap is 64-byte aligned
    dt = _CU_TENSOR_MAP_DATA_TYPE[dtype_name]
    box = (ctypes.c_uint32 * 2)(64, 64)
    one = (ctypes.c_uint32 * 2)(1, 1)
    for i, (ptr, inner, outer) in enumerate(((values_ptr, 64, rows_a), (b_ptr, n, k))):
        dims = (ctypes.c_uint64 * 2)(inner, outer)
        strides = (ctypes.c_uint64 * 1)(inner * 2)
        # interleave none, swizzle 128B, L2 promotion 256B, out-of-bounds elements read as zero
        status = encode(host.ctypes.data + off + 128 * i, dt, 2, ptr, dims, strides, box, one, 0, 3, 3, 0)
        if status != 0:
            raise RuntimeError(f"cuTensorMapEncodeTiled failed with CUresult {status}")
    return cupy.asarray(host[off:off + 256])


@functools.lru_cache(maxsize=None)
def _is_sm90(device: int) -> bool:
    import cupy
    return cupy.cuda.Device(device).compute_capability == "90"


def wgmma_eligible(A, B, out_dtype) -> bool:
    import cupy
    return A.blocksize == 64 and mma_eligible(A, B, out_dtype) and _is_sm90(cupy.cuda.runtime.getDevice())


_VAL_KIND = {"float16": 0, "bfloat16": 1, "float32": 2, "float64": 3}
_OUT = {"float16": ("unsigned short", 2), "bfloat16": ("unsigned short", 1),
        "float32": ("float", 0), "float64": ("double", 0)}


@functools.lru_cache(maxsize=None)
def _generic_kernel(val: str, out: str, index: str):
    import cupy
    out_t, out_kind = _OUT[out]
    acc = "double" if "float64" in (val, out) else "float"
    opts = ("-std=c++17", f"-DVAL_KIND={_VAL_KIND[val]}", f"-DOUT_T={out_t}", f"-DOUT_KIND={out_kind}",
            f"-DACC_T={acc}", f"-DINDEX_T={'int' if index == 'int32' else 'long long'}")
    return cupy.RawModule(code=GENERIC_SOURCE, options=opts).get_function("bsr_spmm_generic")


def mma_eligible(A, B, out_dtype) -> bool:
    """Whether the tensor-core kernel takes this product (else the generic one does)."""
    name = _cuda.dtype_name(A.data.dtype)
    return (name in ("float16", "bfloat16") and np.dtype(B.dtype) == np.dtype(A.data.dtype)
            and _cuda.dtype_name(out_dtype) in (name, "float32") and A.blocksize in MMA_CONFIGS
            and B.shape[1] % 8 == 0 and B.data.ptr % 16 == 0 and A.data.data.ptr % 16 == 0)


def bsr_spmm(A, B, out_dtype, *, config=None, row_order=None, out=None):
    """C = A @ B for a BSR view A and a C-contiguous B, CuPy arrays of one dtype; C is fresh (or `out`).

    `config` overrides the tile configuration (BN, WARPS_M, WARPS_N, STAGES) of the mma.sync
    kernel, or picks the wgmma kernel as ("wgmma", warpgroups, STAGES); `row_order` (int32
    block-row permutation) sets the order in which CTAs are launched.
    """
    import cupy
    m, k = A.shape
    n = B.shape[1]
    b = A.blocksize
    mb = m // b
    C = out if out is not None else cupy.empty((m, n), dtype=out_dtype)
    if m == 0 or n == 0:
        return C
    indptr, indices = A.indptr, A.indices
    if indptr.dtype != indices.dtype:
        (indptr, indices), _ = _cuda.common_index(indptr, indices)
    index = _cuda.dtype_name(indices.dtype)
    if config is None and wgmma_eligible(A, B, out_dtype):
        config = TMA_CONFIG
    if config is not None and config[0] in ("wgmma", "tma") and not wgmma_eligible(A, B, out_dtype):
        raise ValueError("the wgmma kernel takes blocksize 64, float16/bfloat16, n % 8 == 0, on compute capability 9.0")
    if config is not None and config[0] == "tma":
        wg, stages = config[1], config[2]
        nnzb = len(indices)
        if nnzb == 0:
            C.fill(0)
            return C
        ws = config[3] if len(config) > 3 else 0
        bulk = config[4] if len(config) > 4 else 0
        _, kern, smem, threads, resident = _tma_kernel(wg, stages, _cuda.dtype_name(A.data.dtype) == "bfloat16",
                                                       _cuda.dtype_name(out_dtype) == "float32", index, ws, bulk)
        maps = _tensor_maps(A.data.data.ptr, nnzb * 64, B.data.ptr, k, n, _cuda.dtype_name(A.data.dtype))
        order = 0 if row_order is None else row_order
        ntiles = (n + 128 * wg - 1) // (128 * wg)
        grid = min(mb * ntiles, resident)
        kern((grid,), (threads,), (maps, indptr, indices, C, np.int64(n), order, np.int32(mb), np.int32(ntiles)),
             shared_mem=smem)
        return C
    if config is not None and config[0] == "wgmma":
        wg, stages = config[1], config[2]
        swizzle = config[3] if len(config) > 3 else 1
        _, kern, smem, threads, resident = _wgmma_kernel(wg, stages, _cuda.dtype_name(A.data.dtype) == "bfloat16",
                                                         _cuda.dtype_name(out_dtype) == "float32", index, swizzle)
        order = 0 if row_order is None else row_order
        ntiles = (n + 128 * wg - 1) // (128 * wg)
        grid = min(mb * ntiles, resident)  # persistent: every CTA resident at once, walking its tiles
        kern((grid,), (threads,), (indptr, indices, A.data, B, C, np.int64(n), order, np.int32(mb), np.int32(ntiles)),
             shared_mem=smem)
        return C
    if mma_eligible(A, B, out_dtype):
        bn, wm, wn, stages = config or MMA_CONFIGS[b]
        kern, smem, threads = _mma_kernel(b, bn, wm, wn, stages, _cuda.dtype_name(A.data.dtype) == "bfloat16",
                                          _cuda.dtype_name(out_dtype) == "float32", index)
        order = 0 if row_order is None else row_order
        kern((mb, (n + bn - 1) // bn), (threads,), (indptr, indices, A.data, B, C, np.int64(n), order),
             shared_mem=smem)
        return C
    if b > MAX_GENERIC_BLOCKSIZE:
        raise ValueError(f"blocksize {b} is above the {MAX_GENERIC_BLOCKSIZE} the GPU kernels take")
    if np.dtype(B.dtype) != np.dtype(A.data.dtype):
        raise TypeError(f"bsr_spmm takes A and B of one dtype, got {A.data.dtype} and {B.dtype}")
    kern = _generic_kernel(_cuda.dtype_name(A.data.dtype), _cuda.dtype_name(out_dtype), index)
    kern((mb, (n + 63) // 64), (64, 4), (indptr, indices, A.data, B, C, np.int64(n), np.int32(b)))
    return C
