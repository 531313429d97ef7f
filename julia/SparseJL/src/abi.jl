"""
    SparseJL.ABI

What every C entry point shares (docs/abi.md), CPU and GPU alike: the table of entry points and
type names (`abi.txt`, which Python reads too), the slot reader, the key parser, and `guarded`,
which turns a job's outcome into a status code and a message.
"""
module ABI

export Slots, slot, address, size!, product!, buffer!, problem, note!, guarded, write_cstring,
       BFloat16, STATUS_OK, STATUS_INVALID, STATUS_JULIA

const STATUS_OK, STATUS_INVALID, STATUS_JULIA = Cint(0), Cint(1), Cint(2)

"Stands for bfloat16 values in GPU keys: Julia 1.5 has no such type, and no CPU kernel takes it."
primitive type BFloat16 16 end

# --- the table --------------------------------------------------------------------------------------

const TABLE = joinpath(@__DIR__, "abi.txt")
include_dependency(TABLE)

struct TypeName
    name::String
    type::DataType
    dtype::String       # NumPy's name for it
    cpu::Bool
    gpu::Bool
end

struct EntryPoint
    name::String
    bootstrap::Bool     # its pointer comes from bootstrap_pointers(), never from a key
    types::Vector{String}
    slots::Vector{String}
    addresses::Vector{Bool}
end

is_gpu(e::EntryPoint) = startswith(e.name, "cuda_")
is_index(parameter::AbstractString) = startswith(parameter, "Ti")

function read_table(path::String)
    types, entries = TypeName[], EntryPoint[]
    for (lineno, raw) in enumerate(eachline(path))
        line = strip(first(split(raw, '#')))
        isempty(line) && continue
        words = split(line)
        if words[1] == "type" && length(words) >= 4
            T = getfield(@__MODULE__, Symbol(words[2]))
            push!(types, TypeName(words[2], T, words[3], "cpu" in words[4:end], "gpu" in words[4:end]))
        elseif words[1] in ("entry", "bootstrap") && occursin('|', line)
            head, tail = split(line, '|')
            head = split(head)
            slots = split(tail)
            push!(entries, EntryPoint(head[2], words[1] == "bootstrap", String.(head[3:end]),
                                      [String(lstrip(x, '*')) for x in slots], startswith.(slots, '*')))
        else
            error("$path:$lineno: not a type, entry or bootstrap row: $raw")
        end
    end
    return types, entries
end

const TYPES, ENTRY_POINTS = read_table(TABLE)
const BY_NAME = Dict(e.name => e for e in ENTRY_POINTS)

"Each entry point's slot numbers by name, counted from 0 as in docs/abi.md (the error buffer is 0 and 1)."
const LAYOUTS = NamedTuple{Tuple(Symbol.(e.name for e in ENTRY_POINTS))}(Tuple(
    NamedTuple{Tuple(Symbol.(e.slots))}(Tuple(2:length(e.slots)+1)) for e in ENTRY_POINTS))

# --- slots and buffers ---------------------------------------------------------------------------------

"""
    Slots{layout}(args)

A job's slots, read by name (`layout` maps each name to its slot number). Remembers the first
problem (a negative size, a null or oversized buffer) instead of throwing; `problem(s)` is
`nothing` when all was well.
"""
mutable struct Slots{L}
    args::Ptr{Int64}
    problem::Union{Nothing,String}
end
Slots{L}(args::Ptr{Int64}) where {L} = Slots{L}(args, nothing)
"The slots of entry point `name` of the table."
@inline Slots(args::Ptr{Int64}, name::Symbol) = Slots{getfield(LAYOUTS, name)}(args)

problem(s::Slots) = s.problem
note!(s::Slots, msg::String) = (s.problem === nothing && (s.problem = msg); nothing)

# Inlined so that the slot number of a literal name is a constant in the job's code.
@inline number(::Slots{L}, name::Symbol) where {L} = getfield(L, name)
"The int64 in slot `name`."
@inline slot(s::Slots, name::Symbol) = unsafe_load(s.args, number(s, name) + 1)
"The address in slot `name`."
@inline address(s::Slots, name::Symbol) = Ptr{Cvoid}(UInt(reinterpret(UInt64, slot(s, name))))

"The size in slot `name`, which must not be negative (0 after a problem)."
@inline size!(s::Slots, name::Symbol) = checked_size!(s, slot(s, name), name)
function checked_size!(s::Slots, v::Int64, name::Symbol)
    v >= 0 && return Int(v)
    note!(s, "$name = $v is negative")
    return 0
end

"`a*b` for sizes, noting an overflow (0 after a problem)."
function product!(s::Slots, a::Int, b::Int, name::String)
    p, overflow = Base.mul_with_overflow(a, b)
    overflow || return p
    note!(s, "$name = $a*$b overflows Int64")
    return 0
end

"""
    buffer!(s, T, name, [label,] dims...)

The buffer whose address is in slot `name`, as an `Array{T}` of size `dims` sharing the caller's
memory (no copy); messages call it `label` (default: the slot's name). After a problem, an empty
array of the same type.
"""
@inline buffer!(s::Slots, ::Type{T}, name::Symbol, dims::Int...) where {T} =
    wrap!(s, T, slot(s, name), number(s, name), name, dims)
@inline buffer!(s::Slots, ::Type{T}, name::Symbol, label::String, dims::Int...) where {T} =
    wrap!(s, T, slot(s, name), number(s, name), label, dims)

function wrap!(s::Slots, ::Type{T}, addr::Int64, i::Int, label, dims::NTuple{N,Int}) where {T,N}
    len, overflow = 1, false
    for d in dims
        d < 0 && (note!(s, "$label: negative dimension $d"); return empty_array(T, dims))
        len, o = Base.mul_with_overflow(len, d)
        overflow |= o
    end
    _, o = Base.mul_with_overflow(len, sizeof(T))
    if overflow | o
        note!(s, "$label: $(join(dims, "×")) elements overflow the address space")
        return empty_array(T, dims)
    end
    if addr == 0
        len == 0 || note!(s, "$label (slot $i) is a null pointer for $len elements")
        return empty_array(T, dims)
    end
    s.problem === nothing || return empty_array(T, dims)
    return unsafe_wrap(Array, Ptr{T}(UInt(reinterpret(UInt64, addr))), dims; own=false)
end
empty_array(::Type{T}, dims::NTuple{N,Int}) where {T,N} = Array{T,N}(undef, ntuple(_ -> 0, N))

# --- errors ------------------------------------------------------------------------------------------

const INPUT_ERRORS = Union{ArgumentError,DimensionMismatch,BoundsError,InexactError,OverflowError}

"The exception that a failed thread or `include_string` wraps."
function root_exception(e)
    while true
        if e isa TaskFailedException
            e = e.task.exception
        elseif e isa CompositeException && !isempty(e.exceptions)
            e = first(e.exceptions)
        elseif e isa LoadError
            e = e.error
        else
            return e
        end
    end
end

"Write `msg` NUL-terminated into the buffer at `(ptr, cap)`, cut at a UTF-8 character boundary."
function write_cstring(ptr::Int64, cap::Int64, msg::AbstractString)
    (ptr == 0 || cap <= 0) && return nothing
    bytes = Vector{UInt8}(codeunits(String(msg)))
    n = min(length(bytes), Int(cap) - 1)
    while n > 0 && n < length(bytes) && (bytes[n+1] & 0xc0) == 0x80
        n -= 1
    end
    dest = Ptr{UInt8}(UInt(reinterpret(UInt64, ptr)))
    GC.@preserve bytes unsafe_copyto!(dest, pointer(bytes), n)
    unsafe_store!(dest, 0x00, n + 1)
    return nothing
end

"""
    guarded(job, args) -> Cint

Run `job(args)`, which returns `nothing` or a message about invalid input (status 1). Any
exception is caught too (status 1 for the input errors of docs/abi.md, else 2); the message goes
NUL-terminated into the error buffer of slots 0 and 1. Nothing escapes into C.
"""
function guarded(job::F, args::Ptr{Int64}) where {F}
    try
        msg = job(args)
        msg === nothing && return STATUS_OK
        write_cstring(unsafe_load(args, 1), unsafe_load(args, 2), msg)
        return STATUS_INVALID
    catch e
        err = root_exception(e)
        try
            write_cstring(unsafe_load(args, 1), unsafe_load(args, 2), sprint(showerror, err))
        catch
        end
        return err isa INPUT_ERRORS ? STATUS_INVALID : STATUS_JULIA
    end
end

# --- keys ------------------------------------------------------------------------------------------------

"""
    parse_key(key) -> (entry point, Tuple{types...}) or a message

Parse `name:T1,T2,...` (`name` for an entry point without type parameters) against the table;
never evaluates the key. On the GPU (`cuda_*`) value types are floating point.
"""
function parse_key(key::AbstractString)
    parts = split(key, ':')
    form = "entry point key $(repr(key)) is not of the form kernel:T1,T2,..."
    length(parts) <= 2 || return form
    e = get(BY_NAME, parts[1], nothing)
    if e === nothing || e.bootstrap
        known = sort!([x.name for x in ENTRY_POINTS if !x.bootstrap])
        return "unknown kernel $(repr(String(parts[1]))) in key $(repr(key)); known: $(join(known, ", "))"
    end
    length(parts) == 2 || isempty(e.types) || return form
    names = length(parts) == 2 && !isempty(parts[2]) ? split(parts[2], ',') : SubString{String}[]
    arity = length(e.types)
    length(names) == arity || return "key $(repr(key)): $(e.name) takes $arity types, got $(length(names))"
    gpu = is_gpu(e)
    known = [t for t in TYPES if gpu ? t.gpu : t.cpu]
    types = DataType[]
    for (i, name) in enumerate(names)
        k = findfirst(t -> t.name == name, known)
        k === nothing && return "key $(repr(key)): unknown type $(repr(String(name))); " *
                                "known: $(join(sort!([t.name for t in known]), ", "))"
        T = known[k].type
        if is_index(e.types[i])
            T <: Integer || return "key $(repr(key)): type $i is an index type and must be Int32 or Int64, got $name"
        elseif gpu && T <: Integer
            return "key $(repr(key)): type $i is a value type and must be floating point, got $name"
        end
        push!(types, T)
    end
    return e, Tuple{types...}
end

end # module ABI
