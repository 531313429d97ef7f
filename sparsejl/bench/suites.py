"""Which cases a run measures: layer shapes from the published configs (:mod:`sparsejl.catalogue`).

* :func:`main_job` — BERT-base FFN 3072×768, 128 tokens, densities 0.5…0.05, BSR 32: the
  README's quick start (seconds).
* :func:`quick` — every target case of the issue plus one density sweep (a few minutes).
* :func:`full` — density sweeps for every listed layer at 1, 16, 128 and 512 tokens, unstructured
  and BSR 32; a blocksize sweep 1…64 at density 0.1; the SpGEMM cases (long).
"""
from __future__ import annotations

from typing import List, Tuple

from .sweep import Case

__all__ = ["DENSITIES", "TOKENS", "BLOCKSIZES", "LAYERS", "layer_mk", "main_job", "quick",
           "full", "spgemm_cases", "SUITES"]

#: sparsest first: a backend too slow at one density is not run at the denser ones after it
DENSITIES = (0.05, 0.1, 0.15, 0.25, 0.35, 0.5)
TOKENS = (1, 16, 128, 512)
BLOCKSIZES = (1, 4, 8, 16, 32, 64)

#: (model key, layer name) pairs of the issue. "attn.qkv" of BERT is Q, K and V fused (768→2304).
LAYERS: Tuple[Tuple[str, str], ...] = (
    ("bert-base", "ffn.up"), ("bert-base", "ffn.down"), ("bert-base", "attn.qkv"),
    ("bert-large", "ffn.up"), ("bert-large", "ffn.down"),
    ("gpt2-xl", "ffn.up"), ("gpt2-xl", "ffn.down"),
    ("llama-2-7b", "attn.q"), ("llama-2-7b", "ffn.up"), ("llama-2-7b", "ffn.down"),
)


def layer_mk(model: str, layer: str) -> Tuple[int, int]:
    """``(m, k) = (out_features, in_features)`` of a layer, from :mod:`sparsejl.catalogue`."""
    from .. import catalogue
    if layer == "attn.qkv" and model.startswith("bert"):
        q = catalogue.layer(model, "attn.q")
        return 3 * q.m, q.k  # fused Q, K, V projection
    lay = catalogue.layer(model, layer)
    return lay.m, lay.k


def _spmm(model, layer, n, density, blocksize, dtype="float32") -> Case:
    m, k = layer_mk(model, layer)
    return Case(model, layer, m, k, n, density, blocksize, dtype, "spmm")


def main_job(dtype: str = "float32", blocksize: int = 32) -> List[Case]:
    """The quick start: BERT-base FFN up (3072×768), 128 tokens, over densities."""
    return [_spmm("bert-base", "ffn.up", 128, d, blocksize, dtype) for d in DENSITIES]


def spgemm_cases(dtype: str = "float32") -> List[Case]:
    """The issue's SpGEMM cases: random 4096² at 1 %, 8192² at 0.2 %, and W·Wᵀ of a pruned
    BERT-base FFN down weight (768×3072 at 10 %, unstructured)."""
    m, k = layer_mk("bert-base", "ffn.down")
    return [
        Case("random", "4096² @ 4096²", 4096, 4096, 4096, 0.01, 1, dtype, "spgemm"),
        Case("random", "8192² @ 8192²", 8192, 8192, 8192, 0.002, 1, dtype, "spgemm"),
        Case("bert-base", "ffn.down W·Wᵀ", m, k, m, 0.1, 1, dtype, "spgemm", operand_b="transpose"),
    ]


def _unique(cases: List[Case]) -> List[Case]:
    seen, out = set(), []
    for c in cases:
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


def quick(dtype: str = "float32") -> List[Case]:
    """Every target case (see :mod:`.targets`) plus the main job's density sweep."""
    from . import targets
    return _unique(main_job(dtype) + [c for t in targets.TARGETS for c in t.cases(dtype)])


def full(dtype: str = "float32") -> List[Case]:
    """Most telling first, so that a run cut short by ``--time-limit`` still has the core:
    the quick cases; BSR 32 density sweeps of every layer at 128, 16, 1 and 512 tokens; the
    same unstructured; a blocksize sweep (1…64) at density 0.1 and 128 tokens; SpGEMM."""
    cases = list(quick(dtype))
    for b in (32, 1):
        for n in (128, 16, 1, 512):
            for model, layer in LAYERS:
                cases += [_spmm(model, layer, n, d, b, dtype) for d in DENSITIES]
    for model, layer in LAYERS:
        cases += [_spmm(model, layer, 128, 0.1, b, dtype) for b in BLOCKSIZES]
    return _unique(cases + spgemm_cases(dtype))


SUITES = {"main": main_job, "quick": quick, "full": full}
