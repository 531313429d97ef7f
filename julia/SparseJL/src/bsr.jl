# Block compressed sparse row storage with square b×b blocks, laid out as SciPy's bsr_matrix.
# SciPy keeps `data` as a row-major (nnzb, b, b) array; the same memory read column-major is a
# b×b×nnzb array whose element [c, r, k] is row r, column c of block k. So each stored block is
# the transpose of the block it means, and Python's buffer is used in place.

"""
    BSRMatrix(m, n, indptr, indices, data::Array{Tv,3}; check=true)
    BSRMatrix(S::SparseMatrixCSC, b), BSRMatrix(S, (b, b)), BSRMatrix{Tv}(S, b), BSRMatrix{Tv,Ti}(S, b)
    BSRMatrix(A::CSRMatrix, b), BSRMatrix(M::AbstractMatrix, b), BSRMatrix(B::BSRMatrix, b)

An `m×n` sparse matrix (an `AbstractSparseMatrix{Tv,Ti}`) made of square `b×b` blocks,
`b = size(data, 1)`, with SciPy's layout: block row `I` (0-based) holds blocks
`indptr[I]+1 : indptr[I+1]` at 0-based block columns `indices[...]`, and `data[c, r, k]` is the
entry at row `r`, column `c` of block `k` (the column-major view of SciPy's row-major
`(nnzb, b, b)` data). Arrays are used as given, not copied. `check=false` as for
[`CSRMatrix`](@ref): products validate again on every call.
"""
struct BSRMatrix{Tv,Ti<:Integer} <: AbstractSparseMatrix{Tv,Ti}
    mb::Int                 # block rows
    nb::Int                 # block columns
    indptr::Vector{Ti}
    indices::Vector{Ti}
    data::Array{Tv,3}
    function BSRMatrix{Tv,Ti}(m::Integer, n::Integer, indptr::Vector{Ti}, indices::Vector{Ti},
                              data::Array{Tv,3}; check::Bool=true) where {Tv,Ti<:Integer}
        b = size(data, 1)
        check_block_shape(m, n, b)
        A = new{Tv,Ti}(div(m, b), div(n, b), indptr, indices, data)
        check && check_format(A)
        return A
    end
end

BSRMatrix(m::Integer, n::Integer, indptr::Vector{Ti}, indices::Vector{Ti}, data::Array{Tv,3};
          check::Bool=true) where {Tv,Ti<:Integer} =
    BSRMatrix{Tv,Ti}(m, n, indptr, indices, data; check=check)

function check_block_shape(m::Integer, n::Integer, b::Integer)
    b >= 1 || throw(ArgumentError("block size b = $b must be at least 1"))
    m >= 0 && n >= 0 || throw(ArgumentError("shape ($m, $n) has a negative dimension"))
    m % b == 0 && n % b == 0 || throw(ArgumentError(
        "shape ($m, $n) is not a multiple of the block size $b"))
    return nothing
end

check_format(A::BSRMatrix) = throw_problem(format_problem(A))

function format_problem(A::BSRMatrix)
    b = size(A.data, 1)
    @check(size(A.data, 2) == b,
           "data has blocks of size $(size(A.data, 1))×$(size(A.data, 2)); blocks must be square")
    @check(size(A.data, 3) == length(A.indices),
           "data holds $(size(A.data, 3)) blocks but indices holds $(length(A.indices))")
    return compressed_problem(A.mb, A.nb, A.indptr, A.indices, length(A.indices);
                              unit="block row", entry="block")
end

"Block size `b` of a `BSRMatrix` (SciPy's `blocksize` is `(b, b)`)."
blocksize(A::BSRMatrix) = size(A.data, 1)

Base.size(A::BSRMatrix) = (A.mb * blocksize(A), A.nb * blocksize(A))
"Number of stored blocks."
nnzb(A::BSRMatrix) = Int(A.indptr[A.mb+1])
"Number of stored entries: every entry of every stored block."
SparseArrays.nnz(A::BSRMatrix) = nnzb(A) * blocksize(A)^2
