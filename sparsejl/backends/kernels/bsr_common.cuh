// What the BSR SpMM kernels share: short names for the integer types, and the packing of two
// fp32 accumulators into two 16-bit values (IS_BF16: bfloat16, else float16).
#ifndef SPARSEJL_BSR_COMMON_CUH
#define SPARSEJL_BSR_COMMON_CUH

typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#ifndef IS_BF16
#define IS_BF16 0
#endif
#ifndef INDEX_T
#define INDEX_T int   // the index type of indptr and indices: int or long long
#endif

__device__ __forceinline__ u32 pack2(float lo, float hi) {
    u32 r;
#if IS_BF16
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
#else
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
#endif
    return r;
}

#endif
