# Per-device state: the primary context (the one CuPy and the CUDA runtime use) made current on
# the calling thread, and one cuSPARSE handle per device. Created by the first job for a device.

mutable struct DeviceState
    ordinal::Int
    ctx::CUcontext
    handle::Handle
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
        # Workspaces come from the device's default stream-ordered pool; by default it hands memory
        # back to the driver at every synchronisation, and re-mapping it cost SpGEMM 0.3-0.7 ms a
        # product on an H200. Keep what it holds (this pool serves cuMemAllocAsync callers only).
        pool = Ref{Ptr{Cvoid}}(C_NULL)
        check_cu(cuDeviceGetDefaultMemPool(pool, dev[]), "cuDeviceGetDefaultMemPool")
        check_cu(cuMemPoolSetAttribute(pool[], CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, Ref(typemax(UInt64))),
                 "cuMemPoolSetAttribute")
        h = Ref{Handle}(C_NULL)
        check_sp(cusparseCreate(h), "cusparseCreate")
        st = DeviceState(Int(ordinal), ctx[], h[])
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

"A stream-ordered workspace of `bytes` (C_NULL for 0), freed by `free_workspace` on the same stream."
function workspace(bytes::Integer, stream::Ptr{Cvoid})
    bytes == 0 && return C_NULL
    p = Ref{CUdeviceptr}(0)
    check_cu(cuMemAllocAsync(p, bytes, stream), "cuMemAllocAsync")
    return Ptr{Cvoid}(p[])
end

free_workspace(p::Ptr{Cvoid}, stream::Ptr{Cvoid}) =
    p == C_NULL || check_cu(cuMemFreeAsync(CUdeviceptr(UInt(p)), stream), "cuMemFreeAsync")
