"""BlockSparseLinear on CUDA tensors (inference): fp16 and bf16 against a float32 dense reference,
the prepared weight for few tokens and the BSR kernels for many, and a weight changed in place."""

import pytest

torch = pytest.importorskip("torch", reason="BlockSparseLinear needs PyTorch")


@pytest.fixture
def cuda(gpu):
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")
    return torch.device("cuda")


def _layer(inp, out, b, density, dtype, device, bias=True, seed=0):
    from sparsejl.torch import BlockSparseLinear
    torch.manual_seed(seed)
    lin = torch.nn.Linear(inp, out, bias=bias)
    return BlockSparseLinear.from_dense(lin, density, b).to(device, dtype).eval()


def _reference(layer, x):
    return torch.nn.functional.linear(x.float(), layer.dense_weight().float(),
                                      None if layer.bias is None else layer.bias.float())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("b", [32, 64])
@pytest.mark.parametrize("tokens", [1, 16, 64, 65, 300])
def test_forward_matches_dense(cuda, dtype, b, tokens):
    layer = _layer(256, 384, b, 0.3, dtype, cuda)
    x = torch.randn(tokens, 256, device=cuda).to(dtype)
    with torch.no_grad():
        got = layer(x)
    want = _reference(layer, x)
    assert got.dtype == dtype and got.shape == (tokens, 384)
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got.float(), want, rtol=tol, atol=tol * float(want.abs().max()))


def test_batched_input_without_bias(cuda):
    layer = _layer(128, 192, 64, 0.5, torch.float16, cuda, bias=False)
    x = torch.randn(2, 3, 128, device=cuda, dtype=torch.float16)
    with torch.no_grad():
        got = layer(x)
    torch.testing.assert_close(got.float(), _reference(layer, x), rtol=2e-2, atol=2e-2)


def test_a_weight_changed_in_place_is_seen(cuda):
    layer = _layer(128, 128, 32, 0.5, torch.float16, cuda)
    x = torch.randn(1, 128, device=cuda, dtype=torch.float16)
    with torch.no_grad():
        before = layer(x)
        layer.weight_blocks.mul_(2)
        after = layer(x)
    torch.testing.assert_close(after.float(), _reference(layer, x), rtol=2e-2, atol=2e-2)
    assert not torch.allclose(before, after)


def test_with_gradients_the_masked_dense_path_trains(cuda):
    layer = _layer(128, 64, 32, 0.5, torch.float32, cuda).train()
    x = torch.randn(8, 128, device=cuda, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and layer.weight_blocks.grad is not None
    assert torch.isfinite(layer.weight_blocks.grad).all()
