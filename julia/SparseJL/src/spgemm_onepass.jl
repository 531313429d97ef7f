# SpGEMM in one pass. The two-phase product reads A and B twice: once to count C's rows, once
# to fill them. Where B's rows are sparse (random sparse products, where C has about as many
# entries as multiply-adds), counting is a quarter of the time. Instead, the numeric kernel runs
# once into C's arrays sized with room for every multiply-add (at most n per row), each segment
# of rows packed from where its room begins and moved down into place as soon as the segments
# before it are; the caller then shrinks the arrays to `indptrC[m+1]` entries.

"Segments of rows per thread: as for `foreach_rowchunk`, a few, for dynamic balancing."
onepass_segments() = CHUNKS_PER_THREAD[] * nthreads()

# Above this much room (entries), count first: the arrays would hold more than C needs while the
# product runs.
const ONEPASS_MAX_ROOM = Ref(1 << 23)

# Count first where the room exceeds C's expected size by more than this factor: fresh memory
# costs page faults (random 4096² at 1 %, 22 % more room than C: 13 against 15 ms from Python in
# one process, 26 against 20 ms in another where faults were slow).
const ONEPASS_MAX_SLACK = 1.1

"Room of the first `r` rows of C, r = 0:m: their multiply-adds, each row at most `n`."
function row_room(cum::Vector{Int}, m::Int, n::Int)
    room = Vector{Int}(undef, m + 1)
    room[1] = 0
    @inbounds for i in 1:m
        room[i+1] = room[i] + min(cum[i+1] - cum[i], n)
    end
    return room
end

"""
Entries of C expected if each row's `f` multiply-adds fell on random columns among `n`:
`n*(1 - exp(-f/n))` per row.
"""
function expected_entries(cum::Vector{Int}, m::Int, n::Int)
    e = 0.0
    @inbounds for i in 1:m
        e -= n * expm1(-(cum[i+1] - cum[i]) / n)
    end
    return e
end

"""
    onepass_room(m, n, indptrA, indicesA, indptrB) -> Int

Entries of room that [`onepass_product!`](@ref) needs for `A*B` (unchecked inputs), or -1 where
counting first pays: where B's rows are dense enough for the bitmap union (spgemm_dense.jl), the
room exceeds `ONEPASS_MAX_ROOM`, or C is expected to be much smaller than the room (many
multiply-adds per entry).
"""
function onepass_room(m::Int, n::Int, indptrA, indicesA, indptrB)
    k = length(indptrB) - 1
    union_pays(indptrB[k+1], k, n) && return -1
    return onepass_room(cumulative_flops(m, indptrA, indicesA, indptrB), m, n)
end

"[`onepass_room`](@ref) of a product whose B is too sparse for the union, from its `cum` flops."
function onepass_room(cum::Vector{Int}, m::Int, n::Int)
    room = row_room(cum, m, n)[m+1]
    room <= ONEPASS_MAX_ROOM[] && room <= ONEPASS_MAX_SLACK * expected_entries(cum, m, n) ||
        return -1
    return room
end

"""
    plan_spgemm!(indptrC, m, n, indptrA, indicesA, indptrB, indicesB) -> Int

How to compute `A*B` (unchecked inputs): the room of a one-pass product ([`onepass_room`](@ref);
`indptrC` untouched), or -1 after counting C's rows into `indptrC` as
`unchecked_spgemm_symbolic!` does. Either way A and B's flops are summed once.
"""
function plan_spgemm!(indptrC, m::Int, n::Int, indptrA, indicesA, indptrB, indicesB)
    k = length(indptrB) - 1
    if union_pays(indptrB[k+1], k, n)
        unchecked_spgemm_symbolic!(indptrC, m, n, indptrA, indicesA, indptrB, indicesB)
        return -1
    end
    cum = cumulative_flops(m, indptrA, indicesA, indptrB)
    room = onepass_room(cum, m, n)
    room < 0 && counted_symbolic!(indptrC, m, n, indptrA, indicesA, indptrB, indicesB, cum)
    return room
end

"""
    onepass_product!(indicesC, dataC, indptrC, m, n, indptrA, indicesA, dataA,
                     indptrB, indicesB, dataB) -> message or nothing

Compute `C = A*B` in one pass into `indicesC` and `dataC`, which must hold exactly the room
[`onepass_room`](@ref) gives (else a message is returned and nothing written), and fill
`indptrC` (length `m+1`); C's entries are then the first `indptrC[m+1]`. A and B unchecked, as
for `unchecked_spgemm_numeric!`.

Segment `s` of rows is computed from where its room begins; as soon as segments `1:s` are done,
whichever thread finished last moves `s` down behind `s-1`, while the data is still in cache and
the other threads compute later segments (whose room lies beyond everything moved so far).
"""
function onepass_product!(indicesC, dataC, indptrC, m::Int, n::Int, indptrA, indicesA, dataA,
                          indptrB, indicesB, dataB)
    cum = cumulative_flops(m, indptrA, indicesA, indptrB)
    room = row_room(cum, m, n)
    length(indicesC) == length(dataC) == room[m+1] || return (
        "C: one pass needs room for $(room[m+1]) entries, but indices holds " *
        "$(length(indicesC)) and data $(length(dataC))")
    nseg = min(m, onepass_segments())
    segments = partition_rows(r -> (@inbounds cum[r+1]) + r, m, nseg)
    moves = SegmentMoves([room[segments[s]+1] for s in 1:nseg])
    foreach_rowchunk(s -> (@inbounds cum[segments[s+1]+1]) + segments[s+1], nseg, cum[m+1]) do slo, shi
        for s in slo:shi
            stop = numeric_rows!(indicesC, dataC, indptrC, n, indptrA, indicesA, dataA,
                                 indptrB, indicesB, dataB, cum, segments[s] + 1, segments[s+1],
                                 nothing, moves.starts[s])
            segment_done!(moves, s, stop, indicesC, dataC)
        end
    end
    place_done!(moves, indicesC, dataC)     # whatever the threads left: all are done now
    prefix_sum!(indptrC, m)
    return nothing
end

"""
Where the segments of a one-pass product are: segment `s` was computed into `starts[s]+1:stops[s]`
(0-based offsets), `done[s]` is set once it is, segments `1:placed[]` have been moved into place,
and the next one goes to `next[]`. Moves are made by one thread at a time: under `lock` while
threads compute, then by the caller once they have finished.
"""
struct SegmentMoves
    starts::Vector{Int}
    stops::Vector{Int}
    done::Vector{Threads.Atomic{Bool}}
    placed::Threads.Atomic{Int}
    next::Base.RefValue{Int}
    lock::Threads.SpinLock
end
SegmentMoves(starts::Vector{Int}) =
    SegmentMoves(starts, copy(starts), [Threads.Atomic{Bool}(false) for _ in starts],
                 Threads.Atomic{Int}(0), Ref(0), Threads.SpinLock())

"""
Record segment `s` as computed up to `stop`, then move every segment that can be moved, unless
another thread is moving: that one checks again after unlocking. The fences order each side's
store before its next load (x86 may let a load pass an earlier store); without them both could
miss the other and leave a segment for `onepass_product!` to place after the threads finish.
"""
function segment_done!(mv::SegmentMoves, s::Int, stop::Int, indicesC, dataC)
    mv.stops[s] = stop
    mv.done[s][] = true
    Threads.atomic_fence()
    while movable(mv) && trylock(mv.lock)
        place_done!(mv, indicesC, dataC)
        unlock(mv.lock)
        Threads.atomic_fence()
    end
    return nothing
end

"Whether the next segment to place is done."
movable(mv::SegmentMoves) = mv.placed[] < length(mv.starts) && mv.done[mv.placed[]+1][]

"Move the done segments after the last placed one into place (one thread at a time)."
function place_done!(mv::SegmentMoves, indicesC, dataC)
    while movable(mv)
        t = mv.placed[] + 1
        len = mv.stops[t] - mv.starts[t]
        if mv.next[] != mv.starts[t]
            copyto!(indicesC, mv.next[] + 1, indicesC, mv.starts[t] + 1, len)
            copyto!(dataC, mv.next[] + 1, dataC, mv.starts[t] + 1, len)
        end
        mv.next[] += len
        mv.placed[] = t
    end
    return nothing
end
