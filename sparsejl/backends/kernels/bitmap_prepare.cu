// CSR -> the bitmap-tile format of decode_spmm.cu (BITMAP 1), on the device, in three passes:
// bitmap_mark sets each stored entry's bit in its tile's row mask; bitmap_count counts each tile's
// bits (the caller turns the counts into tile_start by a prefix sum); bitmap_pack adds each value
// (as fp32) at its packed place. Duplicate entries of a row land on one bit and are summed, as
// SciPy sums them; entries past indptr[m] are not part of the matrix and are not read.
typedef unsigned long long u64;

extern "C" __global__ void bitmap_mark(const long long* __restrict__ indptr, const long long* __restrict__ indices,
                                       long long m, long long T, u64* __restrict__ masks) {
    const long long nw = ((long long)gridDim.x * blockDim.x) >> 5;
    const int lane = threadIdx.x & 31;
    for (long long i = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5; i < m; i += nw) {
        const long long tile_row = ((i >> 4) * T) * 16 + (i & 15);
        for (long long q = indptr[i] + lane; q < indptr[i + 1]; q += 32) {
            const long long j = indices[q];
            atomicOr(masks + tile_row + (j >> 6) * 16, 1ull << (j & 63));
        }
    }
}

extern "C" __global__ void bitmap_count(const u64* __restrict__ masks, long long tiles, long long* __restrict__ counts) {
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < tiles; t += (long long)gridDim.x * blockDim.x) {
        long long s = 0;
        for (int r = 0; r < 16; ++r) s += __popcll(masks[t * 16 + r]);
        counts[t] = s;
    }
}

extern "C" __global__ void bitmap_pack(const long long* __restrict__ indptr, const long long* __restrict__ indices,
                                       const float* __restrict__ data, long long m, long long T,
                                       const u64* __restrict__ masks, const long long* __restrict__ tile_start,
                                       float* __restrict__ packed) {
    const long long nw = ((long long)gridDim.x * blockDim.x) >> 5;
    const int lane = threadIdx.x & 31;
    for (long long i = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5; i < m; i += nw) {
        const int r = (int)(i & 15);
        for (long long q = indptr[i] + lane; q < indptr[i + 1]; q += 32) {
            const long long j = indices[q];
            const long long tile = (i >> 4) * T + (j >> 6);
            long long pos = tile_start[tile];
            for (int rr = 0; rr < r; ++rr) pos += __popcll(masks[tile * 16 + rr]);
            pos += __popcll(masks[tile * 16 + r] & ((1ull << (j & 63)) - 1ull));
            atomicAdd(packed + pos, data[q]);
        }
    }
}
