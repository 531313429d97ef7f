"""Layer presets must be the published config values (hidden, intermediate, heads, KV heads)."""
import pytest

from sparsejl import catalogue

# (key, hidden, intermediate, heads, kv_heads, num_layers), from each model's config.json
PUBLISHED = [
    ("bert-mini", 256, 1024, 4, 4, 4),
    ("bert-base", 768, 3072, 12, 12, 12),
    ("bert-large", 1024, 4096, 16, 16, 24),
    ("distilbert", 768, 3072, 12, 12, 6),
    ("gpt2", 768, 3072, 12, 12, 12),
    ("gpt2-medium", 1024, 4096, 16, 16, 24),
    ("gpt2-large", 1280, 5120, 20, 20, 36),
    ("gpt2-xl", 1600, 6400, 25, 25, 48),
    ("opt-1.3b", 2048, 8192, 32, 32, 24),
    ("llama-2-7b", 4096, 11008, 32, 32, 32),
    ("llama-2-13b", 5120, 13824, 40, 40, 40),
    ("llama-3-8b", 4096, 14336, 32, 8, 32),
]


def test_all_required_models_present():
    assert set(k for k, *_ in PUBLISHED) <= set(catalogue.MODELS)


@pytest.mark.parametrize("key,hidden,inter,heads,kv,nl", PUBLISHED)
def test_published_dimensions(key, hidden, inter, heads, kv, nl):
    m = catalogue.get(key)
    assert (m.hidden, m.intermediate, m.heads, m.kv_heads, m.num_layers) == (hidden, inter, heads, kv, nl)
    assert m.head_dim * m.heads == hidden


@pytest.mark.parametrize("key,hidden,inter,heads,kv,nl", PUBLISHED)
def test_layer_shapes(key, hidden, inter, heads, kv, nl):
    m = catalogue.get(key)
    roles = {l.role: l for l in m.layers}
    # every model has an attention output and an FFN up and down projection
    assert roles["attn_out"].shape == (hidden, hidden)
    assert roles["ffn_up"].shape == (inter, hidden)      # (out, in)
    assert roles["ffn_down"].shape == (hidden, inter)
    if m.family == "gpt2":
        assert roles["qkv"].shape == (3 * hidden, hidden)
        assert "q" not in roles
    else:
        kv_out = kv * (hidden // heads)
        assert roles["q"].shape == (hidden, hidden)
        assert roles["k"].shape == (kv_out, hidden)
        assert roles["v"].shape == (kv_out, hidden)
    if m.family == "llama":
        assert roles["ffn_gate"].shape == (inter, hidden)
    else:
        assert "ffn_gate" not in roles
    for l in m.layers:
        assert l.role in catalogue.ROLES
        assert (l.m, l.k) == (l.out_features, l.in_features) == l.shape
    assert len(set(m.layer_names)) == len(m.layers)


def test_llama3_gqa_kv_projection():
    # 8 KV heads of 128 -> K/V project 4096 -> 1024
    assert catalogue.layer("llama-3-8b", "attn.k").shape == (1024, 4096)
    assert catalogue.layer("llama-3-8b", "self_attn.v_proj").shape == (1024, 4096)
    assert catalogue.mkn("llama-3-8b", "attn.k", tokens=512) == (1024, 4096, 512)


def test_known_parameter_counts():
    # Linear weights per block: 4 h^2 + 2 h i for BERT/GPT-2/OPT; Llama-2-7B's block has
    # 4*4096^2 + 3*4096*11008 = 202,375,168 weights (x32 blocks ~ 6.48e9 of its 6.7e9 params).
    assert catalogue.get("llama-2-7b").params_per_block == 202_375_168
    assert catalogue.get("bert-base").params_per_block == 4 * 768**2 + 2 * 768 * 3072


def test_lookup_errors_and_aliases():
    assert catalogue.get("GPT2-small") is catalogue.MODELS["gpt2"]
    assert catalogue.get("Llama-3-8B") is catalogue.MODELS["llama-3-8b"]
    with pytest.raises(KeyError, match="unknown model"):
        catalogue.get("bert-huge")
    with pytest.raises(KeyError, match="no layer"):
        catalogue.layer("bert-base", "ffn.gate")
    with pytest.raises(ValueError):
        catalogue.layer("gpt2", "attn.qkv").mkn(0)
