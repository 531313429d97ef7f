# Acceptance: a script written the way a SparseArrays user writes it runs unchanged with
# CSRMatrix and BSRMatrix in place of SparseMatrixCSC, and gives the same results.

"What a SparseArrays user does with a sparse `A` (m×k) and a sparse `B` (k×p); every result."
function sparsearrays_user_script(A, B, X, x, Y)
    out = Dict{String,Any}()
    out["size"] = size(A)
    out["A*X"] = A * X
    out["A*x"] = A * x
    out["A'*Y"] = A' * Y
    out["transpose(A)*Y"] = transpose(A) * Y
    out["Y'*A"] = Y' * A
    out["X'*A'"] = X' * A'
    out["A*X'"] = A * transpose(permutedims(X))
    C = zeros(size(A, 1), size(X, 2))
    mul!(C, A, X)
    out["mul!"] = copy(C)
    mul!(C, A, X, 2.0, 0.5)
    out["mul!5"] = copy(C)
    y = zeros(size(A, 2))
    mul!(y, A', Y[:, 1])
    out["mul!t"] = y
    out["A[i,j]"] = [A[i, j] for i in 1:size(A, 1), j in 1:size(A, 2)]
    out["A[2,:]"] = Vector(A[2, :])
    out["A[:,3]"] = Vector(A[:, 3])
    out["A[rows,cols]"] = Matrix(A[2:4, [1, 3]])
    out["sparse(A)"] = sparse(A)
    out["Matrix(A)"] = Matrix(A)
    out["A == A"] = A == A
    out["A == copy(A)"] = A == copy(A)
    out["A == 2A"] = A == 2A
    out["A ≈ A"] = A ≈ A
    out["nnz(sparse(A))"] = nnz(sparse(A))
    out["A*B"] = Matrix(A * B)
    out["sparse(A*B)"] = sparse(A * B)
    out["A+A"] = Matrix(A + A)
    out["A-2A"] = Matrix(A - 2A)
    out["findnz"] = findnz(A)
    out["hash"] = hash(A) == hash(sparse(A))
    out["sum"] = sum(A)
    out["A'"] = Matrix(copy(A'))
    return out
end

@testset "a SparseArrays user's script runs unchanged on CSRMatrix and BSRMatrix" begin
    m, k, p = 12, 8, 4
    S = sprand(m, k, 0.3) + sparse([2, 3, 4], [3, 3, 1], [1.0, 2.0, 3.0], m, k)
    T = sprand(k, p, 0.4)
    X, x, Y = randn(k, 5), randn(k), randn(m, 3)
    ref = sparsearrays_user_script(S, T, X, x, Y)
    for (name, A, B) in (("CSRMatrix", CSRMatrix(S), CSRMatrix(T)),
                         ("BSRMatrix", BSRMatrix(S, (4, 4)), BSRMatrix(T, 4)))
        got = sparsearrays_user_script(A, B, X, x, Y)
        @testset "$name: $key" for key in sort(collect(keys(ref)))
            if ref[key] isa Union{AbstractFloat,AbstractArray{<:AbstractFloat}}   # sums in another order: ≈
                @test got[key] ≈ ref[key]
            else
                @test got[key] == ref[key]
            end
        end
    end
end
