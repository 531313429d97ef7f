# Sparse times sparse, C = A*B, in two phases as SciPy and cuSPARSE do: the symbolic phase counts
# each row of C exactly (so the caller can allocate C), the numeric phase fills it. Both are
# threaded over rows of A, balanced by the multiply-adds each row costs, with a per-thread marker
# array (and dense accumulator) of length n. Inputs may have unsorted and duplicate indices;
# output rows are sorted, duplicates merged, and entries that cancel to zero are kept.

"Cumulative multiply-adds of the first r rows of A*B, r = 0:m (0-based structure)."
function cumulative_flops(m::Int, indptrA, indicesA, indptrB)
    cum = Vector{Int}(undef, m + 1)
    cum[1] = 0
    @inbounds for i in 1:m
        f = 0
        for p in Int(indptrA[i])+1:Int(indptrA[i+1])
            j = Int(indicesA[p]) + 1
            f += Int(indptrB[j+1]) - Int(indptrB[j])
        end
        cum[i+1] = cum[i] + f
    end
    return cum
end

"""
    spgemm_symbolic!(indptrC, m, k, n, indptrA, indicesA, indptrB, indicesB) -> indptrC

Fill `indptrC` (length `m+1`) with the 0-based row offsets of the structure of `A*B`, where `A`
is `m×k` and `B` is `k×n` in 0-based CSR form (only the structure is read). For BSR, call it on
the block structure.
"""
function spgemm_symbolic!(indptrC::AbstractVector, m::Integer, k::Integer, n::Integer,
                          indptrA::AbstractVector, indicesA::AbstractVector,
                          indptrB::AbstractVector, indicesB::AbstractVector;
                          unit::AbstractString="row")
    throw_problem(symbolic_problem(indptrC, m, k, n, indptrA, indicesA, indptrB, indicesB;
                                   unit=unit))
    return unchecked_spgemm_symbolic!(indptrC, m, n, indptrA, indicesA, indptrB, indicesB)
end

function symbolic_problem(indptrC, m, k, n, indptrA, indicesA, indptrB, indicesB;
                          unit::AbstractString="row")
    @forward compressed_problem(m, k, indptrA, indicesA, length(indicesA); what="A: ", unit=unit)
    @forward compressed_problem(k, n, indptrB, indicesB, length(indicesB); what="B: ", unit=unit)
    @check(length(indptrC) == m + 1,
           "C: indptr has length $(length(indptrC)), expected $(m + 1) (one more than the $m $(unit)s)")
    return nothing
end

function unchecked_spgemm_symbolic!(indptrC, m::Integer, n::Integer, indptrA, indicesA,
                                    indptrB, indicesB)
    m, n, k = Int(m), Int(n), length(indptrB) - 1
    if union_pays(indptrB[k+1], k, n)
        union_symbolic!(indptrC, m, n, indptrA, indicesA, row_bitmaps(k, n, indptrB, indicesB))
        return prefix_sum!(indptrC, m)
    end
    return counted_symbolic!(indptrC, m, n, indptrA, indicesA, indptrB, indicesB,
                             cumulative_flops(m, indptrA, indicesA, indptrB))
end

"The structure of A*B counted row by row (marker or bitmap), given its `cumulative_flops`."
function counted_symbolic!(indptrC, m::Int, n::Int, indptrA, indicesA, indptrB, indicesB, cum)
    foreach_rowchunk(r -> (@inbounds cum[r+1]) + r, m, cum[m+1]) do lo, hi
        symbolic_rows!(indptrC, n, indptrA, indicesA, indptrB, indicesB, cum, lo, hi)
    end
    return prefix_sum!(indptrC, m)
end

"Turn the row counts stored at `indptrC[i+1]` into row offsets."
function prefix_sum!(indptrC, m::Int)
    indptrC[1] = 0
    for i in 1:m
        indptrC[i+1] += indptrC[i]
    end
    return indptrC
end

# A entries ahead whose rows of B are prefetched: B's rows are read in random order.
const PREFETCH_AHEAD = 4

"Prefetch the start of the row of B that stored entry `p` of A selects (if `p <= pend`)."
@inline function prefetch_brow(indicesA, indptrB, indicesB, dataB, p::Int, pend::Int)
    if p <= pend
        @inbounds s = Int(indptrB[Int(indicesA[p])+1]) + 1
        prefetch(indicesB, s)
        prefetch(dataB, s)
    end
    return nothing
end

"Words of a bitmap over `n` columns."
nwords(n::Int) = (n + 63) >> 6

"""
Whether row work `f` (multiply-adds) makes a bitmap over all `n` columns worth scanning: the
bitmap finds the row's columns in order (no sort), at the price of one pass over its `n/64` words.
"""
bitmap_row(f::Int, n::Int) = nwords(n) <= 2 * f

# Columns up to this many: the marker array (8 bytes each) stays in L1, and a row can stop
# early once it is full.
const MARKER_COLUMNS = 4096

function symbolic_rows!(indptrC, n::Int, indptrA, indicesA, indptrB, indicesB, cum,
                        lo::Int, hi::Int)
    marker = zeros(Int, n)                  # marker[j] == i: column j already seen in row i
    bits = zeros(UInt64, nwords(n))         # all zero between rows
    pend = Int(indptrA[hi+1])
    @inbounds for i in lo:hi
        f = cum[i+1] - cum[i]
        count = 0
        if n > MARKER_COLUMNS && bitmap_row(f, n)
            for p in Int(indptrA[i])+1:Int(indptrA[i+1])
                prefetch_brow(indicesA, indptrB, indicesB, nothing, p + PREFETCH_AHEAD, pend)
                j = Int(indicesA[p]) + 1
                for q in Int(indptrB[j])+1:Int(indptrB[j+1])
                    col = Int(indicesB[q])
                    w = (col >> 6) + 1
                    bits[w] |= UInt64(1) << (col & 63)
                end
            end
            for w in 1:length(bits)
                count += count_ones(bits[w])
                bits[w] = 0
            end
        else
            for p in Int(indptrA[i])+1:Int(indptrA[i+1])
                prefetch_brow(indicesA, indptrB, indicesB, nothing, p + PREFETCH_AHEAD, pend)
                j = Int(indicesA[p]) + 1
                for q in Int(indptrB[j])+1:Int(indptrB[j+1])
                    col = Int(indicesB[q]) + 1
                    count += marker[col] != i   # branch-free: first visits are unpredictable
                    marker[col] = i
                end
                count == n && break             # row full: nothing more to find
            end
        end
        indptrC[i+1] = count
    end
    return nothing
end

# indptrC must be a valid row-offset array whose last entry is the length of indicesC.
function output_problem(m::Integer, n::Integer, indptrC, indicesC, nC::Integer;
                        unit::AbstractString="row")
    @check(length(indptrC) == m + 1,
           "C: indptr has length $(length(indptrC)), expected $(m + 1) (one more than the $m $(unit)s)")
    first = indptrC[1]
    @check first == 0 "C: indptr[0] is $first, expected 0"
    @forward decrease_problem(indptrC, "C: ")
    prev = indptrC[end]
    @check(prev == length(indicesC) == nC,
           "C: indptr ends at $prev but indices holds $(length(indicesC)) and data $nC entries")
    return column_type_problem(n, eltype(indicesC))
end

"C's column indices, up to `n-1`, must fit its index type `Ti`."
function column_type_problem(n::Integer, ::Type{Ti}) where {Ti}
    @check(n == 0 || n - 1 <= typemax(Ti),
           "C: column indices up to $(n - 1) do not fit its index type $Ti")
    return nothing
end

"""
    spgemm_numeric!(indicesC, dataC, indptrC, m, k, n,
                    indptrA, indicesA, dataA, indptrB, indicesB, dataB) -> (indicesC, dataC)

Fill the column indices (sorted per row, 0-based) and values of `C = A*B`, given `indptrC` from
[`spgemm_symbolic!`](@ref). Throws an `ArgumentError` if `indptrC` does not match the product.
"""
function spgemm_numeric!(indicesC::AbstractVector, dataC::AbstractVector, indptrC::AbstractVector,
                         m::Integer, k::Integer, n::Integer,
                         indptrA::AbstractVector, indicesA::AbstractVector, dataA::AbstractVector,
                         indptrB::AbstractVector, indicesB::AbstractVector, dataB::AbstractVector)
    throw_problem(numeric_problem(indicesC, dataC, indptrC, m, k, n,
                                  indptrA, indicesA, dataA, indptrB, indicesB, dataB))
    throw_problem(unchecked_spgemm_numeric!(indicesC, dataC, indptrC, m, n,
                                            indptrA, indicesA, dataA, indptrB, indicesB, dataB))
    return indicesC, dataC
end

function numeric_problem(indicesC, dataC, indptrC, m, k, n,
                         indptrA, indicesA, dataA, indptrB, indicesB, dataB)
    @forward operands_problem(m, k, n, indptrA, indicesA, dataA, indptrB, indicesB, dataB)
    return output_problem(m, n, indptrC, indicesC, length(dataC))
end

"A (m×k) and B (k×n) as operands of a numeric product: structure and values."
function operands_problem(m, k, n, indptrA, indicesA, dataA, indptrB, indicesB, dataB)
    @forward compressed_problem(m, k, indptrA, indicesA, length(indicesA); what="A: ")
    @forward compressed_problem(k, n, indptrB, indicesB, length(indicesB); what="B: ")
    @check(length(dataA) >= Int(indptrA[end]),
           "A: data holds $(length(dataA)) values, fewer than the $(indptrA[end]) stored")
    @check(length(dataB) >= Int(indptrB[end]),
           "B: data holds $(length(dataB)) values, fewer than the $(indptrB[end]) stored")
    return nothing
end

# Returns a message if indptrC turns out not to match the product (then those rows are unset).
function unchecked_spgemm_numeric!(indicesC, dataC, indptrC, m::Integer, n::Integer,
                                   indptrA, indicesA, dataA, indptrB, indicesB, dataB)
    m, n = Int(m), Int(n)
    k = length(indptrB) - 1
    cum = cumulative_flops(m, indptrA, indicesA, indptrB)
    if dense_numeric_pays(indicesC, dataC, indptrC, m, n, indptrA, indicesA, dataA, dataB, k, cum[m+1])
        return dense_numeric!(indicesC, dataC, m, n, indptrA, indicesA, dataA, indptrB, indicesB,
                              dataB, k)
    end
    firstbad = Threads.Atomic{Int}(typemax(Int))
    foreach_rowchunk(r -> (@inbounds cum[r+1]) + r, m, cum[m+1]) do lo, hi
        numeric_rows!(indicesC, dataC, indptrC, n, indptrA, indicesA, dataA,
                      indptrB, indicesB, dataB, cum, lo, hi, firstbad, -1)
    end
    firstbad[] == typemax(Int) && return nothing
    return "C: indptr does not match the structure of A*B (first at row $(firstbad[] - 1))"
end

"Whether a row of `count` entries among `n` columns is cheaper to emit by a scan than by sorting."
dense_row(count::Int, n::Int) = 4 * count * (8 * sizeof(Int) - leading_zeros(count)) >= n

"""
Rows `lo:hi` of C. With `offset < 0` each row goes where `indptrC` says, and a row whose count
differs is reported in `firstbad`. With `offset >= 0` (one pass, no structure known) the rows
are packed one after another from `offset` (0-based) into `indicesC`/`dataC`, each given room
for its multiply-adds (at most `n`), and each row's count is stored at `indptrC[i+1]`.
"""
function numeric_rows!(indicesC, dataC::AbstractVector{Tc}, indptrC, n::Int,
                       indptrA, indicesA, dataA, indptrB, indicesB, dataB, cum,
                       lo::Int, hi::Int, firstbad, offset::Int) where {Tc}
    TiC = eltype(indicesC)
    marker = zeros(Int, n)
    bits = zeros(UInt64, nwords(n))         # all zero between rows
    acc = zeros(Tc, n)                      # all zero between rows
    cols = Vector{Int}(undef, n + 4)        # a bitmap row's columns, in order
    pend = Int(indptrA[hi+1])
    next = offset
    @inbounds for i in lo:hi
        f = cum[i+1] - cum[i]
        # `stop` bounds the row's room: exact with indptrC, an upper bound in one pass
        start, stop = offset < 0 ? (Int(indptrC[i]), Int(indptrC[i+1])) : (next, next + min(f, n))
        if 2 * (stop - start) >= n
            # A dense row: accumulate without branches, counting new columns until all n are
            # seen (then the marker is no longer needed), and emit it by one scan in column order.
            count = 0
            p, pe = Int(indptrA[i]) + 1, Int(indptrA[i+1])
            while p <= pe && count < n
                prefetch_brow(indicesA, indptrB, indicesB, dataB, p + PREFETCH_AHEAD, pend)
                j = Int(indicesA[p]) + 1
                a = convert(Tc, dataA[p])
                for q in Int(indptrB[j])+1:Int(indptrB[j+1])
                    col = Int(indicesB[q]) + 1
                    count += marker[col] != i
                    marker[col] = i
                    acc[col] += a * convert(Tc, dataB[q])
                end
                p += 1
            end
            while p <= pe                   # the row is full
                prefetch_brow(indicesA, indptrB, indicesB, dataB, p + PREFETCH_AHEAD, pend)
                j = Int(indicesA[p]) + 1
                a = convert(Tc, dataA[p])
                for q in Int(indptrB[j])+1:Int(indptrB[j+1])
                    col = Int(indicesB[q]) + 1
                    acc[col] += a * convert(Tc, dataB[q])
                end
                p += 1
            end
            if count == n
                if stop - start == n
                    for col in 1:n
                        indicesC[start+col] = (col - 1) % TiC
                        dataC[start+col] = acc[col]
                    end
                end
                fill!(acc, zero(Tc))
                pos = start + n
            else
                pos = start
                for col in 1:n
                    v = acc[col]
                    acc[col] = zero(Tc)
                    if pos < stop           # predictable: false only after the row is full
                        indicesC[pos+1] = (col - 1) % TiC
                        dataC[pos+1] = v
                    end
                    pos += marker[col] == i
                end
            end
        elseif bitmap_row(f, n)
            # Accumulate and mark columns without branches; the bitmap then yields the row's
            # columns in order, one word at a time.
            for p in Int(indptrA[i])+1:Int(indptrA[i+1])
                prefetch_brow(indicesA, indptrB, indicesB, dataB, p + PREFETCH_AHEAD, pend)
                j = Int(indicesA[p]) + 1
                a = convert(Tc, dataA[p])
                for q in Int(indptrB[j])+1:Int(indptrB[j+1])
                    col = Int(indicesB[q])
                    bits[(col >> 6) + 1] |= UInt64(1) << (col & 63)
                    acc[col+1] += a * convert(Tc, dataB[q])
                end
            end
            if 8 * (stop - start) >= n
                # Many bits per word: emit straight from each word.
                pos = start
                for w in 1:length(bits)
                    x = bits[w]
                    x == 0 && continue
                    bits[w] = 0
                    base = (w - 1) << 6
                    while x != 0
                        col = base + trailing_zeros(x)
                        x &= x - 1
                        pos += 1
                        if pos <= stop      # predictable: false only if indptrC is wrong
                            indicesC[pos] = col % TiC
                            dataC[pos] = acc[col+1]
                        end
                        acc[col+1] = zero(Tc)
                    end
                end
            else
                # Few bits per word: gather the columns into `cols`, 4 slots per word written
                # unconditionally (slack past the count is overwritten later), so sparse words
                # cost no mispredicted loop exits.
                c = 0
                for w in 1:length(bits)
                    x = bits[w]
                    bits[w] = 0
                    base = (w - 1) << 6
                    nb = count_ones(x)
                    if nb <= 4
                        cols[c+1] = base + trailing_zeros(x); x &= x - 1
                        cols[c+2] = base + trailing_zeros(x); x &= x - 1
                        cols[c+3] = base + trailing_zeros(x); x &= x - 1
                        cols[c+4] = base + trailing_zeros(x)
                        c += nb
                    else
                        while x != 0
                            c += 1
                            cols[c] = base + trailing_zeros(x)
                            x &= x - 1
                        end
                    end
                end
                for t in 1:min(c, stop - start)
                    col = cols[t]
                    indicesC[start+t] = col % TiC
                    dataC[start+t] = acc[col+1]
                    acc[col+1] = zero(Tc)
                end
                for t in stop-start+1:c     # only if indptrC is wrong
                    acc[cols[t]+1] = zero(Tc)
                end
                pos = start + c
            end
        else
            # Few entries among many columns: record columns on first visit, then sort them.
            pos = start
            for p in Int(indptrA[i])+1:Int(indptrA[i+1])
                prefetch_brow(indicesA, indptrB, indicesB, dataB, p + PREFETCH_AHEAD, pend)
                j = Int(indicesA[p]) + 1
                a = convert(Tc, dataA[p])
                for q in Int(indptrB[j])+1:Int(indptrB[j+1])
                    col = Int(indicesB[q]) + 1
                    if marker[col] != i
                        marker[col] = i
                        pos += 1
                        pos <= stop && (indicesC[pos] = (col - 1) % TiC)
                    end
                    acc[col] += a * convert(Tc, dataB[q])
                end
            end
            if pos <= stop                  # all columns recorded
                sort!(view(indicesC, start+1:pos))
            end
            for q in start+1:min(pos, stop)
                col = Int(indicesC[q]) + 1
                dataC[q] = acc[col]
                acc[col] = zero(Tc)
            end
            if pos > stop                   # columns past the row's end were not recorded
                acc .= zero(Tc)
            end
        end
        if offset < 0
            pos == stop || Threads.atomic_min!(firstbad, i)
        else
            indptrC[i+1] = pos - start
            next = pos
        end
    end
    return next
end

"""
    bsr_spgemm_numeric!(indicesC, dataC, indptrC, mb, kb, nb,
                        indptrA, indicesA, dataA, indptrB, indicesB, dataB) -> (indicesC, dataC)

Numeric phase of `C = A*B` for BSR operands with equal square blocks; `data*` are `b×b×nnzb`
arrays of stored (transposed) blocks and `indptrC` comes from [`spgemm_symbolic!`](@ref) on the
block structure. Each output block is accumulated in place in `dataC`.
"""
function bsr_spgemm_numeric!(indicesC::AbstractVector, dataC::AbstractArray{<:Any,3},
                             indptrC::AbstractVector, mb::Integer, kb::Integer, nb::Integer,
                             indptrA::AbstractVector, indicesA::AbstractVector,
                             dataA::AbstractArray{<:Any,3},
                             indptrB::AbstractVector, indicesB::AbstractVector,
                             dataB::AbstractArray{<:Any,3})
    throw_problem(bsr_numeric_problem(indicesC, dataC, indptrC, mb, kb, nb,
                                      indptrA, indicesA, dataA, indptrB, indicesB, dataB))
    throw_problem(unchecked_bsr_spgemm_numeric!(indicesC, dataC, indptrC, mb, nb,
                                                indptrA, indicesA, dataA, indptrB, indicesB, dataB))
    return indicesC, dataC
end

function bsr_numeric_problem(indicesC, dataC, indptrC, mb, kb, nb,
                             indptrA, indicesA, dataA, indptrB, indicesB, dataB)
    b = size(dataC, 1)
    @check b >= 1 "block size b = $b must be at least 1"
    for (name, D) in (("A", dataA), ("B", dataB), ("C", dataC))
        @check(size(D, 1) == size(D, 2) == b,
               "$name: data has blocks of size $(size(D, 1))×$(size(D, 2)), expected $b×$b")
    end
    @forward compressed_problem(mb, kb, indptrA, indicesA, length(indicesA); what="A: ",
                                unit="block row", entry="block")
    @forward compressed_problem(kb, nb, indptrB, indicesB, length(indicesB); what="B: ",
                                unit="block row", entry="block")
    @check(size(dataA, 3) >= Int(indptrA[end]),
           "A: data holds $(size(dataA, 3)) blocks, fewer than the $(indptrA[end]) stored")
    @check(size(dataB, 3) >= Int(indptrB[end]),
           "B: data holds $(size(dataB, 3)) blocks, fewer than the $(indptrB[end]) stored")
    return output_problem(mb, nb, indptrC, indicesC, size(dataC, 3); unit="block row")
end

function unchecked_bsr_spgemm_numeric!(indicesC, dataC, indptrC, mb::Integer, nb::Integer,
                                       indptrA, indicesA, dataA, indptrB, indicesB, dataB)
    mb, nb = Int(mb), Int(nb)
    b = size(dataC, 1)
    cum = cumulative_flops(mb, indptrA, indicesA, indptrB)
    firstbad = Threads.Atomic{Int}(typemax(Int))
    foreach_rowchunk(r -> (@inbounds cum[r+1]) + r, mb, widemul(cum[mb+1], b^3)) do lo, hi
        bsr_numeric_rows!(indicesC, dataC, indptrC, nb, indptrA, indicesA, dataA,
                          indptrB, indicesB, dataB, lo, hi, firstbad)
    end
    firstbad[] == typemax(Int) && return nothing
    return "C: indptr does not match the block structure of A*B (first at block row $(firstbad[] - 1))"
end

function bsr_numeric_rows!(indicesC, dataC::AbstractArray{Tc,3}, indptrC, nb::Int,
                           indptrA, indicesA, dataA, indptrB, indicesB, dataB,
                           lo::Int, hi::Int, firstbad) where {Tc}
    TiC = eltype(indicesC)
    b = size(dataC, 1)
    shape = block_kernel_shape(dataC, dataB, dataA)
    seen = zeros(Int, nb)          # seen[J] == I: block column J already in block row I
    slot = zeros(Int, nb)          # slot[J]: position of block (I, J) in indicesC / dataC
    @inbounds for I in lo:hi
        start, stop = Int(indptrC[I]), Int(indptrC[I+1])
        pos = start
        for p in Int(indptrA[I])+1:Int(indptrA[I+1])
            K = Int(indicesA[p]) + 1
            for q in Int(indptrB[K])+1:Int(indptrB[K+1])
                J = Int(indicesB[q]) + 1
                if seen[J] != I
                    seen[J] = I
                    pos += 1
                    pos <= stop && (indicesC[pos] = (J - 1) % TiC)
                end
            end
        end
        if pos != stop
            Threads.atomic_min!(firstbad, I)
            continue
        end
        sort_row!(indicesC, start, stop, seen, I, nb)
        for s in start+1:stop
            slot[Int(indicesC[s])+1] = s
            for y in 1:b
                @simd for x in 1:b
                    dataC[x, y, s] = zero(Tc)
                end
            end
        end
        for p in Int(indptrA[I])+1:Int(indptrA[I+1])
            K = Int(indicesA[p]) + 1
            for q in Int(indptrB[K])+1:Int(indptrB[K+1])
                block_muladd!(dataC, slot[Int(indicesB[q])+1], dataB, q, dataA, p, shape)
            end
        end
    end
    return nothing
end

"""
    sort_row!(indicesC, start, stop, marker, i, n)

Sort the column indices `indicesC[start+1:stop]` of row `i`, whose columns are exactly those with
`marker[col] == i`: by sorting when the row is short, else by scanning the marker array in column
order (cheaper once `count*log(count)` exceeds `n`).
"""
@inline function sort_row!(indicesC, start::Int, stop::Int, marker::Vector{Int}, i::Int, n::Int)
    count = stop - start
    count <= 1 && return nothing
    if !dense_row(count, n)
        sort!(view(indicesC, start+1:stop))
    else
        TiC = eltype(indicesC)
        q = start
        @inbounds for col in 1:n
            if marker[col] == i
                q += 1
                indicesC[q] = (col - 1) % TiC
            end
        end
    end
    return nothing
end

# Stored blocks are transposes, so block C += A*B reads  C' += B' * A'  on the stored arrays:
# dataC[:, :, s] += dataB[:, :, q] * dataA[:, :, p], a small column-major GEMM.

"Tile of the SIMD block kernel as `(Val(U), Val(R))`, or `nothing` for the portable loops."
block_kernel_shape(DC, DB, DA) = nothing
function block_kernel_shape(DC::Array{T,3}, DB::Array{T,3}, DA::Array{T,3}) where {T<:SIMDFloat}
    b = size(DC, 1)
    b % lanes(T) == 0 || return nothing          # whole vectors down each block column
    U, R = simd_tile_shape(b)
    U = b % (U * lanes(T)) == 0 ? U : 1
    return (Val(U), Val(R))
end

function block_muladd!(DC::Array{T,3}, s::Int, DB::Array{T,3}, q::Int, DA::Array{T,3}, p::Int,
                       ::Tuple{Val{U},Val{R}}) where {T,U,R}
    b = size(DC, 1)
    W = lanes(T)
    nR = b - b % R
    GC.@preserve DC DB DA begin
        pC = pointer(DC) + (s - 1) * b * b * sizeof(T)
        pB = pointer(DB) + (q - 1) * b * b * sizeof(T)
        pA = pointer(DA) + (p - 1) * b * b * sizeof(T)
        for x0 in 1:U*W:b, y0 in 1:R:nR
            block_tile_simd!(pC, pB, pA, b, x0, y0, Val(U), Val(R))
        end
        for y0 in nR+1:b, x0 in 1:U*W:b
            block_tile_simd!(pC, pB, pA, b, x0, y0, Val(U), Val(1))
        end
    end
    return nothing
end

# C[x0 .+ (0:U*W-1), y0:y0+R-1] += B[x-strip, :] * A[:, y0:y0+R-1] for one b×b block each.
@generated function block_tile_simd!(pC::Ptr{T}, pB::Ptr{T}, pA::Ptr{T}, b::Int, x0::Int, y0::Int,
                                     ::Val{U}, ::Val{R}) where {T,U,R}
    W, s = lanes(T), sizeof(T)
    acc(u, r) = Symbol(:acc_, u, :_, r)
    bv(u) = Symbol(:b_, u)
    cptr(u, r) = :(pC + ((y0 + $(r - 2)) * b + x0 - 1 + $((u - 1) * W)) * $s)
    init = [:($(acc(u, r)) = vload(Val($W), $(cptr(u, r)))) for u in 1:U for r in 1:R]
    loadb = [:($(bv(u)) = vload(Val($W), pb + $((u - 1) * W * s))) for u in 1:U]
    fmas = Expr[]
    for r in 1:R
        push!(fmas, :(d = vbroadcast(Val($W), unsafe_load(pa, $(r - 1) * b + 1))))
        append!(fmas, [:($(acc(u, r)) = vmuladd($(bv(u)), d, $(acc(u, r)))) for u in 1:U])
    end
    store = [:(vstore!($(cptr(u, r)), $(acc(u, r)))) for u in 1:U for r in 1:R]
    quote
        $(init...)
        pb = pB + (x0 - 1) * $s                     # &B[x0, 1]
        pa = pA + (y0 - 1) * b * $s                 # &A[1, y0]
        for z in 1:b
            $(loadb...)
            $(fmas...)
            pb += b * $s
            pa += $s
        end
        $(store...)
        return nothing
    end
end

# Portable: column by column, vectorised down columns, four terms per sweep.
@inline function block_muladd!(DC::AbstractArray{Tc,3}, s::Int, DB, q::Int, DA, p::Int,
                               ::Nothing) where {Tc}
    b = size(DC, 1)
    @inbounds for y in 1:b
        z = 1
        while z + 3 <= b
            a1, a2 = convert(Tc, DA[z, y, p]), convert(Tc, DA[z+1, y, p])
            a3, a4 = convert(Tc, DA[z+2, y, p]), convert(Tc, DA[z+3, y, p])
            @simd for x in 1:b
                t = DC[x, y, s]
                t = muladd(convert(Tc, DB[x, z, q]), a1, t)
                t = muladd(convert(Tc, DB[x, z+1, q]), a2, t)
                t = muladd(convert(Tc, DB[x, z+2, q]), a3, t)
                t = muladd(convert(Tc, DB[x, z+3, q]), a4, t)
                DC[x, y, s] = t
            end
            z += 4
        end
        while z <= b
            a = convert(Tc, DA[z, y, p])
            @simd for x in 1:b
                DC[x, y, s] = muladd(convert(Tc, DB[x, z, q]), a, DC[x, y, s])
            end
            z += 1
        end
    end
    return nothing
end

# --- Julia-facing API ---------------------------------------------------------------------------

"Index type for a result with `nC` entries and `n` columns: `Ti` if it fits, else Int64."
result_index_type(::Type{Ti}, nC::Integer, n::Integer) where {Ti} =
    nC <= typemax(Ti) && n <= typemax(Ti) ? Ti : Int64

"""
    spgemm(A, B) -> C

Sparse product of two `CSRMatrix` (result `CSRMatrix`) or two `BSRMatrix` with the same block size
(result `BSRMatrix`). Value type that of `A*B` (`promote_op` of `*` and `+`: `Bool` gives `Int`,
as SparseArrays does); rows of `C` are sorted. Validates both operands (`ArgumentError`).
"""
function spgemm(A::CSRMatrix{TvA,TiA}, B::CSRMatrix{TvB,TiB}) where {TvA,TiA,TvB,TiB}
    m, k = size(A)
    size(B, 1) == k || throw(DimensionMismatch("A is $m×$k but B is $(size(B, 1))×$(size(B, 2))"))
    n = size(B, 2)
    Tc = Base.promote_op(LinearAlgebra.matprod, TvA, TvB)
    indptrC = Vector{Int64}(undef, m + 1)
    throw_problem(operands_problem(m, k, n, A.indptr, A.indices, A.data, B.indptr, B.indices, B.data))
    room = plan_spgemm!(indptrC, m, n, A.indptr, A.indices, B.indptr, B.indices)
    len = room >= 0 ? room : Int(indptrC[end])
    Ti = result_index_type(promote_type(TiA, TiB), len, n)
    indicesC, dataC = Vector{Ti}(undef, len), Vector{Tc}(undef, len)
    if room >= 0
        throw_problem(onepass_product!(indicesC, dataC, indptrC, m, n, A.indptr, A.indices,
                                       A.data, B.indptr, B.indices, B.data))
        resize!(indicesC, indptrC[end]); resize!(dataC, indptrC[end])
    else
        throw_problem(unchecked_spgemm_numeric!(indicesC, dataC, indptrC, m, n, A.indptr,
                                                A.indices, A.data, B.indptr, B.indices, B.data))
    end
    return CSRMatrix{Tc,Ti}(m, n, Vector{Ti}(indptrC), indicesC, dataC; check=false)
end

function spgemm(A::BSRMatrix{TvA,TiA}, B::BSRMatrix{TvB,TiB}) where {TvA,TiA,TvB,TiB}
    b = blocksize(A)
    blocksize(B) == b || throw(DimensionMismatch(
        "block sizes differ: $b for A, $(blocksize(B)) for B"))
    A.nb == B.mb || throw(DimensionMismatch(
        "A is $(size(A, 1))×$(size(A, 2)) but B is $(size(B, 1))×$(size(B, 2))"))
    mb, kb, nb = A.mb, A.nb, B.nb
    indptrC = Vector{Int64}(undef, mb + 1)
    spgemm_symbolic!(indptrC, mb, kb, nb, A.indptr, A.indices, B.indptr, B.indices; unit="block row")
    nC = Int(indptrC[end])
    Ti = result_index_type(promote_type(TiA, TiB), nC, nb)
    Tc = Base.promote_op(LinearAlgebra.matprod, TvA, TvB)
    indicesC, dataC = Vector{Ti}(undef, nC), Array{Tc,3}(undef, b, b, nC)
    bsr_spgemm_numeric!(indicesC, dataC, indptrC, mb, kb, nb,
                        A.indptr, A.indices, A.data, B.indptr, B.indices, B.data)
    return BSRMatrix{Tc,Ti}(mb * b, nb * b, Vector{Ti}(indptrC), indicesC, dataC; check=false)
end
