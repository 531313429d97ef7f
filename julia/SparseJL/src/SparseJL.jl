"""
    SparseJL

Multithreaded CPU kernels for sparse matrices stored the way SciPy stores them (0-based
`indptr`, `indices`, `data`), so that Python's arrays can be wrapped in place. `CSRMatrix` and
`BSRMatrix` are `AbstractSparseMatrix`es that work where a `SparseMatrixCSC` does (`*`, `mul!`,
`transpose`, indexing, `sparse`, `==`). `SparseJL.CABI` holds the C entry points that the Python
package `sparsejl` calls (see docs/abi.md).
"""
module SparseJL

using LinearAlgebra
using SparseArrays
using Base.Threads: nthreads

export CSRMatrix, BSRMatrix, check_format, spmm, spmm!, spgemm, blocksize

include("checks.jl")
include("threading.jl")
include("simd.jl")
include("scratch.jl")
include("csr.jl")
include("bsr.jl")
include("conversions.jl")
include("matrix_interface.jl")
include("spmm.jl")
include("transposed.jl")
include("spgemm.jl")
include("spgemm_dense.jl")
include("spgemm_onepass.jl")
include("linalg.jl")
include("linear.jl")
include("abi.jl")
include("cuda/cuda.jl")
include("cabi.jl")

__init__() = (WIDE_VECTORS[] = detect_wide_vectors(); nothing)

end # module
