# Per-device state: the primary context (the one CuPy and the CUDA runtime use) made current on
# the calling thread, one cuSPARSE handle, and a stream-ordered memory pool of our own for the
# library workspaces. Created by the first job for a device.

mutable struct DeviceState
    ordinal::Int
    ctx::CUcontext
    handle::Handle
    pool::Ptr{Cvoid}
end

const _devices = Dict{Int,DeviceState}()
const _driver_ready = Ref(false)

"""
    open_cusparse(path)

Use the cuSPARSE at `path` (the one the Python side already loaded, so that one copy of the
library serves both). Must come before the first handle is made; a later different path is an error.
"""
function open_cusparse(path::AbstractString)
    path = String(path)
    isempty(path) && return CUSPARSE_PATH[]
    if path != CUSPARSE_PATH[]
        isempty(_devices) || throw(ArgumentError("cuSPARSE is already open from $(CUSPARSE_PATH[]), cannot switch to $path"))
        CUSPARSE_PATH[] = path
    end
    libhandle(path)
    return path
end

"The state of device `ordinal`, its context current on this thread and its handle on `stream`."
function use_device(ordinal::Integer, stream::Ptr{Cvoid})
    ordinal >= 0 || throw(ArgumentError("device ordinal must be >= 0, got $ordinal"))
    if !_driver_ready[]
        check_cu(cuInit(0), "cuInit")
        _driver_ready[] = true
    end
    st = get(_devices, Int(ordinal), nothing)
    if st === nothing
        dev = Ref{CUdevice}(0)
        check_cu(cuDeviceGet(dev, ordinal), "cuDeviceGet")
        ctx = Ref{CUcontext}(C_NULL)
        check_cu(cuDevicePrimaryCtxRetain(ctx, dev[]), "cuDevicePrimaryCtxRetain")
        check_cu(cuCtxSetCurrent(ctx[]), "cuCtxSetCurrent")
        h = Ref{Handle}(C_NULL)
        check_sp(cusparseCreate(h), "cusparseCreate")
        st = DeviceState(Int(ordinal), ctx[], h[], create_pool(ordinal))
        _devices[Int(ordinal)] = st
    end
    cur = Ref{CUcontext}(C_NULL)
    check_cu(cuCtxGetCurrent(cur), "cuCtxGetCurrent")
    cur[] == st.ctx || check_cu(cuCtxSetCurrent(st.ctx), "cuCtxSetCurrent")
    check_sp(cusparseSetStream(st.handle, stream), "cusparseSetStream")
    return st
end

function cusparse_version(st::DeviceState)
    v = Ref{Cint}(0)
    check_sp(cusparseGetVersion(st.handle, v), "cusparseGetVersion")
    return Int(v[])
end

function driver_version()
    v = Ref{Cint}(0)
    check_cu(cuDriverGetVersion(v), "cuDriverGetVersion")
    return Int(v[])
end

"""
    create_pool(ordinal) -> CUmemoryPool

A stream-ordered pool on device `ordinal` that keeps the memory freed into it (release threshold:
unlimited), for the workspaces. The device's default pool hands its memory back to the driver at
every synchronisation (release threshold 0), and mapping it again cost SpGEMM 0.36-0.71 ms a
product on an H200; a pool of our own leaves the default pool, which other libraries use, as it is.
"""
function create_pool(ordinal::Integer)
    props = zeros(Int32, 32)
    props[1] = CU_MEM_ALLOCATION_TYPE_PINNED
    props[3] = CU_MEM_LOCATION_TYPE_DEVICE
    props[4] = ordinal
    pool = Ref{Ptr{Cvoid}}(C_NULL)
    check_cu(cuMemPoolCreate(pool, props), "cuMemPoolCreate")
    check_cu(cuMemPoolSetAttribute(pool[], CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, Ref(typemax(UInt64))),
             "cuMemPoolSetAttribute")
    return pool[]
end

"A workspace of `bytes` (C_NULL for 0) from the device's pool, ordered on `stream`; freed by `free_workspace` on that stream."
function workspace(st::DeviceState, bytes::Integer, stream::Ptr{Cvoid})
    bytes == 0 && return C_NULL
    p = Ref{CUdeviceptr}(0)
    check_cu(cuMemAllocFromPoolAsync(p, bytes, st.pool, stream), "cuMemAllocFromPoolAsync")
    return Ptr{Cvoid}(p[])
end

free_workspace(p::Ptr{Cvoid}, stream::Ptr{Cvoid}) =
    p == C_NULL || check_cu(cuMemFreeAsync(CUdeviceptr(UInt(p)), stream), "cuMemFreeAsync")
