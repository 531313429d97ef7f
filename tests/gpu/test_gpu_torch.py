"""BlockSparseLinear and sparsejl.linear / linear_input_grad / sddmm on CUDA tensors, in float16,
bfloat16 and float32, against float32 (and float64) dense references on the device."""

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")

from sparsejl.torch import BlockSparseLinear  # noqa: E402

TOL = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2, torch.float32: 1e-5}


@pytest.fixture
def cuda(gpu):
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")
    return torch.device("cuda")


def close(got, ref, scale, dtype, terms):
    err = (got.float() - ref).abs()
    bound = TOL[dtype] * (scale + 1e-30) * max(1.0, terms ** 0.5 / 8)
    assert bool((err <= bound).all()), f"max error {float(err.max()):.3g} against bound {float(bound.max()):.3g}"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("b,inf,outf,tokens", [(64, 256, 512, 130), (32, 96, 64, 1), (16, 64, 128, 33)])
def test_layer_forward_and_backward_against_float32_dense(cuda, dtype, b, inf, outf, tokens):
    torch.manual_seed(b + tokens)
    layer = BlockSparseLinear(inf, outf, density=0.3, blocksize=b).to(cuda, dtype)
    assert layer.pattern.device.type == "cuda" and layer.weight_blocks.dtype == dtype
    x = torch.randn(tokens, inf, device=cuda).to(dtype).requires_grad_()
    y = layer(x)
    assert y.dtype == dtype and y.device.type == "cuda"
    W = layer.dense_weight().detach().float().requires_grad_()
    x32 = x.detach().float().requires_grad_()
    ref = torch.nn.functional.linear(x32, W, layer.bias.detach().float())
    close(y, ref, x32.abs() @ W.abs().T + layer.bias.detach().float().abs(), dtype, inf)
    g = torch.randn_like(ref).to(dtype)
    y.backward(g)
    ref.backward(g.float())
    close(x.grad, x32.grad, g.float().abs() @ W.detach().abs(), dtype, outf)
    grad_blocks = W.grad.reshape(outf // b, b, inf // b, b).permute(0, 2, 1, 3)[layer.pattern]
    scale = (g.float().abs().T @ x32.detach().abs()).reshape(outf // b, b, inf // b, b).permute(0, 2, 1, 3)[layer.pattern]
    close(layer.weight_blocks.grad, grad_blocks, scale, dtype, tokens)
    close(layer.bias.grad, g.float().sum(0), g.float().abs().sum(0), dtype, tokens)


def test_public_entries_keep_cuda_tensors_on_the_device(cuda):
    import sparsejl
    torch.manual_seed(0)
    dense = (torch.rand(64, 96, device=cuda) < 0.2) * torch.randn(64, 96, device=cuda)
    for A in (dense.to_sparse_csr(), dense.to_sparse_bsr((16, 16))):
        X = torch.randn(7, 96, device=cuda)
        Y = sparsejl.linear(X, A)
        assert isinstance(Y, torch.Tensor) and Y.device.type == "cuda"
        torch.testing.assert_close(Y, X @ dense.T, rtol=1e-4, atol=1e-4)
        dY = torch.randn(7, 64, device=cuda)
        torch.testing.assert_close(sparsejl.linear_input_grad(dY, A), dY @ dense, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(sparsejl.spmm(A, X.T.contiguous()), dense @ X.T, rtol=1e-4, atol=1e-4)
    with pytest.raises(TypeError, match="on the GPU but B is on the CPU|on the CPU but B is on the GPU"):
        sparsejl.spmm(dense.to_sparse_csr(), torch.randn(96, 3))
