"""PyTorch layers on sparsejl's kernels: `BlockSparseLinear`. Importing this package imports torch;
`import sparsejl` alone does not."""

from .linear import BlockSparseLinear

__all__ = ["BlockSparseLinear"]
