# A linear layer's products (src/linear.jl) against dense Float64 references: random BSR (every
# vector width and the portable kernel) and CSR (unsorted, duplicates), empty rows, no tokens,
# one token, odd token counts. Included by runtests.jl inside its "kernels" testset.

using SparseJL: unchecked_linear!, unchecked_linear_input_grad!, unchecked_sddmm!

"The stored positions of `A` (duplicates counted once) as a dense 0/1 mask."
stored_mask(A::BSRMatrix{Tv,Ti}) where {Tv,Ti} =
    Matrix(BSRMatrix{Float64,Ti}(size(A)..., A.indptr, A.indices, ones(size(A.data)))) .!= 0
stored_mask(A::CSRMatrix{Tv,Ti}) where {Tv,Ti} =
    Matrix(sparse(CSRMatrix{Float64,Ti}(size(A)..., A.indptr, A.indices, ones(length(A.data))))) .!= 0

@testset "linear layer: forward, input gradient, SDDMM" begin
    for T in (Float32, Float64), b in (1, 2, 3, 4, 8, 16, 32), n in (0, 1, 7, 40), format in (:bsr, :csr)
        format == :csr && b > 1 && continue
        mb, kb = rand(1:6), rand(1:6)
        W = format == :bsr ? randbsr(T, Int32, mb, kb, b, 0.4) : randcsr(T, Int64, mb, kb, 0.4; dups=true)
        m, k = size(W)
        Wd = format == :bsr ? Matrix(W) : Matrix(sparse(W))
        Xt, dYt, bias = randn(T, k, n), randn(T, m, n), randn(T, m)
        Yt = fill(T(NaN), m, n)
        unchecked_linear!(Yt, W, Xt, bias)
        @test close(Yt, Float64.(Wd) * Float64.(Xt) .+ Float64.(bias), T)
        unchecked_linear!(Yt, W, Xt, T[])
        @test close(Yt, Float64.(Wd) * Float64.(Xt), T)
        dXt = fill(T(NaN), k, n)
        unchecked_linear_input_grad!(dXt, W, dYt)
        @test close(dXt, Float64.(Wd)' * Float64.(dYt), T)
        if format == :bsr
            P = BSRMatrix{T,Int32}(m, k, W.indptr, W.indices, fill(T(NaN), size(W.data)))
            unchecked_sddmm!(P, dYt, Xt)
            @test close(Matrix(P), (Float64.(dYt) * Float64.(Xt)') .* stored_mask(W), T)
        else
            P = CSRMatrix{T,Int64}(m, k, W.indptr, W.indices, fill(T(NaN), length(W.data)))
            unchecked_sddmm!(P, dYt, Xt)
            full = Float64.(dYt) * Float64.(Xt)'
            rows = [i for i in 1:m for _ in W.indptr[i]+1:W.indptr[i+1]]
            @test close(P.data, [full[rows[p], W.indices[p]+1] for p in 1:nnz(W)], T)
        end
    end
end
