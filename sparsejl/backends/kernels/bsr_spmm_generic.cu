// BSR x dense SpMM on CUDA cores, for what the tensor-core kernel does not take (float32/64, any
// blocksize up to 128, any n). Thread (tx, ty) of a 64x4 CTA owns column n0+tx of rows ty, ty+4,
// ... of block row blockIdx.x; values accumulate in ACC_T (float, or double for float64).
// Compile-time configuration (defaults here only so that the file compiles on its own;
// _bsr_kernels.generic_kernel passes every one): VAL_KIND of A and B (0 float16, 1 bfloat16,
// 2 float32, 3 float64), OUT_T and OUT_KIND of C (0 OUT_T itself, 1 bfloat16, 2 float16), ACC_T,
// INDEX_T.
#include "bsr_common.cuh"

#ifndef VAL_KIND
#define VAL_KIND 2
#endif
#ifndef OUT_T
#define OUT_T float
#endif
#ifndef OUT_KIND
#define OUT_KIND 0
#endif
#ifndef ACC_T
#define ACC_T float
#endif

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
