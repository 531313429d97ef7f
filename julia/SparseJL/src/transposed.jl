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
        S = W * cld(cld(n, nt), W)                      # strip width, whole vectors
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
