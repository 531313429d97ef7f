# Row partitioning for the threaded kernels. Rows are split into contiguous chunks of about equal
# work, where the work of rows 1:r is `cumwork(r)`; balancing by stored entries rather than by row
# count keeps one dense row from stalling a whole thread.

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

"""
    foreach_rowchunk(f, cumwork, m, work)

Call `f(first_row, last_row)` on contiguous chunks covering rows `1:m`, one per thread when
`work` (total multiply-adds, roughly) is worth threading, else once on the whole range.
`f` must not throw: validate before calling.
"""
function foreach_rowchunk(f::F, cumwork::C, m::Int, work::Integer) where {F,C}
    nt = nthreads()
    if nt == 1 || m < 2 || work < SERIAL_WORK[]
        f(1, m)
        return nothing
    end
    bounds = partition_rows(cumwork, m, nt)
    @threads for t in 1:nt
        lo, hi = bounds[t] + 1, bounds[t+1]
        lo <= hi && f(lo, hi)
    end
    return nothing
end
