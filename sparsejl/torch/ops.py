"""The products of a block-sparse linear layer as PyTorch custom ops (`torch.library`), so that
autograd, `torch.compile` and `torch.export` see them as ops. Each runs sparsejl's public
products (layer_ops) on the tensors' memory, without copies.

    sparsejl::bsr_linear(X, blocks, indptr, indices, bias, out_features)   X @ W.T + bias
    sparsejl::bsr_linear_input_grad(dY, blocks, indptr, indices, in_features)   dY @ W
    sparsejl::bsr_sddmm(X, Y, indptr, indices, blocksize)   W's stored blocks of X.T @ Y

W (out×in) is given by its stored blocks (nnzb, b, b) and the BSR structure (indptr over block
rows, indices of block columns). Each op's gradient is made of the three ops.

Eager calls outside torch.compile go through `linear` (a torch.autograd.Function over the same
products and gradients), which skips the custom-op dispatcher's ~100 µs of Python per call.
"""

from __future__ import annotations

from typing import Optional

import torch

from .. import interop, layer_ops
from ..formats import BSR


def _native(t: torch.Tensor):
    return interop.native(t)[0]


def weight(blocks: torch.Tensor, indptr: torch.Tensor, indices: torch.Tensor, shape) -> BSR:
    """A sparsejl BSR view over the tensors' memory."""
    return BSR(_native(blocks), _native(indices), _native(indptr), shape, blocks.shape[-1])


def _linear(X, blocks, indptr, indices, bias, out_features):
    W = weight(blocks, indptr, indices, (out_features, X.shape[-1]))
    return layer_ops.linear(X, W, bias)


def _input_grad(dY, blocks, indptr, indices, in_features):
    W = weight(blocks, indptr, indices, (dY.shape[-1], in_features))
    return layer_ops.linear_input_grad(dY, W)


def _sddmm(X, Y, indptr, indices, blocksize):
    b = blocksize
    values = X.new_zeros(1).expand(indices.shape[0], b, b)   # the pattern's values are never read
    pattern = BSR(_native(values), _native(indices), _native(indptr), (X.shape[-1], Y.shape[-1]), b)
    return layer_ops.sddmm(pattern, X, Y)


@torch.library.custom_op("sparsejl::bsr_linear", mutates_args=())
def bsr_linear(X: torch.Tensor, blocks: torch.Tensor, indptr: torch.Tensor, indices: torch.Tensor,
               bias: Optional[torch.Tensor], out_features: int) -> torch.Tensor:
    return _linear(X, blocks, indptr, indices, bias, out_features)


@bsr_linear.register_fake
def _(X, blocks, indptr, indices, bias, out_features):
    return X.new_empty(X.shape[:-1] + (out_features,))


@torch.library.custom_op("sparsejl::bsr_linear_input_grad", mutates_args=())
def bsr_linear_input_grad(dY: torch.Tensor, blocks: torch.Tensor, indptr: torch.Tensor,
                          indices: torch.Tensor, in_features: int) -> torch.Tensor:
    return _input_grad(dY, blocks, indptr, indices, in_features)


@bsr_linear_input_grad.register_fake
def _(dY, blocks, indptr, indices, in_features):
    return dY.new_empty(dY.shape[:-1] + (in_features,))


@torch.library.custom_op("sparsejl::bsr_sddmm", mutates_args=())
def bsr_sddmm(X: torch.Tensor, Y: torch.Tensor, indptr: torch.Tensor, indices: torch.Tensor,
              blocksize: int) -> torch.Tensor:
    return _sddmm(X, Y, indptr, indices, blocksize)


@bsr_sddmm.register_fake
def _(X, Y, indptr, indices, blocksize):
    return X.new_empty((indices.shape[0], blocksize, blocksize))


# --- gradients: out = X @ W.T + b; dX = dY @ W; dW at W's blocks = sddmm(dY, X) ---------------------

def _setup_linear(ctx, inputs, output):
    X, blocks, indptr, indices, bias, out_features = inputs
    ctx.save_for_backward(X, blocks, indptr, indices)
    ctx.has_bias = bias is not None


def _linear_backward(ctx, grad):
    X, blocks, indptr, indices = ctx.saved_tensors
    grad = grad.contiguous()
    dX = bsr_linear_input_grad(grad, blocks, indptr, indices, X.shape[-1]) if ctx.needs_input_grad[0] else None
    dW = bsr_sddmm(grad, X, indptr, indices, blocks.shape[-1]) if ctx.needs_input_grad[1] else None
    db = grad.reshape(-1, grad.shape[-1]).sum(0) if ctx.has_bias and ctx.needs_input_grad[4] else None
    return dX, dW, None, None, db, None


bsr_linear.register_autograd(_linear_backward, setup_context=_setup_linear)


def _setup_input_grad(ctx, inputs, output):
    dY, blocks, indptr, indices, in_features = inputs
    ctx.save_for_backward(dY, blocks, indptr, indices)


def _input_grad_backward(ctx, grad):
    dY, blocks, indptr, indices = ctx.saved_tensors
    grad = grad.contiguous()
    d_dY = bsr_linear(grad, blocks, indptr, indices, None, dY.shape[-1]) if ctx.needs_input_grad[0] else None
    d_blocks = bsr_sddmm(dY, grad, indptr, indices, blocks.shape[-1]) if ctx.needs_input_grad[1] else None
    return d_dY, d_blocks, None, None, None


bsr_linear_input_grad.register_autograd(_input_grad_backward, setup_context=_setup_input_grad)


def _setup_sddmm(ctx, inputs, output):
    X, Y, indptr, indices, blocksize = inputs
    ctx.save_for_backward(X, Y, indptr, indices)


def _sddmm_backward(ctx, grad):
    """out = X.T @ Y at the pattern G: dX = Y @ G.T, dY = X @ G, with G the blocks of the gradient."""
    X, Y, indptr, indices = ctx.saved_tensors
    grad = grad.contiguous()
    dX = bsr_linear(Y, grad, indptr, indices, None, X.shape[-1]) if ctx.needs_input_grad[0] else None
    dY = bsr_linear_input_grad(X, grad, indptr, indices, Y.shape[-1]) if ctx.needs_input_grad[1] else None
    return dX, dY, None, None, None


bsr_sddmm.register_autograd(_sddmm_backward, setup_context=_setup_sddmm)


# --- eager: the same products and gradients without the dispatcher -----------------------------------

class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, blocks, indptr, indices, bias, out_features):
        ctx.save_for_backward(X, blocks, indptr, indices)
        ctx.has_bias = bias is not None
        return _linear(X, blocks, indptr, indices, bias, out_features)

    @staticmethod
    def backward(ctx, grad):
        X, blocks, indptr, indices = ctx.saved_tensors
        grad = grad.contiguous()
        dX = _InputGrad.apply(grad, blocks, indptr, indices, X.shape[-1]) if ctx.needs_input_grad[0] else None
        dW = _Sddmm.apply(grad, X, indptr, indices, blocks.shape[-1]) if ctx.needs_input_grad[1] else None
        db = grad.reshape(-1, grad.shape[-1]).sum(0) if ctx.has_bias and ctx.needs_input_grad[4] else None
        return dX, dW, None, None, db, None


class _InputGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dY, blocks, indptr, indices, in_features):
        ctx.save_for_backward(dY, blocks, indptr, indices)
        return _input_grad(dY, blocks, indptr, indices, in_features)

    @staticmethod
    def backward(ctx, grad):
        dY, blocks, indptr, indices = ctx.saved_tensors
        grad = grad.contiguous()
        d_dY = _Linear.apply(grad, blocks, indptr, indices, None, dY.shape[-1]) if ctx.needs_input_grad[0] else None
        d_blocks = _Sddmm.apply(dY, grad, indptr, indices, blocks.shape[-1]) if ctx.needs_input_grad[1] else None
        return d_dY, d_blocks, None, None, None


class _Sddmm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, Y, indptr, indices, blocksize):
        ctx.save_for_backward(X, Y, indptr, indices)
        return _sddmm(X, Y, indptr, indices, blocksize)

    @staticmethod
    def backward(ctx, grad):
        X, Y, indptr, indices = ctx.saved_tensors
        grad = grad.contiguous()
        dX = _Linear.apply(Y, grad, indptr, indices, None, X.shape[-1]) if ctx.needs_input_grad[0] else None
        dY = _InputGrad.apply(X, grad, indptr, indices, Y.shape[-1]) if ctx.needs_input_grad[1] else None
        return dX, dY, None, None, None


def linear(X, blocks, indptr, indices, bias, out_features):
    """`X @ W.T + bias`: the custom op under torch.compile/export, the autograd.Function eagerly."""
    if torch.compiler.is_compiling():
        return bsr_linear(X, blocks, indptr, indices, bias, out_features)
    return _Linear.apply(X, blocks, indptr, indices, bias, out_features)


EAGER = {"bsr_linear": _Linear.apply, "bsr_linear_input_grad": _InputGrad.apply, "bsr_sddmm": _Sddmm.apply}
