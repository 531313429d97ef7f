"""BlockSparseLinear: an nn.Linear whose weight keeps only some b×b blocks (a pattern), trained
and run through sparsejl's kernels (sparsejl.torch.ops)."""

from __future__ import annotations

import math

import torch
from torch import nn

from . import inference, ops


def _blocks_of(in_features: int, out_features: int, blocksize: int):
    if blocksize < 1:
        raise ValueError(f"blocksize must be at least 1, got {blocksize}")
    if in_features % blocksize or out_features % blocksize:
        raise ValueError(f"BlockSparseLinear({in_features} -> {out_features}): in_features and out_features "
                         f"must be multiples of the blocksize {blocksize}")
    return out_features // blocksize, in_features // blocksize


def _block_count(density: float, nblocks: int) -> int:
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must lie in [0, 1], got {density}")
    count = int(round(density * nblocks))
    return max(count, 1) if density > 0 and nblocks else count


def _chosen_pattern(scores: torch.Tensor, count: int) -> torch.Tensor:
    """The `count` blocks of highest score, as a bool tensor of the scores' shape."""
    keep = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    keep[torch.topk(scores.flatten(), count).indices] = True
    return keep.reshape(scores.shape)


class BlockSparseLinear(nn.Module):
    """`y = x @ W.T + bias` with W (out_features × in_features) stored as its blocks on `pattern`.

    `pattern` (bool, (out/b) × (in/b)) says which b×b blocks exist; without it a random pattern
    with round(density · blocks) blocks (at least one where density > 0) is drawn from PyTorch's
    generator. `weight_blocks` (nnzb, b, b) holds the stored blocks in row-major block order and
    is initialised as nn.Linear initialises its weight (uniform in ±1/sqrt(in_features)); so is
    `bias`. The pattern is a buffer: it moves with `.to()` and is saved in the state dict; loading a
    state dict with another pattern adopts it (with its blocks).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, density: float = 0.1,
                 blocksize: int = 32, pattern: torch.Tensor | None = None, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features, self.blocksize = int(in_features), int(out_features), int(blocksize)
        shape = _blocks_of(self.in_features, self.out_features, self.blocksize)
        if pattern is None:
            pattern = _chosen_pattern(torch.rand(shape), _block_count(density, shape[0] * shape[1]))
        pattern = torch.as_tensor(pattern)
        if tuple(pattern.shape) != shape:
            raise ValueError(f"pattern has shape {tuple(pattern.shape)}, expected {shape} "
                             f"(blocks of {self.blocksize} of the {self.out_features}x{self.in_features} weight)")
        self.register_buffer("pattern", pattern.to(device=device, dtype=torch.bool))
        b = self.blocksize
        self.weight_blocks = nn.Parameter(torch.empty((0, b, b), device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.empty(self.out_features, device=device, dtype=dtype)) if bias else None
        self._adopt_structure()
        self.reset_parameters()

    def _adopt_structure(self):
        """indptr and indices (non-persistent buffers) from the pattern, and blocks of its count."""
        counts = self.pattern.sum(1)
        indptr = torch.zeros(self.pattern.shape[0] + 1, dtype=torch.int64, device=self.pattern.device)
        indptr[1:] = torch.cumsum(counts, 0)
        indices = self.pattern.nonzero()[:, 1].contiguous()
        self.register_buffer("indptr", indptr, persistent=False)
        self.register_buffer("indices", indices, persistent=False)
        nnzb, b = int(indices.shape[0]), self.blocksize
        if self.weight_blocks.shape[0] != nnzb:
            self.weight_blocks = nn.Parameter(self.weight_blocks.new_empty((nnzb, b, b)))

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.in_features) if self.in_features else 0.0
        with torch.no_grad():
            self.weight_blocks.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)

    @property
    def density(self) -> float:
        """The share of blocks stored."""
        return float(self.pattern.sum()) / self.pattern.numel() if self.pattern.numel() else 0.0

    def dense_weight(self) -> torch.Tensor:
        """The (out_features × in_features) weight with zeros off the pattern (differentiable)."""
        (mb, kb), b = self.pattern.shape, self.blocksize
        grid = self.weight_blocks.new_zeros((mb, kb, b, b))
        grid = grid.index_put((self.pattern,), self.weight_blocks)
        return grid.permute(0, 2, 1, 3).reshape(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and x.dtype in (torch.float16, torch.bfloat16):
            # no 16-bit CPU kernels: the dense weight, as nn.Linear would compute it
            return nn.functional.linear(x, self.dense_weight(), self.bias)
        if not torch.is_grad_enabled() and not torch.compiler.is_compiling():
            if x.device.type == "cuda":
                return inference.cuda_forward(self, x)    # a kept GPU weight, decoding kernels
            if x.device.type == "cpu" and x.dtype == self.weight_blocks.dtype:
                return inference.cpu_forward(self, x)     # a kept view of the weight, no autograd node
        return ops.linear(x, self.weight_blocks, self.indptr, self.indices, self.bias, self.out_features)

    @classmethod
    def from_dense(cls, linear: nn.Linear, density: float, blocksize: int = 32,
                   method: str = "magnitude") -> "BlockSparseLinear":
        """The blocks of `linear`'s weight kept by `method`: "magnitude" keeps the
        round(density · blocks) blocks of largest Frobenius norm (at least one where density > 0),
        "random" as many chosen by PyTorch's generator; bias copied."""
        W = linear.weight.detach()
        out_features, in_features = W.shape
        (mb, kb), b = _blocks_of(in_features, out_features, blocksize), blocksize
        count = _block_count(density, mb * kb)
        blocks = W.reshape(mb, b, kb, b).permute(0, 2, 1, 3)
        if method == "magnitude":
            scores = blocks.double().pow(2).sum((2, 3))
        elif method == "random":
            scores = torch.rand((mb, kb)).to(W.device)
        else:
            raise ValueError(f"method must be 'magnitude' or 'random', got {method!r}")
        pattern = _chosen_pattern(scores, count)
        layer = cls(in_features, out_features, bias=linear.bias is not None, blocksize=b, pattern=pattern,
                    device=W.device, dtype=W.dtype)
        with torch.no_grad():
            layer.weight_blocks.copy_(blocks[pattern])
            if linear.bias is not None:
                layer.bias.copy_(linear.bias)
        return layer

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        saved = state_dict.get(prefix + "pattern")
        if saved is not None and not torch.equal(saved.to(self.pattern.device), self.pattern):
            if tuple(saved.shape) != tuple(self.pattern.shape):
                error_msgs.append(f"{prefix}pattern has shape {tuple(saved.shape)} in the state dict but "
                                  f"{tuple(self.pattern.shape)} here: a layer of another size or blocksize")
                return
            self.pattern = saved.to(device=self.pattern.device, dtype=torch.bool).clone()
            self._adopt_structure()      # the saved pattern, with room for its blocks
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"blocksize={self.blocksize}, density={self.density:.3f}")
