# Row partitioning for the threaded kernels. Rows are split into contiguous chunks of about equal
# work, where the work of rows 1:r is `cumwork(r)`; balancing by stored entries rather than by row
# count keeps one dense row from stalling a whole thread.

"Work of the first `r` rows of a compressed structure: their stored entries, plus one per row."
stored_work(indptr) = r -> Int(@inbounds indptr[r+1]) + r

# Below this much work (roughly multiply-adds) threads cost more than they save.
const SERIAL_WORK = Ref(1 << 15)

"""
    partition_rows(cumwork, m, nchunks) -> Vector{Int}

Bounds `p` of length `nchunks+1` such that chunk `t` is rows `p[t]+1:p[t+1]`, where
`cumwork(r)` (non-decreasing, `cumwork(0) == 0`) is the work of the first `r` rows.
"""
function partition_rows(cumwork::F, m::Int, nchunks::Int) where {F}
    bounds = Vector{Int}(undef, nchunks + 1)
    bounds[1] = 0
    bounds[nchunks+1] = m
    total = Int128(cumwork(m))
    for t in 1:nchunks-1
        target = div(total * t, nchunks)
        lo, hi = bounds[t], m
        while lo < hi                      # first r with cumwork(r) >= target
            mid = (lo + hi) >>> 1
            if cumwork(mid) < target
                lo = mid + 1
            else
                hi = mid
            end
        end
        bounds[t+1] = lo
    end
    return bounds
end

# Chunks per thread: a few, so that a thread the OS runs late (another process on its core) finds
# its share already taken instead of stalling the whole call.
const CHUNKS_PER_THREAD = Ref(4)

"""
    foreach_rowchunk(f, cumwork, m, work)

Call `f(first_row, last_row)` on contiguous chunks covering rows `1:m`, about equal in work, which
the calling thread and the other Julia threads claim dynamically; returns when all are done.
Runs `f(1, m)` directly when `work` (multiply-adds, roughly) is too small to share. `f` should
not throw: validate first (an exception is rethrown here after all chunks finished).
"""
function foreach_rowchunk(f::F, cumwork::C, m::Int, work::Integer) where {F,C}
    nt = nthreads()
    if nt == 1 || m < 2 || work < SERIAL_WORK[]
        f(1, m)
        return nothing
    end
    nchunks = min(m, CHUNKS_PER_THREAD[] * nt)
    bounds = partition_rows(cumwork, m, nchunks)
    next, done = Threads.Atomic{Int}(1), Threads.Atomic{Int}(0)
    failure = Ref{Any}(nothing)
    for _ in 2:nt
        # A helper that starts after the work is gone claims nothing and touches no operand.
        Threads.@spawn claim_chunks!(f, bounds, next, done, failure)
    end
    claim_chunks!(f, bounds, next, done, failure)
    while done[] < nchunks                 # chunks claimed by helpers still running
        yield()
    end
    failure[] === nothing || throw(failure[])
    return nothing
end

function claim_chunks!(f::F, bounds::Vector{Int}, next, done, failure) where {F}
    nchunks = length(bounds) - 1
    while true
        t = Threads.atomic_add!(next, 1)   # the old value: this chunk is ours
        t > nchunks && return nothing
        try
            f(bounds[t] + 1, bounds[t+1])
        catch e
            failure[] = e
        end
        Threads.atomic_add!(done, 1)
    end
end
