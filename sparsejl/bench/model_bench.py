"""Whole models, dense against sparsified, end to end: ``sparsejl-bench --models``.

* **Encoder**: the trained all-MiniLM-L6-v2, its FFN and attention projections pruned by block
  magnitude at each density. Reported: the cosine similarity of its sentence embeddings to the
  dense model's on the shipped sentences, and the forward latency at batch 1 and 8 × 128 tokens.
* **Decoders**: GPT-2 and Llama-architecture models from their published configs (random
  weights), greedy generation with the KV cache, batch 1. Reported: tokens/s, and whether the
  tokens equal those of the dense model carrying the same masked weights.

Every sparsified model is first checked against that masked dense model (same weights, dense
kernels) before it is timed. Each figure comes with the Amdahl breakdown of
:func:`.model_timing.breakdown`: time in the linear layers, their time alone, the time lost to
competing threads, and the dense rest; the predicted speedup is the dense model's rest plus the
sparse layers' time alone.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from . import env as _env
from . import model_timing, models


def _syncer(device: str):
    return torch.cuda.synchronize if device.startswith("cuda") else model_timing._nothing


def masked_dense(model: nn.Module) -> nn.Module:
    """A copy of a sparsified model whose BlockSparseLinear layers are nn.Linear again, carrying
    the same masked weights: the reference a sparse model must reproduce."""
    import copy
    from sparsejl.torch import BlockSparseLinear
    out = copy.deepcopy(model)
    for name, mod in list(out.named_modules()):
        if isinstance(mod, BlockSparseLinear):
            w = mod.dense_weight().detach()
            lin = nn.Linear(mod.in_features, mod.out_features, bias=mod.bias is not None,
                            device=w.device, dtype=w.dtype)
            with torch.no_grad():
                lin.weight.copy_(w)
                if mod.bias is not None:
                    lin.bias.copy_(mod.bias)
            parent, _, child = name.rpartition(".")
            setattr(out.get_submodule(parent) if parent else out, child, lin)
    return out.eval()


def _sparsified(model, family: str, density: float, blocksize: int):
    from sparsejl.torch import Rule, sparsify
    report = sparsify(model, {models.PROJECTIONS[family]: Rule(density, blocksize)}, inplace=False)
    return report.model.eval(), report


def _layers(model, family: str) -> Dict[str, nn.Module]:
    import re
    from sparsejl.torch import BlockSparseLinear
    pat = re.compile(models.PROJECTIONS[family])
    return {n: m for n, m in model.named_modules()
            if pat.fullmatch(n) and (isinstance(m, (nn.Linear, BlockSparseLinear))
                                     or type(m).__name__ == "Conv1D")}


def _clocked(model, family, run, units, device) -> dict:
    """The Amdahl breakdown of one clocked run of `model` (per unit)."""
    with torch.inference_mode():
        return model_timing.breakdown(lambda: run(model), _layers(model, family), units, repeats=1,
                                      sync=_syncer(device))


def _paired(dense, sparse, run, units, repeats, device):
    """End-to-end seconds per unit of the dense and the sparse model, timed in turns."""
    with torch.inference_mode():
        d, s = model_timing.paired_median_seconds([lambda: run(dense), lambda: run(sparse)], repeats,
                                                  warmup=1, sync=_syncer(device))
    return d / units, s / units


def _compared(dense, sparse, family, run, units, repeats, device, dense_parts=None) -> dict:
    """dense and sparse: each its breakdown and its end-to-end seconds (paired); speedup, predicted."""
    de, se = _paired(dense, sparse, run, units, repeats, device)
    dt = dict(dense_parts or _clocked(dense, family, run, units, device), seconds=de)
    st = dict(_clocked(sparse, family, run, units, device), seconds=se)
    return dict(dense=dt, sparse=st, speedup=de / se, predicted=de / (dt["rest_s"] + st["linear_alone_s"]))


def _weights_mib(model) -> float:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20


def encoder_records(densities: Sequence[float], batches: Sequence[int], tokens: int,
                    blocksize: int, repeats: int, device: str = "cpu", dtype=torch.float32) -> List[dict]:
    tok, dense = models.minilm()
    dense = dense.to(device, dtype)
    sents = models.sentences()
    every = tok(sents, padding=True, truncation=True, max_length=tokens, return_tensors="pt").to(device)
    with torch.inference_mode():
        reference = models.embed(dense, every).float()
    inputs = {b: tok((sents * (b // len(sents) + 1))[:b], padding="max_length", truncation=True,
                     max_length=tokens, return_tensors="pt").to(device) for b in batches}
    run = {b: (lambda m, x=inputs[b]: m(**x)) for b in batches}
    dense_parts = {b: _clocked(dense, "bert", run[b], 1, device) for b in batches}
    records = []
    for d in densities:
        sparse, rep = _sparsified(dense, "bert", d, blocksize)
        masked = masked_dense(sparse)
        with torch.inference_mode():
            got, want = models.embed(sparse, every).float(), models.embed(masked, every).float()
        err = float((got - want).abs().max())
        if not err < (1e-4 if dtype == torch.float32 else 2e-2):
            raise AssertionError(f"MiniLM at density {d}: sparse and masked-dense embeddings differ "
                                 f"by {err:.1e}; not timed")
        cos = (got * reference).sum(-1)
        for b in batches:
            records.append(dict(kind="encoder", model="minilm-l6", device=device,
                                dtype=str(dtype).replace("torch.", ""), density=d, blocksize=blocksize,
                                batch=b, tokens=tokens, check_error=err,
                                cosine_mean=float(cos.mean()), cosine_min=float(cos.min()),
                                layers_replaced=len(rep.replaced), mib_dense=_weights_mib(dense),
                                mib_sparse=_weights_mib(sparse),
                                **_compared(dense, sparse, "bert", run[b], 1, repeats, device, dense_parts[b])))
    return records


def _prefill(dense, sparse, masked, family, tokens: int, repeats: int, device: str) -> dict:
    """One forward pass over a prompt of `tokens` tokens (no cache), dense against sparse; the
    sparse logits checked against the masked dense model's first."""
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, dense.config.vocab_size, (1, tokens), generator=g).to(device)
    run = lambda m: m(ids, use_cache=False).logits
    with torch.inference_mode():
        got, want = run(sparse).float(), run(masked).float()
    err = float((got - want).abs().max() / want.abs().max())
    if not err < (1e-4 if got.dtype == torch.float32 and next(dense.parameters()).dtype == torch.float32 else 2e-2):
        raise AssertionError(f"prefill of {tokens} tokens: sparse and masked dense logits differ by {err:.1e}")
    return dict(tokens=tokens, check_error=err, **_compared(dense, sparse, family, run, 1, repeats, device))


def decoder_records(names: Sequence[str], density: float, blocksize: int, new_tokens: int,
                    repeats: int, prompt_tokens: int = 8, device: str = "cpu",
                    dtype=torch.float32, prefill_tokens: int = 0) -> List[dict]:
    """Greedy decoding per model (and, with `prefill_tokens`, one prompt pass of that length)."""
    records = []
    for name in names:
        family, dense = models.decoder(name)
        dense = dense.to(device, dtype)
        g = torch.Generator().manual_seed(1)
        ids = torch.randint(0, dense.config.vocab_size, (1, prompt_tokens), generator=g).to(device)

        def generate(m):
            return m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                              min_new_tokens=new_tokens, do_sample=False,
                              pad_token_id=dense.config.eos_token_id)

        sparse, rep = _sparsified(dense, family, density, blocksize)
        masked = masked_dense(sparse)
        with torch.inference_mode():
            got, want = generate(sparse), generate(masked)
        same = int((got[0, prompt_tokens:] == want[0, prompt_tokens:]).sum())
        timed = _compared(dense, sparse, family, generate, new_tokens, repeats, device)
        n_params = sum(p.numel() for p in dense.parameters())
        records.append(dict(kind="decoder", model=name, params=n_params, device=device,
                            dtype=str(dtype).replace("torch.", ""), density=density,
                            blocksize=blocksize, batch=1, prompt_tokens=prompt_tokens,
                            new_tokens=new_tokens, tokens_equal=same, tokens_compared=new_tokens,
                            layers_replaced=len(rep.replaced), mib_dense=_weights_mib(dense),
                            mib_sparse=_weights_mib(sparse), dense_tokens_per_s=1 / timed["dense"]["seconds"],
                            sparse_tokens_per_s=1 / timed["sparse"]["seconds"], **timed))
        if prefill_tokens:
            records[-1]["prefill"] = _prefill(dense, sparse, masked, family, prefill_tokens, repeats, device)
        del dense, sparse, masked
    return records


def _shares(t: dict) -> str:
    whole = t["clocked_s"]
    return (f"linear {t['linear_s'] / whole:.0%} (alone {t['linear_alone_s'] / whole:.0%}, "
            f"lost {t['lost_s'] / whole:.0%}), rest {t['rest_s'] / whole:.0%}")


def report(records: List[dict], environment: dict) -> str:
    lines = ["# Whole models: dense against sparsified", "",
             f"{environment.get('cpu_model')}; {environment.get('usable_cores')} usable cores; "
             f"Julia threads {environment.get('julia_threads')}; PyTorch {environment.get('torch')} "
             f"({environment.get('torch_threads')} threads); transformers {environment.get('transformers')}; "
             f"{environment.get('timestamp_utc')}.", "",
             "Speedup = dense time / sparse time, medians of the two models timed in turns. Predicted = dense time / "
             "(dense model's time outside the linear layers + the sparse layers' time alone). "
             "Shares are of a clocked run: time in the linear layers (their time alone, and the time "
             "lost to competing threads), and the dense rest.", ""]
    enc = [r for r in records if r["kind"] == "encoder"]
    if enc:
        lines += ["## all-MiniLM-L6-v2 (trained), FFN and attention projections pruned by block magnitude", "",
                  "| density | block | batch × tokens | cosine to dense (mean, min) | dense ms | sparse ms | "
                  "speedup | predicted | MiB dense → sparse | sparse model's time |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in enc:
            lines.append(f"| {r['density']:g} | {r['blocksize']} | {r['batch']} × {r['tokens']} | "
                         f"{r['cosine_mean']:.4f}, {r['cosine_min']:.4f} | {r['dense']['seconds'] * 1e3:.1f} | "
                         f"{r['sparse']['seconds'] * 1e3:.1f} | {r['speedup']:.2f}× | {r['predicted']:.2f}× | "
                         f"{r['mib_dense']:.1f} → {r['mib_sparse']:.1f} | {_shares(r['sparse'])} |")
        lines.append("")
    dec = [r for r in records if r["kind"] == "decoder"]
    if dec:
        lines += ["## Greedy decoding, batch 1, KV cache (random weights from the published configs)", "",
                  "| model | params | density | block | new tokens | tokens equal to masked dense | "
                  "dense tok/s | sparse tok/s | speedup | predicted | MiB dense → sparse | "
                  "dense model's time | sparse model's time |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in dec:
            lines.append(f"| {r['model']} | {r['params'] / 1e6:.0f} M | {r['density']:g} | {r['blocksize']} | "
                         f"{r['new_tokens']} | {r['tokens_equal']}/{r['tokens_compared']} | "
                         f"{r['dense_tokens_per_s']:.1f} | {r['sparse_tokens_per_s']:.1f} | {r['speedup']:.2f}× | "
                         f"{r['predicted']:.2f}× | {r['mib_dense']:.0f} → {r['mib_sparse']:.0f} | "
                         f"{_shares(r['dense'])} | {_shares(r['sparse'])} |")
        lines.append("")
    pre = [r for r in dec if "prefill" in r]
    if pre:
        lines += ["## Prefill: one forward pass over the prompt, no cache", "",
                  "| model | prompt tokens | dense ms | sparse ms | speedup | predicted | sparse model's time |",
                  "|---|---|---|---|---|---|---|"]
        for r in pre:
            p = r["prefill"]
            lines.append(f"| {r['model']} | {p['tokens']} | {p['dense']['seconds'] * 1e3:.1f} | "
                         f"{p['sparse']['seconds'] * 1e3:.1f} | {p['speedup']:.2f}× | {p['predicted']:.2f}× | "
                         f"{_shares(p['sparse'])} |")
        lines.append("")
    return "\n".join(lines)


def _environment(device: str) -> dict:
    from sparsejl import runtime
    import transformers
    e = _env.capture()
    e.update(julia_threads=runtime.julia_threads() if device == "cpu" else None,
             torch=torch.__version__, torch_threads=torch.get_num_threads(),
             transformers=transformers.__version__, versions=_env.versions())
    if device.startswith("cuda"):
        e["gpu"] = torch.cuda.get_device_name()
    return e


def parser(p: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    p = p or argparse.ArgumentParser(prog="sparsejl-bench --models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder-densities", default="0.5,0.3,0.2,0.1")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--decoders", default="gpt2,gpt2-medium",
                   help="comma-separated names from sparsejl.bench.models.DECODERS ('' for none)")
    p.add_argument("--decoder-density", type=float, default=0.1)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--prefill-tokens", type=int, default=0,
                   help="also time one forward pass over a prompt of this many tokens (0: no)")
    p.add_argument("--model-blocksize", type=int, default=32)
    p.add_argument("--model-repeats", type=int, default=5)
    p.add_argument("--device", default="cpu", help="cpu or cuda (fp16 on cuda)")
    return p


def run(args, threads: int, out: Optional[str]) -> List[dict]:
    from . import threads as _threads
    _threads.pin(threads)
    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    floats = lambda s: [float(x) for x in s.split(",") if x]
    ints = lambda s: [int(x) for x in s.split(",") if x]
    t0 = time.monotonic()
    densities = floats(args.encoder_densities)
    records = encoder_records(densities, ints(args.batches), 128, args.model_blocksize,
                              args.model_repeats, args.device, dtype) if densities else []
    names = [n for n in args.decoders.split(",") if n]
    records += decoder_records(names, args.decoder_density, args.model_blocksize, args.new_tokens,
                               max(1, args.model_repeats // 2), device=args.device, dtype=dtype,
                               prefill_tokens=args.prefill_tokens)
    environment = _environment(args.device)
    environment["wall_s"] = time.monotonic() - t0
    text = report(records, environment)
    print(text)
    if out:
        os.makedirs(out, exist_ok=True)
        with gzip.open(os.path.join(out, "models.json.gz"), "wt") as f:
            json.dump({"environment": environment, "records": records}, f, indent=1, default=str)
        with open(os.path.join(out, "report.md"), "w") as f:
            f.write(text)
        print("wrote " + os.path.join(out, "models.json.gz") + ", " + os.path.join(out, "report.md"))
    return records


def main(argv=None) -> int:
    p = parser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out")
    args = p.parse_args(argv)
    run(args, args.threads, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
