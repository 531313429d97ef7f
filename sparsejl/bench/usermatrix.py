"""A weight the user brings, as the sweep's operand: its own pattern, or pruned to each density.

    w = UserMatrix.load("model.safetensors", "encoder.layer.0.output.dense.weight")
    w = UserMatrix.load("weights.npz")            # scipy.sparse.save_npz, or NumPy arrays
    w = UserMatrix.of(torch.nn.Linear(768, 3072)) # a module's weight; or a tensor, an array,
                                                  # a SciPy sparse matrix
    cases = w.cases(tokens=128, densities=[0.05, 0.1], blocksize=16)
    sweep.run(cases, backends, operands=w.operands)

A weight that is already sparse (a SciPy matrix, or one with most entries zero: pruned) is
timed as it is, at its own density, with its own pattern (``blocksize`` is the largest square
block its pattern is made of, 1 if none). A dense weight is pruned with :mod:`sparsejl.prune`
(magnitude, or block magnitude for ``blocksize`` > 1) to each density asked for. A weight
``W`` is ``out × in``, applied as ``W @ X`` (m = out, k = in, n = tokens).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import scipy.sparse as sp

__all__ = ["UserMatrix", "SPARSE_BELOW"]

#: a weight with fewer than this share of its entries non-zero is taken as pruned already
SPARSE_BELOW = 0.5
_BLOCKS = (64, 32, 16, 8, 4, 2)


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):      # a torch tensor (bfloat16 has no NumPy type: through float32)
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def block_size_of(A: sp.csr_matrix) -> int:
    """The largest b of 64, 32, …, 2 such that A's stored entries fill whole aligned b×b blocks."""
    m, k = A.shape
    coo = A.tocoo()
    for b in _BLOCKS:
        if m % b or k % b or A.nnz % (b * b):
            continue
        blocks = np.unique((coo.row // b).astype(np.int64) * (k // b) + coo.col // b).size
        if blocks * b * b == A.nnz:
            return b
    return 1


@dataclasses.dataclass
class UserMatrix:
    """A user's weight: ``name`` (where it came from), the matrix (dense ``weight`` or ``sparse``)."""

    name: str
    weight: Optional[np.ndarray] = None
    sparse: Optional[sp.csr_matrix] = None
    _pruned: Dict = dataclasses.field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ making one
    @classmethod
    def of(cls, obj, name: Optional[str] = None) -> "UserMatrix":
        """From a SciPy sparse matrix, a NumPy array, a torch tensor or a module with ``weight``."""
        if hasattr(obj, "weight") and not sp.issparse(obj) and not isinstance(obj, np.ndarray):
            name = name or type(obj).__name__ + ".weight"
            obj = obj.weight
        if sp.issparse(obj):
            A = sp.csr_matrix(obj)
            if A.ndim != 2:
                raise ValueError("a weight must be 2-D")
            A.sort_indices()
            return cls(name or "sparse matrix", sparse=A)
        W = _to_numpy(obj)
        if W.ndim != 2:
            raise ValueError(f"a weight must be 2-D (out × in); this one has shape {W.shape}")
        if W.dtype.kind not in "fiu":
            raise TypeError(f"a weight must hold numbers, not {W.dtype}")
        if not np.isfinite(W).all():
            raise ValueError("the weight has NaN or infinite entries")
        W = W.astype(np.float64 if W.dtype == np.float64 else np.float32)
        if np.count_nonzero(W) < SPARSE_BELOW * W.size:
            A = sp.csr_matrix(W)
            A.sort_indices()
            return cls(name or "matrix", sparse=A)
        return cls(name or "matrix", weight=np.ascontiguousarray(W))

    @classmethod
    def load(cls, path, tensor: Optional[str] = None) -> "UserMatrix":
        """One tensor of a ``.safetensors`` file, or a ``.npz`` (SciPy's ``save_npz``, or NumPy
        arrays: ``tensor`` names one, else the only 2-D one)."""
        path = os.fspath(path)
        base = os.path.basename(path)
        if path.endswith(".safetensors"):
            from safetensors import safe_open
            try:
                import torch  # noqa: F401  (bfloat16 tensors read through PyTorch)
                framework = "pt"
            except ImportError:
                framework = "np"
            with safe_open(path, framework=framework) as f:
                names = list(f.keys())
                tensor = tensor or _only_2d(names, lambda n: f.get_slice(n).get_shape(), base)
                if tensor not in names:
                    raise KeyError(f"{base} has no tensor {tensor!r}; it has {', '.join(names[:20])}")
                return cls.of(f.get_tensor(tensor), f"{base}:{tensor}")
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                names = list(z.files)
                if {"data", "indices", "indptr", "shape", "format"} <= set(names) and tensor is None:
                    return cls.of(sp.load_npz(path), base)
                tensor = tensor or _only_2d(names, lambda n: z[n].shape, base)
                if tensor not in names:
                    raise KeyError(f"{base} has no array {tensor!r}; it has {', '.join(names[:20])}")
                return cls.of(z[tensor], f"{base}:{tensor}")
        raise ValueError(f"{base}: give a .safetensors or a .npz file")

    # ------------------------------------------------------------------ what it is
    @property
    def shape(self):
        return (self.sparse if self.sparse is not None else self.weight).shape

    @property
    def own_pattern(self) -> bool:
        """True when it is timed as it is (already sparse), False when pruned to each density."""
        return self.sparse is not None

    @property
    def dtype(self) -> str:
        return str((self.sparse if self.sparse is not None else self.weight).dtype)

    def describe(self) -> str:
        m, k = self.shape
        if self.own_pattern:
            A = self.sparse
            b = block_size_of(A)
            pattern = "unstructured" if b == 1 else f"{b}×{b} blocks"
            return (f"{self.name}: {m}×{k} {self.dtype}, {A.nnz:,} stored ({A.nnz / (m * k):.3g} dense), "
                    f"{pattern}: timed with its own pattern")
        return (f"{self.name}: {m}×{k} {self.dtype}, dense: pruned by magnitude (sparsejl.prune) to each "
                "density, in the chosen pattern")

    # ------------------------------------------------------------------ for the sweep
    def cases(self, tokens: int, densities: Sequence[float], blocksize: int = 1, dtype: Optional[str] = None,
              op: str = "spmm", seed: int = 0) -> List:
        """The sweep's cases: one at the weight's own density (own pattern), else one per density."""
        from .sweep import Case
        m, k = self.shape
        dtype = dtype or self.dtype
        model, _, layer = self.name.partition(":")
        common = dict(model=model, layer=layer or "weight", m=m, k=k, dtype=dtype, op=op, seed=seed,
                      n=(m if op == "spgemm" else int(tokens)),
                      operand_b=("transpose" if op == "spgemm" else "random"))
        if self.own_pattern:
            A = self.sparse
            return [Case(density=round(A.nnz / (m * k), 6), blocksize=block_size_of(A), **common)]
        b = int(blocksize)
        if b > 1 and (m % b or k % b):
            raise ValueError(f"{m}×{k} is not a whole number of {b}×{b} blocks")
        return [Case(density=float(d), blocksize=b, **common) for d in densities]

    def matrix(self, density: float, blocksize: int, dtype: str) -> sp.csr_matrix:
        """The weight as CSR of ``dtype``: as it is, or pruned to ``density``."""
        if self.own_pattern:
            A = self.sparse
        else:
            key = (float(density), int(blocksize))
            A = self._pruned.get(key)
            if A is None:
                from .. import prune
                A = (prune.block_magnitude(self.weight, density, blocksize) if blocksize > 1
                     else prune.magnitude(self.weight, density))
                A = sp.csr_matrix(A)
                A.sort_indices()
                self._pruned = {key: A}        # one at a time: a large weight is large
        return A.astype(dtype) if A.dtype != np.dtype(dtype) else A

    def operands(self, case):
        """``(A, B)`` for the sweep (``sweep.run(..., operands=w.operands)``)."""
        from . import matrices
        A = self.matrix(case.density, case.blocksize, case.dtype)
        if case.op == "spgemm":
            B = A.T.tocsr()
            B.sort_indices()
            return A, B
        return A, matrices.dense_operand(case.k, case.n, np.dtype(case.dtype), case.seed + 1)


def _only_2d(names, shape_of, base) -> str:
    two = [n for n in names if len(shape_of(n)) == 2]
    if len(two) != 1:
        raise ValueError(f"{base} holds {len(two)} 2-D tensors: name the one to time "
                         f"({', '.join(two[:12])}{', …' if len(two) > 12 else ''})")
    return two[0]
