# SpGEMM where B's rows are dense enough that whole-row operations beat visiting entries one by
# one (a Gram product W·Wᵀ of a pruned layer: every row of C is full).
# - Structure: each row of B as a bitmap over C's columns; a row of C is the OR of the bitmaps of
#   the rows of B that A's row selects, so counting costs n/64 words per stored entry of A
#   instead of one scattered update per entry of B.
# - Values, when every row of C is full: C's data is C itself, dense and row-major, and the
#   product is the SpMM of A with B densified, whose SIMD kernel does n/W vector multiply-adds per
#   stored entry of A instead of one scattered update per entry of B.

"""
Whether rows of B average at least four entries per 64-column word of a bitmap over `n` columns
(and their bitmaps take at most 16 MiB).
"""
union_pays(nnzB::Integer, k::Integer, n::Integer) =
    4 * widemul(nwords(n), k) <= nnzB && widemul(nwords(n), k) <= 1 << 21

"Bitmaps of B's rows over its `n` columns, `nwords(n)` words per row."
function row_bitmaps(k::Int, n::Int, indptrB, indicesB)
    nw = nwords(n)
    bits = zeros(UInt64, nw * k)
    foreach_rowchunk(stored_work(indptrB), k, Int(indptrB[k+1])) do lo, hi
        @inbounds for j in lo:hi, q in Int(indptrB[j])+1:Int(indptrB[j+1])
            col = Int(indicesB[q])
            w = (j - 1) * nw + (col >> 6) + 1
            bits[w] |= UInt64(1) << (col & 63)
        end
    end
    return bits
end

"Mask of the valid bits in the last word of a bitmap over `n` columns."
last_word_mask(n::Int) = n & 63 == 0 ? typemax(UInt64) : (UInt64(1) << (n & 63)) - 1

"""
OR into `row` the bitmaps of the rows of B selected by the stored entries of A's row `i` and
count its columns; stops early once all `n` are set.
"""
@inline function union_count!(row::Vector{UInt64}, bits::Vector{UInt64}, nw::Int, n::Int, i::Int,
                              indptrA, indicesA)
    fill!(row, 0)
    p, pe = Int(indptrA[i]) + 1, Int(indptrA[i+1])
    @inbounds while p <= pe
        q = min(p + 7, pe)                     # eight rows of B between checks for a full row
        for pp in p:q
            off = Int(indicesA[pp]) * nw
            @simd for w in 1:nw
                row[w] |= bits[off+w]
            end
        end
        p = q + 1
        full_row(row, nw, n) && return n
    end
    count = 0
    @inbounds for w in 1:nw
        count += count_ones(row[w])
    end
    return count
end

"Whether the bitmap `row` has all of its `n` columns set."
@inline function full_row(row::Vector{UInt64}, nw::Int, n::Int)
    nw == 0 && return true                     # no columns: every (empty) row is full
    x = typemax(UInt64)
    @inbounds for w in 1:nw-1
        x &= row[w]
    end
    @inbounds return x == typemax(UInt64) && row[nw] == last_word_mask(n)
end

function union_symbolic!(indptrC, m::Int, n::Int, indptrA, indicesA, bits)
    nw = nwords(n)
    foreach_rowchunk(stored_work(indptrA), m, widemul(Int(indptrA[m+1]), nw)) do lo, hi
        row = Vector{UInt64}(undef, nw)
        for i in lo:hi
            @inbounds indptrC[i+1] = union_count!(row, bits, nw, n, i, indptrA, indicesA)
        end
    end
    return indptrC
end

"""
Whether SpMM against densified B computes full rows of C cheaper than scattering `flops`
updates: each stored entry of A then costs n/W vector multiply-adds (W lanes). Measured on Gram
products W·Wᵀ (768×3072, float32, docs/julia.md): one vector multiply-add costs about two
scattered updates (0.66 against 0.35 ns at density 0.1, 0.65 against 0.30 at 0.25), so it pays
from 2.5 updates per vector multiply-add on.
"""
dense_b_pays(nnzA::Integer, n::Integer, flops::Integer, ::Type{T}) where {T} =
    5 * widemul(nnzA, cld(n, lanes(T))) <= 2 * widemul(flops, 1)

"Whether `dense_numeric!` applies: every row of C full, SIMD-able operands, and it pays."
dense_numeric_pays(indicesC, dataC, indptrC, m, n, indptrA, indicesA, dataA, dataB, k, flops) =
    false
function dense_numeric_pays(indicesC::Vector, dataC::Vector{T}, indptrC, m::Int, n::Int,
                            indptrA::Vector{Ti}, indicesA::Vector{Ti}, dataA::Vector{T},
                            dataB::Vector{T}, k::Int, flops::Int) where {T<:SIMDFloat,Ti}
    length(dataC) == widemul(m, n) && length(indicesC) == length(dataC) &&
        widemul(n, k) * sizeof(T) <= ALIGNED_MAX_BYTES &&
        dense_b_pays(Int(indptrA[m+1]), n, flops, T) || return false
    return all(i -> indptrC[i+1] - indptrC[i] == n, 1:m)
end

"""
Numeric phase for a C whose every row is full (`dense_numeric_pays`), as SpMM against B
densified. Returns a message if `indptrC` does not match the product, else `nothing`.
"""
function dense_numeric!(indicesC, dataC::Vector{T}, m::Int, n::Int, indptrA::Vector{Ti},
                        indicesA, dataA, indptrB, indicesB, dataB, k::Int) where {T,Ti}
    bits = row_bitmaps(k, n, indptrB, indicesB)
    nw = nwords(n)
    firstbad = Threads.Atomic{Int}(typemax(Int))
    foreach_rowchunk(stored_work(indptrA), m, widemul(Int(indptrA[m+1]), nw)) do lo, hi
        row = Vector{UInt64}(undef, nw)
        @inbounds for i in lo:hi
            union_count!(row, bits, nw, n, i, indptrA, indicesA) == n ||
                Threads.atomic_min!(firstbad, i)
            base = (i - 1) * n
            for col in 1:n
                indicesC[base+col] = (col - 1) % eltype(indicesC)
            end
        end
    end
    firstbad[] == typemax(Int) ||
        return "C: indptr does not match the structure of A*B (first at row $(firstbad[] - 1))"
    A = CSRMatrix{T,Ti}(m, k, indptrA, indicesA, dataA; check=false)
    with_scratch(SCRATCH_B, T, (n, k)) do Bt
        foreach_rowchunk(r -> widemul(r, n), k, widemul(k, n)) do lo, hi
            @inbounds for j in lo:hi
                for col in 1:n
                    Bt[col, j] = zero(T)
                end
                for q in Int(indptrB[j])+1:Int(indptrB[j+1])
                    Bt[Int(indicesB[q])+1, j] += dataB[q]
                end
            end
        end
        csr_spmm_aligned!(reshape(dataC, n, m), A, Bt)
    end
    return nothing
end
