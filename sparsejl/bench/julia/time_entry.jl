# Times a C entry point called in a loop inside Julia (peers.JuliaKernel): the kernel's own time,
# without the Python -> Julia call.
function __sparsejl_bench_time(f::Ptr{Cvoid}, a::Ptr{Int64}, repeats::Int, warmup::Int,
                               min_time::Float64)
    for _ in 1:warmup
        ccall(f, Int32, (Ptr{Int64},), a)
    end
    t0 = time_ns(); ccall(f, Int32, (Ptr{Int64},), a); one = (time_ns() - t0) / 1e9
    number = one >= min_time ? 1 : min(100000, ceil(Int, min_time / max(one, 1e-8)))
    times = Float64[]
    for _ in 1:repeats
        t0 = time_ns()
        for _ in 1:number
            ccall(f, Int32, (Ptr{Int64},), a)
        end
        push!(times, (time_ns() - t0) / 1e9 / number)
    end
    string(number, " ", join(times, " "))
end
