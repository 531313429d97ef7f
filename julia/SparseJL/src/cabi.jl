"""
    SparseJL.CABI

The C entry points that Python calls (docs/abi.md). Every job has the C signature
`int32 f(int64 *args)`: a CPU job reads its slots by the names of `abi.txt`, wraps the buffers in
place (no copies), builds the validated `CSRMatrix`/`BSRMatrix` views and runs the kernel;
`resolve` compiles the entry points (CPU and GPU) that keys name. The meaning lives in the
kernels above it.
"""
module CABI

using ..ABI
using ..ABI: LAYOUTS, parse_key
import ..GPU
using ..SparseJL: CSRMatrix, BSRMatrix, @check, @forward, format_problem, with_team, release_helpers!,
                  unchecked_spmm_rowmajor!, symbolic_problem, unchecked_spgemm_symbolic!,
                  numeric_problem, unchecked_spgemm_numeric!, bsr_numeric_problem,
                  unchecked_bsr_spgemm_numeric!, operands_problem, column_type_problem,
                  plan_spgemm!, onepass_product!, unchecked_linear!, unchecked_linear_input_grad!,
                  unchecked_sddmm!

# Invalid input is reported without raising a Julia exception: every check returns a message
# (see checks.jl), and a job returns the first one, which `guarded` turns into status 1.

# --- the jobs (slots named in abi.txt); each returns nothing or a problem -----------------------

function csr_spmm_job(s::Slots, ::Type{TvA}, ::Type{Ti}, ::Type{TvB},
                      ::Type{TvC}) where {TvA,Ti,TvB,TvC}
    m, k, n, nnz = size!(s, :m), size!(s, :k), size!(s, :n), size!(s, :nnz)
    indptr = buffer!(s, Ti, :indptr, m + 1)
    indices, data = buffer!(s, Ti, :indices, nnz), buffer!(s, TvA, :data, nnz)
    Bt, Ct = buffer!(s, TvB, :B, n, k), buffer!(s, TvC, :C, n, m)
    @forward problem(s)
    A = CSRMatrix{TvA,Ti}(m, k, indptr, indices, data; check=false)
    @forward format_problem(A)
    unchecked_spmm_rowmajor!(Ct, A, Bt)
    return nothing
end

function bsr_spmm_job(s::Slots, ::Type{TvA}, ::Type{Ti}, ::Type{TvB},
                      ::Type{TvC}) where {TvA,Ti,TvB,TvC}
    mb, kb, n = size!(s, :mb), size!(s, :kb), size!(s, :n)
    b, nnzb = size!(s, :b), size!(s, :nnzb)
    @forward problem(s)
    @check b >= 1 "block size b = $b must be at least 1"
    m, k = product!(s, mb, b, "m"), product!(s, kb, b, "k")
    indptr = buffer!(s, Ti, :indptr, mb + 1)
    indices, data = buffer!(s, Ti, :indices, nnzb), buffer!(s, TvA, :data, b, b, nnzb)
    Bt, Ct = buffer!(s, TvB, :B, n, k), buffer!(s, TvC, :C, n, m)
    @forward problem(s)
    A = BSRMatrix{TvA,Ti}(m, k, indptr, indices, data; check=false)
    @forward format_problem(A)
    unchecked_spmm_rowmajor!(Ct, A, Bt)
    return nothing
end

# room: null, or an int64 that receives the one-pass room, or -1 once indptrC is filled
function csr_spgemm_symbolic_job(s::Slots, ::Type{TiA}, ::Type{TiB}) where {TiA,TiB}
    m, k, n = size!(s, :m), size!(s, :k), size!(s, :n)
    nnzA, nnzB = size!(s, :nnzA), size!(s, :nnzB)
    indptrA = buffer!(s, TiA, :indptrA, "A: indptr", m + 1)
    indicesA = buffer!(s, TiA, :indicesA, "A: indices", nnzA)
    indptrB = buffer!(s, TiB, :indptrB, "B: indptr", k + 1)
    indicesB = buffer!(s, TiB, :indicesB, "B: indices", nnzB)
    indptrC = buffer!(s, Int64, :indptrC, "C: indptr", m + 1)
    roomout = buffer!(s, Int64, :room, slot(s, :room) == 0 ? 0 : 1)
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
@inline function output_indptr!(s::Slots, rows::Int)
    indptrC = buffer!(s, Int64, :indptrC, "C: indptr", rows + 1)
    s.problem === nothing || return indptrC, 0
    nC = indptrC[rows+1]
    nC >= 0 || note!(s, "C: indptr ends at $nC, a negative count")
    return indptrC, max(Int(nC), 0)
end

# room -1: indptrC holds C's structure; else indicesC and dataC hold the one-pass room and
# indptrC is filled here
function csr_spgemm_numeric_job(s::Slots, ::Type{TvA}, ::Type{TiA}, ::Type{TvB},
                                ::Type{TiB}, ::Type{TiC}, ::Type{TvC}) where {TvA,TiA,TvB,TiB,TiC,TvC}
    m, k, n = size!(s, :m), size!(s, :k), size!(s, :n)
    nnzA, nnzB = size!(s, :nnzA), size!(s, :nnzB)
    indptrA = buffer!(s, TiA, :indptrA, "A: indptr", m + 1)
    indicesA, dataA = buffer!(s, TiA, :indicesA, "A: indices", nnzA), buffer!(s, TvA, :dataA, "A: data", nnzA)
    indptrB = buffer!(s, TiB, :indptrB, "B: indptr", k + 1)
    indicesB, dataB = buffer!(s, TiB, :indicesB, "B: indices", nnzB), buffer!(s, TvB, :dataB, "B: data", nnzB)
    room = slot(s, :room)
    if room < 0
        indptrC, nC = output_indptr!(s, m)
    else
        indptrC, nC = buffer!(s, Int64, :indptrC, "C: indptr", m + 1), Int(room)
    end
    indicesC, dataC = buffer!(s, TiC, :indicesC, "C: indices", nC), buffer!(s, TvC, :dataC, "C: data", nC)
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

function bsr_spgemm_numeric_job(s::Slots, ::Type{TvA}, ::Type{TiA}, ::Type{TvB},
                                ::Type{TiB}, ::Type{TiC}, ::Type{TvC}) where {TvA,TiA,TvB,TiB,TiC,TvC}
    mb, kb, nb, b = size!(s, :mb), size!(s, :kb), size!(s, :nb), size!(s, :b)
    nnzA, nnzB = size!(s, :nnzbA), size!(s, :nnzbB)
    @forward problem(s)
    @check b >= 1 "block size b = $b must be at least 1"
    indptrA = buffer!(s, TiA, :indptrA, "A: indptr", mb + 1)
    indicesA, dataA = buffer!(s, TiA, :indicesA, "A: indices", nnzA), buffer!(s, TvA, :dataA, "A: data", b, b, nnzA)
    indptrB = buffer!(s, TiB, :indptrB, "B: indptr", kb + 1)
    indicesB, dataB = buffer!(s, TiB, :indicesB, "B: indices", nnzB), buffer!(s, TvB, :dataB, "B: data", b, b, nnzB)
    indptrC, nC = output_indptr!(s, mb)
    indicesC = buffer!(s, TiC, :indicesC, "C: indices", nC)
    dataC = buffer!(s, TvC, :dataC, "C: data", b, b, nC)
    @forward problem(s)
    @forward bsr_numeric_problem(indicesC, dataC, indptrC, mb, kb, nb,
                                 indptrA, indicesA, dataA, indptrB, indicesB, dataB)
    return unchecked_bsr_spgemm_numeric!(indicesC, dataC, indptrC, mb, nb,
                                         indptrA, indicesA, dataA, indptrB, indicesB, dataB)
end

# --- a linear layer's products (src/linear.jl): row-major X (n×k), Y (n×m), seen as k×n, m×n ------

"The block structure of a linear-layer job (slots mb kb b nnzb indptr indices), or a problem."
function linear_blocks!(s::Slots, ::Type{Ti}) where {Ti}
    mb, kb, b, nnzb = size!(s, :mb), size!(s, :kb), size!(s, :b), size!(s, :nnzb)
    @forward problem(s)
    @check b >= 1 "block size b = $b must be at least 1"
    product!(s, mb, b, "m"), product!(s, kb, b, "k")
    indptr, indices = buffer!(s, Ti, :indptr, mb + 1), buffer!(s, Ti, :indices, nnzb)
    @forward problem(s)
    return (mb * b, kb * b, b, nnzb, indptr, indices)
end

"The structure of a CSR linear-layer job (slots m k nnz indptr indices)."
function linear_entries!(s::Slots, ::Type{Ti}) where {Ti}
    m, k, nnz = size!(s, :m), size!(s, :k), size!(s, :nnz)
    indptr, indices = buffer!(s, Ti, :indptr, m + 1), buffer!(s, Ti, :indices, nnz)
    return (m, k, nnz, indptr, indices)
end

"A validated BSR view over the job's arrays, or the first problem."
function checked_view(s::Slots, st::Tuple, D::Array{Tv,3}) where {Tv}
    @forward problem(s)
    m, k, indptr, indices = st[1], st[2], st[5], st[6]
    W = BSRMatrix{Tv,eltype(indptr)}(m, k, indptr, indices, D; check=false)
    @forward format_problem(W)
    return W
end

"A validated CSR view over the job's arrays, or the first problem."
function checked_view(s::Slots, st::Tuple, D::Vector{Tv}) where {Tv}
    @forward problem(s)
    m, k, indptr, indices = st[1], st[2], st[4], st[5]
    W = CSRMatrix{Tv,eltype(indptr)}(m, k, indptr, indices, D; check=false)
    @forward format_problem(W)
    return W
end

function linear_products!(s::Slots, W, ::Type{Tv}) where {Tv}
    m, k = size(W)
    n = size!(s, :n)
    Xt, Yt = buffer!(s, Tv, :X, k, n), buffer!(s, Tv, :Y, m, n)
    bias = buffer!(s, Tv, :bias, slot(s, :bias) == 0 ? 0 : m)
    @forward problem(s)
    unchecked_linear!(Yt, W, Xt, bias)
    return nothing
end

function bsr_linear_job(s::Slots, ::Type{Tv}, ::Type{Ti}) where {Tv,Ti}
    st = linear_blocks!(s, Ti)
    st isa String && return st
    b, nnzb = st[3], st[4]
    W = checked_view(s, st, buffer!(s, Tv, :data, b, b, nnzb))
    W isa String && return W
    return linear_products!(s, W, Tv)
end

function csr_linear_job(s::Slots, ::Type{Tv}, ::Type{Ti}) where {Tv,Ti}
    st = linear_entries!(s, Ti)
    W = checked_view(s, st, buffer!(s, Tv, :data, st[3]))
    W isa String && return W
    return linear_products!(s, W, Tv)
end

function input_grad!(s::Slots, W, ::Type{Tv}) where {Tv}
    m, k = size(W)
    n = size!(s, :n)
    dYt, dXt = buffer!(s, Tv, :dY, m, n), buffer!(s, Tv, :dX, k, n)
    @forward problem(s)
    unchecked_linear_input_grad!(dXt, W, dYt)
    return nothing
end

function bsr_linear_input_grad_job(s::Slots, ::Type{Tv}, ::Type{Ti}) where {Tv,Ti}
    st = linear_blocks!(s, Ti)
    st isa String && return st
    b, nnzb = st[3], st[4]
    W = checked_view(s, st, buffer!(s, Tv, :data, b, b, nnzb))
    W isa String && return W
    return input_grad!(s, W, Tv)
end

function csr_linear_input_grad_job(s::Slots, ::Type{Tv}, ::Type{Ti}) where {Tv,Ti}
    st = linear_entries!(s, Ti)
    W = checked_view(s, st, buffer!(s, Tv, :data, st[3]))
    W isa String && return W
    return input_grad!(s, W, Tv)
end

# out: the values of the pattern's stored entries, which the kernel writes
function sampled!(s::Slots, P, ::Type{Tv}) where {Tv}
    m, k = size(P)
    n = size!(s, :n)
    Xt, Yt = buffer!(s, Tv, :X, m, n), buffer!(s, Tv, :Y, k, n)
    @forward problem(s)
    unchecked_sddmm!(P, Xt, Yt)
    return nothing
end

function bsr_sddmm_job(s::Slots, ::Type{Tv}, ::Type{Ti}) where {Tv,Ti}
    st = linear_blocks!(s, Ti)
    st isa String && return st
    b, nnzb = st[3], st[4]
    W = checked_view(s, st, buffer!(s, Tv, :out, b, b, nnzb))
    W isa String && return W
    return sampled!(s, W, Tv)
end

function csr_sddmm_job(s::Slots, ::Type{Tv}, ::Type{Ti}) where {Tv,Ti}
    st = linear_entries!(s, Ti)
    W = checked_view(s, st, buffer!(s, Tv, :out, st[3]))
    W isa String && return W
    return sampled!(s, W, Tv)
end

# --- resolving keys to entry points ----------------------------------------------------------------

"""
    Entry{job,Tuple{types...},layout}()

A job specialised on its types, callable from C as `int32 f(int64 *args)`. The job function, its
types and its slot layout are type parameters, so the compiled entry calls the kernel without
dispatch and reads each slot at a fixed position.
"""
struct Entry{J,T<:Tuple,L} end
(::Entry{J,Tuple{},L})(args::Ptr{Int64}) where {J,L} = guarded(a -> in_team(() -> J(Slots{L}(a)), J), args)
(::Entry{J,Tuple{A,B},L})(args::Ptr{Int64}) where {J,A,B,L} =
    guarded(a -> in_team(() -> J(Slots{L}(a), A, B), J), args)
(::Entry{J,Tuple{A,B,C,D},L})(args::Ptr{Int64}) where {J,A,B,C,D,L} =
    guarded(a -> in_team(() -> J(Slots{L}(a), A, B, C, D), J), args)
(::Entry{J,Tuple{A,B,C,D,E,F},L})(args::Ptr{Int64}) where {J,A,B,C,D,E,F,L} =
    guarded(a -> in_team(() -> J(Slots{L}(a), A, B, C, D, E, F), J), args)

"""
A CPU job holds the other threads for its loops (`with_team`); a GPU job only enqueues work, and
asks `serve` to poll for the next job for `GPU_SPIN_NS` afterwards.
"""
function in_team(job, J)
    parentmodule(J) === GPU || return with_team(job)
    NEXT_SPIN_NS[] = GPU_SPIN_NS[]
    return job()
end

"The Julia function that runs entry point `name`: `<name>_job`, in `SparseJL.GPU` for `cuda_*`."
job_function(name::AbstractString) =
    getfield(startswith(name, "cuda_") ? GPU : @__MODULE__, Symbol(name, "_job"))

# Compiled entry points by key; the CFunction objects must stay alive while C holds the pointers.
const ENTRIES = Dict{String,Base.CFunction}()

"""
    entry_pointer(key) -> Ptr{Cvoid} or a message

The C function pointer of the entry point named by `key` (e.g.
`csr_spmm:Float32,Int32,Float64,Float64`), compiled on first request and kept alive for the life
of the process. GPU entry points (`cuda_*`) open no library until they run.
"""
function entry_pointer(key::AbstractString)
    cf = get(ENTRIES, key, nothing)
    cf === nothing || return Base.unsafe_convert(Ptr{Cvoid}, cf)
    parsed = parse_key(key)
    parsed isa String && return parsed
    e, T = parsed
    cf = cfunction(Entry{job_function(e.name),T,getfield(LAYOUTS, Symbol(e.name))}())
    ENTRIES[String(key)] = cf
    return Base.unsafe_convert(Ptr{Cvoid}, cf)
end

# A barrier: with the entry's type known here, the C trampoline calls it without dispatch.
cfunction(entry::E) where {E<:Entry} = @cfunction($entry, Cint, (Ptr{Int64},))

const MAX_KEY_LENGTH = 256

function resolve_job(s::Slots)
    len = slot(s, :name_len)
    @check 0 <= len <= MAX_KEY_LENGTH "entry point key length $len is outside 0:$MAX_KEY_LENGTH"
    @check slot(s, :name) != 0 "resolve: the key pointer is null"
    @check slot(s, :out) != 0 "resolve: the out pointer is null"
    key = unsafe_string(Ptr{UInt8}(address(s, :name)), len)
    @check isascii(key) "entry point key $(repr(key)) is not ASCII"
    ptr = entry_pointer(key)
    ptr isa String && return ptr
    unsafe_store!(Ptr{Int64}(address(s, :out)), reinterpret(Int64, UInt64(UInt(ptr))))
    return nothing
end

"Entry point `resolve` (docs/abi.md): the pointer of the entry point that a key names."
resolve(args::Ptr{Int64}) = guarded(a -> resolve_job(Slots(a, :resolve)), args)

# writes `string(value)` NUL-terminated into out
function eval_job(s::Slots)
    len = slot(s, :source_len)
    @check len >= 0 "source length $len is negative"
    @check len == 0 || slot(s, :source) != 0 "eval: the source pointer is null"
    src = len == 0 ? "" : unsafe_string(Ptr{UInt8}(address(s, :source)), len)
    release_helpers!()                 # the source may schedule tasks on every thread
    value = Base.include_string(Main, src, "sparsejl-eval")
    write_cstring(slot(s, :out), slot(s, :out_cap), string(value))
    return nothing
end

"Entry point `eval`: evaluate Julia source in `Main` (a debugging aid for the Python side)."
evaluate(args::Ptr{Int64}) = guarded(a -> eval_job(Slots(a, :eval)), args)

# --- the owner thread -------------------------------------------------------------------------------

"""
Nanoseconds `serve` keeps polling the mailbox after a job before it sleeps on its semaphore
(settable: `SPIN_NS[] = n`): long enough that the next call of a stream finds it awake (Python
issues one every 5-10 us; a sleeping owner costs ~45 us to wake on the 2-core VM), short enough
that it does not hold a core that the caller's next library needs. 100 us was too long: GPT-2
medium decoding through BlockSparseLinear, where PyTorch's small ops run between projections,
made 20.0 tokens/s with it and 25.7 with 20 us (5 us: 25.8; back-to-back calls alike).
Those runs predate the spending of stale posts in `serve` (each then cost one more poll).
"""
const SPIN_NS = Ref{UInt64}(20_000)

"""
Nanoseconds `serve` polls after a GPU job (settable). A GPU job only enqueues work and returns in
microseconds, and a model issues its layers back to back with ~10-30 us of Python between them:
with `SPIN_NS` the owner fell asleep between most of them and each call paid its wake-up. The
core it holds meanwhile is one of the host's many beside a GPU.
"""
const GPU_SPIN_NS = Ref{UInt64}(200_000)
const NEXT_SPIN_NS = Ref{UInt64}(0)     # set by the job that just ran: its poll, if longer

"""
    serve(box, go, done)

The owner thread's loop; never returns. `box` holds four Int64: the job's function pointer, its
args pointer, the returned status, and a flag the caller sets to 1. The loop polls the flag for
`SPIN_NS[]` nanoseconds (`GPU_SPIN_NS[]` after a GPU job), then sleeps on the POSIX semaphore `go`; after each job it posts `done`.
"""
function serve(box::Ptr{Int64}, go::Ptr{Cvoid}, done::Ptr{Cvoid})
    while true
        since = time_ns()
        spin = max(SPIN_NS[], NEXT_SPIN_NS[])
        NEXT_SPIN_NS[] = 0
        while unsafe_load(box, 4) == 0
            if time_ns() - since > spin
                # The caller posts `go` with every job, also to an owner still polling; those posts
                # are spent here, or each would wake it at once for another poll (after a stream
                # of n calls, n polls back to back: a core taken for n x SPIN_NS).
                while ccall(:sem_trywait, Cint, (Ptr{Cvoid},), go) == 0
                end
                unsafe_load(box, 4) == 0 || break
                gc_state = ccall(:jl_gc_safe_enter, Int8, ())
                ccall(:sem_wait, Cint, (Ptr{Cvoid},), go)
                ccall(:jl_gc_safe_leave, Cvoid, (Int8,), gc_state)
                since = time_ns()
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
