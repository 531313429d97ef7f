# Dense scratch arrays kept between calls, for the operands a product builds itself: a 64-byte
# aligned copy of B, row-major copies of column-major operands, row-major results, per-thread
# partial sums. One buffer per purpose (slot), so one product can hold several at once; a
# buffer is reused while another call does not hold it, so steady-state products allocate none.

mutable struct Scratch
    lock::ReentrantLock
    buf::Vector{UInt8}
    wrapped::Any            # the array last handed out (into `buf`), reused while its shape fits
end

const SCRATCH_ALIGNED, SCRATCH_B, SCRATCH_C, SCRATCH_PARTIAL = 1, 2, 3, 4
const SCRATCH = [Scratch(ReentrantLock(), UInt8[], nothing) for _ in 1:4]
"Largest scratch array kept (larger ones are allocated per call)."
const SCRATCH_MAX_BYTES = 64 << 20
"Largest aligned copy of B that the SpMM kernels make (and densified B of a SpGEMM)."
const ALIGNED_MAX_BYTES = 16 << 20

"""
    with_scratch(f, slot, T, dims)

Call `f(X)` with `X` an uninitialised 64-byte aligned `Array{T}` of size `dims`, from the buffer
of `slot` kept between calls (or freshly allocated while another call holds that buffer).
"""
function with_scratch(f::F, slot::Int, ::Type{T}, dims::NTuple{N,Int}) where {F,T,N}
    s = SCRATCH[slot]
    bytes = prod(dims) * sizeof(T)
    if !isbitstype(T) || bytes > SCRATCH_MAX_BYTES || islocked(s.lock) || !trylock(s.lock)
        return f(Array{T,N}(undef, dims))           # (islocked: the lock is reentrant)
    end
    try
        X = s.wrapped
        if !(X isa Array{T,N} && size(X) == dims)
            if length(s.buf) < bytes + 64
                s.buf = Vector{UInt8}(undef, bytes + 64)
            end
            p = pointer(s.buf)
            p += (64 - UInt(p) % 64) % 64
            X = s.wrapped = unsafe_wrap(Array, Ptr{T}(p), dims)
        end
        return f(X::Array{T,N})
    finally
        unlock(s.lock)
    end
end

# NumPy places arrays 16 bytes into a cache line, so every 64-byte vector load of B would span two
# lines (measured: ~45 % slower). When B's rows are whole lines apart and the product reuses B
# enough, the kernels read a 64-byte aligned copy instead.
"Call `f(B)` with `B` a 64-byte aligned copy of `Bt` where that pays off, else `f(Bt)`."
with_aligned(f::F, Bt::AbstractMatrix, work::Integer) where {F} = f(Bt)
function with_aligned(f::F, Bt::Matrix{T}, work::Integer) where {F,T<:SIMDFloat}
    if UInt(pointer(Bt)) % 64 == 0 || (size(Bt, 1) * sizeof(T)) % 64 != 0 ||
       work < 8 * length(Bt) || sizeof(Bt) > ALIGNED_MAX_BYTES || islocked(SCRATCH[SCRATCH_ALIGNED].lock)
        return f(Bt)
    end
    return with_scratch(SCRATCH_ALIGNED, T, size(Bt)) do B
        copyto!(B, Bt)
        f(B)
    end
end
