// Block-sparse (BSR) x dense SpMM on tensor cores: C[m,n] = A[m,k] (BSR, b x b blocks) @ B[k,n].
// One CTA computes a BS x BN tile of C: block row `brow`, columns n0..n0+BN-1. It walks the
// stored blocks of that block row; for each it copies the A block and the BS rows of B that the
// block's column selects into shared memory (cp.async, STAGES deep) and runs mma.sync m16n8k16
// (fp16 or bf16 in, fp32 accumulate). B and C are row-major with leading dimension n.
// Blocksizes 16, 32, 64; fp16 or bf16 in; n a multiple of 8. Compile-time configuration (defaults
// here only so that the file compiles on its own; _bsr_kernels.mma_kernel passes every one):
//   BS blocksize, BN columns of C per CTA, WARPS_M x WARPS_N warps, STAGES pipeline depth,
//   IS_BF16, OUT_KIND, INDEX_T.
#include "bsr_common.cuh"

#ifndef OUT_KIND
#define OUT_KIND 0   // 0: same 16-bit type as the inputs, 1: float32
#endif
#ifndef BS
#define BS 32
#endif
#ifndef BN
#define BN 128
#endif
#ifndef WARPS_M
#define WARPS_M 1
#endif
#ifndef WARPS_N
#define WARPS_N 4
#endif
#ifndef STAGES
#define STAGES 4
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
