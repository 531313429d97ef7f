"""sparsify(model, rules): which layers are replaced, the report, and saving a sparsified model."""

import io
import re

import pytest

torch = pytest.importorskip("torch", reason="sparsejl.torch needs PyTorch")
from torch import nn

from sparsejl.torch import BlockSparseLinear, Rule, sparsify


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(64, 128)
        self.down = nn.Linear(128, 64)
        self.odd = nn.Linear(64, 40)          # 40 is not a multiple of 32
        self.norm = nn.LayerNorm(64)

    def forward(self, x):
        return self.norm(x + self.down(torch.relu(self.up(x)))) + self.odd(x).sum(-1, keepdim=True)


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(64, 32)
        self.head = nn.Linear(32, 64, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids):
        return self.head(self.emb(ids))


def test_matched_layers_are_replaced_and_the_rest_reported():
    torch.manual_seed(0)
    model = Block()
    report = sparsify(model, {r"up|down": Rule(0.25, blocksize=32), r"odd|norm": 0.5})
    assert isinstance(model.up, BlockSparseLinear) and isinstance(model.down, BlockSparseLinear)
    assert isinstance(model.odd, nn.Linear) and isinstance(model.norm, nn.LayerNorm)
    assert [r.name for r in report.replaced] == ["up", "down"]
    why = dict(report.left_dense)
    assert "not made of 32×32 blocks" in why["odd"] and "not a linear layer" in why["norm"]
    up = report.replaced[0]
    assert (up.out_features, up.in_features) == (128, 64) and up.density == pytest.approx(0.25)
    assert up.bytes_after < up.bytes_before and report.bytes_after < report.bytes_before
    assert "| up | 128 × 64 | 32 |" in report.table()


def test_first_matching_rule_decides_and_names_match_whole():
    model = Block()
    report = sparsify(model, [(r"u", 0.5), (r"up", Rule(0.25, 32, "random")), (r"do.*", 0.5)])
    assert [(r.name, r.rule.density) for r in report.replaced] == [("up", 0.25), ("down", 0.5)]


def test_sparse_model_computes_what_the_masked_dense_model_computes():
    torch.manual_seed(1)
    model = Block().eval()
    report = sparsify(model, {r"up|down": Rule(0.5, 32)}, inplace=False)
    sparse = report.model
    assert isinstance(model.up, nn.Linear), "inplace=False must leave the original alone"
    masked = Block().eval()
    masked.load_state_dict(model.state_dict())
    with torch.no_grad():
        masked.up.weight.copy_(sparse.up.dense_weight())
        masked.down.weight.copy_(sparse.down.dense_weight())
    x = torch.randn(5, 64)
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), masked(x), rtol=1e-5, atol=1e-5)
    kept = (sparse.up.dense_weight().reshape(4, 32, 2, 32).abs().sum((1, 3)) > 0).sum()
    assert int(kept) == 4, "half of the 8 blocks kept"


def test_tied_weights_stay_dense():
    report = sparsify(Tied(), {r"head": 0.5})
    assert report.replaced == [] and "shared with emb" in dict(report.left_dense)["head"]


def test_gpt2_conv1d_layers_are_replaced_with_transposed_weights():
    transformers = pytest.importorskip("transformers", reason="GPT-2 comes from transformers")
    from transformers.pytorch_utils import Conv1D
    torch.manual_seed(2)
    conv = Conv1D(96, 64)                     # nf=96 outputs, nx=64 inputs, weight (64, 96)
    holder = nn.Sequential(conv)
    x = torch.randn(3, 64)
    dense_out = conv(x)
    report = sparsify(holder, {r"0": Rule(1.0, blocksize=32)})
    assert isinstance(holder[0], BlockSparseLinear)
    assert (holder[0].out_features, holder[0].in_features) == (96, 64)
    with torch.no_grad():
        torch.testing.assert_close(holder[0](x), dense_out, rtol=1e-5, atol=1e-5)
    assert report.replaced[0].density == 1.0


def test_sparsified_model_saves_and_loads():
    torch.manual_seed(3)
    model = Block().eval()
    sparsify(model, {r"up|down": Rule(0.25, 32)})
    x = torch.randn(4, 64)
    with torch.no_grad():
        want = model(x)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    whole = torch.load(buf, weights_only=False)
    with torch.no_grad():
        torch.testing.assert_close(whole(x), want)
    # state_dict: a freshly built model, sparsified with the same rules (other patterns: random)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(99)
    fresh = Block().eval()
    sparsify(fresh, {r"up|down": Rule(0.25, 32, "random")})
    fresh.load_state_dict(torch.load(buf))
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), want)


@pytest.mark.parametrize("bad, message", [
    (dict(density=0.0), "density"), (dict(density=1.5), "density"),
    (dict(density=0.5, blocksize=0), "blocksize"), (dict(density=0.5, method="topk"), "method")])
def test_bad_rules_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        Rule(**bad)


def test_no_rules_is_an_error():
    with pytest.raises(ValueError, match="no rules"):
        sparsify(Block(), {})
