"""
    SparseJL.GPU

Sparse products on an NVIDIA GPU through cuSPARSE, on device buffers that the caller (Python,
CuPy) owns: Julia never allocates the operands or results, only library workspaces.

CUDA.jl cannot be installed everywhere SparseJL runs, so this talks to NVIDIA's libraries with
`ccall` on pointers found by `dlsym`. Nothing is opened when SparseJL loads: the driver
(libcuda) and cuSPARSE are opened by the first GPU job, so CPU-only machines load SparseJL as
before. `libcuda.jl` and `libcusparse.jl` are the thin foreign-function layer; `context.jl`
holds the per-device state, `spmm.jl`/`spgemm.jl` the wrappers, `kernels.jl` the launches of
cubins compiled by the caller (sparsejl's own BSR kernels), `entries.jl` the jobs of the C
entry points (docs/abi.md, keys `cuda_*`).
"""
module GPU

using ..ABI

include("libcuda.jl")
include("libcusparse.jl")
include("context.jl")
include("spmm.jl")
include("spgemm.jl")
include("kernels.jl")
include("entries.jl")

end # module GPU
