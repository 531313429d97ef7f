# Compressed sparse row storage, laid out exactly as SciPy's csr_matrix: 0-based `indptr` and
# `indices`, so that arrays coming from Python are used in place.

"""
    CSRMatrix(m, n, indptr, indices, data; check=true)

An `m×n` sparse matrix in compressed sparse row form with SciPy's layout: row `i` (0-based) holds
`data[indptr[i]+1 : indptr[i+1]]` at 0-based columns `indices[...]`. The vectors are used as
given, not copied. Column indices need not be sorted; duplicates are summed by every operation.
"""
struct CSRMatrix{Tv,Ti<:Integer}
    m::Int
    n::Int
    indptr::Vector{Ti}
    indices::Vector{Ti}
    data::Vector{Tv}
    function CSRMatrix{Tv,Ti}(m::Integer, n::Integer, indptr::Vector{Ti}, indices::Vector{Ti},
                              data::Vector{Tv}; check::Bool=true) where {Tv,Ti<:Integer}
        A = new{Tv,Ti}(Int(m), Int(n), indptr, indices, data)
        check && check_format(A)
        return A
    end
end

CSRMatrix(m::Integer, n::Integer, indptr::Vector{Ti}, indices::Vector{Ti}, data::Vector{Tv};
          check::Bool=true) where {Tv,Ti<:Integer} =
    CSRMatrix{Tv,Ti}(m, n, indptr, indices, data; check=check)

"""
    check_format(A::CSRMatrix)
    check_format(A::BSRMatrix)

Throw an `ArgumentError` naming the array and the first bad (0-based) position if the stored
structure is malformed: `data` and `indices` of different lengths, `indptr` of the wrong length,
not starting at 0, decreasing (a negative entry shows as a decrease) or ending past the stored
entries, or an index out of range (negative or too large).
"""
check_format(A::CSRMatrix) = throw_problem(format_problem(A))

"First problem of the stored structure of `A`, or `nothing` (see [`check_format`](@ref))."
function format_problem(A::CSRMatrix)
    @check A.m >= 0 && A.n >= 0 "shape ($(A.m), $(A.n)) has a negative dimension"
    @check(length(A.data) == length(A.indices),
           "data holds $(length(A.data)) values but indices holds $(length(A.indices))")
    return compressed_problem(A.m, A.n, A.indptr, A.indices, length(A.indices))
end

Base.size(A::CSRMatrix) = (A.m, A.n)
Base.size(A::CSRMatrix, d::Integer) = d == 1 ? A.m : d == 2 ? A.n : 1
Base.eltype(::Type{<:CSRMatrix{Tv}}) where {Tv} = Tv
SparseArrays.nnz(A::CSRMatrix) = Int(A.indptr[A.m+1])

function Base.show(io::IO, A::CSRMatrix{Tv,Ti}) where {Tv,Ti}
    print(io, A.m, "×", A.n, " CSRMatrix{", Tv, ",", Ti, "} with ", nnz(A), " stored entries")
end

# --- conversions -----------------------------------------------------------------------------

CSRMatrix(S::SparseMatrixCSC{Tv,Ti}) where {Tv,Ti} = CSRMatrix{Tv,Ti}(S)

function CSRMatrix{Tv,Ti}(S::SparseMatrixCSC) where {Tv,Ti<:Integer}
    T = copy(transpose(S))                     # CSC of the transpose is CSR of S
    indptr = Ti[p - 1 for p in T.colptr]
    indices = Ti[i - 1 for i in T.rowval]
    data = Vector{Tv}(T.nzval)
    return CSRMatrix{Tv,Ti}(size(S, 1), size(S, 2), indptr, indices, data)
end

CSRMatrix(A::AbstractMatrix{Tv}) where {Tv} = CSRMatrix{Tv,Int}(A)
CSRMatrix{Tv,Ti}(A::AbstractMatrix) where {Tv,Ti<:Integer} = CSRMatrix{Tv,Ti}(sparse(A))
CSRMatrix{Tv,Ti}(A::CSRMatrix) where {Tv,Ti<:Integer} =
    CSRMatrix{Tv,Ti}(A.m, A.n, Vector{Ti}(A.indptr), Vector{Ti}(A.indices), Vector{Tv}(A.data))

"Row and column (1-based) of every stored entry, in storage order."
function coo_indices(A::CSRMatrix)
    rows = Vector{Int}(undef, nnz(A))
    for i in 1:A.m, p in A.indptr[i]+1:A.indptr[i+1]
        rows[p] = i
    end
    cols = Int[A.indices[p] + 1 for p in 1:nnz(A)]
    return rows, cols
end

function SparseArrays.SparseMatrixCSC(A::CSRMatrix{Tv,Ti}) where {Tv,Ti}
    rows, cols = coo_indices(A)
    return sparse(Vector{Ti}(rows), Vector{Ti}(cols), A.data[1:nnz(A)], A.m, A.n)  # sums duplicates
end
SparseArrays.sparse(A::CSRMatrix) = SparseMatrixCSC(A)

function Base.Matrix(A::CSRMatrix{Tv}) where {Tv}
    M = zeros(Tv, A.m, A.n)
    for i in 1:A.m, p in A.indptr[i]+1:A.indptr[i+1]
        M[i, A.indices[p]+1] += A.data[p]
    end
    return M
end
Base.Array(A::CSRMatrix) = Matrix(A)
