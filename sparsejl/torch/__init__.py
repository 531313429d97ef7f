"""PyTorch layers on sparsejl's kernels: `BlockSparseLinear`. Importing this package imports torch;
`import sparsejl` alone does not."""

from .linear import BlockSparseLinear
from .sparsify import Replaced, Rule, SparsifyReport, sparsify

__all__ = ["BlockSparseLinear", "Replaced", "Rule", "SparsifyReport", "sparsify"]
