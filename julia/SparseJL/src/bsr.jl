# Block compressed sparse row storage with square b×b blocks, laid out as SciPy's bsr_matrix.
# SciPy keeps `data` as a row-major (nnzb, b, b) array; the same memory read column-major is a
# b×b×nnzb array whose element [c, r, k] is row r, column c of block k. So each stored block is
# the transpose of the block it means, and Python's buffer is used in place.

"""
    BSRMatrix(m, n, indptr, indices, data::Array{Tv,3}; check=true)

An `m×n` sparse matrix made of square `b×b` blocks, `b = size(data, 1)`, with SciPy's layout: block
row `I` (0-based) holds blocks `indptr[I]+1 : indptr[I+1]` at 0-based block columns `indices[...]`,
and `data[c, r, k]` is the entry at row `r`, column `c` of block `k` (the column-major view of
SciPy's row-major `(nnzb, b, b)` data). Arrays are used as given, not copied.
"""
struct BSRMatrix{Tv,Ti<:Integer}
    mb::Int                 # block rows
    nb::Int                 # block columns
    indptr::Vector{Ti}
    indices::Vector{Ti}
    data::Array{Tv,3}
    function BSRMatrix{Tv,Ti}(m::Integer, n::Integer, indptr::Vector{Ti}, indices::Vector{Ti},
                              data::Array{Tv,3}; check::Bool=true) where {Tv,Ti<:Integer}
        b = size(data, 1)
        b >= 1 || throw(ArgumentError("block size b = $b must be at least 1"))
        m >= 0 && n >= 0 || throw(ArgumentError("shape ($m, $n) has a negative dimension"))
        m % b == 0 && n % b == 0 || throw(ArgumentError(
            "shape ($m, $n) is not a multiple of the block size $b"))
        A = new{Tv,Ti}(div(m, b), div(n, b), indptr, indices, data)
        check && check_format(A)
        return A
    end
end

BSRMatrix(m::Integer, n::Integer, indptr::Vector{Ti}, indices::Vector{Ti}, data::Array{Tv,3};
          check::Bool=true) where {Tv,Ti<:Integer} =
    BSRMatrix{Tv,Ti}(m, n, indptr, indices, data; check=check)

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
Base.size(A::BSRMatrix, d::Integer) = d <= 2 ? size(A)[d] : 1
Base.eltype(::Type{<:BSRMatrix{Tv}}) where {Tv} = Tv
"Number of stored blocks."
nnzb(A::BSRMatrix) = Int(A.indptr[A.mb+1])
SparseArrays.nnz(A::BSRMatrix) = nnzb(A) * blocksize(A)^2

function Base.show(io::IO, A::BSRMatrix{Tv,Ti}) where {Tv,Ti}
    m, n = size(A)
    b = blocksize(A)
    print(io, m, "×", n, " BSRMatrix{", Tv, ",", Ti, "} with ", nnzb(A), " stored ",
          b, "×", b, " blocks")
end

# --- conversions -----------------------------------------------------------------------------

BSRMatrix(S::SparseMatrixCSC{Tv,Ti}, b::Integer) where {Tv,Ti} = BSRMatrix{Tv,Ti}(S, b)
BSRMatrix(A::AbstractMatrix{Tv}, b::Integer) where {Tv} = BSRMatrix{Tv,Int}(sparse(A), b)
BSRMatrix{Tv,Ti}(A::AbstractMatrix, b::Integer) where {Tv,Ti<:Integer} =
    BSRMatrix{Tv,Ti}(sparse(A), b)

"Blocks of `S` holding at least one stored entry, in block-column order per block row."
function BSRMatrix{Tv,Ti}(S::SparseMatrixCSC, b::Integer) where {Tv,Ti<:Integer}
    m, n = size(S)
    b >= 1 || throw(ArgumentError("block size b = $b must be at least 1"))
    m % b == 0 && n % b == 0 || throw(ArgumentError(
        "shape ($m, $n) is not a multiple of the block size $b"))
    mb, nb = div(m, b), div(n, b)
    R = CSRMatrix{Tv,Int}(S)
    marker = zeros(Int, nb)                   # marker[J] = slot of block J in current block row
    indptr = zeros(Ti, mb + 1)
    indices = Ti[]
    for I in 1:mb
        first = length(indices)
        for i in (I-1)*b+1:I*b, p in R.indptr[i]+1:R.indptr[i+1]
            J = R.indices[p] ÷ b + 1
            if marker[J] <= first
                push!(indices, J - 1)
                marker[J] = length(indices)
            end
        end
        sort!(view(indices, first+1:length(indices)))
        for k in first+1:length(indices)
            marker[indices[k]+1] = k
        end
        indptr[I+1] = length(indices)
    end
    data = zeros(Tv, b, b, length(indices))
    for I in 1:mb
        for k in indptr[I]+1:indptr[I+1]
            marker[indices[k]+1] = k
        end
        for i in (I-1)*b+1:I*b, p in R.indptr[i]+1:R.indptr[i+1]
            j = R.indices[p]
            k = marker[j÷b+1]
            data[j%b+1, i-(I-1)*b, k] += R.data[p]
        end
    end
    return BSRMatrix{Tv,Ti}(m, n, indptr, indices, data)
end

function Base.Matrix(A::BSRMatrix{Tv}) where {Tv}
    b = blocksize(A)
    M = zeros(Tv, size(A))
    for I in 1:A.mb, k in A.indptr[I]+1:A.indptr[I+1]
        J = Int(A.indices[k])
        for r in 1:b, c in 1:b
            M[(I-1)*b+r, J*b+c] += A.data[c, r, k]
        end
    end
    return M
end
Base.Array(A::BSRMatrix) = Matrix(A)

function SparseArrays.SparseMatrixCSC(A::BSRMatrix{Tv,Ti}) where {Tv,Ti}
    b = blocksize(A)
    nb = nnzb(A)
    rows = Vector{Ti}(undef, nb * b * b)
    cols = similar(rows)
    vals = Vector{Tv}(undef, nb * b * b)
    q = 0
    for I in 1:A.mb, k in A.indptr[I]+1:A.indptr[I+1]
        J = Int(A.indices[k])
        for r in 1:b, c in 1:b
            q += 1
            rows[q] = (I-1)*b + r
            cols[q] = J*b + c
            vals[q] = A.data[c, r, k]
        end
    end
    m, n = size(A)
    return sparse(rows, cols, vals, m, n)
end
SparseArrays.sparse(A::BSRMatrix) = SparseMatrixCSC(A)

BSRMatrix{Tv,Ti}(A::BSRMatrix) where {Tv,Ti<:Integer} =
    BSRMatrix{Tv,Ti}(size(A)..., Vector{Ti}(A.indptr), Vector{Ti}(A.indices), Array{Tv,3}(A.data))
