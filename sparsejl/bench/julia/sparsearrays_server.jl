# The SparseArrays peer of sparsejl.bench (juliapeer.py): Julia's own `A*B`, run and timed in a
# Julia process that answers requests on stdin, one line each (protocol: juliapeer.py).
# Nothing here may throw: a thrown exception crashes Debian's Julia 1.5.3 (seen on these
# machines), so every request is checked first and answered "error ..." instead. Types are
# passed as ::Type{T} so that no call is left to dynamic dispatch (one such read! crashed too).
using SparseArrays, LinearAlgebra
const LAST = Ref{Any}(nothing)

function readvec(path, ::Type{T}, n) where {T}
    v = Vector{T}(undef, n)
    open(io -> read!(io, v), path)
    v
end

# The CSR arrays of an m×k matrix are the CSC arrays of its k×m transpose.
function from_csr(dir, prefix, m, k, nnz, ::Type{T}) where {T}
    indptr = readvec(joinpath(dir, prefix * "indptr"), Int64, m + 1) .+ 1
    indices = readvec(joinpath(dir, prefix * "indices"), Int64, nnz) .+ 1
    data = readvec(joinpath(dir, prefix * "data"), T, nnz)
    copy(transpose(SparseMatrixCSC(k, m, indptr, indices, data)))
end

function load(op, dir, ::Type{T}, m, k, n, nnzA, nnzB) where {T}
    A = from_csr(dir, "A_", m, k, nnzA, T)
    B = op == "spmm" ? Matrix(transpose(reshape(readvec(joinpath(dir, "B"), T, k * n), n, k))) :
                       from_csr(dir, "B_", k, n, nnzB, T)
    C = A * B
    LAST[] = (A, B)
    if op == "spmm"
        write(joinpath(dir, "C"), C)
        return 0
    end
    write(joinpath(dir, "C_colptr"), Vector{Int64}(C.colptr))
    write(joinpath(dir, "C_rowval"), Vector{Int64}(C.rowval))
    write(joinpath(dir, "C_nzval"), C.nzval)
    nnz(C)
end

timeit(repeats, warmup, min_time) = timeit(LAST[]..., repeats, warmup, min_time)

function timeit(A, B, repeats, warmup, min_time)
    for _ in 1:warmup
        A * B
    end
    t0 = time_ns(); A * B; one = (time_ns() - t0) / 1e9
    number = one >= min_time ? 1 : min(1000, ceil(Int, min_time / max(one, 1e-7)))
    times = Float64[]
    for _ in 1:repeats
        t0 = time_ns()
        for _ in 1:number
            A * B
        end
        push!(times, (time_ns() - t0) / 1e9 / number)
    end
    string(number, " ", join(times, " "))
end

isint(s) = all(isdigit, s) && !isempty(s)

function answer(f)
    if length(f) == 9 && f[1] == "load" && f[2] in ("spmm", "spgemm") && isdir(f[3]) &&
            f[4] in ("float32", "float64") && all(isint, f[5:9])
        files = f[2] == "spmm" ? ("A_indptr", "A_indices", "A_data", "B") :
                ("A_indptr", "A_indices", "A_data", "B_indptr", "B_indices", "B_data")
        all(x -> isfile(joinpath(f[3], x)), files) || return "error operand files missing"
        v = [parse(Int, x) for x in f[5:9]]
        T = f[4] == "float32" ? Float32 : Float64
        nz = T === Float32 ? load(f[2], f[3], Float32, v[1], v[2], v[3], v[4], v[5]) :
                             load(f[2], f[3], Float64, v[1], v[2], v[3], v[4], v[5])
        return string("ok ", nz)
    elseif length(f) == 4 && f[1] == "time" && isint(f[2]) && isint(f[3])
        LAST[] === nothing && return "error no product loaded"
        t = tryparse(Float64, f[4])
        t === nothing && return "error bad min_time"
        return string("ok ", timeit(parse(Int, f[2]), parse(Int, f[3]), t))
    end
    "error bad request: " * join(f, " ")
end

function serve()
    while !eof(stdin)
        f = split(readline(stdin))
        isempty(f) || println(answer(f))
        flush(stdout)
    end
end

serve()
