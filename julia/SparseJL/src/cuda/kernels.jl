# Kernels compiled elsewhere (the Python side compiles sparsejl's BSR kernels with NVRTC): Julia
# loads the cubin into the device's primary context once and launches it on the caller's stream
# with parameters packed by the caller, so "julia-cuda" runs the very same machine code as "cupy".

struct LoadedKernel
    device::Int
    mod::Ptr{Cvoid}
    fn::Ptr{Cvoid}
    smem::Int
end

const _kernels = Dict{Int,LoadedKernel}()
const _kernels_next = Ref(0)

"""
    load_kernel!(st, image, name, smem) -> id

Load the cubin at `image` (host memory) into device `st`'s primary context, find `name` in it and
allow it `smem` bytes of dynamic shared memory. Returns an id for `launch_kernel!`.
"""
function load_kernel!(st::DeviceState, image::Ptr{Cvoid}, name::String, smem::Integer)
    smem >= 0 || throw(ArgumentError("shared memory must be >= 0, got $smem"))
    mod = Ref{Ptr{Cvoid}}(C_NULL)
    check_cu(cuModuleLoadData(mod, image), "cuModuleLoadData")
    fn = Ref{Ptr{Cvoid}}(C_NULL)
    check_cu(cuModuleGetFunction(fn, mod[], name), "cuModuleGetFunction($name)")
    if smem > 48 * 1024
        check_cu(cuFuncSetAttribute(fn[], CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, Cint(smem)),
                 "cuFuncSetAttribute")
    end
    id = (_kernels_next[] += 1)
    _kernels[id] = LoadedKernel(st.ordinal, mod[], fn[], Int(smem))
    return id
end

"""
    launch_kernel!(st, stream, id, grid, block, params, offsets, nparams)

Launch kernel `id` on `stream`: parameter i is the bytes at `params + offsets[i]` (host memory,
read by the driver during this call).
"""
function launch_kernel!(st::DeviceState, stream::Ptr{Cvoid}, id::Integer, grid::NTuple{3,Int},
                        block::NTuple{3,Int}, params::Ptr{UInt8}, offsets::Ptr{Int64}, nparams::Integer)
    k = get(_kernels, Int(id), nothing)
    k === nothing && throw(ArgumentError("no loaded kernel with id $id"))
    k.device == st.ordinal || throw(ArgumentError("kernel $id was loaded on device $(k.device), not $(st.ordinal)"))
    all(>(0), grid) && all(>(0), block) || throw(ArgumentError("grid $grid and block $block must be positive"))
    0 <= nparams <= 256 || throw(ArgumentError("nparams must be in 0:256, got $nparams"))
    ptrs = Vector{Ptr{Cvoid}}(undef, nparams)
    for i in 1:nparams
        ptrs[i] = Ptr{Cvoid}(params + unsafe_load(offsets, i))
    end
    GC.@preserve ptrs begin
        check_cu(cuLaunchKernel(k.fn, grid[1], grid[2], grid[3], block[1], block[2], block[3], k.smem, stream,
                                pointer(ptrs), C_NULL), "cuLaunchKernel")
    end
    return nothing
end
