"""
    SparseJL.CABI

The C entry points that Python calls (docs/abi.md). Every job has the C signature
`int32 f(int64 *args)`: this layer reads the slots, wraps the buffers in place (no copies), builds
the validated `CSRMatrix`/`BSRMatrix` views, runs the kernel, and turns any exception into a
status code and a message. It knows the slot layouts; the meaning lives in the kernels above it.
"""
module CABI

using ..SparseJL: CSRMatrix, BSRMatrix, @check, @forward, format_problem,
                  unchecked_spmm_rowmajor!, symbolic_problem, unchecked_spgemm_symbolic!,
                  numeric_problem, unchecked_spgemm_numeric!, bsr_numeric_problem,
                  unchecked_bsr_spgemm_numeric!, operands_problem, column_type_problem,
                  plan_spgemm!, onepass_product!

const STATUS_OK, STATUS_INVALID, STATUS_JULIA = Cint(0), Cint(1), Cint(2)

# Invalid input is reported without raising a Julia exception: every check returns a message
# (see checks.jl), and a job returns the first one, which `guarded` turns into status 1.

# --- slots and buffers ---------------------------------------------------------------------------

"Slot `i` of a job, numbered from 0 as in docs/abi.md."
@inline slot(args::Ptr{Int64}, i::Int) = unsafe_load(args, i + 1)

"""
    Slots(args)

Reads a job's slots, remembering the first problem (a negative size, a null or oversized
buffer) instead of throwing; `problem(s)` is `nothing` when all was well.
"""
mutable struct Slots
    args::Ptr{Int64}
    problem::Union{Nothing,String}
end
Slots(args::Ptr{Int64}) = Slots(args, nothing)
problem(s::Slots) = s.problem
note!(s::Slots, msg::String) = (s.problem === nothing && (s.problem = msg); nothing)

"The size in slot `i`, which must not be negative (0 after a problem)."
function size!(s::Slots, i::Int, name::String)
    v = slot(s.args, i)
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
    buffer!(s, T, i, name, dims...)

The buffer whose address is in slot `i`, as an `Array{T}` of size `dims` sharing the caller's
memory (no copy). After a problem, an empty array of the same type.
"""
function buffer!(s::Slots, ::Type{T}, i::Int, name::String, dims::Int...) where {T}
    len, overflow = 1, false
    for d in dims
        d < 0 && (note!(s, "$name: negative dimension $d"); return empty_array(T, dims))
        len, o = Base.mul_with_overflow(len, d)
        overflow |= o
    end
    _, o = Base.mul_with_overflow(len, sizeof(T))
    if overflow | o
        note!(s, "$name: $(join(dims, "×")) elements overflow the address space")
        return empty_array(T, dims)
    end
    addr = reinterpret(UInt64, slot(s.args, i))
    if addr == 0
        len == 0 || note!(s, "$name (slot $i) is a null pointer for $len elements")
        return empty_array(T, dims)
    end
    s.problem === nothing || return empty_array(T, dims)
    return unsafe_wrap(Array, Ptr{T}(UInt(addr)), dims; own=false)
end
empty_array(::Type{T}, dims::NTuple{N,Int}) where {T,N} = Array{T,N}(undef, ntuple(_ -> 0, N))

# --- errors --------------------------------------------------------------------------------------

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
        write_cstring(slot(args, 0), slot(args, 1), msg)
        return STATUS_INVALID
    catch e
        err = root_exception(e)
        try
            write_cstring(slot(args, 0), slot(args, 1), sprint(showerror, err))
        catch
        end
        return err isa INPUT_ERRORS ? STATUS_INVALID : STATUS_JULIA
    end
end

# --- the jobs (slot layouts of docs/abi.md); each returns nothing or a problem --------------------

# csr_spmm: m, k, n, nnz, indptr, indices, data, B, C
function csr_spmm_job(args::Ptr{Int64}, ::Type{TvA}, ::Type{Ti}, ::Type{TvB},
                      ::Type{TvC}) where {TvA,Ti,TvB,TvC}
    s = Slots(args)
    m, k, n, nnz = size!(s, 2, "m"), size!(s, 3, "k"), size!(s, 4, "n"), size!(s, 5, "nnz")
    indptr = buffer!(s, Ti, 6, "indptr", m + 1)
    indices, data = buffer!(s, Ti, 7, "indices", nnz), buffer!(s, TvA, 8, "data", nnz)
    Bt, Ct = buffer!(s, TvB, 9, "B", n, k), buffer!(s, TvC, 10, "C", n, m)
    @forward problem(s)
    A = CSRMatrix{TvA,Ti}(m, k, indptr, indices, data; check=false)
    @forward format_problem(A)
    unchecked_spmm_rowmajor!(Ct, A, Bt)
    return nothing
end

# bsr_spmm: mb, kb, n, b, nnzb, indptr, indices, data, B, C
function bsr_spmm_job(args::Ptr{Int64}, ::Type{TvA}, ::Type{Ti}, ::Type{TvB},
                      ::Type{TvC}) where {TvA,Ti,TvB,TvC}
    s = Slots(args)
    mb, kb, n = size!(s, 2, "mb"), size!(s, 3, "kb"), size!(s, 4, "n")
    b, nnzb = size!(s, 5, "b"), size!(s, 6, "nnzb")
    @forward problem(s)
    @check b >= 1 "block size b = $b must be at least 1"
    m, k = product!(s, mb, b, "m"), product!(s, kb, b, "k")
    indptr = buffer!(s, Ti, 7, "indptr", mb + 1)
    indices, data = buffer!(s, Ti, 8, "indices", nnzb), buffer!(s, TvA, 9, "data", b, b, nnzb)
    Bt, Ct = buffer!(s, TvB, 10, "B", n, k), buffer!(s, TvC, 11, "C", n, m)
    @forward problem(s)
    A = BSRMatrix{TvA,Ti}(m, k, indptr, indices, data; check=false)
    @forward format_problem(A)
    unchecked_spmm_rowmajor!(Ct, A, Bt)
    return nothing
end

# csr_spgemm_symbolic: m, k, n, nnzA, indptrA, indicesA, nnzB, indptrB, indicesB, indptrC, room
# (room: null, or an int64 that receives the one-pass room, or -1 once indptrC is filled)
function csr_spgemm_symbolic_job(args::Ptr{Int64}, ::Type{TiA}, ::Type{TiB}) where {TiA,TiB}
    s = Slots(args)
    m, k, n = size!(s, 2, "m"), size!(s, 3, "k"), size!(s, 4, "n")
    nnzA, nnzB = size!(s, 5, "nnzA"), size!(s, 8, "nnzB")
    indptrA, indicesA = buffer!(s, TiA, 6, "A: indptr", m + 1), buffer!(s, TiA, 7, "A: indices", nnzA)
    indptrB, indicesB = buffer!(s, TiB, 9, "B: indptr", k + 1), buffer!(s, TiB, 10, "B: indices", nnzB)
    indptrC = buffer!(s, Int64, 11, "C: indptr", m + 1)
    roomout = buffer!(s, Int64, 12, "room", slot(args, 12) == 0 ? 0 : 1)
    @forward problem(s)
    @forward symbolic_problem(indptrC, m, k, n, indptrA, indicesA, indptrB, indicesB)
    if isempty(roomout)
        unchecked_spgemm_symbolic!(indptrC, m, n, indptrA, indicesA, indptrB, indicesB)
    else
        roomout[1] = plan_spgemm!(indptrC, m, n, indptrA, indicesA, indptrB, indicesB)
    end
    return nothing
end

"`indptrC` (Int64, `rows+1` entries) and its last entry, the number of stored entries of C."
function output_indptr!(s::Slots, i::Int, rows::Int)
    indptrC = buffer!(s, Int64, i, "C: indptr", rows + 1)
    s.problem === nothing || return indptrC, 0
    nC = indptrC[rows+1]
    nC >= 0 || note!(s, "C: indptr ends at $nC, a negative count")
    return indptrC, max(Int(nC), 0)
end

# csr_spgemm_numeric: m, k, n, nnzA, indptrA, indicesA, dataA, nnzB, indptrB, indicesB, dataB,
#                     indptrC, indicesC, dataC, room
# (room -1: indptrC holds C's structure; else indicesC and dataC hold the one-pass room and
# indptrC is filled here)
function csr_spgemm_numeric_job(args::Ptr{Int64}, ::Type{TvA}, ::Type{TiA}, ::Type{TvB},
                                ::Type{TiB}, ::Type{TiC}, ::Type{TvC}) where {TvA,TiA,TvB,TiB,TiC,TvC}
    s = Slots(args)
    m, k, n = size!(s, 2, "m"), size!(s, 3, "k"), size!(s, 4, "n")
    nnzA, nnzB = size!(s, 5, "nnzA"), size!(s, 9, "nnzB")
    indptrA, indicesA = buffer!(s, TiA, 6, "A: indptr", m + 1), buffer!(s, TiA, 7, "A: indices", nnzA)
    dataA = buffer!(s, TvA, 8, "A: data", nnzA)
    indptrB, indicesB = buffer!(s, TiB, 10, "B: indptr", k + 1), buffer!(s, TiB, 11, "B: indices", nnzB)
    dataB = buffer!(s, TvB, 12, "B: data", nnzB)
    room = slot(args, 16)
    if room < 0
        indptrC, nC = output_indptr!(s, 13, m)
    else
        indptrC, nC = buffer!(s, Int64, 13, "C: indptr", m + 1), Int(room)
    end
    indicesC, dataC = buffer!(s, TiC, 14, "C: indices", nC), buffer!(s, TvC, 15, "C: data", nC)
    @forward problem(s)
    if room >= 0
        @forward operands_problem(m, k, n, indptrA, indicesA, dataA, indptrB, indicesB, dataB)
        @forward column_type_problem(n, TiC)
        return onepass_product!(indicesC, dataC, indptrC, m, n,
                                indptrA, indicesA, dataA, indptrB, indicesB, dataB)
    end
    @forward numeric_problem(indicesC, dataC, indptrC, m, k, n,
                             indptrA, indicesA, dataA, indptrB, indicesB, dataB)
    return unchecked_spgemm_numeric!(indicesC, dataC, indptrC, m, n,
                                     indptrA, indicesA, dataA, indptrB, indicesB, dataB)
end

# bsr_spgemm_numeric: mb, kb, nb, b, nnzbA, indptrA, indicesA, dataA, nnzbB, indptrB, indicesB,
#                     dataB, indptrC, indicesC, dataC
function bsr_spgemm_numeric_job(args::Ptr{Int64}, ::Type{TvA}, ::Type{TiA}, ::Type{TvB},
                                ::Type{TiB}, ::Type{TiC}, ::Type{TvC}) where {TvA,TiA,TvB,TiB,TiC,TvC}
    s = Slots(args)
    mb, kb, nb, b = size!(s, 2, "mb"), size!(s, 3, "kb"), size!(s, 4, "nb"), size!(s, 5, "b")
    nnzA, nnzB = size!(s, 6, "nnzbA"), size!(s, 10, "nnzbB")
    @forward problem(s)
    @check b >= 1 "block size b = $b must be at least 1"
    indptrA, indicesA = buffer!(s, TiA, 7, "A: indptr", mb + 1), buffer!(s, TiA, 8, "A: indices", nnzA)
    dataA = buffer!(s, TvA, 9, "A: data", b, b, nnzA)
    indptrB, indicesB = buffer!(s, TiB, 11, "B: indptr", kb + 1), buffer!(s, TiB, 12, "B: indices", nnzB)
    dataB = buffer!(s, TvB, 13, "B: data", b, b, nnzB)
    indptrC, nC = output_indptr!(s, 14, mb)
    indicesC, dataC = buffer!(s, TiC, 15, "C: indices", nC), buffer!(s, TvC, 16, "C: data", b, b, nC)
    @forward problem(s)
    @forward bsr_numeric_problem(indicesC, dataC, indptrC, mb, kb, nb,
                                 indptrA, indicesA, dataA, indptrB, indicesB, dataB)
    return unchecked_bsr_spgemm_numeric!(indicesC, dataC, indptrC, mb, nb,
                                         indptrA, indicesA, dataA, indptrB, indicesB, dataB)
end

# --- resolving keys to entry points ----------------------------------------------------------------

const TYPES = Dict{String,DataType}("Float16" => Float16, "Float32" => Float32,
                                    "Float64" => Float64, "Int32" => Int32, "Int64" => Int64)

# kernel name => (job, positions of index types in the key, number of types)
const KERNELS = Dict{String,Tuple{Function,Vector{Int},Int}}(
    "csr_spmm" => (csr_spmm_job, [2], 4),
    "bsr_spmm" => (bsr_spmm_job, [2], 4),
    "csr_spgemm_symbolic" => (csr_spgemm_symbolic_job, [1, 2], 2),
    "csr_spgemm_numeric" => (csr_spgemm_numeric_job, [2, 4, 5], 6),
    "bsr_spgemm_numeric" => (bsr_spgemm_numeric_job, [2, 4, 5], 6),
)

"""
    Entry{job,Tuple{types...}}()

A job specialised on its types, callable from C as `int32 f(int64 *args)`. Both the job function
and its types are type parameters, so the compiled entry calls the kernel without dispatch.
"""
struct Entry{J,T<:Tuple} end
(::Entry{J,Tuple{A,B}})(args::Ptr{Int64}) where {J,A,B} = guarded(a -> J(a, A, B), args)
(::Entry{J,Tuple{A,B,C,D}})(args::Ptr{Int64}) where {J,A,B,C,D} =
    guarded(a -> J(a, A, B, C, D), args)
(::Entry{J,Tuple{A,B,C,D,E,F}})(args::Ptr{Int64}) where {J,A,B,C,D,E,F} =
    guarded(a -> J(a, A, B, C, D, E, F), args)

# Compiled entry points by key; the CFunction objects must stay alive while C holds the pointers.
const ENTRIES = Dict{String,Base.CFunction}()

"""
    parse_key(key) -> (job, Tuple{types...}) or a message

Parse `kernel:T1,T2,...` against the fixed tables; never evaluates the key.
"""
function parse_key(key::AbstractString)
    parts = split(key, ':')
    @check(length(parts) == 2, "entry point key $(repr(key)) is not of the form kernel:T1,T2,...")
    kernel, typelist = parts
    @check(haskey(KERNELS, kernel), "unknown kernel $(repr(String(kernel))) in key $(repr(key)); " *
                                    "known: $(join(sort!(collect(keys(KERNELS))), ", "))")
    job, index_positions, arity = KERNELS[kernel]
    names = split(typelist, ',')
    @check(length(names) == arity, "key $(repr(key)): $kernel takes $arity types, got $(length(names))")
    types = DataType[]
    for (i, name) in enumerate(names)
        @check(haskey(TYPES, name), "key $(repr(key)): unknown type $(repr(String(name))); " *
                                    "known: $(join(sort!(collect(keys(TYPES))), ", "))")
        T = TYPES[name]
        @check(!(i in index_positions) || T <: Integer,
               "key $(repr(key)): type $i is an index type and must be Int32 or Int64, got $name")
        push!(types, T)
    end
    return job, Tuple{types...}
end

"""
    entry_pointer(key) -> Ptr{Cvoid} or a message

The C function pointer of the entry point named by `key` (e.g.
`csr_spmm:Float32,Int32,Float64,Float64`), compiled on first request and kept alive for the life
of the process. GPU keys (`cuda_*`) are handed to `SparseJL.GPU.entry`.
"""
function entry_pointer(key::AbstractString)
    cf = get(ENTRIES, key, nothing)
    cf === nothing || return Base.unsafe_convert(Ptr{Cvoid}, cf)
    startswith(key, "cuda_") && return gpu_entry(key)
    parsed = parse_key(key)
    parsed isa String && return parsed
    job, T = parsed
    cf = cfunction(Entry{job,T}())
    ENTRIES[String(key)] = cf
    return Base.unsafe_convert(Ptr{Cvoid}, cf)
end

# A barrier: with the entry's type known here, the C trampoline calls it without dispatch.
cfunction(entry::E) where {E<:Entry} = @cfunction($entry, Cint, (Ptr{Int64},))

"GPU entry points live in `SparseJL.GPU` (src/cuda), which opens no library until used."
gpu_entry(key::AbstractString) =
    isdefined(parentmodule(@__MODULE__), :GPU) ? parentmodule(@__MODULE__).GPU.entry(key) :
    "GPU entry point $(repr(key)) requested, but this SparseJL was built without src/cuda"

const MAX_KEY_LENGTH = 256

# resolve: name_ptr, name_len, out (address of an int64 that receives the entry point)
function resolve_job(args::Ptr{Int64})
    len = slot(args, 3)
    @check 0 <= len <= MAX_KEY_LENGTH "entry point key length $len is outside 0:$MAX_KEY_LENGTH"
    @check slot(args, 2) != 0 "resolve: the key pointer is null"
    @check slot(args, 4) != 0 "resolve: the out pointer is null"
    key = unsafe_string(Ptr{UInt8}(UInt(reinterpret(UInt64, slot(args, 2)))), len)
    @check isascii(key) "entry point key $(repr(key)) is not ASCII"
    ptr = entry_pointer(key)
    ptr isa String && return ptr
    out = Ptr{Int64}(UInt(reinterpret(UInt64, slot(args, 4))))
    unsafe_store!(out, reinterpret(Int64, UInt64(UInt(ptr))))
    return nothing
end

"Entry point `resolve` (docs/abi.md): slots err, errlen, name_ptr, name_len, out."
resolve(args::Ptr{Int64}) = guarded(resolve_job, args)

# eval: src_ptr, src_len, out_ptr, out_cap; writes `string(value)` NUL-terminated into out
function eval_job(args::Ptr{Int64})
    len = slot(args, 3)
    @check len >= 0 "source length $len is negative"
    @check len == 0 || slot(args, 2) != 0 "eval: the source pointer is null"
    src = len == 0 ? "" : unsafe_string(Ptr{UInt8}(UInt(reinterpret(UInt64, slot(args, 2)))), len)
    value = Base.include_string(Main, src, "sparsejl-eval")
    write_cstring(slot(args, 4), slot(args, 5), string(value))
    return nothing
end

"Entry point `eval`: evaluate Julia source in `Main` (a debugging aid for the Python side)."
evaluate(args::Ptr{Int64}) = guarded(eval_job, args)

# --- the owner thread -------------------------------------------------------------------------------

"Spins on the mailbox before `serve` sleeps on its semaphore (settable: `SPIN_LIMIT[] = n`)."
const SPIN_LIMIT = Ref(20000)

"""
    serve(box, go, done)

The owner thread's loop; never returns. `box` holds four Int64: the job's function pointer, its
args pointer, the returned status, and a flag the caller sets to 1. The loop spins up to
`SPIN_LIMIT[]` times on the flag, then sleeps on the POSIX semaphore `go`; after each job it
posts `done`.
"""
function serve(box::Ptr{Int64}, go::Ptr{Cvoid}, done::Ptr{Cvoid})
    while true
        spins = 0
        while unsafe_load(box, 4) == 0
            spins += 1
            if spins > SPIN_LIMIT[]
                ccall(:sem_wait, Cint, (Ptr{Cvoid},), go); spins = 0
            end
            ccall(:jl_cpu_pause, Cvoid, ())
        end
        unsafe_store!(box, 0, 4)
        f = Ptr{Cvoid}(unsafe_load(box, 1)); a = Ptr{Cvoid}(unsafe_load(box, 2))
        st = ccall(f, Cint, (Ptr{Cvoid},), a)
        unsafe_store!(box, Int64(st), 3)
        ccall(:sem_post, Cint, (Ptr{Cvoid},), done)
    end
end

"""
    bootstrap_pointers() -> Tuple{Ptr{Cvoid},Ptr{Cvoid},Ptr{Cvoid}}

C function pointers of `serve` (`void serve(int64 *box, sem_t *go, sem_t *done)`), `resolve` and
`eval` (both `int32 f(int64 *args)`), valid for the life of the process.
"""
function bootstrap_pointers()
    return (@cfunction(serve, Cvoid, (Ptr{Int64}, Ptr{Cvoid}, Ptr{Cvoid})),
            @cfunction(resolve, Cint, (Ptr{Int64},)),
            @cfunction(evaluate, Cint, (Ptr{Int64},)))
end

end # module CABI
