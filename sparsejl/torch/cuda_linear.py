"""BlockSparseLinear's forward on CUDA tensors, without gradients: `y = x @ W.T + bias` through
sparsejl's GPU products.

W (out × in) is multiplied from the left by the activations turned on their side: for n tokens,
Y.T (out × n) = W @ X.T. Up to DECODE_TOKENS tokens (decoding) W is a weight prepared for few
columns (`sparsejl.prepare`: blocks of 16, 32 or 64 in float16 or bfloat16); above, or for other
block sizes and float32, W is the BSR view of the layer's own tensors and the product runs on
the block-sparse tensor-core kernels. X.T and Y.T are transposed copies on the device (one token:
none), a first step until kernels read X and write Y row-major.

The GPU weight is kept on the layer, keyed by the tensors' addresses and version counters: any
change to the blocks or the pattern (an in-place update, `.to()`, `load_state_dict`) makes a new
one, so nothing stale is ever multiplied. Its structure is checked on its first product (or by
`prepare`), which waits for the device once; the calls after it do not wait.
"""

from __future__ import annotations

import torch

DECODE_TOKENS = 64
_ATTR = "_sparsejl_cuda_weight"


def _version(t: torch.Tensor) -> int:
    try:
        return t._version
    except RuntimeError:           # an inference tensor keeps no version counter
        return -1


def _key(layer, dtype):
    ts = (layer.weight_blocks, layer.indices, layer.indptr)
    return (dtype,) + tuple((t.device, t.data_ptr(), _version(t)) for t in ts)


def _weights(layer, dtype):
    """(BSR view over the layer's tensors, prepared weight or None), made once per key."""
    import sparsejl
    from .. import interop
    key = _key(layer, dtype)
    kept = layer.__dict__.get(_ATTR)
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
    layer.__dict__[_ATTR] = (key, view, prepared, blocks)
    return view, prepared


def forward(layer, x: torch.Tensor) -> torch.Tensor:
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
