# Compressed sparse row storage, laid out exactly as SciPy's csr_matrix: 0-based `indptr` and
# `indices`, so that arrays coming from Python are used in place.

"""
    CSRMatrix(m, n, indptr, indices, data; check=true)
    CSRMatrix(S::SparseMatrixCSC), CSRMatrix{Tv}(S), CSRMatrix{Tv,Ti}(S)
    CSRMatrix(M::AbstractMatrix), CSRMatrix(B::BSRMatrix)

An `m×n` sparse matrix (an `AbstractSparseMatrix{Tv,Ti}`) in compressed sparse row form with
SciPy's layout: row `i` (0-based) holds `data[indptr[i]+1 : indptr[i+1]]` at 0-based columns
`indices[...]`. The vectors are used as given, not copied. Column indices need not be sorted;
duplicates are summed by every operation.

`check=false` skips the validation at construction (the unsafe fast path for arrays known to be
valid, such as a product's output). It cannot make a product unsafe: `*`, `mul!`, `spmm` and
`spgemm` validate the structure again on every call (a cheap vectorised scan), so arrays changed
in place after construction raise an `ArgumentError`, never an out-of-bounds read.
"""
struct CSRMatrix{Tv,Ti<:Integer} <: AbstractSparseMatrix{Tv,Ti}
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

"Number of stored entries (duplicates counted), as `nnz` of a `SparseMatrixCSC`."
SparseArrays.nnz(A::CSRMatrix) = Int(A.indptr[A.m+1])
