# Conversions between CSRMatrix, BSRMatrix, SparseMatrixCSC and dense matrices. CSC and CSR are
# each other's transposed structure, so both directions are one counting-sort transpose
# (threaded, output sorted); BSR is built from CSR block row by block row (threaded).

"""
    transpose_compressed(Tv, Ti, nout, nin, ptr, idx, vals, bin, bout) -> (ptrT, idxT, valsT)

The transposed structure of a compressed one with `nin` lines (`ptr`, `idx` with base `bin`: 1
for Julia's CSC, 0 for SciPy's CSR), as `nout` lines with base `bout`. Lines of the result are
sorted; duplicates stay (adjacent). Threaded: each thread counts and then places the entries of
its own range of input lines, at offsets that follow from all counts.
"""
function transpose_compressed(::Type{Tv}, ::Type{Ti}, nout::Int, nin::Int, ptr::AbstractVector,
                              idx::AbstractVector, vals::AbstractVector, bin::Int,
                              bout::Int) where {Tv,Ti}
    throw_problem(compressed_problem(nin, nout, ptr, idx, length(idx); base=bin))
    nz = Int(ptr[nin+1]) - bin
    nchunks = nthreads() > 1 && nz >= SERIAL_WORK[] ? min(nthreads(), max(nin, 1)) : 1
    bounds = partition_rows(r -> Int(ptr[r+1]) - bin + r, nin, nchunks)
    counts = zeros(Int, nout + 1, nchunks)
    sorted = Threads.Atomic{Bool}(true)
    foreach_rowchunk(identity, nchunks, nz) do tlo, thi
        ok = true
        @inbounds for t in tlo:thi, line in bounds[t]+1:bounds[t+1]
            prev = typemin(Int)
            for p in Int(ptr[line])-bin+1:Int(ptr[line+1])-bin
                o = Int(idx[p])
                ok &= o > prev
                prev = o
                counts[o-bin+2, t] += 1
            end
        end
        ok || (sorted[] = false)
    end
    ptrT = Vector{Ti}(undef, nout + 1)
    at = 0
    for o in 1:nout
        ptrT[o] = at + bout
        for t in 1:nchunks
            c = counts[o+1, t]
            counts[o+1, t] = at
            at += c
        end
    end
    ptrT[nout+1] = at + bout
    idxT, valsT = Vector{Ti}(undef, at), Vector{Tv}(undef, at)
    band = sorted[] ? TRANSPOSE_BAND : nout
    foreach_rowchunk(identity, nchunks, nz) do tlo, thi
        for t in tlo:thi
            lines = bounds[t]+1:bounds[t+1]
            cursor = Int[Int(ptr[line]) - bin + 1 for line in lines]
            for o0 in 0:band:nout-1
                place_band!(idxT, valsT, counts, t, cursor, lines, ptr, idx, vals, bin, bout,
                            o0 + min(band, nout - o0))
            end
        end
    end
    return ptrT, idxT, valsT
end

# Output lines per band of the transpose: the write streams of one band (two arrays) stay in L1.
# Measured on 3072×768 at density 0.1 (one thread): 1.36 ms unbanded, 0.95 with bands of 256.
const TRANSPOSE_BAND = 256

"""
Place the entries of `lines` whose output line is at most `oend` (lines sorted: each line's next
entries, from `cursor`, up to the first beyond `oend`; unsorted input comes with `oend = nout`).
"""
function place_band!(idxT::Vector{Ti}, valsT, counts, t::Int, cursor, lines, ptr, idx, vals,
                     bin::Int, bout::Int, oend::Int) where {Ti}
    @inbounds for (c, line) in enumerate(lines)
        p, pe = cursor[c], Int(ptr[line+1]) - bin
        while p <= pe
            o = Int(idx[p]) - bin + 1
            o > oend && break
            q = counts[o+1, t] += 1
            idxT[q] = (line - 1 + bout) % Ti
            valsT[q] = vals[p]
            p += 1
        end
        cursor[c] = p
    end
    return nothing
end

"Sum adjacent duplicates of each (sorted) line in place; returns the new number of entries."
function merge_adjacent_duplicates!(ptr::Vector, idx::Vector, vals::Vector, base::Int)
    nlines = length(ptr) - 1
    q = 0
    lo = Int(ptr[1]) - base
    for line in 1:nlines
        hi = Int(ptr[line+1]) - base
        first = q + 1
        for p in lo+1:hi
            if q >= first && idx[q] == idx[p]
                vals[q] += vals[p]
            else
                q += 1
                idx[q], vals[q] = idx[p], vals[p]
            end
        end
        lo = hi
        ptr[line+1] = q + base
    end
    resize!(idx, q); resize!(vals, q)
    return q
end

has_adjacent_duplicates(ptr, idx, base::Int) =
    any(line -> any(p -> idx[p] == idx[p-1], Int(ptr[line])-base+2:Int(ptr[line+1])-base),
        1:length(ptr)-1)

# --- to CSRMatrix ------------------------------------------------------------------------------

CSRMatrix(S::SparseMatrixCSC{Tv,Ti}) where {Tv,Ti} = CSRMatrix{Tv,Ti}(S)
CSRMatrix{Tv}(S::SparseMatrixCSC{<:Any,Ti}) where {Tv,Ti} = CSRMatrix{Tv,Ti}(S)

function CSRMatrix{Tv,Ti}(S::SparseMatrixCSC) where {Tv,Ti<:Integer}
    m, n = size(S)
    indptr, indices, data = transpose_compressed(Tv, Ti, m, n, S.colptr, S.rowval, S.nzval, 1, 0)
    return CSRMatrix{Tv,Ti}(m, n, indptr, indices, data; check=false)
end

CSRMatrix(M::AbstractMatrix{Tv}) where {Tv} = CSRMatrix{Tv,Int}(M)
CSRMatrix{Tv}(M::AbstractMatrix) where {Tv} = CSRMatrix{Tv,Int}(M)
CSRMatrix{Tv,Ti}(M::AbstractMatrix) where {Tv,Ti<:Integer} = CSRMatrix{Tv,Ti}(sparse(M))

CSRMatrix(A::CSRMatrix) = copy(A)
CSRMatrix{Tv}(A::CSRMatrix{<:Any,Ti}) where {Tv,Ti} = CSRMatrix{Tv,Ti}(A)
CSRMatrix{Tv,Ti}(A::CSRMatrix) where {Tv,Ti<:Integer} =
    CSRMatrix{Tv,Ti}(A.m, A.n, Vector{Ti}(A.indptr), Vector{Ti}(A.indices), Vector{Tv}(A.data))

CSRMatrix(A::BSRMatrix{Tv,Ti}) where {Tv,Ti} = CSRMatrix{Tv,Ti}(A)
CSRMatrix{Tv}(A::BSRMatrix{<:Any,Ti}) where {Tv,Ti} = CSRMatrix{Tv,Ti}(A)

"Every entry of every stored block, rows in block-column order (sorted if the blocks are)."
function CSRMatrix{Tv,Ti}(A::BSRMatrix) where {Tv,Ti<:Integer}
    check_format(A)
    b, (m, n) = blocksize(A), size(A)
    indptr = Vector{Ti}(undef, m + 1)
    indptr[1] = 0
    for I in 1:A.mb
        before, nk = Int(A.indptr[I]) * b * b, Int(A.indptr[I+1]) - Int(A.indptr[I])
        for r in 1:b
            indptr[(I-1)*b+r+1] = (before + r * nk * b) % Ti
        end
    end
    nz = nnz(A)
    indices, data = Vector{Ti}(undef, nz), Vector{Tv}(undef, nz)
    D = A.data
    foreach_rowchunk(stored_work(A.indptr), A.mb, nz) do lo, hi
        @inbounds for I in lo:hi
            k0, k1 = Int(A.indptr[I]) + 1, Int(A.indptr[I+1])
            for r in 1:b
                q = Int(indptr[(I-1)*b+r])
                for k in k0:k1
                    co = Int(A.indices[k]) * b
                    for c in 1:b
                        q += 1
                        indices[q] = (co + c - 1) % Ti
                        data[q] = D[c, r, k]
                    end
                end
            end
        end
    end
    return CSRMatrix{Tv,Ti}(m, n, indptr, indices, data; check=false)
end

# --- to BSRMatrix ------------------------------------------------------------------------------

square_block(bs::Tuple{Integer,Integer}) = bs[1] == bs[2] ? Int(bs[1]) :
    throw(ArgumentError("blocks must be square, got $(bs[1])×$(bs[2])"))

BSRMatrix(S::SparseMatrixCSC{Tv,Ti}, b::Integer) where {Tv,Ti} = BSRMatrix{Tv,Ti}(S, b)
BSRMatrix{Tv}(S::SparseMatrixCSC{<:Any,Ti}, b::Integer) where {Tv,Ti} = BSRMatrix{Tv,Ti}(S, b)
BSRMatrix{Tv,Ti}(S::SparseMatrixCSC, b::Integer) where {Tv,Ti<:Integer} = csc_to_bsr(Tv, Ti, S, Int(b))

BSRMatrix(A::CSRMatrix{Tv,Ti}, b::Integer) where {Tv,Ti} = BSRMatrix{Tv,Ti}(A, b)
BSRMatrix{Tv}(A::CSRMatrix{<:Any,Ti}, b::Integer) where {Tv,Ti} = BSRMatrix{Tv,Ti}(A, b)
BSRMatrix{Tv,Ti}(A::CSRMatrix, b::Integer) where {Tv,Ti<:Integer} =
    (check_format(A); csr_to_bsr(Tv, Ti, A, Int(b)))

BSRMatrix(A::BSRMatrix) = copy(A)
BSRMatrix(A::BSRMatrix{Tv,Ti}, b::Integer) where {Tv,Ti} = BSRMatrix{Tv,Ti}(A, b)
BSRMatrix{Tv}(A::BSRMatrix{<:Any,Ti}, b::Integer) where {Tv,Ti} = BSRMatrix{Tv,Ti}(A, b)
BSRMatrix{Tv,Ti}(A::BSRMatrix, b::Integer) where {Tv,Ti<:Integer} =
    b == blocksize(A) ? BSRMatrix{Tv,Ti}(A) : BSRMatrix{Tv,Ti}(CSRMatrix(A), b)
BSRMatrix{Tv,Ti}(A::BSRMatrix) where {Tv,Ti<:Integer} =
    BSRMatrix{Tv,Ti}(size(A)..., Vector{Ti}(A.indptr), Vector{Ti}(A.indices), Array{Tv,3}(A.data))

BSRMatrix(M::AbstractMatrix{Tv}, b::Integer) where {Tv} = BSRMatrix{Tv,Int}(M, b)
BSRMatrix{Tv}(M::AbstractMatrix, b::Integer) where {Tv} = BSRMatrix{Tv,Int}(M, b)
BSRMatrix{Tv,Ti}(M::AbstractMatrix, b::Integer) where {Tv,Ti<:Integer} =
    BSRMatrix{Tv,Ti}(sparse(M), b)

BSRMatrix(X::AbstractMatrix, bs::Tuple{Integer,Integer}) = BSRMatrix(X, square_block(bs))
BSRMatrix{Tv}(X::AbstractMatrix, bs::Tuple{Integer,Integer}) where {Tv} =
    BSRMatrix{Tv}(X, square_block(bs))
BSRMatrix{Tv,Ti}(X::AbstractMatrix, bs::Tuple{Integer,Integer}) where {Tv,Ti<:Integer} =
    BSRMatrix{Tv,Ti}(X, square_block(bs))

"""
Blocks of `S` holding at least one stored entry, sorted by block column in each block row: the
transpose of the CSC structure at the level of blocks (see `transpose_compressed`), each thread
counting and then filling the blocks of its own range of block columns.
"""
function csc_to_bsr(::Type{Tv}, ::Type{Ti}, S::SparseMatrixCSC, b::Int) where {Tv,Ti}
    m, n = size(S)
    check_block_shape(m, n, b)
    colptr, rowval, nzval = S.colptr, S.rowval, S.nzval
    throw_problem(compressed_problem(n, m, colptr, rowval, length(rowval); base=1))
    mb, nb = div(m, b), div(n, b)
    bdiv = Base.MultiplicativeInverses.SignedMultiplicativeInverse(b)   # no idiv per entry
    nz = Int(colptr[n+1]) - 1
    nchunks = nthreads() > 1 && nz >= SERIAL_WORK[] ? min(nthreads(), max(nb, 1)) : 1
    bounds = partition_rows(J -> Int(colptr[J*b+1]) - 1 + J, nb, nchunks)
    counts = zeros(Int, mb + 1, nchunks)           # blocks per block row, then where they go
    foreach_rowchunk(identity, nchunks, nz) do tlo, thi
        seen = zeros(Int, mb)
        @inbounds for t in tlo:thi, J in bounds[t]+1:bounds[t+1]
            for p in Int(colptr[(J-1)*b+1]):Int(colptr[J*b+1])-1
                I = div(Int(rowval[p]) - 1, bdiv) + 1
                counts[I+1, t] += seen[I] != J
                seen[I] = J
            end
        end
    end
    indptr = Vector{Ti}(undef, mb + 1)
    at = 0
    for I in 1:mb
        indptr[I] = at
        for t in 1:nchunks
            c = counts[I+1, t]
            counts[I+1, t] = at
            at += c
        end
    end
    indptr[mb+1] = at
    indices = Vector{Ti}(undef, at)
    data = Array{Tv,3}(undef, b, b, at)
    foreach_rowchunk(identity, nchunks, nz + at * b * b) do tlo, thi
        seen = zeros(Int, mb)
        slot = zeros(Int, mb)
        @inbounds for t in tlo:thi, J in bounds[t]+1:bounds[t+1]
            for j in (J-1)*b+1:J*b
                c = j - (J - 1) * b
                for p in Int(colptr[j]):Int(colptr[j+1])-1
                    i0 = Int(rowval[p]) - 1
                    I = div(i0, bdiv)
                    r = i0 - I * b
                    I += 1
                    if seen[I] != J                       # first entry of block (I, J)
                        seen[I] = J
                        k = counts[I+1, t] += 1
                        slot[I] = k
                        indices[k] = (J - 1) % Ti
                        for q in 1:b*b
                            data[(k-1)*b*b+q] = zero(Tv)
                        end
                    end
                    data[c, r+1, slot[I]] += nzval[p]
                end
            end
        end
    end
    return BSRMatrix{Tv,Ti}(m, n, indptr, indices, data; check=false)
end

"""
Blocks of `A` holding at least one stored entry, sorted by block column in each block row;
threaded over block rows (each thread its own marker arrays).
"""
function csr_to_bsr(::Type{Tv}, ::Type{Ti}, A::CSRMatrix, b::Int) where {Tv,Ti}
    m, n = size(A)
    check_block_shape(m, n, b)
    mb, nb = div(m, b), div(n, b)
    bdiv = Base.MultiplicativeInverses.SignedMultiplicativeInverse(b)   # no idiv per entry
    cumwork = r -> Int(A.indptr[r*b+1]) + r
    indptr = Vector{Ti}(undef, mb + 1)
    foreach_rowchunk(cumwork, mb, nnz(A)) do lo, hi
        seen = zeros(Int, nb)
        @inbounds for I in lo:hi
            count = 0
            for p in Int(A.indptr[(I-1)*b+1])+1:Int(A.indptr[I*b+1])
                J = div(Int(A.indices[p]), bdiv) + 1
                count += seen[J] != I
                seen[J] = I
            end
            indptr[I+1] = count % Ti
        end
    end
    indptr[1] = 0
    for I in 1:mb
        indptr[I+1] += indptr[I]
    end
    nzb = Int(indptr[mb+1])
    indices = Vector{Ti}(undef, nzb)
    data = Array{Tv,3}(undef, b, b, nzb)
    foreach_rowchunk(cumwork, mb, nnz(A) + nzb * b * b) do lo, hi
        seen = zeros(Int, nb)
        slot = zeros(Int, nb)
        @inbounds for I in lo:hi
            k0 = Int(indptr[I])
            k = k0
            rows = Int(A.indptr[(I-1)*b+1])+1:Int(A.indptr[I*b+1])
            for p in rows
                J = div(Int(A.indices[p]), bdiv) + 1
                if seen[J] != I
                    seen[J] = I
                    k += 1
                    indices[k] = (J - 1) % Ti
                end
            end
            sort!(view(indices, k0+1:k))
            for q in k0+1:k
                slot[Int(indices[q])+1] = q
                fill!(view(data, :, :, q), zero(Tv))
            end
            for i in (I-1)*b+1:I*b, p in Int(A.indptr[i])+1:Int(A.indptr[i+1])
                j = Int(A.indices[p])
                J = div(j, bdiv)
                data[j-J*b+1, i-(I-1)*b, slot[J+1]] += A.data[p]
            end
        end
    end
    return BSRMatrix{Tv,Ti}(m, n, indptr, indices, data; check=false)
end

# --- to SparseMatrixCSC and dense --------------------------------------------------------------

SparseArrays.SparseMatrixCSC(A::CSRMatrix{Tv,Ti}) where {Tv,Ti} = SparseMatrixCSC{Tv,Ti}(A)
SparseArrays.SparseMatrixCSC{Tv}(A::CSRMatrix{<:Any,Ti}) where {Tv,Ti} = SparseMatrixCSC{Tv,Ti}(A)

"CSC of `A`: rows sorted in each column, duplicates summed (as `sparse(I, J, V)` does)."
function SparseArrays.SparseMatrixCSC{Tv,Ti}(A::CSRMatrix) where {Tv,Ti<:Integer}
    check_format(A)
    colptr, rowval, nzval = transpose_compressed(Tv, Ti, A.n, A.m, A.indptr, A.indices, A.data, 0, 1)
    has_adjacent_duplicates(colptr, rowval, 1) && merge_adjacent_duplicates!(colptr, rowval, nzval, 1)
    return SparseMatrixCSC{Tv,Ti}(A.m, A.n, colptr, rowval, nzval)
end

SparseArrays.SparseMatrixCSC(A::BSRMatrix{Tv,Ti}) where {Tv,Ti} = SparseMatrixCSC{Tv,Ti}(A)
SparseArrays.SparseMatrixCSC{Tv}(A::BSRMatrix{<:Any,Ti}) where {Tv,Ti} = SparseMatrixCSC{Tv,Ti}(A)
"The nonzero entries of `A`'s blocks, as `sparse(Matrix(A))` holds them (block padding is not stored)."
SparseArrays.SparseMatrixCSC{Tv,Ti}(A::BSRMatrix) where {Tv,Ti<:Integer} =
    dropzeros!(SparseMatrixCSC{Tv,Ti}(CSRMatrix{Tv,Ti}(A)))

SparseArrays.sparse(A::Union{CSRMatrix,BSRMatrix}) = SparseMatrixCSC(A)

function Base.Matrix{T}(A::CSRMatrix) where {T}
    check_format(A)
    M = zeros(T, A.m, A.n)
    for i in 1:A.m, p in A.indptr[i]+1:A.indptr[i+1]
        M[i, A.indices[p]+1] += A.data[p]
    end
    return M
end

function Base.Matrix{T}(A::BSRMatrix) where {T}
    check_format(A)
    b = blocksize(A)
    M = zeros(T, size(A))
    for I in 1:A.mb, k in A.indptr[I]+1:A.indptr[I+1]
        J = Int(A.indices[k])
        for r in 1:b, c in 1:b
            M[(I-1)*b+r, J*b+c] += A.data[c, r, k]
        end
    end
    return M
end

Base.Matrix(A::Union{CSRMatrix{Tv},BSRMatrix{Tv}}) where {Tv} = Matrix{Tv}(A)
Base.Array(A::Union{CSRMatrix,BSRMatrix}) = Matrix(A)

# convert(CSRMatrix, X), convert(CSRMatrix{Float32}, X), ...; BSR keeps the block size of a BSR X.
Base.convert(::Type{T}, X::AbstractMatrix) where {T<:CSRMatrix} = X isa T ? X : T(X)
Base.convert(::Type{T}, X::BSRMatrix) where {T<:BSRMatrix} = X isa T ? X : T(X, blocksize(X))
