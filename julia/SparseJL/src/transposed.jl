# Transposed products C = op(A)ᵀ·B, op = identity or conj (Aᴴ), for A (m×k) CSR or BSR and dense
# B (m×n), in the row-major form of the SpMM kernels: Bt = Bᵀ (n×m) and Ct = Cᵀ (n×k), so
# Ct[:, j] += a_ij * Bt[:, i] for every stored a_ij. Rows of A scatter into columns of Ct, so
# threads cannot share Ct by rows of A. Instead:
# - strips: each thread owns a strip of Ct's rows (B's columns) and sweeps all of A (n wide);
# - partials: for narrow n, each thread sums its rows of A into a private Ct, then the private
#   results are added up by columns.
# The same kernels give dense × sparse products: X·A = (Aᵀ·Xᵀ)ᵀ.

"""
    unchecked_spmm_t_rowmajor!(Ct, A, Bt, op=identity) -> Ct

`C = op(A)ᵀ * B` with `Bt` (n×m) and `Ct` (n×k) the transposes of `B` and `C`; `A` validated.
Every element of `Ct` is written.
"""
function unchecked_spmm_t_rowmajor!(Ct::AbstractMatrix{Tc}, A::Union{CSRMatrix,BSRMatrix},
                                    Bt::AbstractMatrix, op::F=identity) where {Tc,F}
    n = size(Ct, 1)
    W = lanes(Tc)
    work = widemul(nnz(A), n)
    nt = nthreads()
    if nt == 1 || work < SERIAL_WORK[] || cld(n, W) >= nt
        S = W * max(cld(cld(n, nt), W), 1)              # strip width, whole vectors (at least one: n may be 0)
        foreach_rowchunk(identity, cld(n, S), work) do lo, hi
            ls = (lo - 1) * S + 1 : min(hi * S, n)
            for j in 1:size(Ct, 2), l in ls
                @inbounds Ct[l, j] = zero(Tc)
            end
            accumulate_t!(Ct, A, Bt, 1:stored_rows(A), ls, op)
        end
        return Ct
    end
    bounds = partition_rows(row_cumwork(A), stored_rows(A), nt)
    with_scratch(SCRATCH_PARTIAL, Tc, (n, size(Ct, 2), nt)) do P
        foreach_rowchunk(identity, nt, work) do lo, hi
            for t in lo:hi
                Pt = view(P, :, :, t)
                fill!(Pt, zero(Tc))
                accumulate_t!(Pt, A, Bt, bounds[t]+1:bounds[t+1], 1:n, op)
            end
        end
        foreach_rowchunk(identity, size(Ct, 2), widemul(length(P), 1)) do lo, hi
            @inbounds for j in lo:hi, l in 1:n
                s = P[l, j, 1]
                for t in 2:nt
                    s += P[l, j, t]
                end
                Ct[l, j] = s
            end
        end
    end
    return Ct
end

"Rows of the stored structure: rows of a CSR matrix, block rows of a BSR matrix."
stored_rows(A::CSRMatrix) = A.m
stored_rows(A::BSRMatrix) = A.mb
row_cumwork(A::CSRMatrix) = stored_work(A.indptr)
row_cumwork(A::BSRMatrix) = bsr_cumwork(A)

"Ct[ls, :] += (op(A)ᵀ B)ᵀ over the stored rows `rows` of A (block rows for BSR)."
function accumulate_t!(Ct::AbstractMatrix{Tc}, A::CSRMatrix, Bt::AbstractMatrix,
                       rows::UnitRange{Int}, ls::UnitRange{Int}, op::F) where {Tc,F}
    indptr, indices, data = A.indptr, A.indices, A.data
    @inbounds for i in rows, p in Int(indptr[i])+1:Int(indptr[i+1])
        j = Int(indices[p]) + 1
        a = convert(Tc, op(data[p]))
        @simd for l in ls
            Ct[l, j] = muladd(a, convert(Tc, Bt[l, i]), Ct[l, j])
        end
    end
    return nothing
end

function accumulate_t!(Ct::AbstractMatrix{Tc}, A::BSRMatrix, Bt::AbstractMatrix,
                       rows::UnitRange{Int}, ls::UnitRange{Int}, op::F) where {Tc,F}
    indptr, indices, D = A.indptr, A.indices, A.data
    b = blocksize(A)
    @inbounds for I in rows, k in Int(indptr[I])+1:Int(indptr[I+1])
        ro, co = (I - 1) * b, Int(indices[k]) * b
        for c in 1:b, r in 1:b
            d = convert(Tc, op(D[c, r, k]))           # entry (r, c) of the block
            @simd for l in ls
                Ct[l, co+c] = muladd(d, convert(Tc, Bt[l, ro+r]), Ct[l, co+c])
            end
        end
    end
    return nothing
end

# Explicit SIMD where all three operands share a float type and live in plain arrays: strips of U
# vectors along n. CSR: row i of Bt's strip stays in registers while the row's entries update
# their columns of Ct; at most 2 vectors wide (3072×768 at density 0.1, 128 columns, 2 threads:
# 1.5 ms with 1 or 2 vectors, 3-12 ms with 4, whose columns of Ct crowd the cache). BSR: a column
# of Ct's strip stays in registers while the block's b entries that feed it are swept (one load
# of Bt per multiply-add, as in the forward kernel).

function accumulate_t!(Ct::Matrix{T}, A::Union{CSRMatrix{T},BSRMatrix{T}}, Bt::Matrix{T},
                       rows::UnitRange{Int}, ls::UnitRange{Int}, op::F) where {T<:SIMDFloat,F}
    W = lanes(T)
    l = first(ls)
    while A isa BSRMatrix && l + 4W - 1 <= last(ls)
        strip_t_simd!(Ct, A, Bt, rows, l, Val(4), op)
        l += 4W
    end
    while l + 2W - 1 <= last(ls)
        strip_t_simd!(Ct, A, Bt, rows, l, Val(2), op)
        l += 2W
    end
    while l + W - 1 <= last(ls)
        strip_t_simd!(Ct, A, Bt, rows, l, Val(1), op)
        l += W
    end
    l <= last(ls) && accumulate_t!(view(Ct, :, :), A, Bt, rows, l:last(ls), op)
    return nothing
end

function strip_t_simd!(Ct::Matrix{T}, A::CSRMatrix{T}, Bt::Matrix{T}, rows::UnitRange{Int},
                       l0::Int, ::Val{U}, op::F) where {T,U,F}
    W, s, n = lanes(T), sizeof(T), size(Ct, 1)
    indptr, indices, data = A.indptr, A.indices, A.data
    GC.@preserve Ct Bt A begin
        pC, pB = pointer(Ct), pointer(Bt)
        @inbounds for i in rows
            pb = pB + ((i - 1) * n + l0 - 1) * s
            b = vloads(Val(U), Val(W), pb)
            for p in Int(indptr[i])+1:Int(indptr[i+1])
                a = vbroadcast(Val(W), op(data[p]))
                pc = pC + (Int(indices[p]) * n + l0 - 1) * s
                vstores!(pc, vmuladds(a, b, vloads(Val(U), Val(W), pc)))
            end
        end
    end
    return nothing
end

function strip_t_simd!(Ct::Matrix{T}, A::BSRMatrix{T}, Bt::Matrix{T}, rows::UnitRange{Int},
                       l0::Int, ::Val{U}, op::F) where {T,U,F}
    W, s, n = lanes(T), sizeof(T), size(Ct, 1)
    b = blocksize(A)
    indptr, indices, D = A.indptr, A.indices, A.data
    GC.@preserve Ct Bt D begin
        pC, pB, pD = pointer(Ct), pointer(Bt), pointer(D)
        @inbounds for I in rows, k in Int(indptr[I])+1:Int(indptr[I+1])
            ro, co = (I - 1) * b, Int(indices[k]) * b
            for c in 1:b
                pc = pC + ((co + c - 1) * n + l0 - 1) * s
                acc = vloads(Val(U), Val(W), pc)
                pd = pD + ((k - 1) * b * b + c - 1) * s          # &D[c, 1, k], stride b along r
                for r in 1:b
                    d = vbroadcast(Val(W), op(unsafe_load(pd + (r - 1) * b * s)))
                    pb = pB + ((ro + r - 1) * n + l0 - 1) * s
                    acc = vmuladds(d, vloads(Val(U), Val(W), pb), acc)
                end
                vstores!(pc, acc)
            end
        end
    end
    return nothing
end

# U consecutive vectors at once (helpers, so that no closure captures a loop variable)
@inline vloads(::Val{U}, ::Val{W}, p::Ptr{T}) where {U,W,T} =
    ntuple(u -> vload(Val(W), p + (u - 1) * W * sizeof(T)), Val(U))
@inline vstores!(p::Ptr{T}, v::NTuple{U,Vec{W,T}}) where {U,W,T} =
    (ntuple(u -> vstore!(p + (u - 1) * W * sizeof(T), v[u]), Val(U)); nothing)
@inline vmuladds(a::Vec{W,T}, b::NTuple{U,Vec{W,T}}, c::NTuple{U,Vec{W,T}}) where {U,W,T} =
    ntuple(u -> vmuladd(a, b[u], c[u]), Val(U))
