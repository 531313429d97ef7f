# Thin layer over the CUDA driver API (libcuda.so.1): what the cuSPARSE wrappers and kernel launches need.
# Each function is one ccall through a pointer looked up on first use.

const CUresult = Cint
const CUdevice = Cint
const CUcontext = Ptr{Cvoid}
const CUstream = Ptr{Cvoid}
const CUdeviceptr = UInt64

# Library handles and symbols, opened on first use, by path. dlopen/dlsym of the C library
# directly: the Libdl standard library would have to be a dependency of the package for this.
const RTLD_LAZY = Cint(1)
const RTLD_GLOBAL = Cint(0x100)
const _libs = Dict{String,Ptr{Cvoid}}()
const _syms = Dict{Tuple{String,Symbol},Ptr{Cvoid}}()

dlerror() = (p = ccall(:dlerror, Cstring, ()); p == C_NULL ? "unknown error" : unsafe_string(p))

function libhandle(path::String)
    get!(_libs, path) do
        h = ccall(:dlopen, Ptr{Cvoid}, (Cstring, Cint), path, RTLD_LAZY | RTLD_GLOBAL)
        h == C_NULL && error("cannot open $path: $(dlerror())")
        h
    end
end

function libsym(path::String, name::Symbol)
    get!(_syms, (path, name)) do
        p = ccall(:dlsym, Ptr{Cvoid}, (Ptr{Cvoid}, Cstring), libhandle(path), String(name))
        p == C_NULL && error("$name not found in $path: $(dlerror())")
        p
    end
end

const LIBCUDA = "libcuda.so.1"
cu(name::Symbol) = libsym(LIBCUDA, name)

cuInit(flags) = ccall(cu(:cuInit), CUresult, (Cuint,), flags)
cuDeviceGet(dev, ordinal) = ccall(cu(:cuDeviceGet), CUresult, (Ref{CUdevice}, Cint), dev, ordinal)
cuDevicePrimaryCtxRetain(ctx, dev) = ccall(cu(:cuDevicePrimaryCtxRetain), CUresult, (Ref{CUcontext}, CUdevice), ctx, dev)
cuCtxSetCurrent(ctx) = ccall(cu(:cuCtxSetCurrent), CUresult, (CUcontext,), ctx)
cuCtxGetCurrent(ctx) = ccall(cu(:cuCtxGetCurrent), CUresult, (Ref{CUcontext},), ctx)
cuMemAllocFromPoolAsync(ptr, bytes, pool, stream) =
    ccall(cu(:cuMemAllocFromPoolAsync), CUresult, (Ref{CUdeviceptr}, Csize_t, Ptr{Cvoid}, CUstream), ptr, bytes, pool, stream)
cuMemFreeAsync(ptr, stream) = ccall(cu(:cuMemFreeAsync), CUresult, (CUdeviceptr, CUstream), ptr, stream)
cuStreamSynchronize(stream) = ccall(cu(:cuStreamSynchronize), CUresult, (CUstream,), stream)
# CUmemPoolProps is 88 bytes from CUDA 11.2 to 13 (allocation type, handle types, location, then
# fields that stay zero); pass a zeroed buffer at least that large with the first four Int32 set.
cuMemPoolCreate(pool, props) = ccall(cu(:cuMemPoolCreate), CUresult, (Ref{Ptr{Cvoid}}, Ptr{Int32}), pool, props)
const CU_MEM_ALLOCATION_TYPE_PINNED = Int32(1)
const CU_MEM_LOCATION_TYPE_DEVICE = Int32(1)
cuMemPoolSetAttribute(pool, attr, value) = ccall(cu(:cuMemPoolSetAttribute), CUresult, (Ptr{Cvoid}, Cint, Ref{UInt64}), pool, attr, value)
const CU_MEMPOOL_ATTR_RELEASE_THRESHOLD = Cint(4)
cuModuleLoadData(mod, image) = ccall(cu(:cuModuleLoadData), CUresult, (Ref{Ptr{Cvoid}}, Ptr{Cvoid}), mod, image)
cuModuleGetFunction(fn, mod, name) = ccall(cu(:cuModuleGetFunction), CUresult, (Ref{Ptr{Cvoid}}, Ptr{Cvoid}, Cstring), fn, mod, name)
cuFuncSetAttribute(fn, attr, value) = ccall(cu(:cuFuncSetAttribute), CUresult, (Ptr{Cvoid}, Cint, Cint), fn, attr, value)
const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = Cint(8)
cuLaunchKernel(fn, gx, gy, gz, bx, by, bz, smem, stream, params, extra) =
    ccall(cu(:cuLaunchKernel), CUresult,
          (Ptr{Cvoid}, Cuint, Cuint, Cuint, Cuint, Cuint, Cuint, Cuint, CUstream, Ptr{Ptr{Cvoid}}, Ptr{Ptr{Cvoid}}),
          fn, gx, gy, gz, bx, by, bz, smem, stream, params, extra)
cuDriverGetVersion(v) = ccall(cu(:cuDriverGetVersion), CUresult, (Ref{Cint},), v)
cuGetErrorString(err, str) = ccall(cu(:cuGetErrorString), CUresult, (CUresult, Ref{Ptr{UInt8}}), err, str)

struct CUDAError <: Exception
    call::String
    code::Int
    msg::String
end
Base.showerror(io::IO, e::CUDAError) = print(io, "CUDA driver call ", e.call, " failed with ", e.code, " (", e.msg, ")")

function check_cu(code, call::String)
    code == 0 && return nothing
    str = Ref{Ptr{UInt8}}(C_NULL)
    msg = cuGetErrorString(code, str) == 0 && str[] != C_NULL ? unsafe_string(str[]) : "unknown error"
    throw(CUDAError(call, Int(code), msg))
end
