"""sparsejl.torch.BlockSparseLinear as a user meets it: against a dense nn.Linear with the same
mask, in training; its state dict; from_dense; .to(); torch.compile and torch.export."""

import io

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")
from torch import nn  # noqa: E402

from sparsejl.torch import BlockSparseLinear  # noqa: E402


def test_forward_and_backward_match_the_dense_weight():
    torch.manual_seed(0)
    layer = BlockSparseLinear(96, 64, density=0.4, blocksize=16)
    assert layer.weight_blocks.shape == (layer.pattern.sum(), 16, 16)
    assert layer.pattern.dtype == torch.bool and layer.pattern.shape == (4, 6)
    x = torch.randn(3, 5, 96, requires_grad=True)
    y = layer(x)
    W = layer.dense_weight().detach().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    ref = nn.functional.linear(x2, W, layer.bias.detach())
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(y)
    y.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(layer.dense_weight(), layer.dense_weight())
    grad_blocks = W.grad.reshape(4, 16, 6, 16).permute(0, 2, 1, 3)[layer.pattern]
    torch.testing.assert_close(layer.weight_blocks.grad, grad_blocks)
    torch.testing.assert_close(layer.bias.grad, g.sum((0, 1)))


def test_dense_weight_is_zero_off_the_pattern():
    torch.manual_seed(1)
    layer = BlockSparseLinear(64, 32, density=0.5, blocksize=8, bias=False)
    assert layer.bias is None
    W = layer.dense_weight()
    off = ~layer.pattern.repeat_interleave(8, 0).repeat_interleave(8, 1)
    assert W.shape == (32, 64) and bool((W[off] == 0).all())
    assert layer.density == pytest.approx(float(layer.pattern.float().mean()))


class Block(nn.Module):
    """A transformer feed-forward block: LayerNorm, up, GELU, down, residual."""

    def __init__(self, up, down):
        super().__init__()
        self.norm, self.up, self.down = nn.LayerNorm(up.in_features), up, down

    def forward(self, x):
        return x + self.down(nn.functional.gelu(self.up(self.norm(x))))


class MaskedLinear(nn.Module):
    def __init__(self, sparse: BlockSparseLinear):
        super().__init__()
        self.in_features = sparse.in_features
        self.weight = nn.Parameter(sparse.dense_weight().detach().clone())
        self.bias = nn.Parameter(sparse.bias.detach().clone())
        b = sparse.blocksize
        self.register_buffer("mask", sparse.pattern.repeat_interleave(b, 0).repeat_interleave(b, 1).to(self.weight.dtype))

    def forward(self, x):
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_training_matches_a_masked_dense_block_step_by_step(dtype):
    torch.manual_seed(2)
    up = BlockSparseLinear(64, 128, density=0.3, blocksize=16).to(dtype)
    down = BlockSparseLinear(128, 64, density=0.3, blocksize=16).to(dtype)
    sparse = Block(up, down).to(dtype)
    dense = Block(MaskedLinear(up), MaskedLinear(down)).to(dtype)
    dense.norm.load_state_dict(sparse.norm.state_dict())
    opt_s = torch.optim.Adam(sparse.parameters(), lr=1e-2)
    opt_d = torch.optim.Adam(dense.parameters(), lr=1e-2)
    x = torch.randn(4, 9, 64, dtype=dtype)
    target = torch.randn(4, 9, 64, dtype=dtype)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    losses = []
    for _ in range(20):
        for model, opt in ((sparse, opt_s), (dense, opt_d)):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), target)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-2] == pytest.approx(losses[-1], rel=tol, abs=tol)
    assert losses[-1] < 0.9 * losses[0]      # it trained
    torch.testing.assert_close(up.dense_weight(), dense.up.weight * dense.up.mask, rtol=tol * 10, atol=tol * 10)


def test_state_dict_round_trip_adopts_the_saved_pattern():
    torch.manual_seed(3)
    layer = BlockSparseLinear(64, 64, density=0.25, blocksize=16)
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf)
    assert "pattern" in state and "weight_blocks" in state
    fresh = BlockSparseLinear(64, 64, density=0.75, blocksize=16)
    assert not torch.equal(fresh.pattern, layer.pattern)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.pattern, layer.pattern)
    x = torch.randn(3, 64)
    torch.testing.assert_close(fresh(x), layer(x))
    with pytest.raises(RuntimeError, match="pattern has shape"):
        BlockSparseLinear(64, 64, blocksize=32).load_state_dict(state)


def test_from_dense_keeps_the_largest_blocks():
    torch.manual_seed(4)
    linear = nn.Linear(64, 32)
    with torch.no_grad():
        linear.weight[8:16, 16:24] *= 100       # block (1, 2) of 8x8 blocks: the largest
    layer = BlockSparseLinear.from_dense(linear, density=0.1, blocksize=8)
    assert int(layer.pattern.sum()) == round(0.1 * 32)
    assert bool(layer.pattern[1, 2])
    norms = linear.weight.detach().reshape(4, 8, 8, 8).pow(2).sum((1, 3))
    assert float(norms[layer.pattern].min()) >= float(norms[~layer.pattern].max())
    torch.testing.assert_close(layer.bias, linear.bias)
    W = layer.dense_weight()
    keep = layer.pattern.repeat_interleave(8, 0).repeat_interleave(8, 1)
    torch.testing.assert_close(W[keep], linear.weight[keep])
    assert int(BlockSparseLinear.from_dense(linear, density=0.001, blocksize=8).pattern.sum()) == 1
    torch.manual_seed(5)
    r1 = BlockSparseLinear.from_dense(linear, density=0.5, blocksize=8, method="random").pattern
    torch.manual_seed(5)
    r2 = BlockSparseLinear.from_dense(linear, density=0.5, blocksize=8, method="random").pattern
    assert torch.equal(r1, r2) and int(r1.sum()) == 16
    with pytest.raises(ValueError, match="method"):
        BlockSparseLinear.from_dense(linear, density=0.5, blocksize=8, method="other")


def test_shapes_that_are_not_multiples_of_the_blocksize_raise():
    with pytest.raises(ValueError, match=r"BlockSparseLinear\(100 -> 64\).*blocksize 32"):
        BlockSparseLinear(100, 64)
    with pytest.raises(ValueError, match=r"BlockSparseLinear\(48 -> 40\)"):
        BlockSparseLinear.from_dense(nn.Linear(48, 40), density=0.5, blocksize=16)


def test_to_dtype_and_modes():
    torch.manual_seed(6)
    layer = BlockSparseLinear(32, 32, density=0.5, blocksize=8).double()
    assert layer.weight_blocks.dtype == torch.float64 and layer.pattern.dtype == torch.bool
    x = torch.randn(2, 32, dtype=torch.float64)
    torch.testing.assert_close(layer(x), x @ layer.dense_weight().T + layer.bias)
    layer.eval()
    with torch.no_grad():
        y = layer(x)
    assert not y.requires_grad and not layer.training
    with pytest.raises(TypeError, match="dtype"):
        layer(x.float())
    half = layer.to(torch.bfloat16)             # 16-bit on the CPU: the dense weight, as nn.Linear
    torch.testing.assert_close(half(x.to(torch.bfloat16)), nn.functional.linear(x.to(torch.bfloat16),
                               half.dense_weight(), half.bias))


def test_torch_compile_runs_and_matches():
    torch.manual_seed(7)
    model = nn.Sequential(BlockSparseLinear(64, 128, density=0.3, blocksize=16), nn.ReLU(),
                          BlockSparseLinear(128, 64, density=0.3, blocksize=16))
    x = torch.randn(5, 64, requires_grad=True)
    compiled = torch.compile(model, fullgraph=True)
    y = compiled(x)
    torch.testing.assert_close(y, model(x))
    y.sum().backward()
    assert model[0].weight_blocks.grad is not None


def test_torch_export_sees_the_op():
    torch.manual_seed(8)
    model = BlockSparseLinear(32, 64, density=0.5, blocksize=16)
    x = torch.randn(3, 32)
    exported = torch.export.export(model, (x,))
    assert "sparsejl.bsr_linear" in str(exported.graph)
    torch.testing.assert_close(exported.module()(x), model(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inference_forward_matches_the_dense_weight_and_sees_every_update(dtype):
    """Without gradients the layer multiplies a kept view of its weight (sparsejl.torch.inference):
    it must agree with the dense weight, and an in-place update, a new pattern or a new bias must
    never leave a stale view in use."""
    torch.manual_seed(3)
    layer = BlockSparseLinear(64, 96, density=0.3, blocksize=16).to(dtype)
    x = torch.randn(2, 5, 64, dtype=dtype)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-12, rtol=1e-12)

    def reference():
        W, b = layer.dense_weight().detach().double(), layer.bias.detach().double()
        return (x.double() @ W.T + b).to(dtype)

    with torch.no_grad():
        torch.testing.assert_close(layer(x), reference(), **tol)
        layer.weight_blocks.mul_(-2.0)
        layer.bias.add_(1.0)
        torch.testing.assert_close(layer(x), reference(), **tol)
    with torch.inference_mode():
        strided = torch.randn(64, 7, dtype=dtype).T          # not contiguous
        got = layer(strided)
    want = (strided.double() @ layer.dense_weight().detach().double().T + layer.bias.detach().double()).to(dtype)
    torch.testing.assert_close(got, want, **tol)
    other = BlockSparseLinear(64, 96, density=0.6, blocksize=16).to(dtype)
    layer.load_state_dict(other.state_dict())                   # another pattern, other values
    with torch.no_grad():
        torch.testing.assert_close(layer(x), reference(), **tol)
        torch.testing.assert_close(layer(x), other(x), **tol)
