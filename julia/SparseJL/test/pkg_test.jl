# Pkg.test() offline: Pkg wants a registry even for a package whose dependencies are all
# standard libraries, and none can be downloaded here. So this script adds an empty local
# registry (in a temporary depot) to DEPOT_PATH, then runs Pkg.test(), which runs
# test/runtests.jl in a fresh process with --check-bounds=yes.
# Run: JULIA_NUM_THREADS=2 julia --project=julia/SparseJL julia/SparseJL/test/pkg_test.jl
using Pkg

depot = mktempdir()
registry = joinpath(depot, "registries", "OfflineEmpty")
mkpath(registry)
write(joinpath(registry, "Registry.toml"), """
    name = "OfflineEmpty"
    uuid = "0f6a6c2e-6b1a-4f4e-9a55-5e1f3c2a7d10"
    repo = ""
    description = "An empty registry, so that Pkg.test() runs offline."

    [packages]
    """)
push!(DEPOT_PATH, depot)
Pkg.test("SparseJL")
