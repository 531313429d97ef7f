"""The explorer's model view: per-layer times of a catalogue model and the whole-model prediction."""

import gzip
import json

import pytest

from sparsejl import catalogue
from sparsejl.bench import model_predict
from sparsejl.widgets.model_view import ModelView


def _layer(dense_s, sparse_s, per_model=2):
    return model_predict.LayerTime("x", 64, 64, per_model, dense_s, sparse_s, 1.0, 0.25)


def test_amdahl_prediction():
    layers = [_layer(3.0, 1.0), _layer(1.0, 1.0)]          # linear: dense 8, sparse 4 (per model)
    p = model_predict.predict(layers, rest=0.5)            # dense total 16, rest 8
    assert p["linear_speedup"] == pytest.approx(2.0)
    assert p["speedup"] == pytest.approx(16 / 12)
    assert model_predict.predict(layers, rest=0.0)["speedup"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="share"):
        model_predict.predict(layers, rest=1.0)


def test_records_are_matched_by_model_and_prefer_the_density(tmp_path):
    folder = tmp_path / "models-x"
    folder.mkdir()
    dense = {"rest_s": 1.0, "clocked_s": 4.0}
    recs = [dict(kind="decoder", model="gpt2", density=d, blocksize=32, batch=1, dense=dense,
                 speedup=s, predicted=s) for d, s in ((0.1, 2.0), (0.3, 1.5))]
    with gzip.open(folder / "models.json.gz", "wt") as f:
        json.dump({"environment": {}, "records": recs}, f)
    found = model_predict.records(str(tmp_path))
    assert model_predict.matching_record("gpt2", 0.3, 32, "decoder", found=found)["speedup"] == 1.5
    assert model_predict.matching_record("gpt2", 0.2, 32, "decoder", found=found) is not None
    assert model_predict.matching_record("bert-base", 0.1, 32, "decoder", found=found) is None
    assert model_predict.rest_share(recs[0]) == 0.25


def test_model_view_measures_every_layer_of_a_block():
    view = ModelView(model="bert-mini", density=0.25, blocksize=32, tokens=16)
    assert [v for _, v in view.model_w.options] == list(catalogue.MODELS)
    view.measure()
    names = [l.name for l in view.layers]
    assert names == catalogue.get("bert-mini").layer_names and len(view.decode) == len(names)
    assert all(l.dense_s > 0 and l.sparse_s > 0 and l.per_model == 4 for l in view.layers)
    assert all(l.sparse_mib < l.dense_mib for l in view.layers)
    for name in names:
        assert f"<td>{name}</td>" in view.table.value
    assert "Predicted forward speedup" in view.summary.value and "Predicted decode speedup" in view.summary.value
    before = view.summary.value
    view.rest_w.value = 0.9 if view.rest_w.value < 0.5 else 0.1
    assert view.summary.value != before, "the prediction follows the dense-rest slider"


def test_the_explorer_holds_the_model_view():
    from sparsejl.widgets import DensityExplorer
    ex = DensityExplorer(model="gpt2", tokens=16)
    assert isinstance(ex.model_view, ModelView) and ex.model_view.model_w.value == "gpt2"
    assert ex.model_view in ex.model_w_box.children
