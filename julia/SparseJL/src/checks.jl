# Validation of operands, done once at the boundary before any @inbounds kernel runs.
#
# Checks *return* a message (a String) describing the first problem, or `nothing`, rather than
# throwing: the C entry points turn a message into status 1 without raising a Julia exception
# (throwing from compiled code is fragile on some installations, see docs/abi.md), and the Julia
# API throws `ArgumentError(message)` via `throw_problem`.

"`@check cond message`: return `message` from the enclosing function unless `cond` holds."
macro check(cond, message)
    return esc(:($cond || return $message))
end

"`@forward expr`: return from the enclosing function if `expr` gives a message."
macro forward(expr)
    return esc(:(let p = $expr; p === nothing || return p; end))
end

"Throw `ArgumentError(problem)` unless `problem` is `nothing`."
throw_problem(problem::Nothing) = nothing
throw_problem(problem::AbstractString) = throw(ArgumentError(problem))

"""
    compressed_problem(nrows, ncols, indptr, indices, nnz; what="", unit="row", entry="value")

First problem of a compressed (CSR-like) structure with 0-based entries (`base`-based: 1 for
Julia's CSC), or `nothing`: `indptr`
must have `nrows+1` entries, start at 0, never decrease and end at most at `nnz`; every used entry
of `indices` must lie in `0:ncols-1`. Messages name the array and the first bad position, 0-based
as the caller from Python sees it, in the words of sparsejl's Python checks. `what` prefixes the
message (e.g. "B: "); `unit` and `entry` name rows and stored entries ("block row", "block").
"""
function compressed_problem(nrows::Integer, ncols::Integer, indptr::AbstractVector,
                            indices::AbstractVector, nnz::Integer; what::AbstractString="",
                            unit::AbstractString="row", entry::AbstractString="value",
                            base::Int=0)
    base == 0 || return compressed_problem(nrows, ncols, OffsetBy(indptr, base),
                                           OffsetBy(indices, base), nnz; what=what,
                                           unit=unit, entry=entry)
    @check nrows >= 0 && ncols >= 0 "$(what)shape ($nrows, $ncols) has a negative dimension"
    @check nnz >= 0 "$(what)nnz = $nnz is negative"
    @check(length(indptr) == nrows + 1,
           "$(what)indptr has length $(length(indptr)), expected $(nrows + 1) " *
           "(one more than the $nrows $(unit)s)")
    @check(length(indices) >= nnz,
           "$(what)indices holds $(length(indices)) entries, fewer than nnz = $nnz")
    first = indptr[1]
    @check first == 0 "$(what)indptr[0] is $first, expected 0"
    @forward decrease_problem(indptr, what)
    prev = indptr[end]
    @check prev <= nnz "$(what)indptr ends at $prev, past the $nnz stored $(entry)s"
    if !all_below(indices, Int(prev), ncols)
        for p in 1:Int(prev)
            j = indices[p]
            @check(0 <= j < ncols, "$(what)indices[$(p-1)] = $j is out of range for $ncols " *
                                   "$(replace(unit, "row" => "column"))s")
        end
    end
    return nothing
end

"Whether `v` never decreases (branch-free, so it vectorises)."
function nondecreasing(v::AbstractVector)
    ok = true
    @inbounds @simd for p in 2:length(v)
        ok &= v[p] >= v[p-1]
    end
    return ok
end

"Where `indptr` decreases first, as a message, or `nothing` (a vectorised scan first)."
function decrease_problem(indptr::AbstractVector, what::AbstractString)
    nondecreasing(indptr) && return nothing
    prev = indptr[1]
    for p in 2:length(indptr)
        v = indptr[p]
        @check v >= prev "$(what)indptr decreases at position $(p-1) ($prev then $v)"
        prev = v
    end
    return nothing
end

"""
Whether `0 <= v[p] < bound` for `p in 1:len`: a vectorised scan, split over Julia's threads (for
one column of B, a serial scan of the indices took a third of the product's time).
"""
function all_below(v::AbstractVector, len::Int, bound::Integer)
    (nthreads() == 1 || len < SERIAL_WORK[]) && return all_below(v, 1:len, bound)
    ok = Threads.Atomic{Bool}(true)
    foreach_rowchunk(identity, len, len) do lo, hi
        all_below(v, lo:hi, bound) || (ok[] = false)
    end
    return ok[]
end

# The largest index seen as unsigned, where a negative one wraps to the top half.
function all_below(v::AbstractVector{T}, ps::UnitRange{Int}, bound::Integer) where {T<:Base.BitInteger}
    top = zero(unsigned(T))
    @inbounds @simd for p in ps
        top = max(top, v[p] % unsigned(T))
    end
    return bound > 0 && top < unsigned(bound)
end

function all_below(v::AbstractVector, ps::UnitRange{Int}, bound::Integer)
    ok = true
    @inbounds @simd for p in ps
        j = v[p]
        ok &= (j >= 0) & (j < bound)
    end
    return ok
end

check_compressed(args...; kws...) = throw_problem(compressed_problem(args...; kws...))

"The entries of `v` less `base`: a 1-based structure read as a 0-based one, without a copy."
struct OffsetBy{T,V<:AbstractVector{T}} <: AbstractVector{T}
    v::V
    base::T
end
OffsetBy(v::AbstractVector{T}, base::Int) where {T} = OffsetBy{T,typeof(v)}(v, T(base))
Base.size(o::OffsetBy) = size(o.v)
Base.@propagate_inbounds Base.getindex(o::OffsetBy, i::Int) = o.v[i] - o.base
