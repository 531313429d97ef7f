# The GPU jobs (docs/abi.md, keys `cuda_*`): their slots are named in abi.txt, and
# SparseJL.CABI resolves the keys and guards the calls as for the CPU jobs. Pointers are device
# addresses owned by the caller.
#
# The sparse structure lives on the device, where Julia has no kernels of its own to check it,
# so the Python side validates indptr/indices (on the GPU) before calling; here only the sizes
# and the types are checked.

function cuda_init_job(s::Slots)
    open_cusparse(unsafe_string(Ptr{UInt8}(address(s, :path)), slot(s, :path_len)))
    st = use_device(slot(s, :device), C_NULL)
    out = Ptr{Int64}(address(s, :out))
    unsafe_store!(out, cusparse_version(st), 1)
    unsafe_store!(out, driver_version(), 2)
    return nothing
end

"The device's state, with its cuSPARSE handle on the job's stream."
@inline job_device(s::Slots) = use_device(slot(s, :device), address(s, :stream))

function cuda_csr_spmm_job(s::Slots, ::Type{TvA}, ::Type{Ti}, ::Type{TvB}, ::Type{TvC}) where {TvA,Ti,TvB,TvC}
    csr_spmm!(job_device(s), address(s, :stream), slot(s, :m), slot(s, :k), slot(s, :n), slot(s, :nnz),
              address(s, :indptr), address(s, :indices), address(s, :data), address(s, :B), address(s, :C),
              datatype(TvA), indextype(Ti), datatype(TvB), datatype(TvC), Cint(slot(s, :alg)))
    return nothing
end

function cuda_bsr_spmm_job(s::Slots, ::Type{TvA}, ::Type{Ti}, ::Type{TvB}, ::Type{TvC}) where {TvA,Ti,TvB,TvC}
    bsr_spmm!(job_device(s), address(s, :stream), slot(s, :mb), slot(s, :kb), slot(s, :n), slot(s, :b),
              slot(s, :nnzb), address(s, :indptr), address(s, :indices), address(s, :data), address(s, :B),
              address(s, :C), datatype(TvA), indextype(Ti), datatype(TvB), datatype(TvC), Cint(slot(s, :alg)))
    return nothing
end

function cuda_bell_spmm_job(s::Slots, ::Type{TvA}, ::Type{Ti}, ::Type{TvB}, ::Type{TvC}) where {TvA,Ti,TvB,TvC}
    bell_spmm!(job_device(s), address(s, :stream), slot(s, :m), slot(s, :k), slot(s, :n), slot(s, :b),
               slot(s, :ellcols), address(s, :colind), address(s, :values), address(s, :B), address(s, :C),
               datatype(TvA), indextype(Ti), datatype(TvB), datatype(TvC))
    return nothing
end

function cuda_csr_spgemm_compute_job(s::Slots, ::Type{Tv}, ::Type{Ti}) where {Tv,Ti}
    id, nnzC = spgemm_compute!(job_device(s), address(s, :stream), slot(s, :m), slot(s, :k), slot(s, :n),
                               slot(s, :nnzA), address(s, :indptrA), address(s, :indicesA), address(s, :dataA),
                               slot(s, :nnzB), address(s, :indptrB), address(s, :indicesB), address(s, :dataB),
                               datatype(Tv), indextype(Ti))
    out = Ptr{Int64}(address(s, :out))
    unsafe_store!(out, id, 1)
    unsafe_store!(out, nnzC, 2)
    return nothing
end

function cuda_csr_spgemm_copy_job(s::Slots)
    job_device(s)
    spgemm_copy!(slot(s, :state), address(s, :indptrC), address(s, :indicesC), address(s, :dataC))
    return nothing
end

function cuda_csr_spgemm_release_job(s::Slots)
    job_device(s)
    spgemm_release!(slot(s, :state))
    return nothing
end

function cuda_kernel_load_job(s::Slots)
    st = use_device(slot(s, :device), C_NULL)
    slot(s, :image) == 0 && throw(ArgumentError("no image"))
    slot(s, :image_len) > 0 || throw(ArgumentError("image length must be > 0, got $(slot(s, :image_len))"))
    name = unsafe_string(Ptr{UInt8}(address(s, :name)), slot(s, :name_len))
    id = load_kernel!(st, address(s, :image), name, slot(s, :smem))
    unsafe_store!(Ptr{Int64}(address(s, :out)), id, 1)
    return nothing
end

function cuda_kernel_launch_job(s::Slots)
    launch_kernel!(job_device(s), address(s, :stream), slot(s, :kernel),
                   (Int(slot(s, :grid_x)), Int(slot(s, :grid_y)), Int(slot(s, :grid_z))),
                   (Int(slot(s, :block_x)), Int(slot(s, :block_y)), Int(slot(s, :block_z))),
                   Ptr{UInt8}(address(s, :params)), Ptr{Int64}(address(s, :offsets)), slot(s, :nparams))
    return nothing
end
