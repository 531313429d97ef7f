# SparseJL against SparseArrays, side by side in one Julia session, as a Julia user calls them:
# mul! (CSR, BSR 32×32 blocks) at densities 0.10 and 0.25 with 128 and 1 columns of B
# (3072×768 × 768×n, Float32), the transposed products A'·Y and Z·A, SpGEMM with and without
# the conversion from SparseMatrixCSC, and each conversion against the product it enables. Every result is checked against
# SparseArrays before it is timed; then one warm-up, then the median of `SAMPLES` samples
# (a sample repeats a fast call until it lasts ≥ 2 ms).
# Run (2 threads; writes OUT.json and report.md beside it; gzip the JSON to keep it):
#   JULIA_NUM_THREADS=2 flock -x /tmp/cpu.lock julia --project=julia/SparseJL \
#     julia/SparseJL/bench/sparsearrays_side_by_side.jl OUT.json  [cases: mul transposed spgemm convert]
using SparseJL, SparseArrays, LinearAlgebra, Random, Statistics, Dates
using SparseJL: nnzb

const SAMPLES = 7
const M, K = (3072, 768) .÷ parse(Int, get(ENV, "BENCH_SHRINK", "1"))   # >1: a smoke test
const B32 = 32

"Median seconds per call of `f()` (after one warm-up call)."
function timed(f)
    f()
    reps = 1
    while @elapsed(repeat_call(f, reps)) < 2e-3
        reps *= 2
    end
    return median([@elapsed(repeat_call(f, reps)) / reps for _ in 1:SAMPLES])
end

repeat_call(f, reps) = (for _ in 1:reps; f(); end)

"Bytes allocated by `f()` after a warm-up call."
allocated(f) = (f(); @allocated f())

"A seeded M×K Float32 pattern of b×b blocks kept with probability `density` (b = 1: unstructured)."
function pattern(density, b; seed=1)
    rng = MersenneTwister(seed)
    mask = sprand(rng, M ÷ b, K ÷ b, density)
    S = kron(mask .!= 0, sparse(ones(Bool, b, b)))
    I, J, _ = findnz(S)
    return sparse(I, J, Float32.(rand(rng, length(I)) .+ 0.5f0), M, K)
end

records = Any[]
record!(case, impl, seconds; extra...) =
    (push!(records, (case=case, impl=impl, ms=1e3 * seconds, extra...));
     println(rpad(case, 34), rpad(impl, 26), round(1e3 * seconds; digits=3), " ms"); flush(stdout))
check(x, ref) = isapprox(Matrix(x), Matrix(ref); rtol=1e-4) || error("result differs from SparseArrays")

cases = length(ARGS) > 1 ? ARGS[2:end] : ["mul", "transposed", "spgemm", "convert"]

if "mul" in cases
    for density in (0.10, 0.25), n in (128, 1)
        X = randn(MersenneTwister(2), Float32, K, n)
        C = zeros(Float32, M, n)
        for (kind, b) in (("csr", 1), ("bsr32", B32))
            S = pattern(density, b)
            A = b == 1 ? CSRMatrix(S) : BSRMatrix(S, b)
            case = "mul! $kind d=$density n=$n"
            check(mul!(C, A, X), S * X)
            record!(case, "SparseArrays", timed(() -> mul!(C, S, X)); nnz=nnz(S))
            record!(case, "SparseJL", timed(() -> mul!(C, A, X)); nnz=nnz(S),
                    bytes_allocated=allocated(() -> mul!(C, A, X)))
            Xt, Ct = permutedims(X), zeros(Float32, n, M)      # NumPy's layout: what Python calls
            record!(case, "SparseJL rowmajor kernel", timed(() -> SparseJL.spmm_rowmajor!(Ct, A, Xt)))
        end
    end
end

if "spgemm" in cases
    for density in (0.10, 0.25)
        S = pattern(density, 1)
        T = sparse(pattern(density, 1; seed=3)[1:K, :])       # 768×768
        case = "spgemm 3072x768*768x768 d=$density"
        A, B = CSRMatrix(S), CSRMatrix(T)
        check(A * B, S * T)
        record!(case, "SparseArrays S*T", timed(() -> S * T))
        record!(case, "SparseJL A*B", timed(() -> A * B))
        record!(case, "SparseJL incl. conversions", timed(() -> CSRMatrix(S) * CSRMatrix(T)))
        record!(case, "SparseJL incl. conversions back", timed(() -> sparse(CSRMatrix(S) * CSRMatrix(T))))
    end
end

if "transposed" in cases
    for density in (0.10,), (kind, b) in (("csr", 1), ("bsr32", B32))
        S = pattern(density, b)
        A = b == 1 ? CSRMatrix(S) : BSRMatrix(S, b)
        Y, D = randn(MersenneTwister(4), Float32, M, 128), zeros(Float32, K, 128)
        case = "mul! $(kind)' d=$density n=128"
        check(mul!(D, A', Y), S' * Y)
        record!(case, "SparseArrays", timed(() -> mul!(D, S', Y)))
        record!(case, "SparseJL", timed(() -> mul!(D, A', Y)))
        Z, E = randn(MersenneTwister(5), Float32, 128, M), zeros(Float32, 128, K)
        case = "mul! dense*$kind d=$density n=128"
        check(mul!(E, Z, A), Z * S)
        record!(case, "SparseArrays", timed(() -> mul!(E, Z, S)))
        record!(case, "SparseJL", timed(() -> mul!(E, Z, A)))
    end
end

if "convert" in cases
    density = 0.10
    X = randn(MersenneTwister(2), Float32, K, 128)
    C = zeros(Float32, M, 128)
    for (kind, b, structured) in (("csr", 1, true), ("bsr32", B32, true), ("bsr32", B32, false))
        S = pattern(density, structured ? b : 1)
        case = "convert $kind d=$density$(structured ? "" : " unstructured") vs product n=128"
        conv = b == 1 ? (() -> CSRMatrix(S)) : (() -> BSRMatrix(S, b))
        A = conv()
        A == S || error("conversion differs")
        record!(case, "from SparseMatrixCSC", timed(conv); nnzb=b == 1 ? nnz(A) : nnzb(A))
        record!(case, "back to SparseMatrixCSC", timed(() -> sparse(A)))
        record!(case, "product A * X", timed(() -> A * X))
        record!(case, "product mul!(C, A, X)", timed(() -> mul!(C, A, X)))
    end
end

env = (julia=string(VERSION), threads=Threads.nthreads(),
       cpu=Sys.cpu_info()[1].model, cores=Sys.CPU_THREADS, loadavg=Sys.loadavg(),
       date=string(now(UTC)), host=gethostname())
"Markdown tables: one per kind of case (its first word or two), a column per implementation."
function report(records)
    lines = String[]
    sections = unique(join(split(r.case)[1:2], " ") for r in records)
    for sec in sections
        rs = filter(r -> join(split(r.case)[1:2], " ") == sec, records)
        cases, impls = unique(r.case for r in rs), unique(r.impl for r in rs)
        ratio = startswith(impls[1], "SparseArrays") && length(impls) > 1
        push!(lines, "", "| $sec | " * join(impls .* " (ms)", " | ") *
              (ratio ? " | $(impls[1]) / $(impls[2]) |" : " |"))
        push!(lines, "|" * " --- |"^(length(impls) + 1 + ratio))
        for c in cases
            ms = [something(findfirst(r -> r.case == c && r.impl == i, rs), 0) for i in impls]
            cell(q) = q == 0 ? "" : string(round(rs[q].ms; sigdigits=3))
            row = "| $c | " * join(cell.(ms), " | ")
            ratio && all(>(0), ms[1:2]) && (row *= " | $(round(rs[ms[1]].ms / rs[ms[2]].ms; digits=1))×")
            push!(lines, row * " |")
        end
    end
    return join(lines, "\n")
end
println(report(records))

if !isempty(ARGS)
    esc(x) = x isa AbstractString ? repr(x) : x isa Tuple ? "[" * join(esc.(x), ",") * "]" :
             x isa Number ? string(x) : repr(string(x))
    obj(nt) = "{" * join(["\"$k\": $(esc(v))" for (k, v) in pairs(nt)], ", ") * "}"
    open(ARGS[1], "w") do io
        println(io, "{\"env\": ", obj(env), ",\n \"records\": [")
        println(io, join(["  " * obj(r) for r in records], ",\n"), "]}")
    end
    open(joinpath(dirname(abspath(ARGS[1])), "report.md"), "w") do io
        println(io, "# SparseJL against SparseArrays\n\n", obj(env), "\n", report(records))
    end
end
