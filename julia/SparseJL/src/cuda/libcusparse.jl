# Thin layer over cuSPARSE's generic API (cusparse.h of CUDA 12/13): enums and one ccall per
# function, through pointers looked up on first use in the library that `open_cusparse` named.
# No meaning lives here; see spmm.jl and spgemm.jl.

const CUSPARSE_PATH = Ref("libcusparse.so.12")
sp(name::Symbol) = libsym(CUSPARSE_PATH[], name)

const cusparseStatus_t = Cint
const Handle = Ptr{Cvoid}
const SpMatDescr = Ptr{Cvoid}
const DnMatDescr = Ptr{Cvoid}
const SpGEMMDescr = Ptr{Cvoid}

# cudaDataType (library_types.h)
const CUDA_R_32F = Cint(0)
const CUDA_R_64F = Cint(1)
const CUDA_R_16F = Cint(2)
const CUDA_R_16BF = Cint(14)
# cusparseIndexType_t, cusparseIndexBase_t, cusparseOrder_t, cusparseOperation_t
const CUSPARSE_INDEX_32I = Cint(2)
const CUSPARSE_INDEX_64I = Cint(3)
const CUSPARSE_INDEX_BASE_ZERO = Cint(0)
const CUSPARSE_ORDER_COL = Cint(1)
const CUSPARSE_ORDER_ROW = Cint(2)
const CUSPARSE_OPERATION_NON_TRANSPOSE = Cint(0)
# cusparseSpMMAlg_t
const CUSPARSE_SPMM_ALG_DEFAULT = Cint(0)
const CUSPARSE_SPMM_CSR_ALG1 = Cint(4)
const CUSPARSE_SPMM_CSR_ALG2 = Cint(6)
const CUSPARSE_SPMM_CSR_ALG3 = Cint(12)
const CUSPARSE_SPMM_BLOCKED_ELL_ALG1 = Cint(13)
const CUSPARSE_SPMM_BSR_ALG1 = Cint(14)
# cusparseSpGEMMAlg_t
const CUSPARSE_SPGEMM_DEFAULT = Cint(0)

"The cudaDataType of values of type `T` (the value types of abi.txt's GPU rows)."
datatype(::Type{Float16}) = CUDA_R_16F
datatype(::Type{BFloat16}) = CUDA_R_16BF
datatype(::Type{Float32}) = CUDA_R_32F
datatype(::Type{Float64}) = CUDA_R_64F
"The cusparseIndexType_t of indices of type `T`."
indextype(::Type{Int32}) = CUSPARSE_INDEX_32I
indextype(::Type{Int64}) = CUSPARSE_INDEX_64I

cusparseCreate(h) = ccall(sp(:cusparseCreate), cusparseStatus_t, (Ref{Handle},), h)
cusparseDestroy(h) = ccall(sp(:cusparseDestroy), cusparseStatus_t, (Handle,), h)
cusparseGetVersion(h, v) = ccall(sp(:cusparseGetVersion), cusparseStatus_t, (Handle, Ref{Cint}), h, v)
cusparseSetStream(h, s) = ccall(sp(:cusparseSetStream), cusparseStatus_t, (Handle, Ptr{Cvoid}), h, s)
cusparseGetErrorString(status) = ccall(sp(:cusparseGetErrorString), Ptr{UInt8}, (cusparseStatus_t,), status)

cusparseCreateCsr(descr, rows, cols, nnz, rowptr, colind, values, rowptr_type, colind_type, base, value_type) =
    ccall(sp(:cusparseCreateCsr), cusparseStatus_t,
          (Ref{SpMatDescr}, Int64, Int64, Int64, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Cint, Cint, Cint, Cint),
          descr, rows, cols, nnz, rowptr, colind, values, rowptr_type, colind_type, base, value_type)

cusparseCreateBsr(descr, brows, bcols, bnnz, rowblock, colblock, rowptr, colind, values, rowptr_type, colind_type, base, value_type, order) =
    ccall(sp(:cusparseCreateBsr), cusparseStatus_t,
          (Ref{SpMatDescr}, Int64, Int64, Int64, Int64, Int64, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Cint, Cint, Cint, Cint, Cint),
          descr, brows, bcols, bnnz, rowblock, colblock, rowptr, colind, values, rowptr_type, colind_type, base, value_type, order)

cusparseCreateBlockedEll(descr, rows, cols, ell_blocksize, ell_cols, colind, values, idx_type, base, value_type) =
    ccall(sp(:cusparseCreateBlockedEll), cusparseStatus_t,
          (Ref{SpMatDescr}, Int64, Int64, Int64, Int64, Ptr{Cvoid}, Ptr{Cvoid}, Cint, Cint, Cint),
          descr, rows, cols, ell_blocksize, ell_cols, colind, values, idx_type, base, value_type)

cusparseDestroySpMat(descr) = ccall(sp(:cusparseDestroySpMat), cusparseStatus_t, (SpMatDescr,), descr)

cusparseCreateDnMat(descr, rows, cols, ld, values, value_type, order) =
    ccall(sp(:cusparseCreateDnMat), cusparseStatus_t,
          (Ref{DnMatDescr}, Int64, Int64, Int64, Ptr{Cvoid}, Cint, Cint),
          descr, rows, cols, ld, values, value_type, order)

cusparseDestroyDnMat(descr) = ccall(sp(:cusparseDestroyDnMat), cusparseStatus_t, (DnMatDescr,), descr)

cusparseSpMM_bufferSize(h, opA, opB, alpha, A, B, beta, C, compute, alg, size) =
    ccall(sp(:cusparseSpMM_bufferSize), cusparseStatus_t,
          (Handle, Cint, Cint, Ptr{Cvoid}, SpMatDescr, DnMatDescr, Ptr{Cvoid}, DnMatDescr, Cint, Cint, Ref{Csize_t}),
          h, opA, opB, alpha, A, B, beta, C, compute, alg, size)

cusparseSpMM_preprocess(h, opA, opB, alpha, A, B, beta, C, compute, alg, buffer) =
    ccall(sp(:cusparseSpMM_preprocess), cusparseStatus_t,
          (Handle, Cint, Cint, Ptr{Cvoid}, SpMatDescr, DnMatDescr, Ptr{Cvoid}, DnMatDescr, Cint, Cint, Ptr{Cvoid}),
          h, opA, opB, alpha, A, B, beta, C, compute, alg, buffer)

cusparseSpMM(h, opA, opB, alpha, A, B, beta, C, compute, alg, buffer) =
    ccall(sp(:cusparseSpMM), cusparseStatus_t,
          (Handle, Cint, Cint, Ptr{Cvoid}, SpMatDescr, DnMatDescr, Ptr{Cvoid}, DnMatDescr, Cint, Cint, Ptr{Cvoid}),
          h, opA, opB, alpha, A, B, beta, C, compute, alg, buffer)

cusparseSpGEMM_createDescr(d) = ccall(sp(:cusparseSpGEMM_createDescr), cusparseStatus_t, (Ref{SpGEMMDescr},), d)
cusparseSpGEMM_destroyDescr(d) = ccall(sp(:cusparseSpGEMM_destroyDescr), cusparseStatus_t, (SpGEMMDescr,), d)

cusparseSpGEMM_workEstimation(h, opA, opB, alpha, A, B, beta, C, compute, alg, d, size1, buf1) =
    ccall(sp(:cusparseSpGEMM_workEstimation), cusparseStatus_t,
          (Handle, Cint, Cint, Ptr{Cvoid}, SpMatDescr, SpMatDescr, Ptr{Cvoid}, SpMatDescr, Cint, Cint, SpGEMMDescr, Ref{Csize_t}, Ptr{Cvoid}),
          h, opA, opB, alpha, A, B, beta, C, compute, alg, d, size1, buf1)

cusparseSpGEMM_compute(h, opA, opB, alpha, A, B, beta, C, compute, alg, d, size2, buf2) =
    ccall(sp(:cusparseSpGEMM_compute), cusparseStatus_t,
          (Handle, Cint, Cint, Ptr{Cvoid}, SpMatDescr, SpMatDescr, Ptr{Cvoid}, SpMatDescr, Cint, Cint, SpGEMMDescr, Ref{Csize_t}, Ptr{Cvoid}),
          h, opA, opB, alpha, A, B, beta, C, compute, alg, d, size2, buf2)

cusparseSpGEMM_copy(h, opA, opB, alpha, A, B, beta, C, compute, alg, d) =
    ccall(sp(:cusparseSpGEMM_copy), cusparseStatus_t,
          (Handle, Cint, Cint, Ptr{Cvoid}, SpMatDescr, SpMatDescr, Ptr{Cvoid}, SpMatDescr, Cint, Cint, SpGEMMDescr),
          h, opA, opB, alpha, A, B, beta, C, compute, alg, d)

cusparseSpMatGetSize(descr, rows, cols, nnz) =
    ccall(sp(:cusparseSpMatGetSize), cusparseStatus_t, (SpMatDescr, Ref{Int64}, Ref{Int64}, Ref{Int64}), descr, rows, cols, nnz)

cusparseCsrSetPointers(descr, rowptr, colind, values) =
    ccall(sp(:cusparseCsrSetPointers), cusparseStatus_t, (SpMatDescr, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}), descr, rowptr, colind, values)

struct CUSPARSEError <: Exception
    call::String
    code::Int
    msg::String
end
Base.showerror(io::IO, e::CUSPARSEError) = print(io, e.call, " failed: ", e.msg, " (cusparseStatus_t ", e.code, ")")

function check_sp(code, call::String)
    code == 0 && return nothing
    str = cusparseGetErrorString(code)
    throw(CUSPARSEError(call, Int(code), str == C_NULL ? "unknown error" : unsafe_string(str)))
end
