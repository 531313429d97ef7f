"""Linear-layer shapes of real transformer models, from their published configs.

This module is the one source of layer shapes in sparsejl (the benchmark harness and the
Jupyter explorer both read it). Every number here is copied from the model's published
configuration (the Hugging Face ``config.json`` named in ``Model.source``); nothing is derived
from parameter counts.

Conventions
-----------
A linear layer has a weight ``W`` of shape ``(out_features, in_features)`` and is applied to a
batch of activations as ``Y = W @ X`` with ``X`` of shape ``(in_features, tokens)``. In the
sparse × dense product (SpMM) ``A @ B`` that a pruned layer becomes:

* ``m = out_features`` (rows of the sparse weight ``A``)
* ``k = in_features``  (columns of ``A`` = rows of the dense ``B``)
* ``n = tokens``       (columns of ``B``)

GPT-2 stores its weights transposed (``Conv1D``, ``(in, out)``); the shapes below are the
mathematical ``(out, in)`` ones, like every other model here.

>>> from sparsejl import catalogue
>>> [ (l.name, l.m, l.k) for l in catalogue.MODELS["bert-base"].layers ][:2]
[('attn.q', 768, 768), ('attn.k', 768, 768)]
>>> catalogue.mkn("llama-3-8b", "attn.k", tokens=512)
(1024, 4096, 512)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

__all__ = ["Layer", "Model", "MODELS", "ROLES", "get", "layer", "mkn", "model_names"]

#: Roles a layer can play. "qkv" is a fused Q/K/V projection (GPT-2's ``c_attn``).
ROLES = ("q", "k", "v", "qkv", "attn_out", "ffn_up", "ffn_gate", "ffn_down")


@dataclass(frozen=True)
class Layer:
    """One linear layer of a transformer block: ``W`` is ``(out_features, in_features)``."""

    name: str            # short, model-independent name, e.g. "attn.q", "ffn.down"
    in_features: int
    out_features: int
    role: str = ""       # one of ROLES
    module: str = ""     # the module's name in the reference implementation (Hugging Face)

    @property
    def m(self) -> int:
        """Rows of the sparse operand ``A = W``: ``out_features``."""
        return self.out_features

    @property
    def k(self) -> int:
        """Columns of ``A`` (inner dimension): ``in_features``."""
        return self.in_features

    @property
    def shape(self) -> Tuple[int, int]:
        """``W.shape == (out_features, in_features) == (m, k)``."""
        return (self.out_features, self.in_features)

    @property
    def params(self) -> int:
        return self.out_features * self.in_features

    def mkn(self, tokens: int) -> Tuple[int, int, int]:
        """``(m, k, n)`` of ``W @ X`` for ``tokens`` columns in ``X``."""
        if int(tokens) < 1:
            raise ValueError(f"tokens must be >= 1, got {tokens}")
        return (self.m, self.k, int(tokens))


@dataclass(frozen=True)
class Model:
    """A transformer's published dimensions and the linear layers of one block."""

    key: str
    display: str
    family: str
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    num_layers: int
    head_dim: int
    source: str                      # where the numbers come from
    layers: List[Layer] = field(default_factory=list)

    def layer(self, name: str) -> Layer:
        for lay in self.layers:
            if lay.name == name or lay.module == name:
                return lay
        raise KeyError(f"{self.key} has no layer {name!r}; layers: "
                       + ", ".join(l.name for l in self.layers))

    @property
    def layer_names(self) -> List[str]:
        return [l.name for l in self.layers]

    @property
    def params_per_block(self) -> int:
        """Weight count of the linear layers of one block (biases, norms excluded)."""
        return sum(l.params for l in self.layers)


def _bert_like(key, display, hidden, inter, heads, nlayers, source, names):
    q, k, v, o, up, down = names
    hd = hidden // heads
    layers = [
        Layer("attn.q", hidden, hidden, "q", q),
        Layer("attn.k", hidden, hidden, "k", k),
        Layer("attn.v", hidden, hidden, "v", v),
        Layer("attn.out", hidden, hidden, "attn_out", o),
        Layer("ffn.up", hidden, inter, "ffn_up", up),
        Layer("ffn.down", inter, hidden, "ffn_down", down),
    ]
    fam = "distilbert" if key == "distilbert" else "bert"
    return Model(key, display, fam, hidden, inter, heads, heads, nlayers, hd, source, layers)


_BERT_NAMES = ("attention.self.query", "attention.self.key", "attention.self.value",
               "attention.output.dense", "intermediate.dense", "output.dense")
_DISTIL_NAMES = ("attention.q_lin", "attention.k_lin", "attention.v_lin",
                 "attention.out_lin", "ffn.lin1", "ffn.lin2")


def _gpt2(key, display, hidden, heads, nlayers, source):
    inter = 4 * hidden  # n_inner is null in GPT-2 configs: 4 * n_embd
    layers = [
        Layer("attn.qkv", hidden, 3 * hidden, "qkv", "attn.c_attn"),
        Layer("attn.out", hidden, hidden, "attn_out", "attn.c_proj"),
        Layer("ffn.up", hidden, inter, "ffn_up", "mlp.c_fc"),
        Layer("ffn.down", inter, hidden, "ffn_down", "mlp.c_proj"),
    ]
    return Model(key, display, "gpt2", hidden, inter, heads, heads, nlayers, hidden // heads,
                 source, layers)


def _opt(key, display, hidden, inter, heads, nlayers, source):
    layers = [
        Layer("attn.q", hidden, hidden, "q", "self_attn.q_proj"),
        Layer("attn.k", hidden, hidden, "k", "self_attn.k_proj"),
        Layer("attn.v", hidden, hidden, "v", "self_attn.v_proj"),
        Layer("attn.out", hidden, hidden, "attn_out", "self_attn.out_proj"),
        Layer("ffn.up", hidden, inter, "ffn_up", "fc1"),
        Layer("ffn.down", inter, hidden, "ffn_down", "fc2"),
    ]
    return Model(key, display, "opt", hidden, inter, heads, heads, nlayers, hidden // heads,
                 source, layers)


def _llama(key, display, hidden, inter, heads, kv_heads, nlayers, source):
    hd = hidden // heads
    kv = kv_heads * hd
    layers = [
        Layer("attn.q", hidden, hidden, "q", "self_attn.q_proj"),
        Layer("attn.k", hidden, kv, "k", "self_attn.k_proj"),
        Layer("attn.v", hidden, kv, "v", "self_attn.v_proj"),
        Layer("attn.out", hidden, hidden, "attn_out", "self_attn.o_proj"),
        Layer("ffn.gate", hidden, inter, "ffn_gate", "mlp.gate_proj"),
        Layer("ffn.up", hidden, inter, "ffn_up", "mlp.up_proj"),
        Layer("ffn.down", inter, hidden, "ffn_down", "mlp.down_proj"),
    ]
    return Model(key, display, "llama", hidden, inter, heads, kv_heads, nlayers, hd, source, layers)


_ALL = [
    # BERT (Turc et al. 2019 miniatures; Devlin et al. 2018): hidden_size, intermediate_size,
    # num_attention_heads, num_hidden_layers
    _bert_like("bert-mini", "BERT-mini", 256, 1024, 4, 4,
               "google/bert_uncased_L-4_H-256_A-4 config.json", _BERT_NAMES),
    # all-MiniLM-L6-v2 (sentence-transformers): a BERT of 6 layers, hidden 384, FFN 1536, 12 heads
    _bert_like("minilm-l6", "all-MiniLM-L6-v2", 384, 1536, 12, 6,
               "sentence-transformers/all-MiniLM-L6-v2 config.json", _BERT_NAMES),
    _bert_like("bert-base", "BERT-base", 768, 3072, 12, 12,
               "bert-base-uncased config.json", _BERT_NAMES),
    _bert_like("bert-large", "BERT-large", 1024, 4096, 16, 24,
               "bert-large-uncased config.json", _BERT_NAMES),
    # DistilBERT: dim, hidden_dim, n_heads, n_layers
    _bert_like("distilbert", "DistilBERT", 768, 3072, 12, 6,
               "distilbert-base-uncased config.json (dim, hidden_dim)", _DISTIL_NAMES),
    # GPT-2: n_embd, n_head, n_layer; n_inner = None -> 4 * n_embd
    _gpt2("gpt2", "GPT-2 small", 768, 12, 12, "gpt2 config.json"),
    _gpt2("gpt2-medium", "GPT-2 medium", 1024, 16, 24, "gpt2-medium config.json"),
    _gpt2("gpt2-large", "GPT-2 large", 1280, 20, 36, "gpt2-large config.json"),
    _gpt2("gpt2-xl", "GPT-2 XL", 1600, 25, 48, "gpt2-xl config.json"),
    # OPT: hidden_size, ffn_dim, num_attention_heads, num_hidden_layers
    _opt("opt-1.3b", "OPT-1.3B", 2048, 8192, 32, 24, "facebook/opt-1.3b config.json"),
    # Llama: hidden_size, intermediate_size, num_attention_heads, num_key_value_heads,
    # num_hidden_layers
    _llama("llama-3.2-1b", "Llama-3.2-1B", 2048, 8192, 32, 8, 16,
           "meta-llama/Llama-3.2-1B config.json"),
    _llama("llama-2-7b", "Llama-2-7B", 4096, 11008, 32, 32, 32,
           "meta-llama/Llama-2-7b-hf config.json"),
    _llama("llama-2-13b", "Llama-2-13B", 5120, 13824, 40, 40, 40,
           "meta-llama/Llama-2-13b-hf config.json"),
    _llama("llama-3-8b", "Llama-3-8B", 4096, 14336, 32, 8, 32,
           "meta-llama/Meta-Llama-3-8B config.json"),
]

#: All presets, keyed by a lower-case model key ("bert-base", "llama-3-8b", ...), in a fixed order
#: (smallest family members first).
MODELS: Dict[str, Model] = {m.key: m for m in _ALL}

_ALIASES = {
    "gpt2-small": "gpt2", "gpt-2": "gpt2", "gpt-2-small": "gpt2", "gpt-2-medium": "gpt2-medium",
    "gpt-2-large": "gpt2-large", "gpt-2-xl": "gpt2-xl", "distilbert-base": "distilbert",
    "llama2-7b": "llama-2-7b", "llama2-13b": "llama-2-13b", "llama3-8b": "llama-3-8b",
    "bert-base-uncased": "bert-base", "bert-large-uncased": "bert-large",
}


def model_names() -> List[str]:
    """Preset keys, in display order."""
    return list(MODELS)


def get(model: str) -> Model:
    """Look up a preset by key (case-insensitive; a few common aliases accepted)."""
    if isinstance(model, Model):
        return model
    key = str(model).strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return MODELS[key]
    except KeyError:
        raise KeyError(f"unknown model {model!r}; known: {', '.join(MODELS)}") from None


def layer(model: str, name: str) -> Layer:
    """``get(model).layer(name)``."""
    return get(model).layer(name)


def mkn(model: str, layer_name: str, tokens: int) -> Tuple[int, int, int]:
    """``(m, k, n)`` of the SpMM ``W @ X`` for a layer and a token count."""
    return layer(model, layer_name).mkn(tokens)
