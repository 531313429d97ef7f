# SpGEMM on the GPU: C = A * B, all CSR, through cuSPARSE's generic SpGEMM. The caller owns C's
# arrays, and their size is known only after the compute phase, so a product takes two jobs:
# `spgemm_compute!` (work estimation and compute, into library workspaces) returns a state id
# and nnz(C); the caller allocates indptrC (m+1), indicesC and dataC (nnz) and `spgemm_copy!`
# fills them and releases the state. `spgemm_release!` drops a state without copying.

mutable struct SpGEMMState
    st::DeviceState
    stream::Ptr{Cvoid}
    matA::SpMatDescr
    matB::SpMatDescr
    matC::SpMatDescr
    descr::SpGEMMDescr
    buf1::Ptr{Cvoid}
    buf2::Ptr{Cvoid}
    ct::Cint
    m::Int
    nnzC::Int
end

const _spgemm_states = Dict{Int,SpGEMMState}()
const _spgemm_next = Ref(0)

function spgemm_compute!(st::DeviceState, stream, m, k, n, nnzA, indptrA, indicesA, dataA,
                         nnzB, indptrB, indicesB, dataB, tv, ti)
    check_dims(("m", m), ("k", k), ("n", n), ("nnzA", nnzA), ("nnzB", nnzB))
    ct = compute_type(tv)
    alpha, beta = one_of(ct), zero_of(ct)
    op = CUSPARSE_OPERATION_NON_TRANSPOSE
    alg = CUSPARSE_SPGEMM_DEFAULT
    s = SpGEMMState(st, stream, C_NULL, C_NULL, C_NULL, C_NULL, C_NULL, C_NULL, ct, Int(m), 0)
    ok = false
    try
        r = Ref{SpMatDescr}(C_NULL)
        check_sp(cusparseCreateCsr(r, m, k, nnzA, indptrA, indicesA, dataA, ti, ti, CUSPARSE_INDEX_BASE_ZERO, tv), "cusparseCreateCsr(A)")
        s.matA = r[]
        check_sp(cusparseCreateCsr(r, k, n, nnzB, indptrB, indicesB, dataB, ti, ti, CUSPARSE_INDEX_BASE_ZERO, tv), "cusparseCreateCsr(B)")
        s.matB = r[]
        check_sp(cusparseCreateCsr(r, m, n, 0, C_NULL, C_NULL, C_NULL, ti, ti, CUSPARSE_INDEX_BASE_ZERO, tv), "cusparseCreateCsr(C)")
        s.matC = r[]
        d = Ref{SpGEMMDescr}(C_NULL)
        check_sp(cusparseSpGEMM_createDescr(d), "cusparseSpGEMM_createDescr")
        s.descr = d[]
        size1 = Ref{Csize_t}(0)
        check_sp(cusparseSpGEMM_workEstimation(st.handle, op, op, alpha, s.matA, s.matB, beta, s.matC, ct, alg,
                                               s.descr, size1, C_NULL), "cusparseSpGEMM_workEstimation(size)")
        s.buf1 = workspace(st, size1[], stream)
        check_sp(cusparseSpGEMM_workEstimation(st.handle, op, op, alpha, s.matA, s.matB, beta, s.matC, ct, alg,
                                               s.descr, size1, s.buf1), "cusparseSpGEMM_workEstimation")
        size2 = Ref{Csize_t}(0)
        check_sp(cusparseSpGEMM_compute(st.handle, op, op, alpha, s.matA, s.matB, beta, s.matC, ct, alg,
                                        s.descr, size2, C_NULL), "cusparseSpGEMM_compute(size)")
        s.buf2 = workspace(st, size2[], stream)
        check_sp(cusparseSpGEMM_compute(st.handle, op, op, alpha, s.matA, s.matB, beta, s.matC, ct, alg,
                                        s.descr, size2, s.buf2), "cusparseSpGEMM_compute")
        rows, cols, nnz = Ref{Int64}(0), Ref{Int64}(0), Ref{Int64}(0)
        check_sp(cusparseSpMatGetSize(s.matC, rows, cols, nnz), "cusparseSpMatGetSize")
        s.nnzC = Int(nnz[])
        ok = true
    finally
        ok || release!(s)
    end
    id = (_spgemm_next[] += 1)
    _spgemm_states[id] = s
    return id, s.nnzC
end

function take_state(id)
    s = pop!(_spgemm_states, Int(id), nothing)
    s === nothing && throw(ArgumentError("no pending SpGEMM with id $id"))
    return s
end

function spgemm_copy!(id, indptrC, indicesC, dataC)
    s = take_state(id)
    try
        check_sp(cusparseCsrSetPointers(s.matC, indptrC, indicesC, dataC), "cusparseCsrSetPointers")
        op = CUSPARSE_OPERATION_NON_TRANSPOSE
        check_sp(cusparseSpGEMM_copy(s.st.handle, op, op, one_of(s.ct), s.matA, s.matB, zero_of(s.ct), s.matC,
                                     s.ct, CUSPARSE_SPGEMM_DEFAULT, s.descr), "cusparseSpGEMM_copy")
    finally
        release!(s)
    end
    return nothing
end

spgemm_release!(id) = release!(take_state(id))

function release!(s::SpGEMMState)
    free_workspace(s.buf1, s.stream); s.buf1 = C_NULL
    free_workspace(s.buf2, s.stream); s.buf2 = C_NULL
    s.descr == C_NULL || cusparseSpGEMM_destroyDescr(s.descr); s.descr = C_NULL
    for f in (:matA, :matB, :matC)
        p = getfield(s, f)
        p == C_NULL || cusparseDestroySpMat(p)
        setfield!(s, f, C_NULL)
    end
    return nothing
end
