# What makes CSRMatrix and BSRMatrix behave as SparseArrays' matrices do: indexing, stored
# entries, copies, equality, printing, scalar arithmetic and materialised transposes.

"Either of this package's sparse matrix types."
const SparseJLMatrix{Tv,Ti} = Union{CSRMatrix{Tv,Ti},BSRMatrix{Tv,Ti}}

# --- indexing ----------------------------------------------------------------------------------

function Base.getindex(A::CSRMatrix{Tv}, i::Int, j::Int) where {Tv}
    @boundscheck checkbounds(A, i, j)
    s = zero(Tv)
    for p in Int(A.indptr[i])+1:Int(A.indptr[i+1])
        A.indices[p] == j - 1 && (s += A.data[p])
    end
    return s
end

function Base.getindex(A::BSRMatrix{Tv}, i::Int, j::Int) where {Tv}
    @boundscheck checkbounds(A, i, j)
    b = blocksize(A)
    I, r = divrem(i - 1, b)
    J, c = divrem(j - 1, b)
    s = zero(Tv)
    for k in Int(A.indptr[I+1])+1:Int(A.indptr[I+2])
        A.indices[k] == J && (s += A.data[c+1, r+1, k])
    end
    return s
end

"Stored entries of row `i` as (1-based columns, values), duplicates as stored."
function row_entries(A::CSRMatrix, i::Int)
    ps = Int(A.indptr[i])+1:Int(A.indptr[i+1])
    return Int[A.indices[p] + 1 for p in ps], A.data[ps]
end

function row_entries(A::BSRMatrix{Tv}, i::Int) where {Tv}
    b = blocksize(A)
    I, r = divrem(i - 1, b)
    cols, vals = Int[], Tv[]
    for k in Int(A.indptr[I+1])+1:Int(A.indptr[I+2]), c in 1:b
        push!(cols, Int(A.indices[k]) * b + c)
        push!(vals, A.data[c, r+1, k])
    end
    return cols, vals
end

# A row is read from the stored rows directly; anything else from the CSC form, as SparseArrays
# indexes it (a single row or column gives a SparseVector, a block a matrix of A's kind).
function Base.getindex(A::SparseJLMatrix, i::Integer, ::Colon)
    checkbounds(A, i, :)
    cols, vals = row_entries(A, Int(i))
    return sparsevec(cols, vals, size(A, 2))
end

Base.getindex(A::SparseJLMatrix, i::Integer, j::Integer) = A[Int(i), Int(j)]
Base.getindex(A::SparseJLMatrix, I::Union{Integer,AbstractVector,Colon},
              J::Union{Integer,AbstractVector,Colon}) = sliced(A, sparse(A)[I, J])
sliced(A, x) = x
sliced(A::CSRMatrix, S::SparseMatrixCSC) = CSRMatrix(S)
sliced(A::BSRMatrix, S::SparseMatrixCSC) =
    all(d -> d % blocksize(A) == 0, size(S)) ? BSRMatrix(S, blocksize(A)) : CSRMatrix(S)

# --- stored entries ----------------------------------------------------------------------------

"The stored values, in storage order (for BSR every entry of every block, each block transposed)."
SparseArrays.nonzeros(A::CSRMatrix) = A.data
SparseArrays.nonzeros(A::BSRMatrix) = vec(A.data)

"`(I, J, V)` of the stored entries, 1-based, as `findnz(sparse(A))` orders and merges them."
SparseArrays.findnz(A::SparseJLMatrix) = findnz(sparse(A))

Base.copy(A::CSRMatrix{Tv,Ti}) where {Tv,Ti} =
    CSRMatrix{Tv,Ti}(A.m, A.n, copy(A.indptr), copy(A.indices), copy(A.data); check=false)
Base.copy(A::BSRMatrix{Tv,Ti}) where {Tv,Ti} =
    BSRMatrix{Tv,Ti}(size(A)..., copy(A.indptr), copy(A.indices), copy(A.data); check=false)

"""
    similar(A) / similar(A, T)

Same stored structure (copied), values uninitialised, as for a `SparseMatrixCSC`.
`similar(A, T, dims)` gives an empty `SparseMatrixCSC{T}` of size `dims`: the sparse type that
takes new entries (`setindex!`), which generic code filling a `similar` array needs.
"""
Base.similar(A::CSRMatrix{Tv}) where {Tv} = similar(A, Tv)
Base.similar(A::CSRMatrix{<:Any,Ti}, ::Type{T}) where {T,Ti} =
    CSRMatrix{T,Ti}(A.m, A.n, copy(A.indptr), copy(A.indices), similar(A.data, T); check=false)
Base.similar(A::BSRMatrix{Tv}) where {Tv} = similar(A, Tv)
Base.similar(A::BSRMatrix{<:Any,Ti}, ::Type{T}) where {T,Ti} =
    BSRMatrix{T,Ti}(size(A)..., copy(A.indptr), copy(A.indices), similar(A.data, T); check=false)
Base.similar(A::SparseJLMatrix{<:Any,Ti}, ::Type{T}, dims::Dims{2}) where {T,Ti} =
    spzeros(T, Ti, dims...)

# --- equality, hashing, approximate equality: as the SparseMatrixCSC of the same entries -------

Base.:(==)(A::SparseJLMatrix, B::SparseJLMatrix) = size(A) == size(B) && sparse(A) == sparse(B)
Base.:(==)(A::SparseJLMatrix, B::AbstractMatrix) = size(A) == size(B) && sparse(A) == B
Base.:(==)(A::AbstractMatrix, B::SparseJLMatrix) = B == A
Base.hash(A::SparseJLMatrix, h::UInt) = hash(sparse(A), h)

Base.isapprox(A::SparseJLMatrix, B::SparseJLMatrix; kws...) = isapprox(sparse(A), sparse(B); kws...)
Base.isapprox(A::SparseJLMatrix, B::AbstractMatrix; kws...) = isapprox(sparse(A), B; kws...)
Base.isapprox(A::AbstractMatrix, B::SparseJLMatrix; kws...) = isapprox(A, sparse(B); kws...)

# --- printing: the stored entries, as SparseArrays prints them --------------------------------

function Base.summary(io::IO, A::CSRMatrix{Tv,Ti}) where {Tv,Ti}
    print(io, A.m, "×", A.n, " CSRMatrix{", Tv, ",", Ti, "} with ", nnz(A), " stored ",
          nnz(A) == 1 ? "entry" : "entries")
end

function Base.summary(io::IO, A::BSRMatrix{Tv,Ti}) where {Tv,Ti}
    m, n = size(A)
    b = blocksize(A)
    print(io, m, "×", n, " BSRMatrix{", Tv, ",", Ti, "} with ", nnzb(A), " stored ",
          b, "×", b, " block", nnzb(A) == 1 ? "" : "s")
end

Base.show(io::IO, A::SparseJLMatrix) = summary(io, A)

"Stored entries as (row, column, value), in storage order (BSR: block by block, row-major)."
function stored_entries(A::CSRMatrix)
    rows = Int[i for i in 1:A.m for _ in Int(A.indptr[i])+1:Int(A.indptr[i+1])]
    return zip(rows, (Int(A.indices[p]) + 1 for p in 1:nnz(A)), view(A.data, 1:nnz(A)))
end

function stored_entries(A::BSRMatrix)
    b = blocksize(A)
    ks = Int[k for I in 1:A.mb for k in Int(A.indptr[I])+1:Int(A.indptr[I+1])]
    Is = Int[I for I in 1:A.mb for _ in Int(A.indptr[I])+1:Int(A.indptr[I+1])]
    return ((((I - 1) * b + r), Int(A.indices[k]) * b + c, A.data[c, r, k])
            for (I, k) in zip(Is, ks) for r in 1:b for c in 1:b)
end

function Base.show(io::IO, ::MIME"text/plain", A::SparseJLMatrix)
    summary(io, A)
    nnz(A) == 0 && return
    print(io, ":")
    check_format(A)
    entries = collect(stored_entries(A))
    limit = get(io, :limit, false) ? max(displaysize(io)[1] - 4, 4) : length(entries)
    m, n = size(A)
    pad = ndigits(m) + ndigits(n) + 4
    for (q, (i, j, v)) in enumerate(entries)
        if q > limit ÷ 2 && q <= length(entries) - limit ÷ 2
            q == limit ÷ 2 + 1 && print(io, "\n  ", " "^(ndigits(m) + 1), "⋮")
            continue
        end
        print(io, "\n  ", rpad(string("[", i, ", ", j, "]"), pad), "  =  ")
        show(IOContext(io, :compact => true), v)
    end
end

# --- arithmetic ------------------------------------------------------------------------------

with_data(A::CSRMatrix, data::Vector) =
    CSRMatrix(A.m, A.n, copy(A.indptr), copy(A.indices), data; check=false)
with_data(A::BSRMatrix, data::Array{<:Any,3}) =
    BSRMatrix(size(A)..., copy(A.indptr), copy(A.indices), data; check=false)

Base.:*(α::Number, A::SparseJLMatrix) = with_data(A, α .* A.data)
Base.:*(A::SparseJLMatrix, α::Number) = with_data(A, A.data .* α)
Base.:/(A::SparseJLMatrix, α::Number) = with_data(A, A.data ./ α)
Base.:-(A::SparseJLMatrix) = with_data(A, .-A.data)
Base.conj(A::SparseJLMatrix) = with_data(A, conj.(A.data))
Base.real(A::SparseJLMatrix) = with_data(A, real.(A.data))

"The sum or difference `S` (a SparseMatrixCSC) in the kind of both operands, CSR if they differ."
like(A::CSRMatrix, B::CSRMatrix, S) = CSRMatrix(S)
like(A::BSRMatrix, B::BSRMatrix, S) =
    blocksize(A) == blocksize(B) ? BSRMatrix(S, blocksize(A)) : CSRMatrix(S)
like(A, B, S) = CSRMatrix(S)

Base.:+(A::SparseJLMatrix, B::SparseJLMatrix) = like(A, B, sparse(A) + sparse(B))
Base.:-(A::SparseJLMatrix, B::SparseJLMatrix) = like(A, B, sparse(A) - sparse(B))

# --- materialised transposes -------------------------------------------------------------------

const TransposedSparse = Union{Transpose{<:Any,<:SparseJLMatrix},Adjoint{<:Any,<:SparseJLMatrix}}
value_op(::Transpose) = identity
value_op(::Adjoint) = conj

"`copy(transpose(A))`, `copy(A')`: the transposed matrix, of A's kind, rows sorted."
function Base.copy(At::Union{Transpose{<:Any,<:CSRMatrix},Adjoint{<:Any,<:CSRMatrix}})
    A = parent(At)
    check_format(A)
    Tv, Ti = eltype(A), eltype(A.indices)
    indptr, indices, data = transpose_compressed(Tv, Ti, A.n, A.m, A.indptr, A.indices, A.data, 0, 0)
    return CSRMatrix{Tv,Ti}(A.n, A.m, indptr, indices, value_op(At).(data); check=false)
end

function Base.copy(At::Union{Transpose{<:Any,<:BSRMatrix},Adjoint{<:Any,<:BSRMatrix}})
    A = parent(At)
    check_format(A)
    Ti = eltype(A.indices)
    nzb = nnzb(A)
    indptr, indices, ks = transpose_compressed(Int, Ti, A.nb, A.mb, A.indptr, A.indices, 1:nzb, 0, 0)
    op, b = value_op(At), blocksize(A)
    data = similar(A.data, b, b, nzb)
    for q in 1:nzb, r in 1:b, c in 1:b
        data[r, c, q] = op(A.data[c, r, ks[q]])
    end
    return BSRMatrix(size(A, 2), size(A, 1), indptr, indices, data; check=false)
end

SparseArrays.sparse(At::TransposedSparse) = sparse(copy(At))
SparseArrays.SparseMatrixCSC(At::TransposedSparse) = sparse(copy(At))
