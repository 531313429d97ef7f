// Block-sparse SpMM for 64x64 blocks: Hopper's bulk tensor copies (TMA) feed warpgroup MMAs
// (wgmma). A persistent CTA walks output tiles (one block row x BN columns of C); inside each, the
// block row's stored blocks, one pipeline stage each: the A block and the 64 rows of B that its
// column selects, 64x64 boxes that the copy engine swizzles (128 bytes) as wgmma reads them,
// completing on an mbarrier. Tensor maps arrive by value (__grid_constant__ parameters).
//
// Compile-time configuration (_bsr_kernels.TmaConfig; defaults here only so that the file compiles
// on its own: _bsr_kernels.tma_kernel passes every one):
//   WG       consumer warpgroups per CTA; a CTA's tile is 64 rows x WG*128 columns of C
//   STAGES   shared-memory pipeline depth (one stage: an A block and the 64 rows of B it selects)
//   WS       1: a producer warp issues the copies (warp specialisation); 0: consumer thread 0 does
//   EPI      how C leaves: 0 shared-memory staging + 16-byte store loop; 1 one bulk copy per row;
//            2 two TMA tensor stores per warpgroup tile from a 128-byte-swizzled staging tile
//            (one thread issues them; the warps go on to the next tile at once)
//   SCHED    0: CTA c takes tiles c, c+G, c+2G... (tile t: block row t % mb, or row_order[t % mb],
//            columns (t / mb)*BN); 1: tiles sorted heaviest block row first (row_order, required),
//            each row's column tiles together, dealt to the CTAs in snake order
//   DIAG     diagnostics, output wrong on purpose: 1 no MMAs, 2 no C stores, 3 return at entry;
//            7 the real work, with clock64 timestamps of consumer thread 0 written to the trace
//            argument (64 u64 per CTA: 0 globaltimer at entry, 1 clock at entry, 2 after set-up,
//            3 globaltimer at exit, 4 clock at exit, 5 tiles; tile i < 12: 6+4i before its first
//            wait, 7+4i data arrived, 8+4i MMAs done, 9+4i C handed off; EPI 2: 58-63 the
//            epilogue's parts summed over tiles: staging tile free, barrier, shared stores, proxy
//            fence, barrier, store issue)
//   IS_BF16, OUT_KIND (1: float32 C), INDEX_T
#include "bsr_common.cuh"

#ifndef WG
#define WG 2
#endif
#ifndef STAGES
#define STAGES 4
#endif
#ifndef OUT_KIND
#define OUT_KIND 0
#endif
struct __align__(64) TensorMap { u64 bits[16]; };
#define BS 64
#define WN 128
#define BN (WG * WN)
#define A_BYTES (BS * BS * 2)
#define B_BYTES (BS * BN * 2)
#define STAGE_BYTES (A_BYTES + B_BYTES)
#ifndef WS
#define WS 1
#endif
#ifndef EPI
#define EPI 0
#endif
#ifndef DIAG
#define DIAG 0
#endif
#ifndef SCHED
#define SCHED 0
#endif
#define TRACED 12     // DIAG 7: tiles stamped per CTA
#define NCONSUMERS (WG * 128)
#define NTHREADS (NCONSUMERS + (WS ? 32 : 0))
#if OUT_KIND == 1
#define OUT_SIZE 4
#else
#define OUT_SIZE 2
#endif
#if EPI == 2
#if OUT_KIND == 1
#error "EPI 2 (TMA tensor stores) takes 16-bit outputs"
#endif
#define EP_BYTES (BS * WN * 2)                      // two swizzled 64x64 boxes
#else
#define EP_LD (WN * OUT_SIZE + 16)                 // padded row of the epilogue tile, bytes
#define EP_BYTES (64 * EP_LD)
#define EP_ROW_CHUNKS (WN * OUT_SIZE / 16)
#define EP_CHUNKS (64 * EP_ROW_CHUNKS)
#endif

// a barrier over one warpgroup's 128 threads (literal ids: a register id reserves all 16 barriers)
__device__ __forceinline__ void warpgroup_bar(int wg) {
    if (wg == 0) asm volatile("bar.sync 1, 128;\n" ::: "memory");
    else asm volatile("bar.sync 2, 128;\n" ::: "memory");
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
__device__ __forceinline__ void tma_load_2d(u32 dst, const TensorMap* tmap, int x, int y, u32 bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
                 :: "r"(dst), "l"((u64)tmap), "r"(x), "r"(y), "r"(bar) : "memory");
}
__device__ __forceinline__ void tma_store_2d(const TensorMap* tmap, int x, int y, u32 src) {
    asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];\n"
                 :: "l"((u64)tmap), "r"(x), "r"(y), "r"(src) : "memory");
}
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
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(1));
}

// tmA: A's values as a (nnzb*64) x 64 matrix; tmB: B (k x n); tmC: C (m x n), used by EPI 2 only.
// All 64x64 boxes with 128-byte swizzle.
extern "C" __global__ void __launch_bounds__(NTHREADS)
bsr_spmm_tma(const __grid_constant__ TensorMap tmA, const __grid_constant__ TensorMap tmB,
             const __grid_constant__ TensorMap tmC, const INDEX_T* __restrict__ indptr,
             const INDEX_T* __restrict__ indices, void* __restrict__ C, long long n,
             const int* __restrict__ row_order, int mb, int ntiles, unsigned long long* __restrict__ trace_arg)
{
#if DIAG == 3
    return;
#endif
#if DIAG == 7
    unsigned long long* const trace = trace_arg + (long long)blockIdx.x * 64;   // 64 slots per CTA
#define STAMP(i) do { if (threadIdx.x == 0) { unsigned long long c_; asm volatile("mov.u64 %0, %%clock64;" : "=l"(c_)); trace[i] = c_; } } while (0)
#define GSTAMP(i) do { if (threadIdx.x == 0) { unsigned long long g_; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(g_)); trace[i] = g_; } } while (0)
#else
#define STAMP(i)
#define GSTAMP(i)
#endif
    GSTAMP(0);
    STAMP(1);
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    __shared__ __align__(8) u64 full[STAGES];
    __shared__ __align__(8) u64 empty[STAGES];
    const u32 sbase = ((u32)__cvta_generic_to_shared(smem_raw) + 1023u) & ~1023u;
    const int tid = threadIdx.x, lane = tid & 31, warp = (tid >> 5) & 3, wg = tid >> 7;
    const int total = mb * ntiles;
    const int producer = WS ? NCONSUMERS : 0;   // the thread that issues the copies

    if (tid == producer) {
        for (int s = 0; s < STAGES; ++s) {
            mbar_init((u32)__cvta_generic_to_shared(&full[s]), 1);
            mbar_init((u32)__cvta_generic_to_shared(&empty[s]), NCONSUMERS / 32);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    // the CTA's j-th output tile g (a block row x BN columns of C), or -1 past its last
    const int G = gridDim.x;
    auto tile_at = [&](int j) -> int {
#if SCHED == 1
        // tiles sorted by weight (row_order: heaviest block rows first, each row's column tiles
        // together), dealt to the CTAs in snake order: round j runs forward, round j+1 backward
        const int g = j * G + ((j & 1) ? G - 1 - (int)blockIdx.x : (int)blockIdx.x);
#else
        const int g = (int)blockIdx.x + j * G;
#endif
        return g < total ? g : -1;
    };
    auto row_of = [&](int g) -> int {
#if SCHED == 1
        return row_order[g / ntiles];
#else
        const int ri = g % mb;
        return row_order ? row_order[ri] : ri;
#endif
    };
    auto n0_of = [&](int g) -> long long {
#if SCHED == 1
        return (long long)(g % ntiles) * BN;
#else
        return (long long)(g / mb) * BN;
#endif
    };

    // the producer's cursor: next block to copy
    int ld_j = 0, ld_g = -1, ld_it = 0, ld_nblk = 0, ld_step = 0;
    long long ld_start = 0, ld_n0 = 0;
    auto enter_tiles = [&]() {      // from tile ld_j on, to the first with blocks (ld_g = -1: none)
        for (;;) {
            ld_g = tile_at(ld_j);
            if (ld_g < 0) return;
            const int row = row_of(ld_g);
            ld_start = indptr[row];
            ld_nblk = (int)(indptr[row + 1] - ld_start);
            ld_it = 0;
            ld_n0 = n0_of(ld_g);
            if (ld_nblk > 0) return;
            ++ld_j;
        }
    };
    auto issue_next = [&]() {
        if (ld_g >= 0) {
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
            tma_load_2d(as, &tmA, 0, (int)(p * BS), bar);
            #pragma unroll
            for (int h = 0; h < BN / 64; ++h)
                tma_load_2d(as + A_BYTES + h * 8192, &tmB, (int)(ld_n0 + h * 64), bcol * BS, bar);
            if (++ld_it == ld_nblk) { ++ld_j; enter_tiles(); }
        }
        ++ld_step;
    };
#if WS
    if (tid >= NCONSUMERS) {       // producer warp: one thread walks the whole block sequence
        if (tid == producer) {
            enter_tiles();
            while (ld_g >= 0) issue_next();
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
    int g_next = tile_at(0);
    long long nx_lo = 0, nx_hi = 0;       // the next tile's row extent, loaded a tile ahead
    if (g_next >= 0) { const int r0 = row_of(g_next); nx_lo = indptr[r0]; nx_hi = indptr[r0 + 1]; }
    const u32 ep = sbase + STAGES * STAGE_BYTES + wg * EP_BYTES;   // this warpgroup's staging tile
    STAMP(2);
    int tcount = 0;
#if DIAG == 7
    unsigned long long esum[6] = {0, 0, 0, 0, 0, 0};   // EPI 2: the epilogue's parts, summed over tiles
#endif
    for (; g_next >= 0; ++tcount) {
        const int g = g_next;
        const int row = row_of(g);
        const int nblk = (int)(nx_hi - nx_lo);
        if (tcount < TRACED) STAMP(6 + 4 * tcount);
        const long long n0 = n0_of(g);
        g_next = tile_at(tcount + 1);
        if (g_next >= 0) { const int r1 = row_of(g_next); nx_lo = indptr[r1]; nx_hi = indptr[r1 + 1]; }
        #pragma unroll
        for (int i = 0; i < 64; ++i) acc[i] = 0.f;
        for (int it = 0; it < nblk; ++it, ++step) {
            const int slot = step % STAGES;
            mbar_wait((u32)__cvta_generic_to_shared(&full[slot]), (step / STAGES) & 1);
            if (it == 0 && tcount < TRACED) STAMP(7 + 4 * tcount);
#if DIAG != 1
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
#endif
#if WS
            // this warp's MMAs of the previous step are done: release that step's slot
            if (step > 0 && lane == 0) mbar_arrive((u32)__cvta_generic_to_shared(&empty[(step - 1) % STAGES]));
#else
            __syncthreads();
            if (tid == 0) issue_next();
#endif
        }
        wgmma_wait<0>();
        if (tcount < TRACED) STAMP(8 + 4 * tcount);
#if DIAG == 2
        if (acc[0] == 1234.5f) ((float*)C)[0] = acc[1];   // keeps the MMAs; no C traffic
        continue;
#endif
#if EPI == 2
        // C through two TMA tensor stores per warpgroup: the accumulators go into the staging tile
        // in the copy engine's 128-byte-swizzled layout (conflict-free: the 8 rows a warp writes at
        // once land in 8 different 16-byte chunks), one thread hands both 64x64 boxes to the copy
        // engine, and the warpgroup goes on to the next tile while C is written.
#if DIAG == 7
        unsigned long long e0_ = 0, e1_;
        if (tid == 0) asm volatile("mov.u64 %0, %%clock64;" : "=l"(e0_));
#define EPSTAMP(k) do { if (tid == 0) { asm volatile("mov.u64 %0, %%clock64;" : "=l"(e1_)); esum[k] += e1_ - e0_; e0_ = e1_; } } while (0)
#else
#define EPSTAMP(k)
#endif
        if ((tid & 127) == 0) asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
        EPSTAMP(0);
        warpgroup_bar(wg);
        EPSTAMP(1);
        {
            const u32 rr = warp * 16 + (lane >> 2);
            #pragma unroll
            for (int j = 0; j < WN / 8; ++j) {
                const u32 at = ep + (j >> 3) * 8192 + rr * 128 + ((((u32)j & 7) ^ (rr & 7)) << 4) + (lane & 3) * 4;
                asm volatile("st.shared.b32 [%0], %1;\n" :: "r"(at), "r"(pack2(acc[j * 4 + 0], acc[j * 4 + 1])));
                asm volatile("st.shared.b32 [%0], %1;\n" :: "r"(at + 8 * 128), "r"(pack2(acc[j * 4 + 2], acc[j * 4 + 3])));
            }
        }
        EPSTAMP(2);
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        EPSTAMP(3);
        warpgroup_bar(wg);
        EPSTAMP(4);
        if ((tid & 127) == 0) {
            #pragma unroll
            for (int h = 0; h < 2; ++h) {
                const long long x = n0 + wg * WN + h * 64;
                if (x < n) tma_store_2d(&tmC, (int)x, row * BS, ep + h * 8192);
            }
            asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
        }
        EPSTAMP(5);
#else
        // epilogue: the warpgroup's 64x128 tile goes through shared memory so that C is written
        // in whole 16-byte pieces (the accumulator layout would write 4-byte pieces, 8 rows apart)
#if EPI == 1
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
#if EPI == 1
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
#else
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
#endif
#endif
        if (tcount < TRACED) STAMP(9 + 4 * tcount);
    }
#if EPI == 1
    if ((tid & 127) < 64) asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
#elif EPI == 2
    // the staging tiles must have been read before the CTA leaves; the writes to C complete on
    // their own (the kernel's end makes them visible)
    if ((tid & 127) == 0) asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
#endif
    STAMP(4);
    GSTAMP(3);
#if DIAG == 7
    if (threadIdx.x == 0) {
        trace[5] = tcount;
        for (int k = 0; k < 6; ++k) trace[58 + k] = esum[k];
    }
#endif
}
