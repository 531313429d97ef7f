"""Swap a model's linear layers for :class:`BlockSparseLinear`, by qualified name.

>>> report = sparsify(model, {r"encoder\\.layer\\.\\d+\\.(intermediate|output)\\.dense": 0.1,
...                           r".*attention.*\\.(query|key|value|dense)": Rule(0.3, blocksize=16)})
>>> print(report.table())

A rule's pattern is a regular expression matched against the whole qualified module name
(``re.fullmatch``), the names ``model.named_modules()`` gives. The first rule that matches a
module decides. A rule is a :class:`Rule`, or a bare density (32×32 blocks, magnitude).

``nn.Linear`` and GPT-2's ``Conv1D`` (a linear layer whose weight is stored ``(in, out)``) are
replaced. A matched layer stays dense, with the reason in the report, when its weight is shared
with another module (tied embeddings), when its sides are not multiples of the block size, or
when it is neither kind of layer. A sparsified model saves with ``torch.save`` and
``state_dict``; to load a ``state_dict`` into a freshly built model, sparsify that model with the
same rules first (the saved block patterns replace the fresh ones on load).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

METHODS = ("magnitude", "random")


@dataclass(frozen=True)
class Rule:
    """How to sparsify the layers a pattern matches: the kept fraction of blocks, their size,
    and how blocks are chosen ("magnitude": largest Frobenius norm; "random")."""
    density: float
    blocksize: int = 32
    method: str = "magnitude"

    def __post_init__(self):
        if not 0.0 < float(self.density) <= 1.0:
            raise ValueError(f"Rule: density must be in (0, 1], got {self.density!r}")
        if int(self.blocksize) != self.blocksize or self.blocksize < 1:
            raise ValueError(f"Rule: blocksize must be a positive integer, got {self.blocksize!r}")
        if self.method not in METHODS:
            raise ValueError(f"Rule: method must be one of {METHODS}, got {self.method!r}")


@dataclass(frozen=True)
class Replaced:
    name: str
    out_features: int
    in_features: int
    rule: Rule
    density: float            # the fraction of blocks kept
    params_before: int
    params_after: int
    bytes_before: int
    bytes_after: int


@dataclass
class SparsifyReport:
    replaced: List[Replaced] = field(default_factory=list)
    left_dense: List[Tuple[str, str]] = field(default_factory=list)   # (name, why)
    params_before: int = 0       # every parameter and buffer of the model
    params_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    model: Optional[nn.Module] = field(default=None, repr=False)

    def table(self) -> str:
        """Markdown: each replaced layer, then the totals and the layers left dense."""
        rows = ["| layer | shape (out × in) | block | density | MiB before | MiB after |",
                "|---|---|---|---|---|---|"]
        for r in self.replaced:
            rows.append(f"| {r.name} | {r.out_features} × {r.in_features} | {r.rule.blocksize} | "
                        f"{r.density:.3f} | {r.bytes_before / 2**20:.2f} | {r.bytes_after / 2**20:.2f} |")
        rows.append(f"| **model** | | | | {self.bytes_before / 2**20:.2f} | {self.bytes_after / 2**20:.2f} |")
        rows += ["", f"{len(self.replaced)} layers replaced; parameters and buffers "
                     f"{self.params_before:,} → {self.params_after:,}."]
        for name, why in self.left_dense:
            rows.append(f"- left dense: {name}: {why}")
        return "\n".join(rows)


RuleLike = Union[Rule, float]


def _rules(rules: Union[Mapping[str, RuleLike], Sequence[Tuple[str, RuleLike]]]):
    items = rules.items() if isinstance(rules, Mapping) else rules
    out = []
    for pattern, rule in items:
        if not isinstance(rule, Rule):
            rule = Rule(float(rule))
        out.append((re.compile(pattern), rule))
    if not out:
        raise ValueError("sparsify: no rules given")
    return out


def _size(module: nn.Module) -> Tuple[int, int]:
    """(elements, bytes) of a module's own state: parameters and persistent buffers."""
    tensors = list(module.state_dict(keep_vars=True).values())
    return sum(t.numel() for t in tensors), sum(t.numel() * t.element_size() for t in tensors)


def _as_linear(module: nn.Module) -> Optional[nn.Linear]:
    """An nn.Linear computing what `module` computes (sharing its tensors where it can)."""
    if isinstance(module, nn.Linear):
        return module
    if type(module).__name__ == "Conv1D" and getattr(module, "weight", None) is not None:
        w = module.weight                      # (in, out): y = x @ w + b
        lin = nn.Linear(w.shape[0], w.shape[1], bias=module.bias is not None,
                        device=w.device, dtype=w.dtype)
        with torch.no_grad():
            lin.weight.copy_(w.t())
            if module.bias is not None:
                lin.bias.copy_(module.bias)
        return lin
    return None


def _shared_weights(model: nn.Module) -> Dict[int, List[str]]:
    """Which modules hold each weight tensor (a tied weight appears under several names)."""
    holders: Dict[int, List[str]] = {}
    for name, mod in model.named_modules():
        w = getattr(mod, "weight", None)
        if isinstance(w, torch.Tensor):
            holders.setdefault(id(w), []).append(name)
    return holders


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def sparsify(model: nn.Module, rules, *, inplace: bool = True) -> SparsifyReport:
    """Replace the linear layers whose names match `rules` by BlockSparseLinear; return a report.

    ``rules`` maps a regular expression (matched against the whole qualified name) to a
    :class:`Rule` or a density; a list of ``(pattern, rule)`` pairs keeps its order. With
    ``inplace=False`` the model is deep-copied first and the copy is changed; either way the
    changed model is ``report.model``.
    """
    from . import BlockSparseLinear

    compiled = _rules(rules)
    if not inplace:
        import copy
        model = copy.deepcopy(model)
    report = SparsifyReport()
    report.params_before, report.bytes_before = _size(model)
    holders = _shared_weights(model)
    targets = []
    for name, module in model.named_modules():
        rule = next((r for p, r in compiled if name and p.fullmatch(name)), None)
        if rule is None or isinstance(module, BlockSparseLinear):
            continue
        linear = _as_linear(module)
        if linear is None:
            report.left_dense.append((name, f"a {type(module).__name__}, not a linear layer"))
            continue
        shared = [h for h in holders.get(id(module.weight), []) if h != name]
        if shared:
            report.left_dense.append((name, "weight shared with " + ", ".join(shared)))
            continue
        b = rule.blocksize
        if linear.out_features % b or linear.in_features % b:
            report.left_dense.append(
                (name, f"{linear.out_features} × {linear.in_features} is not made of {b}×{b} blocks"))
            continue
        targets.append((name, module, linear, rule))
    for name, module, linear, rule in targets:
        n_before, bytes_before = _size(module)
        sparse = BlockSparseLinear.from_dense(linear, rule.density, rule.blocksize, method=rule.method)
        if not module.training:
            sparse.eval()
        _set_module(model, name, sparse)
        n_after, bytes_after = _size(sparse)
        report.replaced.append(Replaced(name, linear.out_features, linear.in_features, rule,
                                        float(sparse.density), n_before, n_after, bytes_before, bytes_after))
    report.params_after, report.bytes_after = _size(model)
    report.model = model
    return report
