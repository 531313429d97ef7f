# The three products of a linear layer with a sparse weight W (m×k: out×in) on activations held
# row-major, as PyTorch holds them: X (n×k), Y (n×m) for n tokens. Julia sees them in place as
# Xt (k×n) and Yt (m×n), so a token is a contiguous column.
#
#   forward      Y  = X*Wᵀ + bias     Yt[:, t]  = W  * Xt[:, t] + bias
#   input grad   dX = dY*W            dXt[:, t] = Wᵀ * dYt[:, t]
#   sddmm        out[(i, j) stored in P] = sum_t X[t, i] * Y[t, j]     (X n×m, Y n×k, P m×k)
#
# The weight gradient of the layer is sddmm(W's pattern, dY, X). No kernel copies X or Y; each
# writes every element of its output exactly once.
#
# The BSR kernels share one register tile (`tile_sum!`): U vectors along a block's rows or
# columns by R broadcast scalars, accumulated over a run of block entries. What is contiguous
# decides the roles: a stored block is row-major, so the input gradient and SDDMM read its rows
# (or rows of X) as vectors directly, while the forward product first transposes the blocks of
# one block row into a small buffer of its own thread (b² values per block, against b²·n
# multiply-adds) so that it, too, reads vectors along the output.

"""
    tile_sum!(pOut, sOut, pInit, segment, nseg, len, sV, sS, sR, Val(W), Val(U), Val(R))

`out[r][u] = init[u] + sum over segments q and steps s of V_q[s][u] * S_q[s][r]` for U vectors
of W lanes (u) and R scalars (r), where `(pV, pS) = segment(q)` and step s reads the vectors at
`pV + s*sV` and the scalar r at `pS + s*sS + r*sR` (strides in elements). Output r, vector u is
stored at `pOut + r*sOut + u*W`; `pInit` is null (zeros) or U vectors.
"""
@generated function tile_sum!(pOut::Ptr{T}, sOut::Int, pInit::Ptr{T}, segment::F, nseg::Int,
                              len::Int, sV::Int, sS::Int, sR::Int,
                              ::Val{W}, ::Val{U}, ::Val{R}) where {T,F,W,U,R}
    z = sizeof(T)
    acc(u, r) = Symbol(:acc_, u, :_, r)
    v(u) = Symbol(:v_, u)
    start = [:($(v(u)) = pInit == C_NULL ? vzero(Val($W), $T) : vload(Val($W), pInit + $((u - 1) * W * z)))
             for u in 1:U]
    init = [:($(acc(u, r)) = $(v(u))) for u in 1:U for r in 1:R]
    loads = [:($(v(u)) = vload(Val($W), pv + $((u - 1) * W * z))) for u in 1:U]
    fmas = Expr[]
    for r in 1:R
        push!(fmas, :(d = vbroadcast(Val($W), unsafe_load(ps + $(r - 1) * sRz))))
        append!(fmas, [:($(acc(u, r)) = vmuladd($(v(u)), d, $(acc(u, r)))) for u in 1:U])
    end
    stores = [:(vstore!(pOut + ($(r - 1) * sOut + $((u - 1) * W)) * $z, $(acc(u, r))))
              for u in 1:U for r in 1:R]
    quote
        sVz, sSz, sRz = sV * $z, sS * $z, sR * $z
        $(start...)
        $(init...)
        for q in 1:nseg
            pv, ps = segment(q)
            for _ in 1:len
                $(loads...)
                $(fmas...)
                pv += sVz
                ps += sSz
            end
        end
        $(stores...)
        return nothing
    end
end

"""
    each_tile(f, n, Val(R))

Call `f(first, Val(r))` on consecutive runs of `r` of `1:n`: runs of R, then 4, 2 and 1 for
the rest, so that every run is a compiled tile.
"""
@inline function each_tile(f::F, n::Int, ::Val{R}) where {F,R}
    t = 1
    while t + R - 1 <= n
        f(t, Val(R))
        t += R
    end
    if R > 4 && t + 3 <= n
        f(t, Val(4))
        t += 4
    end
    if R > 2 && t + 1 <= n
        f(t, Val(2))
        t += 2
    end
    while t <= n
        f(t, Val(1))
        t += 1
    end
    return nothing
end

"""
    with_simd_shape(f, T, b)

Call `f(Val(L), Val(U), Val(R))` and return `true`, with L the lanes of a vector for blocks of
size `b`, and U vectors by R scalars per tile for this machine's vector registers; return `false`
when no vector width divides `b`. The branches name every shape, so the kernels are called without dynamic dispatch, which
cost ~15 µs per call inside a job (whose helper threads spin meanwhile).
"""
@inline function with_simd_shape(f::F, ::Type{T}, b::Int) where {F,T}
    W = lanes(T)
    if WIDE_VECTORS[]
        b % W == 0 && (f(Val(W), Val(2), Val(8)); return true)
        b % (W ÷ 2) == 0 && (f(Val(W ÷ 2), Val(2), Val(8)); return true)
        b % (W ÷ 4) == 0 && (f(Val(W ÷ 4), Val(2), Val(8)); return true)
    else
        b % W == 0 && (f(Val(W), Val(1), Val(6)); return true)
        b % (W ÷ 2) == 0 && (f(Val(W ÷ 2), Val(1), Val(6)); return true)
        b % (W ÷ 4) == 0 && (f(Val(W ÷ 4), Val(1), Val(6)); return true)
    end
    return false
end

"Call `f(first_vector, Val(u))` over the `nvec` vectors of a block row, in runs of at most U."
@inline function each_vector_run(f::F, nvec::Int, ::Val{U}) where {F,U}
    v = 0
    while v + U <= nvec
        f(v, Val(U))
        v += U
    end
    while v < nvec
        f(v, Val(1))
        v += 1
    end
    return nothing
end

bsr_work(A::BSRMatrix, n::Int) = widemul(nnzb(A) * blocksize(A)^2, max(n, 1))

# One buffer per thread, kept between calls: a chunk of a loop runs on one thread at a time, and
# a fresh allocation per call cost more than the small products it serves.
const THREAD_BUFFERS = Vector{UInt8}[]

"An uninitialised 64-byte aligned vector of `len` `T`s in the calling thread's buffer."
function thread_buffer(::Type{T}, len::Int) where {T}
    id = Threads.threadid()
    while length(THREAD_BUFFERS) < nthreads()
        push!(THREAD_BUFFERS, UInt8[])      # first called by the owner thread, before any loop
    end
    buf = THREAD_BUFFERS[id]
    bytes = len * sizeof(T) + 64
    if length(buf) < bytes
        buf = THREAD_BUFFERS[id] = Vector{UInt8}(undef, bytes)
    end
    p = pointer(buf)
    p += (64 - UInt(p) % 64) % 64
    return unsafe_wrap(Array, Ptr{T}(p), len)
end

# --- forward: Yt = W*Xt + bias --------------------------------------------------------------------

"""
    unchecked_linear!(Yt, W, Xt, bias)

`Yt = W*Xt .+ bias` (`bias` empty for none), trusting that `W` passed `format_problem` and that
`Yt` is m×n, `Xt` k×n and `bias` empty or of length m.
"""
function unchecked_linear!(Yt::Matrix{T}, W::BSRMatrix{T}, Xt::Matrix{T}, bias::Vector{T}) where {T<:SIMDFloat}
    thread_buffer(T, 0)                           # every thread's buffer exists before the loop
    done = with_simd_shape(T, blocksize(W)) do lanes, tile_u, tile_r
        linear_simd!(Yt, W, Xt, bias, lanes, tile_u, tile_r)
    end
    return done ? Yt : linear_any!(Yt, W, Xt, bias)
end

# A function barrier: the lanes and tile shape are constants from here on.
function linear_simd!(Yt::Matrix{T}, W::BSRMatrix{T}, Xt::Matrix{T}, bias::Vector{T},
                      lanes::Val, tile_u::Val, tile_r::Val) where {T}
    b, n = blocksize(W), size(Xt, 2)
    indptr = W.indptr
    cumwork = r -> Int(@inbounds indptr[r+1]) * b + r
    foreach_rowchunk(cumwork, W.mb, bsr_work(W, n)) do lo, hi
        linear_rows!(Yt, W, Xt, bias, lo, hi, lanes, tile_u, tile_r)
    end
    return Yt
end
unchecked_linear!(Yt::AbstractMatrix, W::BSRMatrix, Xt::AbstractMatrix, bias::AbstractVector) =
    linear_any!(Yt, W, Xt, bias)

function linear_rows!(Yt::Matrix{T}, W::BSRMatrix{T}, Xt::Matrix{T}, bias::Vector{T},
                      lo::Int, hi::Int, ::Val{L}, ::Val{U}, ::Val{R}) where {T,L,U,R}
    b = blocksize(W)
    m, k, n = size(Yt, 1), size(Xt, 1), size(Xt, 2)
    indptr, indices = W.indptr, W.indices
    most = 0
    for I in lo:hi
        most = max(most, Int(indptr[I+1] - indptr[I]))
    end
    packed = thread_buffer(T, b * b * most)       # valid while THREAD_BUFFERS holds it: this call
    GC.@preserve Yt W Xt bias THREAD_BUFFERS begin
        pY, pX, pP, pD = pointer(Yt), pointer(Xt), pointer(packed), pointer(W.data)
        pB = isempty(bias) ? Ptr{T}(C_NULL) : pointer(bias)
        for I in lo:hi
            k0, nblk = Int(indptr[I]), Int(indptr[I+1] - indptr[I])
            transpose_blocks!(pP, pD, b, k0, nblk)
            o = (I - 1) * b                                    # first output row, 0-based
            each_tile(n, Val(R)) do t, r
                each_vector_run(b ÷ L, Val(U)) do v, u
                    vo = o + v * L
                    segment = q -> (pP + ((q - 1) * b * b + v * L) * sizeof(T),       # &packed[vo, 1, q]
                                    pX + ((t - 1) * k + Int(@inbounds indices[k0+q]) * b) * sizeof(T))
                    tile_sum!(pY + ((t - 1) * m + vo) * sizeof(T), m,
                              pB == C_NULL ? pB : pB + vo * sizeof(T),
                              segment, nblk, b, b, 1, k, Val(L), u, r)
                end
            end
        end
    end
    return nothing
end

"""
Blocks k0+1 .. k0+nblk of the stored data (row-major), transposed into `pP` (column-major), in
4×4 tiles where b allows (half the time of a plain loop, whose stores stride a whole block row).
"""
function transpose_blocks!(pP::Ptr{T}, pD::Ptr{T}, b::Int, k0::Int, nblk::Int) where {T}
    t = b % 4 == 0 ? 4 : 1
    @inbounds for q in 1:nblk
        src = pD + (k0 + q - 1) * b * b * sizeof(T)
        dst = pP + (q - 1) * b * b * sizeof(T)
        for r0 in 0:t:b-1, c0 in 0:t:b-1, c in c0:c0+t-1, r in r0:r0+t-1
            unsafe_store!(dst, unsafe_load(src, r * b + c + 1), c * b + r + 1)
        end
    end
    return nothing
end

function linear_any!(Yt::AbstractMatrix{T}, W::BSRMatrix, Xt::AbstractMatrix, bias::AbstractVector) where {T}
    b, n = blocksize(W), size(Xt, 2)
    D, indptr, indices = W.data, W.indptr, W.indices
    cumwork = r -> Int(@inbounds indptr[r+1]) * b + r
    foreach_rowchunk(cumwork, W.mb, bsr_work(W, n)) do lo, hi
        @inbounds for I in lo:hi, t in 1:n, r in 1:b
            i = (I - 1) * b + r
            s = isempty(bias) ? zero(T) : convert(T, bias[i])
            for p in Int(indptr[I])+1:Int(indptr[I+1])
                co = Int(indices[p]) * b
                for c in 1:b
                    s = muladd(convert(T, D[c, r, p]), convert(T, Xt[co+c, t]), s)
                end
            end
            Yt[i, t] = s
        end
    end
    return Yt
end

function unchecked_linear!(Yt::AbstractMatrix{T}, W::CSRMatrix, Xt::AbstractMatrix, bias::AbstractVector) where {T}
    n = size(Xt, 2)
    indptr, indices, data = W.indptr, W.indices, W.data
    foreach_rowchunk(stored_work(indptr), W.m, widemul(nnz(W), max(n, 1))) do lo, hi
        @inbounds for i in lo:hi
            p0, p1 = Int(indptr[i]) + 1, Int(indptr[i+1])
            b0 = isempty(bias) ? zero(T) : convert(T, bias[i])
            for t in 1:n
                s = b0
                for p in p0:p1
                    s = muladd(convert(T, data[p]), convert(T, Xt[Int(indices[p])+1, t]), s)
                end
                Yt[i, t] = s
            end
        end
    end
    return Yt
end

# --- input gradient: dXt = Wᵀ*dYt --------------------------------------------------------------------

"""
    block_columns(indptr, indices, nrows, ncols) -> (colptr, rowof, which)

The stored entries (blocks) of a compressed structure listed by column: column `j` (1-based) holds
positions `colptr[j]+1 : colptr[j+1]` of `rowof` (their 1-based rows) and `which` (their 1-based
positions in `indices`), in row order.
"""
function block_columns(indptr::Vector{Ti}, indices::Vector{Ti}, nrows::Int, ncols::Int) where {Ti}
    nstored = Int(indptr[nrows+1])
    colptr = zeros(Int, ncols + 1)
    @inbounds for p in 1:nstored
        colptr[Int(indices[p])+2] += 1
    end
    cumsum!(colptr, colptr)
    next = colptr[1:ncols]
    rowof, which = Vector{Int}(undef, nstored), Vector{Int}(undef, nstored)
    @inbounds for i in 1:nrows, p in Int(indptr[i])+1:Int(indptr[i+1])
        j = Int(indices[p]) + 1
        q = next[j] += 1
        rowof[q], which[q] = i, p
    end
    return colptr, rowof, which
end

"""
    unchecked_linear_input_grad!(dXt, W, dYt)

`dXt = Wᵀ*dYt`, trusting that `W` passed `format_problem` and that `dXt` is k×n and `dYt` m×n.
Threads split the columns of W (the rows of dXt), so each output element has one writer.
"""
function unchecked_linear_input_grad!(dXt::AbstractMatrix, W::BSRMatrix, dYt::AbstractMatrix)
    b, n = blocksize(W), size(dYt, 2)
    colptr, rowof, which = block_columns(W.indptr, W.indices, W.mb, W.nb)
    cumwork = r -> (@inbounds colptr[r+1]) * b + r
    foreach_rowchunk(cumwork, W.nb, bsr_work(W, n)) do lo, hi
        input_grad_columns!(dXt, W, dYt, colptr, rowof, which, lo, hi)
    end
    return dXt
end

function input_grad_columns!(dXt::Matrix{T}, W::BSRMatrix{T}, dYt::Matrix{T}, colptr, rowof, which,
                             lo::Int, hi::Int) where {T<:SIMDFloat}
    done = with_simd_shape(T, blocksize(W)) do lanes, tile_u, tile_r
        input_grad_simd!(dXt, W, dYt, colptr, rowof, which, lo, hi, lanes, tile_u, tile_r)
    end
    done || input_grad_any!(dXt, W, dYt, colptr, rowof, which, lo, hi)
    return nothing
end
input_grad_columns!(dXt, W, dYt, colptr, rowof, which, lo, hi) =
    input_grad_any!(dXt, W, dYt, colptr, rowof, which, lo, hi)

function input_grad_simd!(dXt::Matrix{T}, W::BSRMatrix{T}, dYt::Matrix{T}, colptr, rowof, which,
                          lo::Int, hi::Int, ::Val{L}, ::Val{U}, ::Val{R}) where {T,L,U,R}
    b = blocksize(W)
    k, m, n = size(dXt, 1), size(dYt, 1), size(dYt, 2)
    GC.@preserve dXt W dYt colptr rowof which begin
        pX, pY, pD = pointer(dXt), pointer(dYt), pointer(W.data)
        for J in lo:hi
            q0, nblk = colptr[J], colptr[J+1] - colptr[J]
            c = (J - 1) * b                                    # first output column, 0-based
            each_tile(n, Val(R)) do t, r
                each_vector_run(b ÷ L, Val(U)) do v, u
                    segment = q -> (pD + ((@inbounds(which[q0+q]) - 1) * b * b + v * L) * sizeof(T),   # row 1 of the block
                                    pY + ((t - 1) * m + (@inbounds(rowof[q0+q]) - 1) * b) * sizeof(T))
                    tile_sum!(pX + ((t - 1) * k + c + v * L) * sizeof(T), k, Ptr{T}(C_NULL),
                              segment, nblk, b, b, 1, m, Val(L), u, r)
                end
            end
        end
    end
    return nothing
end

function input_grad_any!(dXt::AbstractMatrix{T}, W::BSRMatrix, dYt::AbstractMatrix, colptr, rowof, which,
                         lo::Int, hi::Int) where {T}
    b, n, D = blocksize(W), size(dYt, 2), W.data
    @inbounds for J in lo:hi, t in 1:n, c in 1:b
        s = zero(T)
        for q in colptr[J]+1:colptr[J+1]
            ro, p = (rowof[q] - 1) * b, which[q]
            for r in 1:b
                s = muladd(convert(T, D[c, r, p]), convert(T, dYt[ro+r, t]), s)
            end
        end
        dXt[(J-1)*b+c, t] = s
    end
    return nothing
end

function unchecked_linear_input_grad!(dXt::AbstractMatrix{T}, W::CSRMatrix, dYt::AbstractMatrix) where {T}
    n = size(dYt, 2)
    colptr, rowof, which = block_columns(W.indptr, W.indices, W.m, W.n)
    data = W.data
    foreach_rowchunk(r -> (@inbounds colptr[r+1]) + r, W.n, widemul(nnz(W), max(n, 1))) do lo, hi
        @inbounds for j in lo:hi
            q0, q1 = colptr[j] + 1, colptr[j+1]
            for t in 1:n
                s = zero(T)
                for q in q0:q1
                    s = muladd(convert(T, data[which[q]]), convert(T, dYt[rowof[q], t]), s)
                end
                dXt[j, t] = s
            end
        end
    end
    return dXt
end

# --- SDDMM: the stored entries of P set to (Xᵀ*Y) there --------------------------------------------

"""
    unchecked_sddmm!(P, Xt, Yt)

Sets the stored entries of `P` (m×k; its data is the output) to those of `X'*Y`, where `Xt`
(m×n) and `Yt` (k×n) are the transposes of X and Y; stored entries past `indptr`'s end are
zeroed. Trusts that `P` passed `format_problem` and the sizes.
"""
function unchecked_sddmm!(P::BSRMatrix{T}, Xt::AbstractMatrix, Yt::AbstractMatrix) where {T}
    b, n = blocksize(P), size(Xt, 2)
    indptr = P.indptr
    fill!(view(P.data, :, :, nnzb(P)+1:size(P.data, 3)), zero(T))
    cumwork = r -> Int(@inbounds indptr[r+1]) * b + r
    foreach_rowchunk(cumwork, P.mb, bsr_work(P, n)) do lo, hi
        sddmm_rows!(P, Xt, Yt, lo, hi)
    end
    return P
end

function sddmm_rows!(P::BSRMatrix{T}, Xt::Matrix{T}, Yt::Matrix{T}, lo::Int, hi::Int) where {T<:SIMDFloat}
    done = with_simd_shape(T, blocksize(P)) do lanes, tile_u, tile_r
        sddmm_simd!(P, Xt, Yt, lo, hi, lanes, tile_u, tile_r)
    end
    done || sddmm_any!(P, Xt, Yt, lo, hi)
    return nothing
end
sddmm_rows!(P::BSRMatrix, Xt, Yt, lo::Int, hi::Int) = sddmm_any!(P, Xt, Yt, lo, hi)

function sddmm_simd!(P::BSRMatrix{T}, Xt::Matrix{T}, Yt::Matrix{T}, lo::Int, hi::Int,
                     ::Val{L}, ::Val{U}, ::Val{R}) where {T,L,U,R}
    b = blocksize(P)
    m, k, n = size(Xt, 1), size(Yt, 1), size(Xt, 2)
    indptr, indices = P.indptr, P.indices
    GC.@preserve P Xt Yt begin
        pX, pY, pD = pointer(Xt), pointer(Yt), pointer(P.data)
        for I in lo:hi, p in Int(indptr[I])+1:Int(indptr[I+1])
            cj = Int(indices[p]) * b                            # first column of the block, 0-based
            pblock = pD + (p - 1) * b * b * sizeof(T)
            each_tile(b, Val(R)) do r0, r
                each_vector_run(b ÷ L, Val(U)) do v, u
                    segment = _ -> (pY + (cj + v * L) * sizeof(T),                    # &Yt[cj + v*L + 1, 1]
                                    pX + ((I - 1) * b + r0 - 1) * sizeof(T))          # &Xt[row r0 of block row I, 1]
                    tile_sum!(pblock + ((r0 - 1) * b + v * L) * sizeof(T), b, Ptr{T}(C_NULL),
                              segment, 1, n, k, m, 1, Val(L), u, r)
                end
            end
        end
    end
    return nothing
end

function sddmm_any!(P::BSRMatrix{T}, Xt::AbstractMatrix, Yt::AbstractMatrix, lo::Int, hi::Int) where {T}
    b, n, D = blocksize(P), size(Xt, 2), P.data
    indptr, indices = P.indptr, P.indices
    @inbounds for I in lo:hi, p in Int(indptr[I])+1:Int(indptr[I+1]), r in 1:b, c in 1:b
        i, j = (I - 1) * b + r, Int(indices[p]) * b + c
        s = zero(T)
        for t in 1:n
            s = muladd(convert(T, Xt[i, t]), convert(T, Yt[j, t]), s)
        end
        D[c, r, p] = s
    end
    return nothing
end

function unchecked_sddmm!(P::CSRMatrix{T}, Xt::AbstractMatrix, Yt::AbstractMatrix) where {T}
    n = size(Xt, 2)
    indptr, indices, data = P.indptr, P.indices, P.data
    fill!(view(data, nnz(P)+1:length(data)), zero(T))
    foreach_rowchunk(stored_work(indptr), P.m, widemul(nnz(P), max(n, 1))) do lo, hi
        @inbounds for i in lo:hi, p in Int(indptr[i])+1:Int(indptr[i+1])
            j = Int(indices[p]) + 1
            s = zero(T)
            for t in 1:n
                s = muladd(convert(T, Xt[i, t]), convert(T, Yt[j, t]), s)
            end
            data[p] = s
        end
    end
    return P
end
