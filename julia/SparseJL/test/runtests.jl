# SparseJL's test suite: kernels against SparseArrays / dense references, every malformed
# structure, and the C entry points driven through raw pointers as Python drives them.
# Run: JULIA_NUM_THREADS=2 julia --project=julia/SparseJL julia/SparseJL/test/runtests.jl
using SparseJL
using SparseJL: CABI, nnzb
using SparseArrays, LinearAlgebra, Random, Test

Random.seed!(20261121)
SparseJL.SERIAL_WORK[] = 0          # thread even tiny problems, so the threaded paths are tested

# --- random operands with SciPy's layout, unsorted and with duplicates when asked -------------

"Random m×n CSR: about density*n entries per row, columns unsorted, with duplicates if `dups`."
function randcsr(::Type{Tv}, ::Type{Ti}, m, n, density; dups=false, emptyrows=true) where {Tv,Ti}
    indptr, indices, data = Ti[0], Ti[], Tv[]
    for i in 1:m
        cols = n == 0 ? Int[] : randsubseq(collect(0:n-1), density)
        emptyrows && rand() < 0.2 && (cols = Int[])
        dups && !isempty(cols) && append!(cols, rand(cols, rand(0:2)))
        shuffle!(cols)
        append!(indices, cols)
        append!(data, Tv <: Integer ? rand(Tv(-3):Tv(3), length(cols)) : randn(Tv, length(cols)))
        push!(indptr, length(indices))
    end
    return CSRMatrix{Tv,Ti}(m, n, indptr, indices, data)
end

"Random BSR with mb×nb blocks of size b, unsorted block columns, duplicates if `dups`."
function randbsr(::Type{Tv}, ::Type{Ti}, mb, nb, b, density; dups=false) where {Tv,Ti}
    S = randcsr(Float64, Ti, mb, nb, density; dups=dups)
    data = Tv <: Integer ? rand(Tv(-3):Tv(3), b, b, length(S.indices)) : randn(Tv, b, b, length(S.indices))
    return BSRMatrix{Tv,Ti}(mb * b, nb * b, S.indptr, S.indices, data)
end

tol(::Type{T}) where {T<:AbstractFloat} = sqrt(eps(T)) * 10
tol(::Type{Float16}) = 0.05
tol(::Type{<:Integer}) = 0.0
close(X, Y, T) = isapprox(Float64.(X), Float64.(Y); rtol=tol(T), atol=tol(T) * max(1, norm(Float64.(Y))))

"A row-major dense copy as Julia sees it (its transpose), for the row-major kernels."
rowmajor(B) = permutedims(B)

@testset "kernels" begin

@testset "check_format: every malformed structure" begin
    mk(indptr, indices, data; m=2, n=2) = CSRMatrix{Float64,Int32}(m, n, Int32.(indptr), Int32.(indices), Float64.(data); check=false)
    cases = [
        (mk([0, 1], [0], [1.0]), "indptr has length 2, expected 3 (one more than the 2 rows)"),
        (mk([0, 1, 1, 1], [0], [1.0]), "indptr has length 4, expected 3 (one more than the 2 rows)"),
        (mk([1, 1, 1], [0], [1.0]), "indptr[0] is 1, expected 0"),
        (mk([-1, 0, 1], [0], [1.0]), "indptr[0] is -1, expected 0"),
        (mk([0, 2, 1], [0, 1], [1.0, 2.0]), "indptr decreases at position 2 (2 then 1)"),
        (mk([0, -1, 1], [0], [1.0]), "indptr decreases at position 1 (0 then -1)"),
        (mk([0, 1, 3], [0, 1], [1.0, 2.0]), "indptr ends at 3, past the 2 stored values"),
        (mk([0, 1, 2], [0, 2], [1.0, 2.0]), "indices[1] = 2 is out of range for 2 columns"),
        (mk([0, 1, 2], [0, -1], [1.0, 2.0]), "indices[1] = -1 is out of range for 2 columns"),
        (mk([0, 1, 2], [0, 1], [1.0]), "data holds 1 values but indices holds 2"),
    ]
    for (A, msg) in cases
        @test SparseJL.format_problem(A) == msg
        err = try check_format(A); nothing catch e; e end
        @test err isa ArgumentError && err.msg == msg
    end
    # unused trailing entries past indptr[end] are not checked, as in SciPy
    @test check_format(mk([0, 1, 1], [0, 99], [1.0, 2.0])) === nothing
    @test_throws ArgumentError CSRMatrix(2, 2, Int32[0, 2, 1], Int32[0, 1], [1.0, 2.0])

    bk(indptr, indices, data; m=4, n=4) = BSRMatrix{Float64,Int64}(m, n, indptr, indices, data; check=false)
    @test SparseJL.format_problem(bk([0, 1, 1], [2], ones(2, 2, 1))) ==
          "indices[0] = 2 is out of range for 2 block columns"
    @test SparseJL.format_problem(bk([0, 1, 0], [0], ones(2, 2, 1))) ==
          "indptr decreases at position 2 (1 then 0)"
    @test SparseJL.format_problem(bk([0, 1, 2], [0], ones(2, 2, 1))) ==
          "indptr ends at 2, past the 1 stored blocks"
    @test SparseJL.format_problem(bk([0, 1], [0], ones(2, 2, 1))) ==
          "indptr has length 2, expected 3 (one more than the 2 block rows)"
    @test SparseJL.format_problem(bk([0, 1, 1], [0, 1], ones(2, 2, 1))) ==
          "data holds 1 blocks but indices holds 2"
    @test occursin("square", SparseJL.format_problem(
        BSRMatrix{Float64,Int64}(4, 4, [0, 1, 1], [0], ones(2, 3, 1); check=false)))
    @test_throws ArgumentError BSRMatrix(6, 4, [0, 1, 1, 1], [0], ones(4, 4, 1))   # not a multiple
    @test_throws ArgumentError BSRMatrix(4, 4, [0, 0, 0], Int[], ones(0, 0, 0))     # b = 0
    @test check_format(bk([0, 1, 2], [1, 0], ones(2, 2, 2))) === nothing
end

@testset "conversions" begin
    for (m, n) in ((0, 0), (0, 3), (3, 0), (1, 1), (5, 7)), Ti in (Int32, Int64)
        S = sprand(m, n, 0.4)
        A = CSRMatrix{Float64,Ti}(S)
        @test size(A) == (m, n) && nnz(A) == nnz(S)
        @test Matrix(A) == Matrix(S)
        @test SparseMatrixCSC(A) == S
        @test Matrix(CSRMatrix(Matrix(S))) == Matrix(S)
    end
    A = randcsr(Float64, Int32, 6, 5, 0.5; dups=true)          # duplicates are summed
    @test Matrix(SparseMatrixCSC(A)) ≈ Matrix(A)
    for b in (1, 2, 3), (mb, nb) in ((0, 0), (2, 3), (4, 1))
        M = Matrix(sprand(mb * b, nb * b, 0.3))
        B = BSRMatrix(M, b)
        @test size(B) == size(M) && blocksize(B) == b
        @test Matrix(B) == M
        @test SparseMatrixCSC(B) == sparse(M)
        check_format(B)
    end
    B = randbsr(Float32, Int32, 3, 4, 2, 0.5; dups=true)
    @test Matrix(BSRMatrix(Matrix(B), 2)) ≈ Matrix(B)
    @test sprint(show, B) == "6×8 BSRMatrix{Float32,Int32} with $(nnzb(B)) stored 2×2 blocks"
end

@testset "row partition balances work" begin
    indptr = [0, 100, 100, 101, 102, 202, 203]
    cum = r -> indptr[r+1]
    for nc in 1:4
        p = SparseJL.partition_rows(cum, 6, nc)
        @test p[1] == 0 && p[end] == 6 && issorted(p)
    end
    @test SparseJL.partition_rows(cum, 6, 2) == [0, 3, 6]       # 101 | 102
    @test SparseJL.partition_rows(r -> 0, 0, 2) == [0, 0, 0]
end

@testset "CSR SpMM" begin
    shapes = ((0, 0), (0, 4), (4, 0), (1, 1), (7, 3), (3, 9), (40, 30))
    for (m, k) in shapes, density in (0.0, 0.1, 0.5, 1.0), n in (0, 1, 2, 5, 17)
        A = randcsr(Float64, Int64, m, k, density; dups=density == 0.5)
        B = randn(k, n)
        @test close(spmm(A, B), Matrix(A) * B, Float64)
    end
    for (TvA, Ti, TvB) in ((Float32, Int32, Float32), (Float32, Int32, Float64),
                           (Int32, Int64, Float32), (Float64, Int32, Float64))
        A = randcsr(TvA, Ti, 33, 21, 0.3; dups=true)
        for n in (1, 4, 16, 19)
            B = TvB <: Integer ? rand(TvB(-2):TvB(2), 21, n) : randn(TvB, 21, n)
            Tc = promote_type(TvA, TvB)
            C = spmm(A, B)
            @test eltype(C) == Tc
            @test close(C, Matrix{Float64}(Matrix(A)) * Float64.(B), Tc)
        end
        x = randn(21)
        @test close(spmm(A, x), Float64.(Matrix(A)) * x, promote_type(TvA, Float64))
    end
    A = randcsr(Float64, Int32, 5, 4, 0.5)
    C = fill(NaN, 5, 3)
    @test spmm!(C, A, ones(4, 3)) === C && !any(isnan, C)
    @test_throws DimensionMismatch spmm(A, ones(5, 2))
    @test_throws DimensionMismatch spmm!(zeros(4, 2), A, ones(4, 2))
    # the row-major kernel writes every element of Ct, whatever was there
    Ct = fill(NaN, 3, 5)
    SparseJL.spmm_rowmajor!(Ct, A, rowmajor(ones(4, 3)))
    @test Ct ≈ rowmajor(Matrix(A) * ones(4, 3))
end

@testset "one column of B: the scalar and the gather kernel" begin
    limit = SparseJL.SPMV_GATHER_BYTES[]
    for bytes in (limit, 0)                  # 0: every A takes the gather kernel
        SparseJL.SPMV_GATHER_BYTES[] = bytes
        for (TvA, Ti, TvB) in ((Float32, Int32, Float32), (Float64, Int64, Float32), (Int32, Int32, Float64))
            for (m, k, density) in ((1, 1, 1.0), (9, 5, 0.6), (300, 70, 0.2), (64, 2000, 0.05))
                A = randcsr(TvA, Ti, m, k, density; dups=true)
                x = TvB <: Integer ? rand(TvB(-2):TvB(2), k) : randn(TvB, k)
                Tc = promote_type(TvA, TvB)
                @test close(spmm(A, x), Float64.(Matrix(A)) * Float64.(x), Tc)
            end
        end
    end
    SparseJL.SPMV_GATHER_BYTES[] = limit
end

@testset "BSR SpMM" begin
    for b in (1, 2, 3, 4, 5, 8, 16, 32, 64)
        mb, kb = b >= 32 ? (3, 2) : (7, 5)
        for density in (0.0, 0.3, 1.0), n in (0, 1, 3, 16, 35)
            A = randbsr(Float64, Int64, mb, kb, b, density; dups=density == 0.3)
            B = randn(kb * b, n)
            @test close(spmm(A, B), Matrix(A) * B, Float64)
        end
    end
    for (TvA, Ti, TvB) in ((Float32, Int32, Float32), (Float32, Int64, Float64))
        for b in (2, 4, 7)
            A = randbsr(TvA, Ti, 6, 4, b, 0.4)
            B = randn(TvB, 4 * b, 33)
            C = spmm(A, B)
            @test eltype(C) == promote_type(TvA, TvB)
            @test close(C, Float64.(Matrix(A)) * Float64.(B), promote_type(TvA, TvB))
        end
    end
    A = randbsr(Float64, Int32, 0, 3, 4, 0.5)
    @test size(spmm(A, ones(12, 2))) == (0, 2)
    A = randbsr(Float64, Int32, 3, 0, 4, 0.5)
    @test spmm(A, ones(0, 2)) == zeros(12, 2)
    A = randbsr(Float64, Int32, 3, 2, 4, 0.5)
    @test close(spmm(A, ones(8)), Matrix(A) * ones(8), Float64)
    @test_throws DimensionMismatch spmm(A, ones(9, 2))
end

@testset "SpMM with B off a cache line (NumPy's placement): aligned copy" begin
    for T in (Float32, Float64), n in (16, 32, 17)
        A = randcsr(T, Int32, 40, 12, 0.9)
        Ab = randbsr(T, Int32, 5, 3, 4, 0.9)
        for (M, k) in ((A, 12), (Ab, 12))
            bufB = rand(T, n * k + 16); bufC = zeros(T, n * size(M, 1) + 16)
            GC.@preserve bufB bufC begin
                Bt = unsafe_wrap(Array, pointer(bufB) + 16, (n, k))
                Ct = unsafe_wrap(Array, pointer(bufC) + 16, (n, size(M, 1)))
                SparseJL.spmm_rowmajor!(Ct, M, Bt)
                @test close(permutedims(Ct), Float64.(Matrix(M)) * Float64.(permutedims(Bt)), T)
            end
        end
    end
end

@testset "CSR SpGEMM" begin
    for (m, k, n) in ((0, 0, 0), (0, 3, 2), (3, 0, 2), (3, 2, 0), (1, 1, 1), (9, 7, 11), (30, 40, 20)),
        density in (0.0, 0.2, 0.6, 1.0)
        A = randcsr(Float64, Int64, m, k, density; dups=true)
        B = randcsr(Float64, Int64, k, n, density; dups=true)
        C = spgemm(A, B)
        check_format(C)
        @test Matrix(C) ≈ Matrix(A) * Matrix(B)
        for i in 1:m                                  # rows sorted, no duplicates
            @test issorted(C.indices[C.indptr[i]+1:C.indptr[i+1]]; lt=<=)
        end
        @test nnz(C) == nnz(sparse(A) * sparse(B)) || nnz(C) >= nnz(dropzeros(sparse(A) * sparse(B)))
    end
    # wide and sparse: short rows are sorted, long ones emitted by a scan (both paths)
    for (m, k, n, density) in ((40, 50, 3000, 0.02), (20, 30, 500, 0.3))
        A = randcsr(Float64, Int32, m, k, density; dups=true)
        B = randcsr(Float64, Int32, k, n, density; dups=true)
        counts = diff(SparseJL.spgemm_symbolic!(zeros(Int64, m + 1), m, k, n, A.indptr, A.indices,
                                                B.indptr, B.indices))
        C = spgemm(A, B)
        check_format(C)
        @test Matrix(C) ≈ Matrix(A) * Matrix(B)
        @test all(i -> issorted(C.indices[C.indptr[i]+1:C.indptr[i+1]]; lt=<=), 1:m)
        n == 3000 && @test any(c -> !SparseJL.dense_row(c, n), counts) && any(c -> SparseJL.dense_row(c, n), counts)
    end
    # structural zeros are kept: [1 1] * [1; -1] cancels but the entry stays
    A = CSRMatrix(1, 2, [0, 2], [0, 1], [1.0, 1.0])
    B = CSRMatrix(2, 1, [0, 1, 2], [0, 0], [1.0, -1.0])
    C = spgemm(A, B)
    @test nnz(C) == 1 && C.data == [0.0] && C.indices == [0]
    for (TvA, TiA, TvB, TiB) in ((Float32, Int32, Float32, Int32), (Float32, Int32, Float64, Int64),
                                 (Int64, Int64, Int32, Int32))
        A = randcsr(TvA, TiA, 25, 18, 0.3; dups=true)
        B = randcsr(TvB, TiB, 18, 22, 0.3; dups=true)
        C = spgemm(A, B)
        Tc = promote_type(TvA, TvB)
        @test eltype(C.data) == Tc && eltype(C.indices) == promote_type(TiA, TiB)
        @test close(Matrix(C), Float64.(Matrix(A)) * Float64.(Matrix(B)), Tc)
    end
    @test_throws DimensionMismatch spgemm(randcsr(Float64, Int64, 2, 3, 0.5), randcsr(Float64, Int64, 2, 3, 0.5))
    # the low-level numeric phase refuses an indptrC that does not match the product
    A = randcsr(Float64, Int64, 6, 5, 0.6; emptyrows=false)
    B = randcsr(Float64, Int64, 5, 4, 0.6; emptyrows=false)
    ip = zeros(Int64, 7)
    SparseJL.spgemm_symbolic!(ip, 6, 5, 4, A.indptr, A.indices, B.indptr, B.indices)
    bad = copy(ip); bad[2:end] .+= 1                 # one extra entry claimed in row 0
    err = try
        SparseJL.spgemm_numeric!(zeros(Int64, bad[end]), zeros(bad[end]), bad, 6, 5, 4,
                                 A.indptr, A.indices, A.data, B.indptr, B.indices, B.data)
        nothing
    catch e
        e
    end
    @test err isa ArgumentError && occursin("does not match the structure of A*B (first at row 0)", err.msg)
    # the same on the sorting path (short rows in a wide product), claiming one entry too few
    A = randcsr(Float64, Int64, 6, 5, 0.6; emptyrows=false)
    B = randcsr(Float64, Int64, 5, 4000, 0.002; emptyrows=false)
    ip = SparseJL.spgemm_symbolic!(zeros(Int64, 7), 6, 5, 4000, A.indptr, A.indices, B.indptr, B.indices)
    r = findfirst(i -> ip[i+1] > ip[i], 1:6)
    bad = copy(ip); bad[r+1:end] .-= 1
    err = try
        SparseJL.spgemm_numeric!(zeros(Int64, bad[end]), zeros(bad[end]), bad, 6, 5, 4000,
                                 A.indptr, A.indices, A.data, B.indptr, B.indices, B.data)
        nothing
    catch e
        e
    end
    @test err isa ArgumentError && occursin("(first at row $(r - 1))", err.msg)
    C = spgemm(A, B)                                 # and the scratch arrays are clean again
    @test Matrix(C) ≈ Matrix(A) * Matrix(B)
    # every numeric path (dense scan, bitmap emitted per word, bitmap gathered, sort; symbolic by
    # marker and by bitmap past 4096 columns), right and with one entry too many or too few
    # (in one pass the path follows each row's room, min(f, n), instead of its count)
    paths, onepass_paths = Set{Symbol}(), Set{Symbol}()
    for (m, k, n, dA, dB) in ((6, 5, 40, 0.8, 0.8), (8, 20, 300, 0.3, 0.05),
                              (8, 10, 5000, 0.5, 0.02), (6, 5, 5000, 0.6, 0.002))
        A = randcsr(Float32, Int32, m, k, dA; dups=true, emptyrows=false)
        B = randcsr(Float32, Int32, k, n, dB; dups=true, emptyrows=false)
        flops = diff(SparseJL.cumulative_flops(m, A.indptr, A.indices, B.indptr))
        counts = diff(SparseJL.spgemm_symbolic!(zeros(Int64, m + 1), m, k, n, A.indptr, A.indices,
                                                B.indptr, B.indices))
        for (c, f) in zip(counts, flops)
            push!(paths, 2c >= n ? :dense : !SparseJL.bitmap_row(f, n) ? :sort :
                         8c >= n ? :words : :gather)
        end
        for f in flops
            r = min(f, n)
            push!(onepass_paths, 2r >= n ? :dense : !SparseJL.bitmap_row(f, n) ? :sort :
                                 8r >= n ? :words : :gather)
        end
        C = spgemm(A, B)
        check_format(C)
        @test close(Matrix(C), Float64.(Matrix(A)) * Float64.(Matrix(B)), Float32)
        @test all(i -> issorted(C.indices[C.indptr[i]+1:C.indptr[i+1]]; lt=<=), 1:m)
        ip = SparseJL.spgemm_symbolic!(zeros(Int64, m + 1), m, k, n, A.indptr, A.indices,
                                       B.indptr, B.indices)
        ind, dat = zeros(Int32, ip[end]), zeros(Float32, ip[end])   # two passes: the same C
        SparseJL.spgemm_numeric!(ind, dat, ip, m, k, n, A.indptr, A.indices, A.data,
                                 B.indptr, B.indices, B.data)
        @test C.indptr == ip && C.indices == ind && C.data == dat
        room = SparseJL.row_room(SparseJL.cumulative_flops(m, A.indptr, A.indices, B.indptr), m, n)[end]
        ip1, ind1, dat1 = zeros(Int64, m + 1), zeros(Int32, room), zeros(Float32, room)
        @test SparseJL.onepass_product!(ind1, dat1, ip1, m, n, A.indptr, A.indices, A.data,
                                        B.indptr, B.indices, B.data) === nothing
        # (values to rounding: counted first, full rows may take the SpMM path against dense B)
        @test ip1 == ip && ind1[1:ip[end]] == ind && isapprox(dat1[1:ip[end]], dat; rtol=1e-5)
        r = findfirst(i -> ip[i+1] > ip[i], 1:m)
        for delta in (1, -1)
            bad = copy(ip); bad[r+1:end] .+= delta
            err = try
                SparseJL.spgemm_numeric!(zeros(Int32, bad[end]), zeros(Float32, bad[end]), bad,
                                         m, k, n, A.indptr, A.indices, A.data,
                                         B.indptr, B.indices, B.data)
                nothing
            catch e
                e
            end
            @test err isa ArgumentError && occursin("(first at row $(r - 1))", err.msg)
        end
    end
    @test paths == Set([:dense, :words, :gather, :sort])
    @test onepass_paths == Set([:dense, :words, :gather, :sort])
    # spgemm takes one pass only where C is expected about as large as the room
    A, B = randcsr(Float64, Int32, 50, 40, 0.05), randcsr(Float64, Int32, 40, 4000, 0.01)
    @test SparseJL.onepass_room(50, 4000, A.indptr, A.indices, B.indptr) ==
          SparseJL.cumulative_flops(50, A.indptr, A.indices, B.indptr)[end] > 0
    A, B = randcsr(Float64, Int32, 50, 40, 0.5), randcsr(Float64, Int32, 40, 400, 0.05)
    @test !SparseJL.union_pays(nnz(B), 40, 400)     # rows of C about n multiply-adds: 1.6× the room
    @test SparseJL.onepass_room(50, 400, A.indptr, A.indices, B.indptr) == -1
    # a segment whose thread found the lock taken is moved into place by the caller at the end
    mv = SparseJL.SegmentMoves([0, 5, 10])
    ind, dat = Int32.(1:15), Float32.(1:15)
    lock(mv.lock)                                   # another thread is moving
    for (s, stop) in ((1, 3), (2, 7), (3, 12))
        SparseJL.segment_done!(mv, s, stop, ind, dat)
    end
    @test mv.placed[] == 0
    unlock(mv.lock)
    SparseJL.place_done!(mv, ind, dat)
    @test mv.placed[] == 3 && mv.next[] == 7
    @test ind[1:7] == [1, 2, 3, 6, 7, 11, 12] && dat[1:7] == [1, 2, 3, 6, 7, 11, 12]
    # one pass, threaded, many times: segments finish in every order and are all moved into place
    same = 0
    for trial in 1:60
        m, k, n = rand(20:300), rand(5:100), rand(200:3000)
        A = randcsr(Float32, Int32, m, k, 0.05; dups=true)
        B = randcsr(Float32, Int32, k, n, 10 / n; dups=true)
        cum = SparseJL.cumulative_flops(m, A.indptr, A.indices, B.indptr)
        room = SparseJL.row_room(cum, m, n)[end]
        ip1, ind1, dat1 = zeros(Int64, m + 1), zeros(Int32, room), zeros(Float32, room)
        r = SparseJL.onepass_product!(ind1, dat1, ip1, m, n, A.indptr, A.indices, A.data,
                                      B.indptr, B.indices, B.data)
        ip = SparseJL.spgemm_symbolic!(zeros(Int64, m + 1), m, k, n, A.indptr, A.indices,
                                       B.indptr, B.indices)
        ind, dat = zeros(Int32, ip[end]), zeros(Float32, ip[end])
        SparseJL.spgemm_numeric!(ind, dat, ip, m, k, n, A.indptr, A.indices, A.data,
                                 B.indptr, B.indices, B.data)
        same += r === nothing && ip1 == ip && ind1[1:ip[end]] == ind && dat1[1:ip[end]] == dat
    end
    @test same == 60
end

@testset "SpGEMM with full rows of C: bitmap union and SpMM against densified B" begin
    for T in (Float32, Float64)
        A = randcsr(T, Int32, 40, 300, 0.3; dups=true, emptyrows=false)
        B = randcsr(T, Int32, 300, 70, 0.4; dups=true, emptyrows=false)
        m, k, n = 40, 300, 70
        flops = SparseJL.cumulative_flops(m, A.indptr, A.indices, B.indptr)[end]
        @test SparseJL.union_pays(nnz(B), k, n) && SparseJL.dense_b_pays(nnz(A), n, flops, T)
        ip = SparseJL.spgemm_symbolic!(zeros(Int64, m + 1), m, k, n, A.indptr, A.indices,
                                       B.indptr, B.indices)
        @test ip == 0:n:m*n                           # every row full, counted by the union
        ind, dat = zeros(Int32, m * n), zeros(T, m * n)
        @test SparseJL.dense_numeric_pays(ind, dat, ip, m, n, A.indptr, A.indices, A.data,
                                          B.data, k, flops)
        @test SparseJL.dense_numeric!(ind, dat, m, n, A.indptr, A.indices, A.data,
                                      B.indptr, B.indices, B.data, k) === nothing
        @test ind == repeat(Int32.(0:n-1), m)
        @test close(permutedims(reshape(dat, n, m)), Float64.(Matrix(A)) * Float64.(Matrix(B)), T)
        C = spgemm(A, B)
        @test C.data == dat && C.indices == ind
        lock(SparseJL.SCRATCH[SparseJL.SCRATCH_B].lock)   # scratch taken: a fresh buffer, same result
        C = try spgemm(A, B) finally unlock(SparseJL.SCRATCH[SparseJL.SCRATCH_B].lock) end
        @test C.data == dat
    end
    # an indptr claiming full rows where one row of A*B is not full
    A = randcsr(Float32, Int32, 40, 300, 0.3; emptyrows=false)
    B = randcsr(Float32, Int32, 300, 70, 0.4; emptyrows=false)
    B.indices[B.indptr[8]+1:B.indptr[9]] .= 5         # row 7 of B: only column 5
    A.indices[A.indptr[13]+1:A.indptr[14]] .= 7       # row 12 of A: only row 7 of B
    err = try
        SparseJL.spgemm_numeric!(zeros(Int32, 40 * 70), zeros(Float32, 40 * 70), collect(0:70:40*70),
                                 40, 300, 70, A.indptr, A.indices, A.data, B.indptr, B.indices, B.data)
        nothing
    catch e
        e
    end
    @test err isa ArgumentError && occursin("(first at row 12)", err.msg)
    C = spgemm(A, B)                                  # the general path agrees on that structure
    @test diff(C.indptr)[13] == 1 && close(Matrix(C), Float64.(Matrix(A)) * Float64.(Matrix(B)), Float32)
    # integers take the general numeric path, after the union counted the rows
    A = randcsr(Int64, Int64, 20, 200, 0.3; emptyrows=false)
    B = randcsr(Int64, Int64, 200, 64, 0.4; emptyrows=false)
    @test Matrix(spgemm(A, B)) == Matrix(A) * Matrix(B)
end

@testset "BSR SpGEMM" begin
    for b in (1, 2, 3, 4, 8, 16, 64), density in (0.0, 0.3, 1.0)
        mb, kb, nb = b >= 16 ? (2, 3, 2) : (6, 5, 4)
        A = randbsr(Float64, Int64, mb, kb, b, density; dups=true)
        B = randbsr(Float64, Int64, kb, nb, b, density; dups=true)
        C = spgemm(A, B)
        check_format(C)
        @test blocksize(C) == b
        @test close(Matrix(C), Matrix(A) * Matrix(B), Float64)
        for I in 1:mb
            @test issorted(C.indices[C.indptr[I]+1:C.indptr[I+1]]; lt=<=)
        end
    end
    for b in (16, 32), T in (Float32, Float64)         # explicit-SIMD block products
        A = randbsr(T, Int32, 3, 4, b, 0.6; dups=true)
        B = randbsr(T, Int32, 4, 3, b, 0.6; dups=true)
        @test close(Matrix(spgemm(A, B)), Float64.(Matrix(A)) * Float64.(Matrix(B)), T)
    end
    A = randbsr(Float32, Int32, 5, 4, 3, 0.5)
    B = randbsr(Float64, Int64, 4, 6, 3, 0.5)
    C = spgemm(A, B)
    @test eltype(C.data) == Float64
    @test close(Matrix(C), Float64.(Matrix(A)) * Matrix(B), Float32)
    @test_throws DimensionMismatch spgemm(randbsr(Float64, Int64, 2, 2, 2, 0.5), randbsr(Float64, Int64, 1, 2, 4, 0.5))
end

include("linear.jl")

end # testset kernels

# --- the C entry points, driven as Python drives them -------------------------------------------

addr(x) = Int64(UInt(pointer(x)))

"""
Call a job at `f` with the given slots after an error buffer of `errcap` bytes, poisoned so that
a missing NUL terminator shows; the message is read only on failure, as Python does.
"""
function cabi_call(f::Ptr{Cvoid}, slots::Integer...; errcap::Integer=512)
    err = fill(0xff, max(errcap, 1))
    args = Int64[errcap == 0 ? 0 : addr(err), errcap, slots...]
    status = GC.@preserve err args ccall(f, Cint, (Ptr{Int64},), pointer(args))
    msg = status == 0 || errcap == 0 ? "" : GC.@preserve err unsafe_string(pointer(err))
    return Int(status), msg
end

const SERVE, RESOLVE, EVAL = CABI.bootstrap_pointers()

"Resolve `key` through the `resolve` entry point: (status, pointer, message)."
function resolve(key::String)
    name, out = Vector{UInt8}(key), Int64[0]
    status, msg = GC.@preserve name out cabi_call(RESOLVE, addr(name), length(name), addr(out))
    return status, Ptr{Cvoid}(UInt(reinterpret(UInt64, out[1]))), msg
end

function entry(key::String)
    status, f, msg = resolve(key)
    status == 0 || error("resolve($key) failed: $msg")
    return f
end

# Python's operands: sparse arrays as they are, dense operands row-major (Julia: transposed).
csr_slots(A::CSRMatrix) = (nnz(A), addr(A.indptr), addr(A.indices), addr(A.data))

@testset "CABI" begin
    @testset "bootstrap and resolve" begin
        @test all(p -> p != C_NULL, (SERVE, RESOLVE, EVAL))
        @test CABI.bootstrap_pointers() == (SERVE, RESOLVE, EVAL)
        status, f, _ = resolve("csr_spmm:Float64,Int32,Float64,Float64")
        @test status == 0 && f != C_NULL
        @test resolve("csr_spmm:Float64,Int32,Float64,Float64")[2] == f      # cached
        for (key, words) in (
                ("nope:Float64", "unknown kernel \"nope\""),
                ("csr_spmm", "is not of the form kernel:T1,T2,..."),
                ("csr_spmm:Float64,Int32,Float64", "csr_spmm takes 4 types, got 3"),
                ("csr_spmm:Float64,Float32,Float64,Float64", "type 2 is an index type"),
                ("csr_spmm:Float64,Int32,Complex,Float64", "unknown type \"Complex\""),
                ("csr_spmm:Float64,Int32,Base.Float64,Float64", "unknown type \"Base.Float64\""),
                ("cuda_nothing", "unknown kernel \"cuda_nothing\""),
                ("resolve", "unknown kernel \"resolve\""),
                ("cuda_csr_spmm:Int32,Int32,Float16,Float16", "type 1 is a value type and must be floating point"),
                ("cuda_csr_spgemm_compute:Float32,Float32", "type 2 is an index type"),
                ("csr_spmm:BFloat16,Int32,Float64,Float64", "unknown type \"BFloat16\""))
            status, f, msg = resolve(key)
            @test status == 1 && f == C_NULL && occursin(words, msg)
        end
        # GPU entry points compile without a GPU: nothing is opened until one runs
        for key in ("cuda_init", "cuda_init:", "cuda_csr_spmm:BFloat16,Int64,BFloat16,Float32")
            status, f, msg = resolve(key)
            @test (status, msg) == (0, "") && f != C_NULL
        end
        name = Vector{UInt8}("csr_spmm:Float64,Int32,Float64,Float64")
        @test cabi_call(RESOLVE, addr(name), -1, 0)[1] == 1
        @test cabi_call(RESOLVE, 0, 5, 0) == (1, "resolve: the key pointer is null")
    end

    @testset "eval" begin
        src, out = Vector{UInt8}("x_sjl = 20; x_sjl + 22"), zeros(UInt8, 64)
        @test GC.@preserve src out cabi_call(EVAL, addr(src), length(src), addr(out), 64) == (0, "")
        @test unsafe_string(pointer(out)) == "42"
        src = Vector{UInt8}("error(\"boom from eval\")")
        status, msg = GC.@preserve src out cabi_call(EVAL, addr(src), length(src), addr(out), 64)
        @test status == 2 && msg == "boom from eval"
        src = Vector{UInt8}("throw(DimensionMismatch(\"dm\"))")
        @test (GC.@preserve src out cabi_call(EVAL, addr(src), length(src), addr(out), 64))[1] == 1
        # the message is cut to the buffer, NUL-terminated, on a character boundary
        src = Vector{UInt8}("error(\"ééééé\")")
        status, msg = GC.@preserve src out cabi_call(EVAL, addr(src), length(src), addr(out), 64; errcap=6)
        @test status == 2 && msg == "éé"
        @test (GC.@preserve src out cabi_call(EVAL, addr(src), length(src), addr(out), 64; errcap=0))[1] == 2
    end

    @testset "csr_spmm" begin
        for (TvA, Ti, TvB, TvC) in ((Float64, Int32, Float64, Float64), (Float32, Int64, Float64, Float64),
                                    (Float32, Int32, Float32, Float32), (Float16, Int32, Float16, Float16))
            f = entry("csr_spmm:$TvA,$Ti,$TvB,$TvC")
            for (m, k, n) in ((0, 0, 3), (5, 0, 2), (23, 17, 1), (23, 17, 6))
                A = randcsr(TvA, Ti, m, k, 0.3; dups=true)
                B = randn(TvB, k, n)
                Brm, Crm = rowmajor(B), fill(TvC(NaN), n, m)
                status, msg = GC.@preserve A Brm Crm cabi_call(f, m, k, n, csr_slots(A)..., addr(Brm), addr(Crm))
                @test (status, msg) == (0, "")
                @test close(permutedims(Crm), Float64.(Matrix(A)) * Float64.(B), TvC)
            end
        end
        f = entry("csr_spmm:Float64,Int32,Float64,Float64")
        A = randcsr(Float64, Int32, 4, 3, 0.5)
        Brm, Crm = ones(2, 3), zeros(2, 4)
        call(A; m=4, k=3, n=2, nnz=nnz(A)) = GC.@preserve A Brm Crm cabi_call(
            f, m, k, n, nnz, addr(A.indptr), addr(A.indices), addr(A.data), addr(Brm), addr(Crm))
        @test call(A) == (0, "")
        A.indptr[3] = A.indptr[4] + 1
        @test call(A) == (1, "indptr decreases at position 3 ($(A.indptr[3]) then $(A.indptr[4]))")
        A = CSRMatrix{Float64,Int32}(4, 3, Int32[0, 1, 1, 1, 1], Int32[5], [1.0]; check=false)
        @test call(A) == (1, "indices[0] = 5 is out of range for 3 columns")
        A = CSRMatrix{Float64,Int32}(4, 3, Int32[0, 1, 1, 1, 2], Int32[0], [1.0]; check=false)
        @test call(A; nnz=1) == (1, "indptr ends at 2, past the 1 stored values")
        @test call(A; n=-2) == (1, "n = -2 is negative")
        @test call(A; m=typemax(Int64))[1] == 1
        Z = Int64[0]
        @test GC.@preserve Z cabi_call(f, 2, 2, 2, 0, 0, 0, 0, addr(Z), addr(Z)) ==
              (1, "indptr (slot 6) is a null pointer for 3 elements")
        # an input error raised by a conversion inside the kernel is status 1 too
        g = entry("csr_spmm:Float64,Int32,Float64,Int32")
        A = CSRMatrix{Float64,Int32}(1, 1, Int32[0, 1], Int32[0], [0.5])
        Bi, Ci = ones(1, 1), zeros(Int32, 1, 1)
        status, msg = GC.@preserve A Bi Ci cabi_call(g, 1, 1, 1, csr_slots(A)..., addr(Bi), addr(Ci))
        @test status == 1 && occursin("InexactError", msg)
    end

    @testset "bsr_spmm" begin
        for (TvA, Ti, TvB, TvC) in ((Float64, Int32, Float64, Float64), (Float32, Int64, Float32, Float32))
            f = entry("bsr_spmm:$TvA,$Ti,$TvB,$TvC")
            for b in (1, 3, 4, 16), n in (1, 20)
                mb, kb = 5, 4
                A = randbsr(TvA, Ti, mb, kb, b, 0.4; dups=true)
                B = randn(TvB, kb * b, n)
                Brm, Crm = rowmajor(B), fill(TvC(NaN), n, mb * b)
                status, msg = GC.@preserve A Brm Crm cabi_call(f, mb, kb, n, b, length(A.indices),
                    addr(A.indptr), addr(A.indices), addr(A.data), addr(Brm), addr(Crm))
                @test (status, msg) == (0, "")
                @test close(permutedims(Crm), Float64.(Matrix(A)) * Float64.(B), TvC)
            end
        end
        f = entry("bsr_spmm:Float64,Int64,Float64,Float64")
        A = randbsr(Float64, Int64, 2, 2, 2, 1.0)
        A.indices[1] = 7
        Brm, Crm = ones(1, 4), zeros(1, 4)
        @test GC.@preserve A Brm Crm cabi_call(f, 2, 2, 1, 2, length(A.indices), addr(A.indptr),
            addr(A.indices), addr(A.data), addr(Brm), addr(Crm)) ==
            (1, "indices[0] = 7 is out of range for 2 block columns")
        @test GC.@preserve A Brm Crm cabi_call(f, 2, 2, 1, 0, length(A.indices), addr(A.indptr),
            addr(A.indices), addr(A.data), addr(Brm), addr(Crm)) ==
            (1, "block size b = 0 must be at least 1")
    end

    @testset "csr_spgemm symbolic + numeric" begin
        for (TvA, TiA, TvB, TiB, TiC, TvC) in ((Float64, Int32, Float64, Int32, Int32, Float64),
                                               (Float32, Int64, Float64, Int32, Int64, Float64))
            sym = entry("csr_spgemm_symbolic:$TiA,$TiB")
            num = entry("csr_spgemm_numeric:$TvA,$TiA,$TvB,$TiB,$TiC,$TvC")
            # onepass: whether the symbolic phase may answer with a room instead of counting
            for (m, k, n) in ((0, 3, 2), (4, 0, 3), (12, 9, 14), (40, 30, 300)),
                    density in (0.05, 0.2, 0.7), onepass in (false, true)
                A = randcsr(TvA, TiA, m, k, density; dups=true)
                B = randcsr(TvB, TiB, k, n, density; dups=true)
                indptrC, room = fill(Int64(-7), m + 1), Int64[-7]
                status, msg = GC.@preserve A B indptrC room cabi_call(sym, m, k, n,
                    nnz(A), addr(A.indptr), addr(A.indices), nnz(B), addr(B.indptr), addr(B.indices),
                    addr(indptrC), onepass ? addr(room) : 0)
                @test (status, msg) == (0, "")
                @test room[1] == (onepass ? SparseJL.onepass_room(m, n, A.indptr, A.indices, B.indptr) : -7)
                onepass && room[1] >= 0 && (indptrC .= -7)   # filled by the numeric phase
                counted = !onepass || room[1] < 0
                size = counted ? indptrC[end] : room[1]
                indicesC, dataC = Vector{TiC}(undef, size), Vector{TvC}(undef, size)
                status, msg = GC.@preserve A B indptrC indicesC dataC cabi_call(num, m, k, n,
                    csr_slots(A)..., csr_slots(B)..., addr(indptrC), addr(indicesC), addr(dataC),
                    counted ? -1 : room[1])
                @test (status, msg) == (0, "")
                resize!(indicesC, indptrC[end]); resize!(dataC, indptrC[end])
                C = CSRMatrix{TvC,TiC}(m, n, Vector{TiC}(indptrC), indicesC, dataC)
                @test close(Matrix(C), Float64.(Matrix(A)) * Float64.(Matrix(B)), TvA)
                @test SparseMatrixCSC(C) == spgemm(A, B) |> SparseMatrixCSC
            end
        end
        # one pass with arrays of the wrong room: refused before anything is written
        num = entry("csr_spgemm_numeric:Float64,Int32,Float64,Int32,Int32,Float64")
        A, B = randcsr(Float64, Int32, 40, 30, 0.1), randcsr(Float64, Int32, 30, 300, 0.03)
        room = SparseJL.onepass_room(40, 300, A.indptr, A.indices, B.indptr)
        @test room > 0
        indptrC, indicesC, dataC = zeros(Int64, 41), zeros(Int32, room - 1), zeros(room - 1)
        @test GC.@preserve A B indptrC indicesC dataC cabi_call(num, 40, 30, 300,
            csr_slots(A)..., csr_slots(B)..., addr(indptrC), addr(indicesC), addr(dataC), room - 1) ==
            (1, "C: one pass needs room for $room entries, but indices holds $(room - 1) and data $(room - 1)")
        @test all(iszero, indicesC) && all(iszero, indptrC)
        sym = entry("csr_spgemm_symbolic:Int32,Int32")
        A = randcsr(Float64, Int32, 3, 3, 1.0)
        B = CSRMatrix{Float64,Int32}(3, 3, Int32[0, 1, 0, 1], Int32[0], [1.0]; check=false)
        indptrC = zeros(Int64, 4)
        @test GC.@preserve A B indptrC cabi_call(sym, 3, 3, 3, nnz(A), addr(A.indptr), addr(A.indices),
            1, addr(B.indptr), addr(B.indices), addr(indptrC), 0) ==
            (1, "B: indptr decreases at position 2 (1 then 0)")
        B = randcsr(Float64, Int32, 3, 3, 1.0)
        indptrC = Int64[0, 1, 1, 2]                     # not what A*B gives
        indicesC, dataC = zeros(Int32, 2), zeros(2)
        status, msg = GC.@preserve A B indptrC indicesC dataC cabi_call(num, 3, 3, 3,
            csr_slots(A)..., csr_slots(B)..., addr(indptrC), addr(indicesC), addr(dataC), -1)
        @test status == 1 && occursin("C: indptr does not match the structure of A*B", msg)
        indptrC = Int64[0, 3, 1, 2]
        status, msg = GC.@preserve A B indptrC indicesC dataC cabi_call(num, 3, 3, 3,
            csr_slots(A)..., csr_slots(B)..., addr(indptrC), addr(indicesC), addr(dataC), -1)
        @test (status, msg) == (1, "C: indptr decreases at position 2 (3 then 1)")
    end

    @testset "bsr_spgemm_numeric" begin
        sym = entry("csr_spgemm_symbolic:Int64,Int32")
        num = entry("bsr_spgemm_numeric:Float64,Int64,Float32,Int32,Int32,Float64")
        for b in (1, 2, 5), (mb, kb, nb) in ((0, 2, 2), (4, 3, 5))
            A = randbsr(Float64, Int64, mb, kb, b, 0.5; dups=true)
            B = randbsr(Float32, Int32, kb, nb, b, 0.5; dups=true)
            indptrC = zeros(Int64, mb + 1)
            status, _ = GC.@preserve A B indptrC cabi_call(sym, mb, kb, nb, length(A.indices),
                addr(A.indptr), addr(A.indices), length(B.indices), addr(B.indptr), addr(B.indices),
                addr(indptrC), 0)
            @test status == 0
            nC = indptrC[end]
            indicesC, dataC = Vector{Int32}(undef, nC), Array{Float64}(undef, b, b, nC)
            status, msg = GC.@preserve A B indptrC indicesC dataC cabi_call(num, mb, kb, nb, b,
                length(A.indices), addr(A.indptr), addr(A.indices), addr(A.data),
                length(B.indices), addr(B.indptr), addr(B.indices), addr(B.data),
                addr(indptrC), addr(indicesC), addr(dataC))
            @test (status, msg) == (0, "")
            C = BSRMatrix{Float64,Int32}(mb * b, nb * b, Vector{Int32}(indptrC), indicesC, dataC)
            @test close(Matrix(C), Matrix(A) * Float64.(Matrix(B)), Float32)
        end
    end
end


# --- abi.txt against the jobs: every slot the table names is read by its job, by its kind -------

const ACCESSORS = Dict(:slot => :any, :address => :address, :buffer! => :address, :size! => :value)

"""
The slots that `f` reads from its argument number `arg` (a `Slots`), as (accessor, name) pairs,
found in its lowered code: accessor calls with a literal name, and the same inside the functions
of SparseJL that it hands the slots to. Needs no GPU: nothing runs.
"""
function slots_read(f, arg::Int, seen=Set{Any}())
    (f, arg) in seen && return Set{Tuple{Symbol,Symbol}}()
    push!(seen, (f, arg))
    out = Set{Tuple{Symbol,Symbol}}()
    for m in methods(f), x in Base.uncompressed_ast(m).code
        x isa Expr && x.head == :(=) && (x = x.args[2])
        x isa Expr && x.head == :call && x.args[1] isa GlobalRef || continue
        g, args = x.args[1], x.args[2:end]
        pos = findfirst(a -> a == Core.SlotNumber(arg + 1), args)
        (pos === nothing || !isdefined(g.mod, g.name)) && continue
        callee = getfield(g.mod, g.name)
        if callee isa Function && parentmodule(callee) === SparseJL.ABI && haskey(ACCESSORS, nameof(callee))
            k = findfirst(a -> a isa QuoteNode && a.value isa Symbol, args)
            k === nothing || push!(out, (nameof(callee), args[k].value))
        elseif callee isa Function && parentmodule(parentmodule(callee)) === SparseJL
            union!(out, slots_read(callee, pos, seen))
        end
    end
    return out
end

@testset "abi.txt and the jobs agree" begin
    ABI = SparseJL.ABI
    @test [t.name for t in ABI.TYPES] == ["Float16", "BFloat16", "Float32", "Float64", "Int32", "Int64"]
    @test length(ABI.ENTRY_POINTS) == 22
    for e in ABI.ENTRY_POINTS
        job = CABI.job_function(e.name)
        @test all(m -> m.nargs - 2 == length(e.types), methods(job))
        read = slots_read(job, 1)
        @test Set(name for (_, name) in read) == Set(Symbol.(e.slots))
        for (accessor, name) in read
            isaddress = e.addresses[findfirst(==(String(name)), e.slots)]
            kind = ACCESSORS[accessor]
            @test kind == :any || (kind == :address) == isaddress
        end
    end
end

# CSRMatrix and BSRMatrix as Julia matrices (the Julia-facing API)
@testset "Julia-facing API" begin
    include("matrix_interface.jl")
    include("sparsearrays_user.jl")
    include("subprocess.jl")
end
