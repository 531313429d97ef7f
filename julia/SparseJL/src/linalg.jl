# `*` and `mul!` for CSRMatrix and BSRMatrix, their lazy transposes, and dense operands. Julia's
# dense matrices are column-major and the kernels row-major, so a product runs on transposes:
# C = op(A)·B is Cᵀ = (op(A)·B)ᵀ from Bt = Bᵀ; X·op(A) is (op(A)ᵀ·Xᵀ)ᵀ, which reads X and writes
# C in place. Where an operand has the wrong layout it is transposed into a scratch array kept
# between calls (no allocation in steady state), the output row by row right after the thread
# that computed those rows, while they are in cache. Every call validates A's structure first.

const SparseOperand = Union{SparseJLMatrix,TransposedSparse}
const DenseOperand = Union{StridedMatrix,Transpose{<:Any,<:StridedMatrix},Adjoint{<:Any,<:StridedMatrix}}

storage(A::SparseJLMatrix) = A
storage(At::TransposedSparse) = parent(At)

"Element type of a product, as LinearAlgebra (and SparseArrays) choose it: `Bool*Bool` is `Int`."
product_type(A, B) = Base.promote_op(LinearAlgebra.matprod, eltype(A), eltype(B))

"""
    rowmajor_product!(Ct, opA, Bt, after=no_after)

`Ct = (opA*B)ᵀ` from `Bt = Bᵀ`, for `opA` a validated matrix of this package or its
`transpose`/`adjoint`; `after(lo, hi)` is called once rows lo:hi of the product are in `Ct`.
"""
rowmajor_product!(Ct, A::SparseJLMatrix, Bt, after::G=no_after) where {G} =
    unchecked_spmm_rowmajor!(Ct, A, Bt, after)
function rowmajor_product!(Ct, At::TransposedSparse, Bt, after::G=no_after) where {G}
    unchecked_spmm_t_rowmajor!(Ct, parent(At), Bt, value_op(At))
    after(1, size(Ct, 2))
    return Ct
end

"The operand `M` for which `(M * Xᵀ)ᵀ == X * opA`."
flipped(A::SparseJLMatrix) = transpose(A)
flipped(At::Transpose{<:Any,<:SparseJLMatrix}) = parent(At)
flipped(At::Adjoint{<:Real,<:SparseJLMatrix}) = parent(At)
flipped(At::Adjoint{<:Any,<:SparseJLMatrix}) = conj(parent(At))

# --- dense operands in the layout the kernels read ------------------------------------------

"Call `f(Bt)` with `Bt = Bᵀ` as a dense matrix: `B`'s parent if that is one, else a scratch copy."
with_rowmajor(f::F, B::Transpose{<:Any,<:Matrix}) where {F} = f(parent(B))
with_rowmajor(f::F, B::Adjoint{<:Real,<:Matrix}) where {F} = f(parent(B))
function with_rowmajor(f::F, B::AbstractMatrix) where {F}
    return with_scratch(SCRATCH_B, eltype(B), (size(B, 2), size(B, 1))) do Bt
        copy_transposed!(Bt, B)
        f(Bt)
    end
end

copy_transposed!(Bt, B::AbstractMatrix) = transpose!(Bt, B)
copy_transposed!(Bt, B::Transpose) = copyto!(Bt, parent(B))
copy_transposed!(Bt, B::Adjoint) = (Bt .= conj.(parent(B)); Bt)
function copy_transposed!(Bt, B::SparseArrays.AbstractSparseMatrixCSC)
    fill!(Bt, zero(eltype(Bt)))
    rows, vals = rowvals(B), nonzeros(B)
    for j in 1:size(B, 2), p in nzrange(B, j)
        Bt[j, rows[p]] += vals[p]
    end
    return Bt
end

"Call `f(X)` with `X` as a column-major `Matrix`: itself if it is one, else a scratch copy."
with_colmajor(f::F, X::Matrix) where {F} = f(X)
with_colmajor(f::F, X::AbstractMatrix) where {F} =
    with_scratch(SCRATCH_B, eltype(X), size(X)) do Xc
        copy_colmajor!(Xc, X)
        f(Xc)
    end
copy_colmajor!(Xc, X::AbstractMatrix) = copyto!(Xc, X)
copy_colmajor!(Xc, X::Transpose) = transpose!(Xc, parent(X))
copy_colmajor!(Xc, X::Adjoint) = adjoint!(Xc, parent(X))

"`C[rows, :] = α * transpose(Ct[:, rows]) + β * C[rows, :]` (C not read when `β == 0`)."
function store_rows!(C::AbstractMatrix, Ct::AbstractMatrix, lo::Int, hi::Int, α, β)
    n = size(C, 2)
    @inbounds for i0 in lo:16:hi, l in 1:n
        is = i0:min(i0 + 15, hi)
        if iszero(β)
            for i in is
                C[i, l] = α * Ct[l, i]
            end
        else
            for i in is
                C[i, l] = α * Ct[l, i] + β * C[i, l]
            end
        end
    end
    return nothing
end

"`C = α * T + β * C` elementwise (C not read when `β == 0`)."
combine!(C, T, α, β) = iszero(β) ? (C .= α .* T) : (C .= α .* T .+ β .* C)

function check_product_shapes(C, A, B)
    size(A, 2) == size(B, 1) || throw(DimensionMismatch(
        "A is $(size(A, 1))×$(size(A, 2)) but B has $(size(B, 1)) rows"))
    (size(C, 1), size(C, 2)) == (size(A, 1), size(B, 2)) || throw(DimensionMismatch(
        "C is $(size(C, 1))×$(size(C, 2)), expected $(size(A, 1))×$(size(B, 2))"))
    return nothing
end

# --- mul! --------------------------------------------------------------------------------------

const RightOperand = Union{DenseOperand,SparseArrays.AbstractSparseMatrixCSC}

function LinearAlgebra.mul!(C::StridedMatrix, opA::SparseOperand, B::RightOperand,
                            α::Number, β::Number)
    check_product_shapes(C, opA, B)
    check_format(storage(opA))
    m, n = size(C)
    with_rowmajor(B) do Bt
        with_scratch(SCRATCH_C, eltype(C), (n, m)) do Ct
            rowmajor_product!(Ct, opA, Bt, (lo, hi) -> store_rows!(C, Ct, lo, hi, α, β))
        end
    end
    return C
end

function LinearAlgebra.mul!(y::StridedVector, A::SparseJLMatrix, x::StridedVector,
                            α::Number, β::Number)
    check_product_shapes(y, A, x)
    check_format(A)
    if isone(α) && iszero(β)
        unchecked_spmv!(y, A, x)
    else
        with_scratch(SCRATCH_C, eltype(y), (length(y),)) do t
            unchecked_spmv!(t, A, x)
            combine!(y, t, α, β)
        end
    end
    return y
end

function LinearAlgebra.mul!(y::StridedVector, At::TransposedSparse, x::StridedVector,
                            α::Number, β::Number)
    check_product_shapes(y, At, x)
    check_format(parent(At))
    if isone(α) && iszero(β)
        unchecked_spmm_t_rowmajor!(transpose(y), parent(At), transpose(x), value_op(At))
    else
        with_scratch(SCRATCH_C, eltype(y), (1, length(y))) do t
            unchecked_spmm_t_rowmajor!(t, parent(At), transpose(x), value_op(At))
            combine!(y, view(t, 1, :), α, β)
        end
    end
    return y
end

function LinearAlgebra.mul!(C::StridedMatrix, X::DenseOperand, opA::SparseOperand,
                            α::Number, β::Number)
    check_product_shapes(C, X, opA)
    check_format(storage(opA))
    M = flipped(opA)
    with_colmajor(X) do Xc
        if C isa Matrix && isone(α) && iszero(β)
            rowmajor_product!(C, M, Xc)
        else
            with_scratch(SCRATCH_C, eltype(C), size(C)) do T
                rowmajor_product!(T, M, Xc)
                combine!(C, T, α, β)
            end
        end
    end
    return C
end

# --- * -----------------------------------------------------------------------------------------

Base.:*(opA::SparseOperand, B::DenseOperand) =
    mul!(Matrix{product_type(opA, B)}(undef, size(opA, 1), size(B, 2)), opA, B, true, false)
Base.:*(opA::SparseOperand, x::StridedVector) =
    mul!(Vector{product_type(opA, x)}(undef, size(opA, 1)), opA, x, true, false)
Base.:*(X::DenseOperand, opA::SparseOperand) =
    mul!(Matrix{product_type(X, opA)}(undef, size(X, 1), size(opA, 2)), X, opA, true, false)

# Sparse times sparse is sparse (SpGEMM): CSR, or BSR when both are BSR with one block size.
Base.:*(A::CSRMatrix, B::CSRMatrix) = spgemm(A, B)
Base.:*(A::BSRMatrix, B::BSRMatrix) =
    blocksize(A) == blocksize(B) ? spgemm(A, B) : spgemm(CSRMatrix(A), CSRMatrix(B))
Base.:*(A::SparseJLMatrix, B::SparseJLMatrix) = spgemm(CSRMatrix(A), CSRMatrix(B))
Base.:*(A::SparseJLMatrix, S::SparseMatrixCSC) = spgemm(CSRMatrix(A), CSRMatrix(S))
Base.:*(S::SparseMatrixCSC, A::SparseJLMatrix) = S * SparseMatrixCSC(A)
Base.:*(At::TransposedSparse, B::Union{SparseJLMatrix,SparseMatrixCSC}) = copy(At) * B
Base.:*(A::Union{SparseJLMatrix,SparseMatrixCSC}, Bt::TransposedSparse) = A * copy(Bt)
Base.:*(At::TransposedSparse, Bt::TransposedSparse) = copy(At) * copy(Bt)

# --- the names of the Python package -----------------------------------------------------------

"""
    spmm(A, B) -> C

`C = A*B` for `A` a `CSRMatrix` or `BSRMatrix` (or its `transpose`/`adjoint`) and a dense matrix
or vector `B`; the element type of `C` is that of `A*B` (`promote_op` of `*` and `+`, so
`Bool` operands give `Int`, as SparseArrays does).
"""
spmm(A::SparseOperand, B::Union{DenseOperand,StridedVector}) = A * B

"""
    spmm!(C, A, B) -> C
    spmm!(C, A, B, α, β) -> C

In-place `C = A*B` (or `α*A*B + β*C`): `mul!` for dense `B` and `C`.
"""
spmm!(C, A::SparseOperand, B, α::Number=true, β::Number=false) = mul!(C, A, B, α, β)
