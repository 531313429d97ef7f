"""GPU products run by Julia: SparseJL.GPU calls cuSPARSE on the device buffers CuPy owns.

Zero-copy: Python passes device pointers, the current device and CuPy's current stream; Julia
makes the device's primary context current on its thread, points its cuSPARSE handle at that
stream and enqueues the work (cuSPARSE calls, or launches of sparsejl's own BSR kernels). Outputs
are allocated by CuPy here; Julia allocates only cuSPARSE's workspaces (stream-ordered, from a
memory pool of its own that keeps what it frees). The entry points are the `cuda_*` keys
of docs/abi.md.

* CSR SpMM: cusparseSpMM, CSR, row-major B and C (algorithm `alg`, default 0).
* BSR SpMM, float16/bfloat16: sparsejl's own kernels (TMA + wgmma for 64x64 blocks on Hopper,
  mma.sync otherwise; _bsr_kernels.py), compiled once by NVRTC on the Python side; Julia loads the
  cubin (cuModuleLoadData) and launches it (cuLaunchKernel) on A's BSR arrays: the same machine
  code as the "cupy" backend, 3x faster than cuSPARSE's Blocked-ELL SpMM on an H200 and with no
  conversion of A. cuSPARSE's Blocked-ELL (`alg=CUSPARSE_SPMM_BLOCKED_ELL_ALG1` or `blocked_ell=`)
  and BSR (`alg=CUSPARSE_SPMM_BSR_ALG1`) SpMM stay selectable. float32/float64: BSR_ALG1.
* CSR SpGEMM: cusparseSpGEMM in two jobs (compute, then copy into arrays CuPy allocates). The
  compute job waits ~1 ms for the GPU to count nnz(C): the caller spins through both jobs'
  waits (`runtime.Runtime.call`'s `spin_s`), as CuPy's thread does inside cuSPARSE, instead of
  sleeping and waking ~150 µs late (docs/gpu-notes.md, "julia-cuda CSR SpGEMM").
"""

from __future__ import annotations

import ctypes
import threading

import numpy as np

from . import _cuda, _gpu_conversions
from ._gpu_conversions import bsr_to_csr, csr_to_bsr, retyped, to_blocked_ell  # noqa: F401 (to_blocked_ell: for callers)
from .protocol import Backend
from ._cuda import CUSPARSE_SPMM_ALG_DEFAULT, CUSPARSE_SPMM_BLOCKED_ELL_ALG1, CUSPARSE_SPMM_BSR_ALG1  # noqa: F401
from .. import abi, runtime

SPGEMM_SPIN_S = 0.01  # the caller's spin on SpGEMM's jobs; a late wake-up (~0.3 ms) is < 3 % of a longer job

_init_lock = threading.Lock()
_initialised: dict = {}  # device ordinal -> (cuSPARSE version, driver version)


def availability():
    return _cuda.gpu_reason() or runtime.unavailable_reason()


def _ptr(a) -> int:
    return int(a.data.ptr)


def _ready() -> tuple[runtime.Runtime, int]:
    """The runtime, with SparseJL.GPU bound to CuPy's cuSPARSE and the current device; the device."""
    rt = runtime.get()
    dev = _cuda.current_device()
    if dev not in _initialised:
        with _init_lock:
            if dev not in _initialised:
                path = _cuda.libcusparse_path().encode()
                out = np.zeros(2, dtype=np.int64)
                rt.call("cuda_init", abi.entry("cuda_init").pack(
                    path=_addr(path), path_len=len(path), device=dev, out=out.ctypes.data), (path, out))
                _initialised[dev] = (int(out[0]), int(out[1]))
    return rt, dev


def versions() -> dict:
    """cuSPARSE and driver versions as Julia sees them on the current device."""
    _, dev = _ready()
    cusparse, driver = _initialised[dev]
    return {"cusparse": cusparse, "cuda_driver": driver}


def spmm(A, B, out=None, *, alg: int | None = None, blocked_ell=None, config=None):
    """A @ B. BSR with float16/bfloat16 values: sparsejl's own kernels (the cubins the "cupy" backend
    runs, `config` as there), launched by Julia; `alg=CUSPARSE_SPMM_BLOCKED_ELL_ALG1` or a
    `blocked_ell=to_blocked_ell(A)` copy runs cuSPARSE's Blocked-ELL SpMM instead (`alg=None` with
    no copy: converted in the call), `alg=CUSPARSE_SPMM_BSR_ALG1` cuSPARSE's BSR SpMM, the default
    for float32/float64. CSR: cuSPARSE's generic SpMM (`alg`, default 0). Into `out` (fresh when
    None); nothing here waits for the device."""
    import cupy
    from . import _bsr_kernels
    A, B, dtype = retyped(A, B)
    rt, dev = _ready()
    m, k = A.shape
    n = B.shape[1]
    C = out if out is not None else cupy.empty((m, n), dtype=dtype)
    if m == 0 or n == 0:
        return C
    if (A.format == "bsr" and alg is None and blocked_ell is None
            and _cuda.dtype_name(A.data.dtype) in _gpu_conversions.BELL_DTYPES):
        launch = _bsr_kernels.plan(A, B, C, config=config)
        if launch is not None:
            launch_kernel(launch)
        return C
    stream = _cuda.current_stream_ptr()
    indptr, indices = _gpu_conversions.structure_in_one_index_type(A)
    idx = indices.dtype
    if len(indices) == 0:  # nothing stored; cuSPARSE writes empty rows itself otherwise (beta = 0)
        C.fill(0)
        return C
    if A.format == "bsr" and blocked_ell is None and alg == CUSPARSE_SPMM_BLOCKED_ELL_ALG1:
        blocked_ell = _gpu_conversions.blocked_ell(A)   # None where the padding would cost too much: BSR_ALG1
        alg = None
    if A.format == "bsr" and blocked_ell is not None:
        colind, values, ellcols = blocked_ell
        bell = abi.entry("cuda_bell_spmm")
        rt.call(bell.key(values.dtype, colind.dtype, B.dtype, dtype),
                bell.pack(device=dev, stream=stream, m=m, k=k, n=n, b=A.blocksize, ellcols=ellcols,
                          colind=_ptr(colind), values=_ptr(values), B=_ptr(B), C=_ptr(C)),
                (colind, values, B, C))
        return C
    operands = dict(device=dev, stream=stream, n=n, indptr=_ptr(indptr), indices=_ptr(indices), data=_ptr(A.data),
                    B=_ptr(B), C=_ptr(C))
    if A.format == "csr":
        entry = abi.entry("cuda_csr_spmm")
        slots = entry.pack(m=m, k=k, nnz=len(indices), alg=CUSPARSE_SPMM_ALG_DEFAULT if alg is None else alg,
                           **operands)
    else:
        b = A.blocksize
        entry = abi.entry("cuda_bsr_spmm")
        slots = entry.pack(mb=m // b, kb=k // b, b=b, nnzb=len(indices),
                           alg=CUSPARSE_SPMM_BSR_ALG1 if alg is None else alg, **operands)
    rt.call(entry.key(A.data.dtype, idx, B.dtype, dtype), slots, (indptr, indices, A.data, B, C))
    return C


_kernel_ids: dict = {}  # (device, Kernel) -> the id Julia gave the loaded cubin


def _addr(buf: bytes) -> int:
    return ctypes.cast(buf, ctypes.c_void_p).value


def launch_kernel(launch) -> None:
    """Have Julia launch `launch` (a _cukernel.Launch) on CuPy's current stream: the cubin is loaded
    into Julia's (the primary) context on first use, then each launch passes the packed parameters."""
    rt, dev = _ready()
    kern = launch.kernel
    kid = _kernel_ids.get((dev, kern))
    if kid is None:
        with _init_lock:
            kid = _kernel_ids.get((dev, kern))
            if kid is None:
                name, image = kern.name.encode(), kern.cubin
                out = np.zeros(1, dtype=np.int64)
                rt.call("cuda_kernel_load", abi.entry("cuda_kernel_load").pack(
                    device=dev, image=_addr(image), image_len=len(image), name=_addr(name), name_len=len(name),
                    smem=kern.smem, out=out.ctypes.data), (image, name, out))
                kid = _kernel_ids[(dev, kern)] = int(out[0])
    g = launch.grid
    t = kern.threads
    params = launch.params
    rt.call("cuda_kernel_launch", abi.entry("cuda_kernel_launch").pack(
        device=dev, stream=_cuda.current_stream_ptr(), kernel=kid, grid_x=g[0], grid_y=g[1], grid_z=g[2],
        block_x=t[0], block_y=t[1], block_z=t[2], params=_addr(params), offsets=kern.offsets_address,
        nparams=len(kern.offsets)), (params, kern.offsets, launch.keepalive))


def spgemm(A, B):
    """CSR @ CSR through cuSPARSE SpGEMM (32-bit indices as cuSPARSE needs); BSR through CSR."""
    import cupy
    import cupyx.scipy.sparse as csp
    from ..formats import CSR

    if A.format == "bsr":
        C = spgemm(bsr_to_csr(A), bsr_to_csr(B))
        return csr_to_bsr(C, A.blocksize)
    out = _cuda.result_dtype(A.data.dtype, B.data.dtype)
    work = out if out in (np.float32, np.float64) else np.dtype(np.float32)  # cuSPARSE SpGEMM: no 16-bit
    rt, dev = _ready()
    stream = _cuda.current_stream_ptr()
    m, k = A.shape
    n = B.shape[1]
    (ia, ja, ib, jb), idx = _cuda.common_index(A.indptr, A.indices, B.indptr, B.indices)
    da, db = _cuda.same_dtype(A.data, work), _cuda.same_dtype(B.data, work)
    compute = abi.entry("cuda_csr_spgemm_compute")
    res = np.zeros(2, dtype=np.int64)
    indptr = cupy.empty(m + 1, dtype=idx)  # before the compute job: the GPU waits on what runs between the jobs
    rt.call(compute.key(work, idx),
            compute.pack(device=dev, stream=stream, m=m, k=k, n=n, nnzA=len(ja), indptrA=_ptr(ia), indicesA=_ptr(ja),
                         dataA=_ptr(da), nnzB=len(jb), indptrB=_ptr(ib), indicesB=_ptr(jb), dataB=_ptr(db),
                         out=res.ctypes.data),
            (ia, ja, da, ib, jb, db, res), spin_s=SPGEMM_SPIN_S)
    state, nnz = int(res[0]), int(res[1])
    try:
        indices = cupy.empty(nnz, dtype=idx)
        data = cupy.empty(nnz, dtype=work)
    except BaseException:
        rt.call("cuda_csr_spgemm_release", abi.entry("cuda_csr_spgemm_release").pack(
            device=dev, stream=stream, state=state))
        raise
    rt.call("cuda_csr_spgemm_copy", abi.entry("cuda_csr_spgemm_copy").pack(
        device=dev, stream=stream, state=state, indptrC=_ptr(indptr), indicesC=_ptr(indices), dataC=_ptr(data)),
        (ia, ja, da, ib, jb, db, indptr, indices, data), spin_s=SPGEMM_SPIN_S)
    if work == out and idx == np.int32:
        # cuSPARSE writes each row's columns sorted and merged: canonical already
        return csp.csr_matrix((data, indices, indptr), shape=(m, n))
    return CSR(data.astype(out, copy=False), indices, indptr, (m, n))




BACKEND = Backend("julia-cuda", "gpu", checks_structure=False, value_dtypes=_cuda.value_dtypes,
                  availability=availability, spmm=spmm, spgemm=spgemm)
