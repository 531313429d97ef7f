"""BlockSparseLinear's forward without gradients (inference), `y = x @ W.T + bias`, through
sparsejl's products on a weight kept on the layer: no autograd node, no per-call view of W.

The kept weight is keyed by the tensors' addresses and version counters: any change to the
blocks, the pattern or the bias (an in-place update, `.to()`, `load_state_dict`) makes a new one,
so nothing stale is ever multiplied.

CPU (`cpu_forward`): the BSR view over NumPy views of the layer's tensors, and `sparsejl.linear`
on a NumPy view of x (the Julia kernels; one token costs about half of what the autograd path
does, which decoding pays once per projection and token).

CUDA (`cuda_forward`): W is multiplied from the left by the activations turned on their side:
for n tokens, Y.T (out × n) = W @ X.T. Up to DECODE_TOKENS tokens (decoding) W is a weight
prepared for few columns (`sparsejl.prepare`: blocks of 16, 32 or 64 in float16 or bfloat16);
above, or for other block sizes and float32, W is the BSR view of the layer's own tensors and
the product runs on the block-sparse tensor-core kernels. X.T and Y.T are transposed copies on
the device (one token: none), a first step until kernels read X and write Y row-major. Its
structure is checked on its first product (or by `prepare`), which waits for the device once;
the calls after it do not wait.
"""

from __future__ import annotations

import torch

DECODE_TOKENS = 64
_CUDA = "_sparsejl_cuda_weight"
_CPU = "_sparsejl_cpu_weight"


def _version(t: torch.Tensor) -> int:
    try:
        return t._version
    except RuntimeError:           # an inference tensor keeps no version counter
        return -1


def _key(layer, dtype):
    ts = (layer.weight_blocks, layer.indices, layer.indptr) + ((layer.bias,) if layer.bias is not None else ())
    return (dtype,) + tuple((t.device, t.data_ptr(), _version(t)) for t in ts)


def _cpu_weight(layer):
    """(BSR view over NumPy views of the layer's tensors, the bias's NumPy view or None), made once per key."""
    import sparsejl
    key = _key(layer, layer.weight_blocks.dtype)
    kept = layer.__dict__.get(_CPU)
    if kept is not None and kept[0] == key:
        return kept[1], kept[2]
    view = sparsejl.BSR(layer.weight_blocks.detach().numpy(), layer.indices.numpy(), layer.indptr.numpy(),
                        (layer.out_features, layer.in_features), layer.blocksize)
    bias = layer.bias.detach().numpy() if layer.bias is not None else None
    layer.__dict__[_CPU] = (key, view, bias)
    return view, bias


def cpu_forward(layer, x: torch.Tensor) -> torch.Tensor:
    import sparsejl
    view, bias = _cpu_weight(layer)
    X = x.detach().reshape(-1, layer.in_features)
    Y = sparsejl.linear(X.numpy(), view, bias)               # NumPy views in, a NumPy array out
    return torch.from_numpy(Y).reshape(*x.shape[:-1], layer.out_features)


def _weights(layer, dtype):
    """(BSR view over the layer's tensors, prepared weight or None), made once per key."""
    import sparsejl
    from .. import interop
    key = _key(layer, dtype)
    kept = layer.__dict__.get(_CUDA)
    if kept is not None and kept[0] == key:
        return kept[1], kept[2]
    native = lambda t: interop.native(t.detach())[0]
    blocks = layer.weight_blocks.detach()
    if blocks.dtype != dtype:
        blocks = blocks.to(dtype)
    view = sparsejl.BSR(native(blocks), native(layer.indices), native(layer.indptr),
                        (layer.out_features, layer.in_features), layer.blocksize)
    prepared = None
    if dtype in (torch.float16, torch.bfloat16) and layer.blocksize in (16, 32, 64):
        prepared = sparsejl.prepare(view)
    layer.__dict__[_CUDA] = (key, view, prepared, blocks)
    return view, prepared


def cuda_forward(layer, x: torch.Tensor) -> torch.Tensor:
    import sparsejl
    view, prepared = _weights(layer, x.dtype)
    X = x.reshape(-1, layer.in_features)
    n = X.shape[0]
    XT = X.t().contiguous()                                 # (in × n); one token: no copy
    A = prepared if prepared is not None and n <= DECODE_TOKENS else view
    YT = sparsejl.spmm(A, XT)                               # (out × n)
    Y = YT.t()
    Y = Y + layer.bias.to(x.dtype) if layer.bias is not None else Y.contiguous()
    return Y.reshape(*x.shape[:-1], layer.out_features)
