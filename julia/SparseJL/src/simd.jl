# A minimal explicit-SIMD layer for the register-tiled kernels: LLVM vectors as NTuples of
# VecElement (no package needed, works from Julia 1.5 on). LLVM's own vectoriser packs the scalar
# tile of a BSR block product across the wrong dimension; spelling the vectors out keeps whole
# cache lines of B in registers and broadcasts one block entry at a time.

const Vec{W,T} = NTuple{W,VecElement{T}}

"Element types with an explicit-SIMD kernel."
const SIMDFloat = Union{Float32,Float64}

"Lanes of one 64-byte vector of `T` (LLVM splits it on machines with narrower registers)."
lanes(::Type{T}) where {T} = 64 ÷ sizeof(T)

@inline vload(::Val{W}, p::Ptr{T}) where {W,T} = unsafe_load(Ptr{Vec{W,T}}(p))
@inline vstore!(p::Ptr{T}, v::Vec{W,T}) where {W,T} = (unsafe_store!(Ptr{Vec{W,T}}(p), v); nothing)
@inline vbroadcast(::Val{W}, x::T) where {W,T} = ntuple(_ -> VecElement(x), Val(W))
@inline vzero(::Val{W}, ::Type{T}) where {W,T} = vbroadcast(Val(W), zero(T))
@inline vsum(v::Vec{W,T}) where {W,T} = sum(x -> x.value, v)

"`a*b + c` lane by lane, contracted to fused multiply-adds."
@generated function vmuladd(a::Vec{W,T}, b::Vec{W,T}, c::Vec{W,T}) where {W,T<:SIMDFloat}
    vt = "<$W x $(T === Float64 ? "double" : "float")>"
    ir = """
        %p = fmul contract $vt %0, %1
        %r = fadd contract $vt %p, %2
        ret $vt %r
        """
    return :(Base.llvmcall($ir, Vec{W,T}, Tuple{Vec{W,T},Vec{W,T},Vec{W,T}}, a, b, c))
end

"Hint the CPU to fetch the cache line at `p` into all cache levels (no fault if invalid)."
@inline prefetch(p::Ptr{Int8}) = ccall("llvm.prefetch", llvmcall, Cvoid, (Ptr{Int8}, Int32, Int32, Int32),
                                        p, Int32(0), Int32(3), Int32(1))
# The address is taken as a Ptr{Int8} directly: inference of `pointer(v, k)` for an abstractly
# typed `v::Array` applies pointer intrinsics to the UnionAll `Ptr`, which Julia 1.5's optimiser
# reports as an internal error (a page of traceback, though the result is right).
@inline prefetch(v::Array{T}, k::Int) where {T} =
    (GC.@preserve v prefetch(ccall(:jl_array_ptr, Ptr{Int8}, (Any,), v) + (k - 1) * sizeof(T)); nothing)
@inline prefetch(v, k::Int) = nothing
