# CSRMatrix and BSRMatrix as AbstractSparseMatrix: every method against SparseMatrixCSC or a
# dense reference, on random operands of many shapes (empty, one row or column, odd sizes).

const SHAPES = ((0, 0), (0, 3), (3, 0), (1, 1), (1, 6), (6, 1), (7, 5), (24, 16))

"Random sparse matrices of the three kinds with the same entries (BSR: block size `b`)."
function three_kinds(m, n, density, b; Tv=Float64, Ti=Int64)
    S = SparseMatrixCSC{Tv,Ti}(sprand(m, n, density))
    return S, CSRMatrix(S), (m % b == 0 && n % b == 0 ? BSRMatrix(S, b) : nothing)
end

@testset "AbstractSparseMatrix interface" begin
    for (m, n) in SHAPES, density in (0.0, 0.3, 1.0)
        S, A, B = three_kinds(m, n, density, 1)
        for X in (A, B, BSRMatrix(S, 1))
            @test X isa AbstractSparseMatrix{Float64,Int64}
            @test size(X) == (m, n) && eltype(X) == Float64 && SparseArrays.indtype(X) == Int64
            @test X == S && S == X && X == Matrix(S) && Matrix(S) == X
            @test hash(X) == hash(S) == hash(Matrix(S))
            @test X ≈ S && S ≈ X && X ≈ Matrix(S)
            @test Matrix(X) == Matrix(S) && sparse(X) == S && SparseMatrixCSC(X) == S
            @test findnz(X) == findnz(S)
            @test copy(X) == X && typeof(copy(X)) == typeof(X) && copy(X).data !== X.data
            @test all(X[i, j] == S[i, j] for i in 1:m, j in 1:n)
            m > 0 && @test X[m, :] == S[m, :] && X[1, :] isa SparseVector
            n > 0 && @test X[:, n] == S[:, n] && X[:, 1] isa SparseVector
            @test X[:, :] == S && X[1:m÷2, 2:n] == S[1:m÷2, 2:n]
            @test copy(transpose(X)) == copy(transpose(S)) && copy(X') == copy(S')
            @test transpose(X) == transpose(S)
            @test 2X == 2S && X * 3 == 3S && X / 2 == S / 2 && -X == -S
            @test X + X == 2S && X - 2X == -S
            @test_throws BoundsError X[m+1, 1]
        end
        @test nnz(A) == nnz(S) && nonzeros(A) == A.data
        @test A == CSRMatrix(S) && (nnz(S) == 0 || A != 2A)
    end
    # duplicates and unsorted columns: summed everywhere, as SciPy does
    A = randcsr(Float64, Int32, 9, 7, 0.5; dups=true)
    M = Matrix(A)
    @test sparse(A) == sparse(M) && A == M && all(A[i, j] == M[i, j] for i in 1:9, j in 1:7)
    C = SparseMatrixCSC(A)
    @test all(issorted(C.rowval[nzrange(C, j)]; lt=<=) for j in 1:7)     # sorted, no duplicates
    # similar: same structure, or an empty SparseMatrixCSC that takes new entries
    B = BSRMatrix(sprand(8, 8, 0.3), 4)
    for X in (A, B)
        Y = similar(X)
        @test typeof(Y) == typeof(X) && Y.indptr == X.indptr && Y.indptr !== X.indptr
        @test eltype(similar(X, Float32)) == Float32 && similar(X, Float32).indices == X.indices
        Z = similar(X, Int, (3, 4))
        @test Z isa SparseMatrixCSC{Int} && size(Z) == (3, 4) && nnz(Z) == 0
        @test map(abs, X) == abs.(Matrix(X))
    end
    @test nonzeros(B) == vec(B.data) && nnz(B) == nnzb(B) * 16
end

@testset "show prints the stored entries" begin
    A = CSRMatrix(sparse([1, 3], [2, 1], [0.5, -2.0], 3, 2))
    text = sprint(show, MIME("text/plain"), A)
    @test startswith(text, "3×2 CSRMatrix{Float64,Int64} with 2 stored entries:")
    @test occursin(r"\[1, 2\]\s+=\s+0.5", text) && occursin(r"\[3, 1\]\s+=\s+-2.0", text)
    @test sprint(show, A) == "3×2 CSRMatrix{Float64,Int64} with 2 stored entries"
    B = BSRMatrix(sparse([1, 3], [2, 1], [0.5, -2.0], 4, 2), 2)
    text = sprint(show, MIME("text/plain"), B)
    @test startswith(text, "4×2 BSRMatrix{Float64,Int64} with 2 stored 2×2 blocks:")
    @test occursin(r"\[1, 2\]\s+=\s+0.5", text) && occursin(r"\[3, 1\]\s+=\s+-2.0", text)
    @test sprint(show, MIME("text/plain"), CSRMatrix(spzeros(2, 2))) ==
          "2×2 CSRMatrix{Float64,Int64} with 0 stored entries"
    big = CSRMatrix(sprand(200, 200, 0.5))
    lines = split(sprint(show, MIME("text/plain"), big; context=:limit => true), '\n')
    @test length(lines) < 60 && any(l -> occursin("⋮", l), lines)
end

@testset "conversions both ways, through convert and the constructors" begin
    for (m, n) in SHAPES, b in (1, 2, 3), density in (0.0, 0.4, 1.0)
        S, A, B = three_kinds(m, n, density, b; Ti=Int32)
        @test CSRMatrix(S) isa CSRMatrix{Float64,Int32} && CSRMatrix(S) == S
        @test CSRMatrix{Float32}(S) isa CSRMatrix{Float32,Int32} && CSRMatrix{Float32}(S) == Float32.(S)
        @test CSRMatrix{Float32,Int64}(S) isa CSRMatrix{Float32,Int64}
        @test convert(CSRMatrix, S) == S && convert(SparseMatrixCSC, A) == S
        @test convert(Matrix, A) == Matrix(S) && CSRMatrix(Matrix(S)) == S
        @test CSRMatrix(A) == A && CSRMatrix(A).data !== A.data
        @test all(issorted(A.indices[A.indptr[i]+1:A.indptr[i+1]]) for i in 1:m)
        B === nothing && continue
        @test B isa BSRMatrix{Float64,Int32} && blocksize(B) == b && B == S
        @test BSRMatrix(S, (b, b)) == S && BSRMatrix(A, b) == S && BSRMatrix(Matrix(S), b) == S
        @test BSRMatrix{Float32}(S, b) isa BSRMatrix{Float32,Int32}
        @test CSRMatrix(B) == S && SparseMatrixCSC(B) == S && convert(SparseMatrixCSC, B) == S
        @test BSRMatrix(B) == B && BSRMatrix(B, 1) == S
        @test all(issorted(B.indices[B.indptr[I]+1:B.indptr[I+1]]) for I in 1:B.mb)
        @test nnz(sparse(B)) == nnz(S)            # block padding is not stored in the CSC form
    end
    @test_throws ArgumentError BSRMatrix(sprand(4, 4, 0.5), (2, 4))
    @test_throws ArgumentError BSRMatrix(sprand(5, 4, 0.5), 2)
    A = randcsr(Float64, Int64, 8, 6, 0.5; dups=true)        # duplicates summed into BSR blocks
    @test Matrix(BSRMatrix(A, 2)) ≈ Matrix(A)
end

"Dense reference of op(X) for the sparse kinds and their wrappers."
dense(X) = Matrix(X)
dense(X::Transpose) = permutedims(Matrix(parent(X)))
dense(X::Adjoint) = Matrix(Matrix(parent(X))')

@testset "mul! and * with dense operands and lazy transposes" begin
    SparseJL.SERIAL_WORK[] = 0
    for (m, k) in ((0, 0), (1, 1), (7, 5), (24, 16), (16, 40)), n in (0, 1, 2, 5, 33),
        Tv in (Float32, Float64), density in (0.0, 0.3, 1.0)
        S = SparseMatrixCSC{Tv,Int32}(sprand(m, k, density))
        for A in (CSRMatrix(S), (m % 4 == 0 && k % 4 == 0 ? BSRMatrix(S, 4) : CSRMatrix(S)))
            M = Matrix{Float64}(S)
            X, Y, Z = randn(Tv, k, n), randn(Tv, m, n), randn(Tv, n, m)
            @test A * X ≈ M * X
            @test A * transpose(permutedims(X)) ≈ M * X && A * permutedims(X)' ≈ M * X
            @test transpose(A) * Y ≈ M' * Y && A' * Y ≈ M' * Y
            @test A' * transpose(permutedims(Y)) ≈ M' * Y
            @test Z * A ≈ Z * M && transpose(permutedims(Z)) * A ≈ Z * M
            @test permutedims(X) * A' ≈ permutedims(X) * M' && permutedims(X) * transpose(A) ≈ permutedims(X) * M'
            x, y = randn(Tv, k), randn(Tv, m)
            @test A * x ≈ M * x && A' * y ≈ M' * y && transpose(A) * y ≈ M' * y
            @test y' * A ≈ y' * M
            C = fill(Tv(NaN), m, n)                       # β = 0 never reads C
            @test mul!(C, A, X) === C && C ≈ M * X
            C0 = randn(Tv, m, n)
            C = copy(C0)
            @test mul!(C, A, X, 2, -1) ≈ 2 * M * X - C0
            D0 = randn(Tv, k, n)
            D = copy(D0)
            @test mul!(D, A', Y, 0.5, 2) ≈ 0.5 * M' * Y + 2 * D0
            E0 = randn(Tv, n, k)
            E = copy(E0)
            @test mul!(E, Z, A, 1, 1) ≈ Z * M + E0
            z0 = randn(Tv, m)
            z = copy(z0)
            @test mul!(z, A, x, 3, 1) ≈ 3 * M * x + z0
            w = fill(Tv(NaN), k)
            @test mul!(w, transpose(A), y) ≈ M' * y
            @test eltype(A * X) == Tv && eltype(A * randn(k, n)) == Float64
            @test mul!(zeros(m, n), A, sparse(X)) ≈ M * X
            @test_throws DimensionMismatch mul!(zeros(m + 1, n), A, X)
            @test_throws DimensionMismatch A * randn(k + 1, n)
        end
    end
    # complex values: A' conjugates
    S = sprand(ComplexF64, 8, 6, 0.4)
    for A in (CSRMatrix(S), BSRMatrix(S, 2))
        X, Y = randn(ComplexF64, 6, 3), randn(ComplexF64, 8, 3)
        @test A * X ≈ S * X && A' * Y ≈ S' * Y && transpose(A) * Y ≈ transpose(S) * Y
        @test Y' * A ≈ Y' * S && X' * A' ≈ X' * S' && A * copy(X')' ≈ S * X
        @test copy(A') == copy(S')
    end
end

@testset "the transposed kernels: strips of B's columns and per-thread partial sums" begin
    SparseJL.SERIAL_WORK[] = 0
    # wide B: each thread owns a strip of columns; narrow B: per-thread partial results
    for n in (1, 3, 16, 17, 64, 100), b in (1, 2, 4)
        S = sprand(48, 40, 0.2)
        A = b == 1 ? CSRMatrix(S) : BSRMatrix(S, b)
        Bt = randn(n, 48)
        Ct = fill(NaN, n, 40)
        SparseJL.unchecked_spmm_t_rowmajor!(Ct, A, Bt)
        @test Ct ≈ permutedims(Matrix(S)' * permutedims(Bt))
    end
    A = randcsr(Float64, Int32, 30, 20, 0.3; dups=true)
    Y = randn(30, 7)
    @test A' * Y ≈ Matrix(A)' * Y
end

@testset "mul! is allocation-free after warm-up" begin
    S = sprand(Float32, 300, 200, 0.1)
    X, Y, Z = randn(Float32, 200, 8), randn(Float32, 300, 8), randn(Float32, 8, 300)
    x, y = randn(Float32, 200), randn(Float32, 300)
    C, D, E = zeros(Float32, 300, 8), zeros(Float32, 200, 8), zeros(Float32, 8, 200)
    c, d = zeros(Float32, 300), zeros(Float32, 200)
    products(A) = ((C, A, X), (C, A, transpose(permutedims(X))), (D, A', Y), (E, Z, A),
                   (c, A, x), (d, transpose(A), y))
    function allocated(C, A, B, α, β)
        mul!(C, A, B, α, β)
        return @allocated mul!(C, A, B, α, β)
    end
    saved = SparseJL.SERIAL_WORK[]
    for A in (CSRMatrix(S), BSRMatrix(S[1:296, 1:200], 4))
        for (C, opA, B) in products(A)
            size(opA, 1) == size(C, 1) && size(opA, 2) == size(B, 1) || continue
            SparseJL.SERIAL_WORK[] = typemax(Int)         # one thread: nothing at all
            @test allocated(C, opA, B, true, false) == 0
            @test allocated(C, opA, B, 2f0, 1f0) == 0
            SparseJL.SERIAL_WORK[] = 0                    # threaded: the tasks of one loop
            @test allocated(C, opA, B, true, false) <= 4096
        end
    end
    SparseJL.SERIAL_WORK[] = saved
end

@testset "Bool and mixed types promote as SparseArrays does" begin
    S = sprand(Bool, 6, 6, 0.5)
    for A in (CSRMatrix(S), BSRMatrix(S, 2))
        X = rand(Bool, 6, 3)
        @test A * X == S * X && eltype(A * X) == eltype(S * X) == Int
        @test A * A == S * S && eltype(A * A) == eltype(S * S)
        @test A' * X == S' * X && X' * A == X' * S
    end
    A = CSRMatrix(SparseMatrixCSC{Int32,Int32}(sprand(Int32, 5, 4, 0.5) .% Int32(7)))
    @test eltype(A * randn(Float32, 4, 2)) == Float32
    @test eltype(spgemm(A, CSRMatrix(sprand(4, 3, 0.5)))) == Float64
end

@testset "a structure corrupted after construction raises, never reads out of bounds" begin
    for corrupt! in (A -> (A.indices[end] = 10_000), A -> (A.indices[1] = -3),
                     A -> (A.indptr[end] = length(A.indices) + 5), A -> (A.indptr[2] = -1))
        A = CSRMatrix(sprand(40, 30, 0.3) + sparse(I, 40, 30))
        B = BSRMatrix(sprand(40, 30, 0.3) + sparse(I, 40, 30), 2)
        corrupt!(A); corrupt!(B)
        for X in (A, B)
            @test_throws ArgumentError X * randn(30, 4)
            @test_throws ArgumentError X * randn(30)
            @test_throws ArgumentError mul!(zeros(40, 4), X, randn(30, 4))
            @test_throws ArgumentError X' * randn(40, 4)
            @test_throws ArgumentError randn(4, 40) * X
            @test_throws ArgumentError spmm(X, randn(30, 4))
            @test_throws ArgumentError spmm!(zeros(40, 4), X, randn(30, 4))
            @test_throws ArgumentError sparse(X)
            @test_throws ArgumentError X * X'
        end
        @test_throws ArgumentError spgemm(A, CSRMatrix(sprand(30, 5, 0.5)))
        @test_throws ArgumentError SparseJL.spmm_rowmajor!(zeros(4, 40), A, randn(4, 30))
    end
    # check=false skips the check at construction only
    A = CSRMatrix(2, 2, [0, 1, 2], [0, 7], [1.0, 2.0]; check=false)
    @test_throws ArgumentError A * ones(2)
end

@testset "SpGEMM with B of zero columns (read nothing past the bitmaps)" begin
    A = CSRMatrix(sparse([1.0 2; 3 4; 5 6]))
    C = spgemm(A, CSRMatrix(spzeros(2, 0)))
    @test size(C) == (3, 0) && nnz(C) == 0 && C.indptr == zeros(Int, 4)
    @test size(A * CSRMatrix(spzeros(2, 0))) == (3, 0)
    @test size(spgemm(CSRMatrix(spzeros(0, 3)), CSRMatrix(sprand(3, 4, 0.5)))) == (0, 4)
end

@testset "no methods of Base, LinearAlgebra or SparseArrays made ambiguous" begin
    ours = (CSRMatrix, BSRMatrix)
    involves(m) = any(T -> occursin(string(nameof(T)), string(m.sig)), ours)
    amb = filter(p -> involves(p[1]) || involves(p[2]),
                 Test.detect_ambiguities(SparseJL, Base, LinearAlgebra, SparseArrays))
    @test isempty(amb)
    isempty(amb) || foreach(p -> println(p[1], "\n  ", p[2]), amb)
end

@testset "element types without SIMD kernels, views and wrappers (generic paths)" begin
    for T in (Float16, ComplexF32, Int, BigFloat, Rational{Int})
        S = SparseMatrixCSC{T,Int32}(sparse([1, 2, 4, 4], [1, 3, 2, 4], T[1, 2, 3, 4], 4, 4))
        for A in (CSRMatrix(S), BSRMatrix(S, 2))
            X = T[1 2; 3 4; 5 6; 7 8]
            @test A * X == S * X && A' * X == S' * X && X' * A == X' * S
            @test A * A == S * S && A[4, 2] == 3
            @test mul!(zeros(T, 4, 2), A, X, 2, 0) == 2 * S * X
            @test occursin("[4, 2]", sprint(show, MIME("text/plain"), A))
        end
    end
    S = sprand(8, 6, 0.5)
    A = CSRMatrix(S)
    X, Y = rand(10, 6), rand(12, 4)
    @test A * view(X, 1:6, :) ≈ S * X[1:6, :] && A * view(Y, 1:2:12, [1, 3]) ≈ S * Y[1:2:12, [1, 3]]
    @test A * view(X, 1:6, 2) ≈ S * X[1:6, 2]
    M = Symmetric(rand(8, 8))
    @test M * A ≈ M * S
end
