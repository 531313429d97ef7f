# julia-cuda's CSR SpGEMM compute job restated with timestamps between its cuSPARSE calls
# (bench/gpu_spgemm.py), and the package's copy job timed. Evaluates to the pointers of the two
# jobs and of the timestamp buffer.
module SpGEMMProbe
using SparseJL
using SparseJL.ABI: Slots, slot, address, guarded
const G = SparseJL.GPU
const T = zeros(Int64, 32)       # timestamps (ns, CLOCK_MONOTONIC), read by Python
const MODE = Ref(0)              # 0: G.workspace (the package's pool); 1: the default pool
const TV = Ref{Cint}(0)
const TI = Ref{Cint}(0)
stamp(i) = (@inbounds T[i] = Int64(time_ns()); nothing)

function set_default_threshold(ordinal, value::UInt64)
    dev = Ref{G.CUdevice}(0)
    G.check_cu(G.cuDeviceGet(dev, ordinal), "cuDeviceGet")
    pool = Ref{Ptr{Cvoid}}(C_NULL)
    G.check_cu(ccall(G.cu(:cuDeviceGetDefaultMemPool), G.CUresult, (Ref{Ptr{Cvoid}}, G.CUdevice), pool, dev[]),
               "cuDeviceGetDefaultMemPool")
    G.check_cu(G.cuMemPoolSetAttribute(pool[], G.CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, Ref(value)), "threshold")
    return 0
end

function ws(st, bytes, stream)
    bytes == 0 && return C_NULL
    MODE[] == 0 && return G.workspace(st, bytes, stream)
    p = Ref{G.CUdeviceptr}(0)
    G.check_cu(ccall(G.cu(:cuMemAllocAsync), G.CUresult, (Ref{G.CUdeviceptr}, Csize_t, G.CUstream), p, bytes, stream),
               "cuMemAllocAsync")
    return Ptr{Cvoid}(p[])
end

function compute!(st, stream, m, k, n, nnzA, indptrA, indicesA, dataA, nnzB, indptrB, indicesB, dataB, tv, ti)
    ct = G.compute_type(tv)
    alpha, beta = G.one_of(ct), G.zero_of(ct)
    op = G.CUSPARSE_OPERATION_NON_TRANSPOSE
    alg = G.CUSPARSE_SPGEMM_DEFAULT
    s = G.SpGEMMState(st, stream, C_NULL, C_NULL, C_NULL, C_NULL, C_NULL, C_NULL, ct, Int(m), 0)
    r = Ref{G.SpMatDescr}(C_NULL)
    G.check_sp(G.cusparseCreateCsr(r, m, k, nnzA, indptrA, indicesA, dataA, ti, ti, G.CUSPARSE_INDEX_BASE_ZERO, tv), "A")
    s.matA = r[]
    G.check_sp(G.cusparseCreateCsr(r, k, n, nnzB, indptrB, indicesB, dataB, ti, ti, G.CUSPARSE_INDEX_BASE_ZERO, tv), "B")
    s.matB = r[]
    G.check_sp(G.cusparseCreateCsr(r, m, n, 0, C_NULL, C_NULL, C_NULL, ti, ti, G.CUSPARSE_INDEX_BASE_ZERO, tv), "C")
    s.matC = r[]
    d = Ref{G.SpGEMMDescr}(C_NULL)
    G.check_sp(G.cusparseSpGEMM_createDescr(d), "descr")
    s.descr = d[]
    stamp(3)
    size1 = Ref{Csize_t}(0)
    G.check_sp(G.cusparseSpGEMM_workEstimation(st.handle, op, op, alpha, s.matA, s.matB, beta, s.matC, ct, alg,
                                               s.descr, size1, C_NULL), "we0")
    stamp(4)
    s.buf1 = ws(st, size1[], stream)
    stamp(5)
    G.check_sp(G.cusparseSpGEMM_workEstimation(st.handle, op, op, alpha, s.matA, s.matB, beta, s.matC, ct, alg,
                                               s.descr, size1, s.buf1), "we")
    stamp(6)
    size2 = Ref{Csize_t}(0)
    G.check_sp(G.cusparseSpGEMM_compute(st.handle, op, op, alpha, s.matA, s.matB, beta, s.matC, ct, alg,
                                        s.descr, size2, C_NULL), "c0")
    stamp(7)
    s.buf2 = ws(st, size2[], stream)
    stamp(8)
    G.check_sp(G.cusparseSpGEMM_compute(st.handle, op, op, alpha, s.matA, s.matB, beta, s.matC, ct, alg,
                                        s.descr, size2, s.buf2), "c")
    stamp(9)
    rows, cols, nnz = Ref{Int64}(0), Ref{Int64}(0), Ref{Int64}(0)
    G.check_sp(G.cusparseSpMatGetSize(s.matC, rows, cols, nnz), "size")
    s.nnzC = Int(nnz[])
    T[20] = Int64(size1[]); T[21] = Int64(size2[])
    id = (G._spgemm_next[] += 1)
    G._spgemm_states[id] = s
    return id, s.nnzC
end

function compute_job(s)
    stamp(1)
    T[16] = Int64(Base.gc_time_ns())
    st = G.job_device(s)
    stamp(2)
    id, nnzC = compute!(st, address(s, :stream), slot(s, :m), slot(s, :k), slot(s, :n),
                        slot(s, :nnzA), address(s, :indptrA), address(s, :indicesA), address(s, :dataA),
                        slot(s, :nnzB), address(s, :indptrB), address(s, :indicesB), address(s, :dataB), TV[], TI[])
    out = Ptr{Int64}(address(s, :out))
    unsafe_store!(out, id, 1)
    unsafe_store!(out, nnzC, 2)
    stamp(10)
    return
end

function copy_job(s)
    stamp(11)
    G.cuda_csr_spgemm_copy_job(s)
    stamp(12)
    T[17] = Int64(Base.gc_time_ns())
    return
end

compute_entry(a::Ptr{Int64}) = guarded(x -> compute_job(Slots(x, :cuda_csr_spgemm_compute)), a)
copy_entry(a::Ptr{Int64}) = guarded(x -> copy_job(Slots(x, :cuda_csr_spgemm_copy)), a)
pointers() = join(string.(UInt.((@cfunction(compute_entry, Int32, (Ptr{Int64},)),
                                 @cfunction(copy_entry, Int32, (Ptr{Int64},)), pointer(T)))), " ")
end
SpGEMMProbe.pointers()
