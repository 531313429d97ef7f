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
    RowLoop

One parallel loop: chunk `t` is rows `bounds[t]+1:bounds[t+1]`; `next` hands out chunk numbers,
`done` counts finished chunks. A thread touches the operands only after claiming a chunk, and the
loop returns only when every claimed chunk is done, so no thread works on them afterwards.
"""
struct RowLoop{F}
    f::F
    bounds::Vector{Int}
    next::Threads.Atomic{Int}
    done::Threads.Atomic{Int}
    failure::Base.RefValue{Any}
end

RowLoop(f::F, bounds::Vector{Int}) where {F} =
    RowLoop{F}(f, bounds, Threads.Atomic{Int}(1), Threads.Atomic{Int}(0), Ref{Any}(nothing))

"""
    Team

The other Julia threads, held for the length of one job (`with_team`): each runs a helper that
takes part in every `foreach_rowchunk` loop the job starts, spinning between loops. Waking them
once, as the job starts, overlaps their wake-up with the job's checks instead of putting it in
front of every loop.
"""
mutable struct Team
    owner::Task
    open::Threads.Atomic{Bool}
    published::Threads.Atomic{Int}   # loops published so far; a change means `loop` is new
    loop::Any
end

const TEAM = Ref{Union{Team,Nothing}}(nothing)

# Between jobs each helper thread sleeps in `sem_wait` on a semaphore of its own, not in Julia's
# scheduler: Julia 1.5's idle threads spin for 4 ms before they sleep, whatever
# JULIA_THREAD_SLEEP_THRESHOLD says, and that spin took a core from the next library the caller
# ran (a NumPy product right after a sparsejl one took 2-5 times as long).
const HELPER_SEMAPHORES = Vector{Vector{UInt8}}()   # sem_t storage, one per helper thread
const HELPER_TASKS = Task[]
const RELEASING = Threads.Atomic{Bool}(false)

# Where the helpers may run. Woken by the owner, Linux puts a helper on the owner's own CPU when
# the others look busy (another library's thread spinning there after its product): both then
# shared one core, and a product right after a NumPy one took 3× its time. So on Linux each job
# keeps the helpers off the CPU the owner runs on (a syscall per helper, only when the owner has
# moved), within the CPUs the process was given.
const HELPER_OS_TIDS = Int32[]              # 0 until that helper has started
const PROCESS_CPUS = zeros(UInt8, 128)      # cpu_set_t of the process, read as the helpers start
const CPU_KEPT_FREE = Ref(-1)

"""
    with_team(job)

Run `job()` with the other Julia threads held as helpers of its loops (see [`Team`](@ref)).
Used by the C entry points, which run one job at a time on the owner thread.
"""
function with_team(job::F) where {F}
    nt = nthreads()
    (nt == 1 || TEAM[] !== nothing) && return job()
    isempty(HELPER_TASKS) && start_helpers!(nt)
    Sys.islinux() && keep_helpers_off!(Int(ccall(:sched_getcpu, Cint, ())))
    team = Team(current_task(), Threads.Atomic{Bool}(true), Threads.Atomic{Int}(0), nothing)
    TEAM[] = team
    for sem in HELPER_SEMAPHORES
        ccall(:sem_post, Cint, (Ptr{UInt8},), sem)
    end
    try
        return job()
    finally
        TEAM[] = nothing
        team.open[] = false
    end
end

function start_helpers!(nt::Int)
    RELEASING[] = false
    CPU_KEPT_FREE[] = -1
    resize!(HELPER_OS_TIDS, nt - 1)
    fill!(HELPER_OS_TIDS, 0)
    Sys.islinux() && ccall(:sched_getaffinity, Cint, (Cint, Csize_t, Ptr{UInt8}), 0, length(PROCESS_CPUS), PROCESS_CPUS)
    for tid in 2:nt
        sem = zeros(UInt8, 64)                        # sizeof(sem_t) is 32 on x86-64 glibc
        ccall(:sem_init, Cint, (Ptr{UInt8}, Cint, Cuint), sem, 0, 0)
        push!(HELPER_SEMAPHORES, sem)
        push!(HELPER_TASKS, start_on_thread(() -> helper_loop(sem, tid - 1), tid))
    end
end

"Let every started helper run on the process's CPUs but `cpu` (`cpu < 0`: on all of them)."
function keep_helpers_off!(cpu::Int)
    cpu == CPU_KEPT_FREE[] && return nothing
    mask = copy(PROCESS_CPUS)
    if cpu >= 0 && cpu < 8 * length(mask)
        mask[cpu ÷ 8 + 1] &= ~(0x01 << (cpu % 8))
        any(!iszero, mask) || return nothing          # the process has that one CPU only
    end
    for os_tid in HELPER_OS_TIDS
        os_tid == 0 && return nothing                 # not all started yet: try again next job
        ccall(:sched_setaffinity, Cint, (Cint, Csize_t, Ptr{UInt8}), os_tid, length(mask), mask)
    end
    CPU_KEPT_FREE[] = cpu
    return nothing
end

"""
    release_helpers!()

End the helper tasks, leaving their threads to Julia's scheduler (for code that schedules tasks
of its own on them, such as `Threads.@threads` in the `eval` entry point); the next `with_team`
starts them again.
"""
function release_helpers!()
    isempty(HELPER_TASKS) && return nothing
    Sys.islinux() && keep_helpers_off!(-1)           # the threads go back to Julia with every CPU
    RELEASING[] = true
    foreach(sem -> ccall(:sem_post, Cint, (Ptr{UInt8},), sem), HELPER_SEMAPHORES)
    foreach(wait, HELPER_TASKS)
    foreach(sem -> ccall(:sem_destroy, Cint, (Ptr{UInt8},), sem), HELPER_SEMAPHORES)
    empty!(HELPER_TASKS)
    empty!(HELPER_SEMAPHORES)
    return nothing
end

"Schedule `f` as a task that runs on thread `tid` and stays there (as `Threads.@threads` does)."
function start_on_thread(f, tid::Int)
    t = Task(f)
    t.sticky = true
    ccall(:jl_set_task_tid, Cvoid, (Any, Cint), t, tid - 1)
    schedule(t)
    return t
end

function helper_loop(sem::Vector{UInt8}, index::Int)
    Sys.islinux() && (HELPER_OS_TIDS[index] = ccall(:gettid, Cint, ()))
    while true
        gc_state = ccall(:jl_gc_safe_enter, Int8, ())   # the GC may run while this thread waits
        ccall(:sem_wait, Cint, (Ptr{UInt8},), sem)
        ccall(:jl_gc_safe_leave, Cvoid, (Int8,), gc_state)
        RELEASING[] && return nothing
        team = TEAM[]
        team === nothing || help(team)                 # nothing: that job ended before we woke
    end
end

function help(team::Team)
    seen = 0
    while true
        published = team.published[]
        if published != seen
            seen = published
            claim_chunks!(team.loop)
        elseif !team.open[]
            return nothing
        else
            ccall(:jl_cpu_pause, Cvoid, ())
            GC.safepoint()
        end
    end
end

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
    loop = RowLoop(f, partition_rows(cumwork, m, nchunks))
    team = TEAM[]
    if team !== nothing && team.owner === current_task()
        team.loop = loop
        Threads.atomic_add!(team.published, 1)     # a full barrier: helpers see `loop` first
    else
        for _ in 2:nt
            # A helper that starts after the work is gone claims nothing and touches no operand.
            Threads.@spawn claim_chunks!(loop)
        end
    end
    claim_chunks!(loop)
    while loop.done[] < nchunks                 # chunks claimed by helpers still running
        ccall(:jl_cpu_pause, Cvoid, ())
        yield()
    end
    loop.failure[] === nothing || throw(loop.failure[])
    return nothing
end

function claim_chunks!(loop::RowLoop)
    bounds = loop.bounds
    nchunks = length(bounds) - 1
    while true
        t = Threads.atomic_add!(loop.next, 1)   # the old value: this chunk is ours
        t > nchunks && return nothing
        try
            loop.f(bounds[t] + 1, bounds[t+1])
        catch e
            loop.failure[] = e
        end
        Threads.atomic_add!(loop.done, 1)
    end
end
