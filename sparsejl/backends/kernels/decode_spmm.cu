// Sparse x dense SpMM for few columns (decoding: n = 1..64 tokens; correct for any n) on tensor
// cores: C[m,n] = A[m,k] @ B[k,n], A prepared once (sparsejl.prepare), B and C row-major, ld = n.
// "Load as sparse, compute as dense": each warp owns a group of 16 rows of A and walks its tiles
// (16 rows x KT columns); it builds the tile's mma.sync m16n8k16 A fragments in registers straight
// from the stored values (each byte of A read once), while the CTA stages the KT rows of B that the
// tile needs in shared memory (ldmatrix.trans -> B fragments). fp16 or bf16 in, fp32 accumulate.
//
// BITMAP 1 (unstructured A): row groups x 64-column tiles; per tile 16 uint64 masks (bit c of row r:
//   A[16g+r, 64t+c] is stored) and the tile's values packed row by row, column ascending, from
//   tile_start[g*T+t]. Every tile of a group is walked; GW = 4 groups per CTA share each B tile.
// BITMAP 0 (BSR, blocksize BS = 16, 32 or 64): A's BSR arrays as they are; a CTA is one block row,
//   one warp per 16 rows of it, the tiles are its stored blocks.
// Grid (row blocks, KS, column chunks of NCOL): KS CTAs split a row block's tiles; each writes its
// fp32 partial tile to `ws`, and the last to arrive (counter `cnt`, reset by it) sums them in a
// fixed order and writes C. KS = 1 writes C directly.
#include "bsr_common.cuh"

#ifndef BITMAP
#define BITMAP 1
#endif
#ifndef BS
#define BS 64
#endif
#ifndef NJ
#define NJ 1            // n8 column slices per CTA: NCOL = 8 NJ columns of C
#endif
#if BITMAP
#define KT 64
#define GW 4
#else
#define KT BS
#define GW (BS / 16)
#endif
#define THREADS (GW * 32)
#define NCOL (NJ * 8)
#define B_LD (NCOL + 8)  // halves per shared row of B: 16-byte aligned rows, ldmatrix without bank conflicts
#define TILE_OUT (GW * 16 * NCOL)

__device__ __forceinline__ void ldsm_x2_trans(u32 (&r)[2], u32 saddr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(saddr));
}

// Columns c and c+1 of one row of a bitmap tile, as a packed pair (c even): its values start at `off`.
__device__ __forceinline__ u32 bitmap_pair(const u16* __restrict__ vals, u64 mask, int off, int c) {
    const u32 b0 = (u32)(mask >> c) & 1u, b1 = (u32)(mask >> (c + 1)) & 1u;
    const int r = off + __popcll(mask & ((1ull << c) - 1ull));
    const u32 lo = b0 ? (u32)__ldg(vals + r) : 0u;
    const u32 hi = b1 ? (u32)__ldg(vals + r + b0) : 0u;
    return lo | (hi << 16);
}

__device__ __forceinline__ u16 to16(float x) { return (u16)(pack2(x, 0.f) & 0xffffu); }

__device__ __forceinline__ void store_row_pair(u16* __restrict__ C, int row, int col, float x, float y, int m, int n) {
    if (row >= m) return;
    u16* c = C + (size_t)row * n + col;
    if (col < n) c[0] = to16(x);
    if (col + 1 < n) c[1] = to16(y);
}

extern "C" __global__ void __launch_bounds__(THREADS) decode_spmm(
    const u16* __restrict__ vals, const void* __restrict__ index, const int* __restrict__ tptr,
    const u16* __restrict__ B, u16* __restrict__ C, float* __restrict__ ws, int* __restrict__ cnt,
    int m, int k, int n, int T, int KS)
{
    __shared__ __align__(16) u16 bs[KT * B_LD];
    __shared__ int s_last;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int rb = blockIdx.x, ks = blockIdx.y, col0 = blockIdx.z * NCOL;
    const int grp = rb * GW + warp;
    int pbeg, pend;
#if BITMAP
    pbeg = (int)((long long)T * ks / KS);
    pend = (int)((long long)T * (ks + 1) / KS);
#else
    {
        const int a = tptr[rb];
        const long long len = tptr[rb + 1] - a;
        pbeg = a + (int)(len * ks / KS);
        pend = a + (int)(len * (ks + 1) / KS);
    }
#endif
    float acc[NJ][4];
#pragma unroll
    for (int j = 0; j < NJ; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
    const bool vec = ((n & 7) == 0) && ((((size_t)B) & 15) == 0);
    const u32 sbase = (u32)__cvta_generic_to_shared(bs);

#if BITMAP
    // the next tile's masks and value offset are loaded one tile ahead: a tile's value loads wait
    // on one memory round trip, not two
    u64 mk_next = 0ull;
    int base_next = 0;
    if (pbeg < pend) {
        const long long tile = (long long)grp * T + pbeg;
        mk_next = __ldg((const u64*)index + tile * 16 + (lane & 15));
        base_next = __ldg(tptr + tile);
    }
#endif
    for (int p = pbeg; p < pend; ++p) {
#if BITMAP
        const int c = p;
#else
        const int c = __ldg((const int*)index + p);
#endif
        const int krow0 = c * KT;
        // this warp's 16 x KT tile of A, as mma A fragments (global loads issued before the barrier)
        u32 a[KT / 16][4];
#if BITMAP
        {
            const u64 mk = mk_next;
            const int base = base_next;
            if (p + 1 < pend) {
                const long long next = (long long)grp * T + p + 1;
                mk_next = __ldg((const u64*)index + next * 16 + (lane & 15));
                base_next = __ldg(tptr + next);
            }
            const int here = __popcll(mk);
            int incl = here;
#pragma unroll
            for (int d = 1; d < 16; d <<= 1) {
                const int o = __shfl_up_sync(0xffffffffu, incl, d, 16);
                if ((lane & 15) >= d) incl += o;
            }
            const u64 m0 = __shfl_sync(0xffffffffu, mk, g), m1 = __shfl_sync(0xffffffffu, mk, g + 8);
            const int o0 = base + __shfl_sync(0xffffffffu, incl - here, g);
            const int o1 = base + __shfl_sync(0xffffffffu, incl - here, g + 8);
#pragma unroll
            for (int s = 0; s < KT / 16; ++s) {
                const int cc = 16 * s + 2 * t;
                a[s][0] = bitmap_pair(vals, m0, o0, cc);
                a[s][1] = bitmap_pair(vals, m1, o1, cc);
                a[s][2] = bitmap_pair(vals, m0, o0, cc + 8);
                a[s][3] = bitmap_pair(vals, m1, o1, cc + 8);
            }
        }
#else
        {
            const u16* blk = vals + (size_t)p * (BS * BS) + (size_t)(warp * 16) * BS;
#pragma unroll
            for (int s = 0; s < KT / 16; ++s) {
                const int cc = 16 * s + 2 * t;
                a[s][0] = __ldg((const u32*)(blk + g * BS + cc));
                a[s][1] = __ldg((const u32*)(blk + (g + 8) * BS + cc));
                a[s][2] = __ldg((const u32*)(blk + g * BS + cc + 8));
                a[s][3] = __ldg((const u32*)(blk + (g + 8) * BS + cc + 8));
            }
        }
#endif
        __syncthreads();   // the previous tile's B is read by every warp
        if (vec) {
            for (int i = threadIdx.x; i < KT * NJ; i += THREADS) {
                const int r = i / NJ, j = i % NJ, kr = krow0 + r, cc = col0 + j * 8;
                uint4 v = make_uint4(0u, 0u, 0u, 0u);
                if (kr < k && cc < n) v = __ldg((const uint4*)(B + (size_t)kr * n + cc));
                *(uint4*)&bs[r * B_LD + j * 8] = v;
            }
        } else {
            for (int i = threadIdx.x; i < KT * NCOL; i += THREADS) {
                const int r = i / NCOL, j = i % NCOL, kr = krow0 + r, cc = col0 + j;
                bs[r * B_LD + j] = (kr < k && cc < n) ? __ldg(B + (size_t)kr * n + cc) : (u16)0;
            }
        }
        __syncthreads();
#pragma unroll
        for (int s = 0; s < KT / 16; ++s) {
            const int r = 16 * s + (lane & 15);
#pragma unroll
            for (int j = 0; j < NJ; j += 2) {
                if (j + 1 < NJ) {
                    u32 b[4];
                    ldmatrix_x4_trans(b, sbase + (u32)(r * B_LD + j * 8 + (lane >> 4) * 8) * 2u);
                    mma16816(acc[j], a[s], b[0], b[1]);
                    mma16816(acc[j + 1], a[s], b[2], b[3]);
                } else {
                    u32 b[2];
                    ldsm_x2_trans(b, sbase + (u32)(r * B_LD + j * 8) * 2u);
                    mma16816(acc[j], a[s], b[0], b[1]);
                }
            }
        }
    }

    const int row = grp * 16 + g;
    if (KS == 1) {
#pragma unroll
        for (int j = 0; j < NJ; ++j) {
            const int col = col0 + j * 8 + 2 * t;
            store_row_pair(C, row, col, acc[j][0], acc[j][1], m, n);
            store_row_pair(C, row + 8, col, acc[j][2], acc[j][3], m, n);
        }
        return;
    }
    const size_t tile_id = (size_t)blockIdx.z * gridDim.x + rb;
    float* mine = ws + (tile_id * KS + ks) * TILE_OUT;
    const int lr = warp * 16 + g;
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
        const int lc = j * 8 + 2 * t;
        __stcg((float2*)&mine[lr * NCOL + lc], make_float2(acc[j][0], acc[j][1]));
        __stcg((float2*)&mine[(lr + 8) * NCOL + lc], make_float2(acc[j][2], acc[j][3]));
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        const int old = atomicAdd(cnt + tile_id, 1);
        s_last = old == KS - 1;
        if (s_last) cnt[tile_id] = 0;   // every split has arrived: ready for the next launch
    }
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    const float* all = ws + tile_id * KS * TILE_OUT;
    for (int i = threadIdx.x; i < TILE_OUT; i += THREADS) {
        float sum = 0.f;
        for (int q = 0; q < KS; ++q) sum += __ldcg(all + (size_t)q * TILE_OUT + i);
        const int r = rb * GW * 16 + i / NCOL, cc = col0 + i % NCOL;
        if (r < m && cc < n) C[(size_t)r * n + cc] = to16(sum);
    }
}
