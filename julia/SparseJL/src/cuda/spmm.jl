# SpMM on the GPU: C = A * B with A sparse (CSR, BSR or Blocked-ELL) and B, C dense row-major
# (C-contiguous, as NumPy/CuPy store them), all on the device. alpha = 1, beta = 0; 16-bit
# values accumulate in float32 (computeType CUDA_R_32F), float64 in float64.

compute_type(types::Cint...) = any(t -> t == CUDA_R_64F, types) ? CUDA_R_64F : CUDA_R_32F
one_of(ct::Cint) = ct == CUDA_R_64F ? Ref{Float64}(1.0) : Ref{Float32}(1f0)
zero_of(ct::Cint) = ct == CUDA_R_64F ? Ref{Float64}(0.0) : Ref{Float32}(0f0)

function check_dims(pairs...)
    for (name, v) in pairs
        v >= 0 || throw(ArgumentError("$name must be >= 0, got $v"))
    end
end

"Run cuSPARSE's generic SpMM on a ready sparse descriptor `matA` (m×k) and dense row-major B (k×n), C (m×n)."
function spmm_descr!(st::DeviceState, stream, matA, m, k, n, B, tb, C, tc, ta, alg)
    ct = compute_type(ta, tb, tc)
    alpha, beta = one_of(ct), zero_of(ct)
    matB = Ref{DnMatDescr}(C_NULL)
    matC = Ref{DnMatDescr}(C_NULL)
    buf = C_NULL
    try
        check_sp(cusparseCreateDnMat(matB, k, n, n, B, tb, CUSPARSE_ORDER_ROW), "cusparseCreateDnMat(B)")
        check_sp(cusparseCreateDnMat(matC, m, n, n, C, tc, CUSPARSE_ORDER_ROW), "cusparseCreateDnMat(C)")
        op = CUSPARSE_OPERATION_NON_TRANSPOSE
        size = Ref{Csize_t}(0)
        check_sp(cusparseSpMM_bufferSize(st.handle, op, op, alpha, matA, matB[], beta, matC[], ct, alg, size),
                 "cusparseSpMM_bufferSize")
        buf = workspace(st, size[], stream)
        check_sp(cusparseSpMM(st.handle, op, op, alpha, matA, matB[], beta, matC[], ct, alg, buf), "cusparseSpMM")
    finally
        free_workspace(buf, stream)
        matC[] == C_NULL || cusparseDestroyDnMat(matC[])
        matB[] == C_NULL || cusparseDestroyDnMat(matB[])
    end
    return nothing
end

function csr_spmm!(st::DeviceState, stream, m, k, n, nnz, indptr, indices, data, B, C, ta, ti, tb, tc, alg)
    check_dims(("m", m), ("k", k), ("n", n), ("nnz", nnz))
    matA = Ref{SpMatDescr}(C_NULL)
    try
        check_sp(cusparseCreateCsr(matA, m, k, nnz, indptr, indices, data, ti, ti, CUSPARSE_INDEX_BASE_ZERO, ta),
                 "cusparseCreateCsr")
        spmm_descr!(st, stream, matA[], m, k, n, B, tb, C, tc, ta, alg)
    finally
        matA[] == C_NULL || cusparseDestroySpMat(matA[])
    end
    return nothing
end

function bsr_spmm!(st::DeviceState, stream, mb, kb, n, b, nnzb, indptr, indices, data, B, C, ta, ti, tb, tc, alg)
    check_dims(("mb", mb), ("kb", kb), ("n", n), ("nnzb", nnzb))
    b >= 1 || throw(ArgumentError("blocksize must be >= 1, got $b"))
    matA = Ref{SpMatDescr}(C_NULL)
    try
        check_sp(cusparseCreateBsr(matA, mb, kb, nnzb, b, b, indptr, indices, data, ti, ti,
                                   CUSPARSE_INDEX_BASE_ZERO, ta, CUSPARSE_ORDER_ROW), "cusparseCreateBsr")
        spmm_descr!(st, stream, matA[], mb * b, kb * b, n, B, tb, C, tc, ta, alg == 0 ? CUSPARSE_SPMM_BSR_ALG1 : Cint(alg))
    finally
        matA[] == C_NULL || cusparseDestroySpMat(matA[])
    end
    return nothing
end

"Blocked-ELL: `ellcols` block columns per block row (padded with -1), values (m/b)×ellcols blocks row-major."
function bell_spmm!(st::DeviceState, stream, m, k, n, b, ellcols, colind, values, B, C, ta, ti, tb, tc)
    check_dims(("m", m), ("k", k), ("n", n), ("ellcols", ellcols))
    b >= 1 || throw(ArgumentError("blocksize must be >= 1, got $b"))
    matA = Ref{SpMatDescr}(C_NULL)
    try
        check_sp(cusparseCreateBlockedEll(matA, m, k, b, ellcols * b, colind, values, ti,
                                          CUSPARSE_INDEX_BASE_ZERO, ta), "cusparseCreateBlockedEll")
        spmm_descr!(st, stream, matA[], m, k, n, B, tb, C, tc, ta, CUSPARSE_SPMM_BLOCKED_ELL_ALG1)
    finally
        matA[] == C_NULL || cusparseDestroySpMat(matA[])
    end
    return nothing
end
