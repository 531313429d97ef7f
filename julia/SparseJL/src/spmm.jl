# Sparse times dense: C = A*B. The kernels work on row-major B and C, which Julia sees in place as
# their transposes Bt (n×k) and Ct (n×m): row i of C is then the contiguous column Ct[:, i], and
# each stored a_ij adds a * Bt[:, j] to it, a unit-stride vectorisable update.

# --- CSR ---------------------------------------------------------------------------------------

"""
    spmm_rowmajor!(Ct, A::CSRMatrix, Bt) -> Ct
    spmm_rowmajor!(Ct, A::BSRMatrix, Bt) -> Ct

`C = A*B` with `B` (k×n) and `C` (m×n) given as their transposes `Bt` (n×k) and `Ct` (n×m), which
is how NumPy's row-major arrays look from Julia. Every element of `Ct` is written. Validates the
structure of `A` first (`ArgumentError`), as every product does.
"""
function spmm_rowmajor!(Ct::AbstractMatrix, A::Union{CSRMatrix,BSRMatrix}, Bt::AbstractMatrix)
    problem = spmm_problem(Ct, A, Bt)
    problem === nothing || throw(DimensionMismatch(problem))
    check_format(A)
    return unchecked_spmm_rowmajor!(Ct, A, Bt)
end

"Shape mismatch between `A`, `Bt` and `Ct` of [`spmm_rowmajor!`](@ref), or `nothing`."
function spmm_problem(Ct::AbstractMatrix, A, Bt::AbstractMatrix)
    m, k = size(A)
    n = size(Bt, 1)
    @check size(Bt, 2) == k "dimension mismatch: A is $m×$k but B has $(size(Bt, 2)) rows"
    @check(size(Ct) == (n, m),
           "dimension mismatch: C must be $m×$n (row-major), got $(size(Ct, 2))×$(size(Ct, 1))")
    return nothing
end

# The kernels below trust that A passed format_problem and the shapes spmm_problem. Each takes
# `after(lo, hi)`, called by the thread that computed rows lo:hi of the result right after them,
# while they are in cache (the column-major products store them there).
no_after(lo::Int, hi::Int) = nothing

function unchecked_spmm_rowmajor!(Ct::AbstractMatrix, A::CSRMatrix, Bt::AbstractMatrix,
                                  after::G=no_after) where {G}
    n = size(Bt, 1)
    n == 1 && return (unchecked_spmv!(Ct, A, Bt, after); Ct)
    return with_aligned(B -> csr_spmm_aligned!(Ct, A, B, after), Bt, widemul(nnz(A), n))
end

function csr_spmm_aligned!(Ct::AbstractMatrix, A::CSRMatrix, Bt::AbstractMatrix,
                           after::G=no_after) where {G}
    n = size(Bt, 1)
    n == 1 && return (unchecked_spmv!(Ct, A, Bt, after); Ct)
    foreach_rowchunk(stored_work(A.indptr), size(A, 1), widemul(nnz(A), n)) do lo, hi
        csr_spmm_rows!(Ct, A, Bt, lo, hi)
        after(lo, hi)
    end
    return Ct
end

"""
    unchecked_spmv!(y, A, x, after=no_after)

`y = A*x` for `A` a `CSRMatrix` or `BSRMatrix` (validated), where `y` and `x` are indexed
linearly: vectors, `m×1` and `k×1` matrices, or the `1×m` and `1×k` row-major views alike.
"""
function unchecked_spmv!(y::AbstractArray, A::CSRMatrix, x::AbstractArray, after::G=no_after) where {G}
    foreach_rowchunk(stored_work(A.indptr), size(A, 1), nnz(A)) do lo, hi
        csr_spmv_rows!(y, A, x, lo, hi)
        after(lo, hi)
    end
    return y
end

csr_spmm_rows!(Ct::AbstractMatrix, A::CSRMatrix, Bt::AbstractMatrix, lo::Int, hi::Int) =
    csr_spmm_rows_any!(Ct, A, Bt, lo, hi, 1:size(Ct, 1))

# Explicit SIMD: for each row, a strip of U vectors of Ct[:, i] stays in registers while the
# row's stored entries are swept, so Ct is written once and each entry costs U loads of Bt.
function csr_spmm_rows!(Ct::Matrix{T}, A::CSRMatrix{T}, Bt::Matrix{T}, lo::Int,
                        hi::Int) where {T<:SIMDFloat}
    n = size(Ct, 1)
    W = lanes(T)
    U = WIDE_VECTORS[] ? 4 : 2
    nU = n - n % (U * W)
    n1 = n - n % W
    indptr, indices, data = A.indptr, A.indices, A.data
    GC.@preserve Ct Bt A begin
        pC, pB, pA = pointer(Ct), pointer(Bt), pointer(data)
        for i in lo:hi
            for l0 in 1:U*W:nU
                U == 4 ? csr_strip_simd!(pC, pB, pA, indptr, indices, n, i, l0, Val(4)) :
                         csr_strip_simd!(pC, pB, pA, indptr, indices, n, i, l0, Val(2))
            end
            for l0 in nU+1:W:n1
                csr_strip_simd!(pC, pB, pA, indptr, indices, n, i, l0, Val(1))
            end
        end
    end
    n1 < n && csr_spmm_rows_any!(Ct, A, Bt, lo, hi, n1+1:n)
    return nothing
end

@generated function csr_strip_simd!(pC::Ptr{T}, pB::Ptr{T}, pA::Ptr{T}, indptr, indices, n::Int,
                                    i::Int, l0::Int, ::Val{U}) where {T,U}
    W, s = lanes(T), sizeof(T)
    acc(u) = Symbol(:acc_, u)
    init = [:($(acc(u)) = vzero(Val($W), $T)) for u in 1:U]
    fmas = [:($(acc(u)) = vmuladd(vload(Val($W), pb + $((u - 1) * W * s)), a, $(acc(u)))) for u in 1:U]
    store = [:(vstore!(pC + ((i - 1) * n + l0 - 1 + $((u - 1) * W)) * $s, $(acc(u)))) for u in 1:U]
    quote
        $(init...)
        @inbounds for p in Int(indptr[i])+1:Int(indptr[i+1])
            a = vbroadcast(Val($W), unsafe_load(pA, p))
            pb = pB + (Int(indices[p]) * n + l0 - 1) * $s          # &Bt[l0, j]
            $(fmas...)
        end
        $(store...)
        return nothing
    end
end

# One column of B: LLVM vectorises the @simd kernel with gathers, which pay only while A streams
# from memory; while A's entries fit in cache, four scalar accumulators are 1.3–1.8× faster.
# Measured on the 2-core development machine (2 threads, 32 MiB L3, float32): the scalar kernel
# was faster up to 18 MB of A (indices + values), the two within 10 % at 33–36 MB, the gathers
# 15 % faster at 180 MB.
const SPMV_GATHER_BYTES = Ref(24 << 20)

function csr_spmv_rows!(y::AbstractArray{Tc}, A::CSRMatrix, x::AbstractArray,
                        lo::Int, hi::Int) where {Tc}
    if sizeof(A.indices) + sizeof(A.data) > SPMV_GATHER_BYTES[]
        return csr_spmv_rows_simd!(y, A, x, lo, hi)
    end
    indptr, indices, data = A.indptr, A.indices, A.data
    @inbounds for i in lo:hi
        s1 = s2 = s3 = s4 = zero(Tc)
        p, pe = Int(indptr[i]) + 1, Int(indptr[i+1])
        while p + 3 <= pe
            s1 = muladd(convert(Tc, data[p]), convert(Tc, x[Int(indices[p])+1]), s1)
            s2 = muladd(convert(Tc, data[p+1]), convert(Tc, x[Int(indices[p+1])+1]), s2)
            s3 = muladd(convert(Tc, data[p+2]), convert(Tc, x[Int(indices[p+2])+1]), s3)
            s4 = muladd(convert(Tc, data[p+3]), convert(Tc, x[Int(indices[p+3])+1]), s4)
            p += 4
        end
        while p <= pe
            s1 = muladd(convert(Tc, data[p]), convert(Tc, x[Int(indices[p])+1]), s1)
            p += 1
        end
        y[i] = (s1 + s2) + (s3 + s4)
    end
    return nothing
end

function csr_spmv_rows_simd!(y::AbstractArray{Tc}, A::CSRMatrix, x::AbstractArray,
                             lo::Int, hi::Int) where {Tc}
    indptr, indices, data = A.indptr, A.indices, A.data
    @inbounds for i in lo:hi
        s = zero(Tc)
        @simd for p in Int(indptr[i])+1:Int(indptr[i+1])
            s += convert(Tc, data[p]) * convert(Tc, x[Int(indices[p])+1])
        end
        y[i] = s
    end
    return nothing
end

# Portable kernel over the rows lo:hi and the strip ls of Ct's columns: four stored entries per
# sweep over Ct[ls, i] quarter the loads and stores of the output.
function csr_spmm_rows_any!(Ct::AbstractMatrix{Tc}, A::CSRMatrix, Bt::AbstractMatrix,
                            lo::Int, hi::Int, ls::UnitRange{Int}) where {Tc}
    indptr, indices, data = A.indptr, A.indices, A.data
    @inbounds for i in lo:hi
        @simd for l in ls
            Ct[l, i] = zero(Tc)
        end
        p = Int(indptr[i]) + 1
        pend = Int(indptr[i+1])
        while p + 3 <= pend
            j1, j2 = Int(indices[p]) + 1, Int(indices[p+1]) + 1
            j3, j4 = Int(indices[p+2]) + 1, Int(indices[p+3]) + 1
            a1, a2 = convert(Tc, data[p]), convert(Tc, data[p+1])
            a3, a4 = convert(Tc, data[p+2]), convert(Tc, data[p+3])
            @simd for l in ls
                s = Ct[l, i]
                s = muladd(a1, convert(Tc, Bt[l, j1]), s)
                s = muladd(a2, convert(Tc, Bt[l, j2]), s)
                s = muladd(a3, convert(Tc, Bt[l, j3]), s)
                s = muladd(a4, convert(Tc, Bt[l, j4]), s)
                Ct[l, i] = s
            end
            p += 4
        end
        while p <= pend
            j = Int(indices[p]) + 1
            a = convert(Tc, data[p])
            @simd for l in ls
                Ct[l, i] = muladd(a, convert(Tc, Bt[l, j]), Ct[l, i])
            end
            p += 1
        end
    end
    return nothing
end

# --- BSR ---------------------------------------------------------------------------------------
# Block row I of C, as Ct[:, rows of I] (n×b), is the sum over its blocks k of
# Bt[:, cols of block column J] (n×b) * data[:, :, k] (b×b, the stored transpose). The unit of work
# is a tile of that output (a few cache lines along n by a few columns), kept in registers while
# every block of the row is swept, so each output element is written exactly once and the panel of
# B a tile touches stays in L1.

# Output tile height (along n) of the portable kernel: two 64-byte lines of Bt per column.
tile_rows(::Type{T}) where {T} = max(1, 128 ÷ max(sizeof(T), 1))
const TILE_COLS = 4

function unchecked_spmm_rowmajor!(Ct::AbstractMatrix, A::BSRMatrix, Bt::AbstractMatrix,
                                  after::G=no_after) where {G}
    n = size(Bt, 1)
    n == 1 && return (unchecked_spmv!(Ct, A, Bt, after); Ct)
    b = blocksize(A)
    return with_aligned(B -> bsr_spmm_aligned!(Ct, A, B, after), Bt, widemul(nnzb(A) * b * b, n))
end

bsr_cumwork(A::BSRMatrix) = (indptr = A.indptr; b = blocksize(A); r -> Int(@inbounds indptr[r+1]) * b + r)

function unchecked_spmv!(y::AbstractArray, A::BSRMatrix, x::AbstractArray, after::G=no_after) where {G}
    b = blocksize(A)
    foreach_rowchunk(bsr_cumwork(A), A.mb, nnz(A)) do lo, hi
        bsr_spmv_rows!(y, A, x, lo, hi)
        after((lo - 1) * b + 1, hi * b)
    end
    return y
end

function bsr_spmm_aligned!(Ct::AbstractMatrix, A::BSRMatrix, Bt::AbstractMatrix,
                           after::G=no_after) where {G}
    n = size(Bt, 1)
    rows! = bsr_rows_kernel(Ct, A, Bt)           # one dynamic dispatch per call, not per tile
    b = blocksize(A)
    foreach_rowchunk(bsr_cumwork(A), A.mb, widemul(nnz(A), n)) do lo, hi
        rows!(Ct, A, Bt, lo, hi)
        after((lo - 1) * b + 1, hi * b)
    end
    return Ct
end

# n = 1: each output entry is a sum of dot products of a stored block column (contiguous, as
# blocks are stored transposed) with a stretch of x. The SIMD kernel keeps four rows' partial
# sums in vector registers across every block of the block row and reduces them once at its end.
function bsr_spmv_rows!(Ct::Array{T}, A::BSRMatrix{T}, Bt::Array{T}, lo::Int, hi::Int) where {T<:SIMDFloat}
    b, W, s = blocksize(A), lanes(T), sizeof(T)
    (b % W == 0 && b % 4 == 0) || return bsr_spmv_rows_any!(Ct, A, Bt, lo, hi)
    indptr, indices = A.indptr, A.indices
    GC.@preserve Ct A Bt begin
        pC, px, pD = pointer(Ct), pointer(Bt), pointer(A.data)
        @inbounds for I in lo:hi
            k0, k1 = Int(indptr[I]) + 1, Int(indptr[I+1])
            for r0 in 1:4:b
                a1 = a2 = a3 = a4 = vzero(Val(W), T)
                for k in k0:k1
                    pxk = px + Int(indices[k]) * b * s                  # &x[J*b + 1]
                    pd = pD + ((k - 1) * b * b + (r0 - 1) * b) * s      # &data[1, r0, k]
                    for c0 in 0:W:b-1
                        xv = vload(Val(W), pxk + c0 * s)
                        a1 = vmuladd(vload(Val(W), pd + c0 * s), xv, a1)
                        a2 = vmuladd(vload(Val(W), pd + (b + c0) * s), xv, a2)
                        a3 = vmuladd(vload(Val(W), pd + (2b + c0) * s), xv, a3)
                        a4 = vmuladd(vload(Val(W), pd + (3b + c0) * s), xv, a4)
                    end
                end
                o = (I - 1) * b + r0                                    # first output row, 1-based
                unsafe_store!(pC, vsum(a1), o)
                unsafe_store!(pC, vsum(a2), o + 1)
                unsafe_store!(pC, vsum(a3), o + 2)
                unsafe_store!(pC, vsum(a4), o + 3)
            end
        end
    end
    return nothing
end
bsr_spmv_rows!(Ct::AbstractArray, A::BSRMatrix, Bt::AbstractArray, lo::Int, hi::Int) =
    bsr_spmv_rows_any!(Ct, A, Bt, lo, hi)

function bsr_spmv_rows_any!(Ct::AbstractArray{Tc}, A::BSRMatrix, Bt::AbstractArray,
                            lo::Int, hi::Int) where {Tc}
    D, indptr, indices = A.data, A.indptr, A.indices
    b = size(D, 1)
    @inbounds for I in lo:hi, r in 1:b
        s = zero(Tc)
        for k in Int(indptr[I])+1:Int(indptr[I+1])
            co = Int(indices[k]) * b
            @simd for c in 1:b
                s += convert(Tc, D[c, r, k]) * convert(Tc, Bt[co+c])
            end
        end
        Ct[(I-1)*b+r] = s
    end
    return nothing
end

# Explicit SIMD where all three operands share a float type and live in plain arrays.
function bsr_rows_kernel(Ct::Matrix{T}, A::BSRMatrix{T}, Bt::Matrix{T}) where {T<:SIMDFloat}
    U, R = simd_tile_shape(blocksize(A))
    return simd_rows_kernel(Val(U), Val(R))
end
simd_rows_kernel(::Val{U}, ::Val{R}) where {U,R} =
    (Ct, A, Bt, lo, hi) -> bsr_spmm_rows_simd!(Ct, A, Bt, lo, hi, Val(U), Val(R))

function bsr_rows_kernel(Ct::AbstractMatrix, A::BSRMatrix, Bt::AbstractMatrix)
    L = tile_rows(eltype(Ct))
    R = min(TILE_COLS, blocksize(A))
    return scalar_rows_kernel(Val(L), Val(R))
end
scalar_rows_kernel(::Val{L}, ::Val{R}) where {L,R} =
    (Ct, A, Bt, lo, hi) -> bsr_spmm_rows!(Ct, A, Bt, lo, hi, Val(L), Val(R))

"""
    simd_tile_shape(b) -> (U, R)

Output tile of the SIMD kernel: `U` 64-byte vectors along n by `R` output columns, sized so the
U*R accumulators, U vectors of B and one broadcast fit the vector registers (32 with AVX-512,
16 with AVX2, where each 64-byte vector takes two).
"""
function simd_tile_shape(b::Int)
    U, Rmax = WIDE_VECTORS[] ? (2, 8) : (1, 4)
    R = b < Rmax ? b : b % Rmax == 0 ? Rmax : min(4, Rmax)
    return U, R
end

"Whether the CPU has 32 512-bit vector registers (AVX-512); set when the package loads."
const WIDE_VECTORS = Ref(false)

function detect_wide_vectors()
    Sys.islinux() || return false
    try
        return occursin(r"\bavx512f\b", read("/proc/cpuinfo", String))
    catch
        return false
    end
end

function bsr_spmm_rows_simd!(Ct::Matrix{T}, A::BSRMatrix{T}, Bt::Matrix{T}, lo::Int, hi::Int,
                             ::Val{U}, ::Val{R}) where {T,U,R}
    n = size(Ct, 1)
    b = blocksize(A)
    W = lanes(T)
    nR = b - b % R
    indptr, indices = A.indptr, A.indices
    GC.@preserve Ct A Bt begin
        pC, pB, pD = pointer(Ct), pointer(Bt), pointer(A.data)
        for I in lo:hi
            l0 = 1
            while l0 + U * W - 1 <= n
                for r0 in 1:R:nR
                    bsr_tile_simd!(pC, pB, pD, n, b, indptr, indices, I, l0, r0, Val(U), Val(R))
                end
                l0 += U * W
            end
            while l0 + W - 1 <= n
                for r0 in 1:R:nR
                    bsr_tile_simd!(pC, pB, pD, n, b, indptr, indices, I, l0, r0, Val(1), Val(R))
                end
                l0 += W
            end
            nR < b && l0 > 1 && bsr_tile_any!(Ct, A, Bt, I, 1:l0-1, nR+1:b)
            l0 <= n && bsr_tile_any!(Ct, A, Bt, I, l0:n, 1:b)
        end
    end
    return nothing
end

# Ct[l0 .+ (0:U*W-1), rows r0:r0+R-1 of block row I] in U*R vector accumulators; per block column
# c, U vectors of Bt[:, c] are loaded once and multiplied by R broadcast block entries.
@generated function bsr_tile_simd!(pC::Ptr{T}, pB::Ptr{T}, pD::Ptr{T}, n::Int, b::Int,
                                   indptr, indices, I::Int, l0::Int, r0::Int,
                                   ::Val{U}, ::Val{R}) where {T,U,R}
    W, s = lanes(T), sizeof(T)
    acc(u, r) = Symbol(:acc_, u, :_, r)
    bv(u) = Symbol(:b_, u)
    init = [:($(acc(u, r)) = vzero(Val($W), $T)) for u in 1:U for r in 1:R]
    loadb = [:($(bv(u)) = vload(Val($W), pc + $((u - 1) * W * s))) for u in 1:U]
    fmas = Expr[]
    for r in 1:R
        push!(fmas, :(d = vbroadcast(Val($W), unsafe_load(pd, $(r - 1) * b + 1))))
        append!(fmas, [:($(acc(u, r)) = vmuladd($(bv(u)), d, $(acc(u, r)))) for u in 1:U])
    end
    store = [:(vstore!(pC + ((ro + $(r - 1)) * n + l0 - 1 + $((u - 1) * W)) * $s, $(acc(u, r))))
             for u in 1:U for r in 1:R]
    quote
        $(init...)
        @inbounds for k in Int(indptr[I])+1:Int(indptr[I+1])
            pc = pB + (Int(indices[k]) * b * n + l0 - 1) * $s      # &Bt[l0, J*b + 1]
            pd = pD + ((k - 1) * b * b + (r0 - 1) * b) * $s         # &data[1, r0, k]
            for c in 1:b
                $(loadb...)
                $(fmas...)
                pc += n * $s
                pd += $s
            end
        end
        ro = (I - 1) * b + r0 - 1                                   # 0-based first output column
        $(store...)
        return nothing
    end
end

# Portable kernel for mixed or non-float element types and non-Array operands.
function bsr_spmm_rows!(Ct::AbstractMatrix, A::BSRMatrix, Bt::AbstractMatrix, lo::Int, hi::Int,
                        ::Val{L}, ::Val{R}) where {L,R}
    n = size(Ct, 1)
    b = blocksize(A)
    nL = n - n % L                # rows covered by full tiles
    nR = b - b % R
    for I in lo:hi
        l0 = 1
        while l0 <= nL
            r0 = 1
            while r0 <= nR
                bsr_tile!(Ct, A, Bt, I, l0, r0, Val(L), Val(R))
                r0 += R
            end
            nR < b && bsr_tile_any!(Ct, A, Bt, I, l0:l0+L-1, nR+1:b)
            l0 += L
        end
        nL < n && bsr_tile_any!(Ct, A, Bt, I, nL+1:n, 1:b)
    end
    return nothing
end

# Ct[l0:l0+L-1, rows r0:r0+R-1 of block row I] in L*R scalar accumulators that LLVM packs into
# vector registers.
@generated function bsr_tile!(Ct::AbstractMatrix{Tc}, A::BSRMatrix, Bt::AbstractMatrix,
                              I::Int, l0::Int, r0::Int, ::Val{L}, ::Val{R}) where {Tc,L,R}
    acc(l, r) = Symbol(:acc_, l, :_, r)
    bv(l) = Symbol(:b_, l)
    dv(r) = Symbol(:d_, r)
    init = [:($(acc(l, r)) = zero($Tc)) for l in 1:L for r in 1:R]
    loadb = [:($(bv(l)) = convert($Tc, Bt[l0+$(l-1), col])) for l in 1:L]
    loadd = [:($(dv(r)) = convert($Tc, D[c, r0+$(r-1), k])) for r in 1:R]
    fma = [:($(acc(l, r)) = muladd($(bv(l)), $(dv(r)), $(acc(l, r)))) for r in 1:R for l in 1:L]
    store = [:(Ct[l0+$(l-1), ro+$r] = $(acc(l, r))) for l in 1:L for r in 1:R]
    quote
        D = A.data
        indptr, indices = A.indptr, A.indices
        b = size(D, 1)
        $(init...)
        @inbounds for k in Int(indptr[I])+1:Int(indptr[I+1])
            co = Int(indices[k]) * b
            for c in 1:b
                col = co + c
                $(loadb...)
                $(loadd...)
                $(fma...)
            end
        end
        ro = (I - 1) * b + r0 - 1
        @inbounds begin
            $(store...)
        end
        return nothing
    end
end

# Any tile (edges): one output column of the tile at a time, vectorised along n.
function bsr_tile_any!(Ct::AbstractMatrix{Tc}, A::BSRMatrix, Bt::AbstractMatrix, I::Int,
                       ls::UnitRange{Int}, rs::UnitRange{Int}) where {Tc}
    D, indptr, indices = A.data, A.indptr, A.indices
    b = size(D, 1)
    ro = (I - 1) * b
    @inbounds for r in rs
        @simd for l in ls
            Ct[l, ro+r] = zero(Tc)
        end
        for k in Int(indptr[I])+1:Int(indptr[I+1])
            co = Int(indices[k]) * b
            for c in 1:b
                d = convert(Tc, D[c, r, k])
                @simd for l in ls
                    Ct[l, ro+r] = muladd(convert(Tc, Bt[l, co+c]), d, Ct[l, ro+r])
                end
            end
        end
    end
    return nothing
end

