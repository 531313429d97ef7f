"""Julia embedded in this process, one job per module, each used by the next:

find       which `julia` executable, what it says of itself (probe), where SparseJL lies
boot       libjulia loaded and started on its owner thread, SparseJL loaded
transport  one job handed to Julia and waited for: the mailbox, in C or through ctypes

`sparsejl.runtime` puts them together behind `get()`; callers go through it.
"""
