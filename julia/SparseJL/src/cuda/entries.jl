# C entry points of the GPU jobs (docs/abi.md, keys `cuda_*`): `int32 f(int64 *args)` with the
# error buffer in slots 0 and 1. Types in a key name the CUDA data types of the arrays; they are
# looked up in a fixed table, never evaluated. Pointers are device addresses owned by the caller.
#
# The sparse structure lives on the device, where Julia has no kernels of its own to check it,
# so the Python side validates indptr/indices (on the GPU) before calling; here only the sizes
# and the types are checked.

const VALUE_TYPES = Dict("Float16" => CUDA_R_16F, "BFloat16" => CUDA_R_16BF,
                         "Float32" => CUDA_R_32F, "Float64" => CUDA_R_64F)
const INDEX_TYPES = Dict("Int32" => CUSPARSE_INDEX_32I, "Int64" => CUSPARSE_INDEX_64I)

const INVALID_INPUT = Union{ArgumentError,DimensionMismatch,BoundsError,InexactError,OverflowError}

@inline slot(args::Ptr{Int64}, i::Integer) = unsafe_load(args, 2 + i)
@inline pslot(args::Ptr{Int64}, i::Integer) = Ptr{Cvoid}(UInt(reinterpret(UInt64, slot(args, i))))

function write_error(args::Ptr{Int64}, msg::String)
    buf = Ptr{UInt8}(UInt(reinterpret(UInt64, unsafe_load(args, 1))))
    cap = unsafe_load(args, 2)
    (buf == C_NULL || cap <= 0) && return
    bytes = codeunits(msg)
    len = min(length(bytes), cap - 1)
    for i in 1:len
        unsafe_store!(buf, bytes[i], i)
    end
    unsafe_store!(buf, 0x00, len + 1)
    return
end

function guarded(f, args::Ptr{Int64})::Int32
    try
        f(args)
        return Int32(0)
    catch e
        write_error(args, sprint(showerror, e))
        return e isa INVALID_INPUT ? Int32(1) : Int32(2)
    end
end

# -- jobs (slot numbers are 1-based after the error buffer)

"cuda_init: path_ptr, path_len, device, out(int64[2]: cuSPARSE version, driver version)"
function job_init(args)
    path = unsafe_string(Ptr{UInt8}(pslot(args, 1)), slot(args, 2))
    open_cusparse(path)
    st = use_device(slot(args, 3), C_NULL)
    out = Ptr{Int64}(pslot(args, 4))
    unsafe_store!(out, cusparse_version(st), 1)
    unsafe_store!(out, driver_version(), 2)
    return
end

"cuda_csr_spmm: device, stream, m, k, n, nnz, indptr, indices, data, B, C, alg"
function job_csr_spmm(args, ta, ti, tb, tc)
    st = use_device(slot(args, 1), pslot(args, 2))
    csr_spmm!(st, pslot(args, 2), slot(args, 3), slot(args, 4), slot(args, 5), slot(args, 6),
              pslot(args, 7), pslot(args, 8), pslot(args, 9), pslot(args, 10), pslot(args, 11),
              ta, ti, tb, tc, Cint(slot(args, 12)))
end

"cuda_bsr_spmm: device, stream, mb, kb, n, b, nnzb, indptr, indices, data, B, C, alg"
function job_bsr_spmm(args, ta, ti, tb, tc)
    st = use_device(slot(args, 1), pslot(args, 2))
    bsr_spmm!(st, pslot(args, 2), slot(args, 3), slot(args, 4), slot(args, 5), slot(args, 6), slot(args, 7),
              pslot(args, 8), pslot(args, 9), pslot(args, 10), pslot(args, 11), pslot(args, 12),
              ta, ti, tb, tc, Cint(slot(args, 13)))
end

"cuda_bell_spmm: device, stream, m, k, n, b, ellcols, colind, values, B, C"
function job_bell_spmm(args, ta, ti, tb, tc)
    st = use_device(slot(args, 1), pslot(args, 2))
    bell_spmm!(st, pslot(args, 2), slot(args, 3), slot(args, 4), slot(args, 5), slot(args, 6), slot(args, 7),
               pslot(args, 8), pslot(args, 9), pslot(args, 10), pslot(args, 11), ta, ti, tb, tc)
end

"cuda_csr_spgemm_compute: device, stream, m, k, n, nnzA, indptrA, indicesA, dataA, nnzB, indptrB, indicesB, dataB, out(int64[2]: id, nnzC)"
function job_spgemm_compute(args, tv, ti)
    st = use_device(slot(args, 1), pslot(args, 2))
    id, nnzC = spgemm_compute!(st, pslot(args, 2), slot(args, 3), slot(args, 4), slot(args, 5),
                               slot(args, 6), pslot(args, 7), pslot(args, 8), pslot(args, 9),
                               slot(args, 10), pslot(args, 11), pslot(args, 12), pslot(args, 13), tv, ti)
    out = Ptr{Int64}(pslot(args, 14))
    unsafe_store!(out, id, 1)
    unsafe_store!(out, nnzC, 2)
    return
end

"cuda_csr_spgemm_copy: device, stream, id, indptrC, indicesC, dataC"
function job_spgemm_copy(args)
    use_device(slot(args, 1), pslot(args, 2))
    spgemm_copy!(slot(args, 3), pslot(args, 4), pslot(args, 5), pslot(args, 6))
end

"cuda_csr_spgemm_release: device, stream, id"
function job_spgemm_release(args)
    use_device(slot(args, 1), pslot(args, 2))
    spgemm_release!(slot(args, 3))
end

"cuda_kernel_load: device, image (cubin bytes), image_len, name_ptr, name_len, smem, out(int64[1]: kernel id)"
function job_kernel_load(args)
    st = use_device(slot(args, 1), C_NULL)
    slot(args, 2) == 0 && throw(ArgumentError("no image"))
    slot(args, 3) > 0 || throw(ArgumentError("image length must be > 0, got $(slot(args, 3))"))
    name = unsafe_string(Ptr{UInt8}(pslot(args, 4)), slot(args, 5))
    id = load_kernel!(st, pslot(args, 2), name, slot(args, 6))
    unsafe_store!(Ptr{Int64}(pslot(args, 7)), id, 1)
    return
end

"cuda_kernel_launch: device, stream, kernel id, grid x, y, z, block x, y, z, params, offsets(int64[nparams]), nparams"
function job_kernel_launch(args)
    st = use_device(slot(args, 1), pslot(args, 2))
    launch_kernel!(st, pslot(args, 2), slot(args, 3), (Int(slot(args, 4)), Int(slot(args, 5)), Int(slot(args, 6))),
                   (Int(slot(args, 7)), Int(slot(args, 8)), Int(slot(args, 9))), Ptr{UInt8}(pslot(args, 10)),
                   Ptr{Int64}(pslot(args, 11)), slot(args, 12))
end

# -- resolution of keys to C function pointers

const _entries = Dict{String,Any}()   # key => Base.CFunction (kept alive here)

function typecodes(names, table, what)
    map(names) do s
        haskey(table, s) || throw(ArgumentError("unknown $what type $(repr(s)) (known: $(join(sort(collect(keys(table))), ", ")))"))
        table[s]
    end
end

function make_entry(kernel::AbstractString, types::Vector{String})
    nt = length(types)
    if kernel == "cuda_init" && nt == 0
        return @cfunction($(a -> guarded(job_init, a)), Int32, (Ptr{Int64},))
    elseif kernel in ("cuda_csr_spmm", "cuda_bsr_spmm", "cuda_bell_spmm") && nt == 4
        ta, tb, tc = typecodes(types[[1, 3, 4]], VALUE_TYPES, "value")
        ti = typecodes(types[2:2], INDEX_TYPES, "index")[1]
        job = kernel == "cuda_csr_spmm" ? job_csr_spmm : kernel == "cuda_bsr_spmm" ? job_bsr_spmm : job_bell_spmm
        return @cfunction($(a -> guarded(x -> job(x, ta, ti, tb, tc), a)), Int32, (Ptr{Int64},))
    elseif kernel == "cuda_csr_spgemm_compute" && nt == 2
        tv = typecodes(types[1:1], VALUE_TYPES, "value")[1]
        ti = typecodes(types[2:2], INDEX_TYPES, "index")[1]
        return @cfunction($(a -> guarded(x -> job_spgemm_compute(x, tv, ti), a)), Int32, (Ptr{Int64},))
    elseif kernel == "cuda_kernel_load" && nt == 0
        return @cfunction($(a -> guarded(job_kernel_load, a)), Int32, (Ptr{Int64},))
    elseif kernel == "cuda_kernel_launch" && nt == 0
        return @cfunction($(a -> guarded(job_kernel_launch, a)), Int32, (Ptr{Int64},))
    elseif kernel == "cuda_csr_spgemm_copy" && nt == 0
        return @cfunction($(a -> guarded(job_spgemm_copy, a)), Int32, (Ptr{Int64},))
    elseif kernel == "cuda_csr_spgemm_release" && nt == 0
        return @cfunction($(a -> guarded(job_spgemm_release, a)), Int32, (Ptr{Int64},))
    end
    throw(ArgumentError("unknown GPU entry point $(repr(kernel)) with $nt type(s)"))
end

"""
    GPU.entry(key) -> Ptr{Cvoid}

The C function pointer for a `cuda_*` key such as `cuda_csr_spmm:Float16,Int32,Float16,Float16`.
Throws ArgumentError for anything else; opens no library.
"""
function entry(key::AbstractString)::Ptr{Cvoid}
    key = String(key)
    cf = get(_entries, key, nothing)
    if cf === nothing
        parts = split(key, ':')
        length(parts) <= 2 || throw(ArgumentError("malformed key $(repr(key))"))
        types = length(parts) == 2 && !isempty(parts[2]) ? String.(split(parts[2], ',')) : String[]
        cf = make_entry(parts[1], types)
        _entries[key] = cf
    end
    return Base.unsafe_convert(Ptr{Cvoid}, cf)
end

is_gpu_key(key::AbstractString) = startswith(key, "cuda_")
