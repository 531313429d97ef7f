"""A whole model's speedup predicted from its layers: each linear layer of a catalogue model timed
dense and sparse through the public call, plus the dense rest of the model (Amdahl's law).

The rest (attention, norms, activations, embeddings) is a share of the dense model's time. It is
taken from a whole-model record (``sparsejl-bench --models``) of the same model where one
exists, and otherwise given by the caller, and the prediction says which. The measured
end-to-end speedup of a record is returned beside the prediction wherever one matches.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

from .. import catalogue
from . import matrices
from .sweep import Case
from .verify import verify

RESULTS = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "results")


@dataclass(frozen=True)
class LayerTime:
    name: str
    out_features: int
    in_features: int
    per_model: int            # how many such layers the model has
    dense_s: float            # one call, median
    sparse_s: float
    dense_mib: float          # float32 weight, dense
    sparse_mib: float         # the stored blocks and their indices

    @property
    def speedup(self) -> float:
        return self.dense_s / self.sparse_s


def _median(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def layer_times(model: str, density: float, blocksize: int, tokens: int, backend: Optional[str] = None,
                repeats: int = 5, dtype: str = "float32",
                progress: Callable[[int, int], None] = lambda done, total: None) -> List[LayerTime]:
    """Each linear layer of one block of `model`, dense (NumPy) and sparse (``sparsejl.spmm``)
    on a random pattern of `density` in `blocksize` blocks, checked, then timed."""
    import sparsejl
    m = catalogue.get(model)
    out = []
    for i, lay in enumerate(m.layers):
        progress(i, len(m.layers))
        case = Case(m.key, lay.name, lay.m, lay.k, tokens, density, blocksize, dtype, "spmm")
        A, B = matrices.operands(case)
        if blocksize > 1:
            A = A.tobsr(blocksize=(blocksize, blocksize))
        dense = A.toarray()
        C = np.empty((lay.m, tokens), dtype=dtype)
        sparsejl.spmm(A, B, out=C, backend=backend)
        verify(C, *matrices.reference("spmm", A, B, density), dtype)
        sparse_s = _median(lambda: sparsejl.spmm(A, B, out=C, backend=backend), repeats)
        dense_s = _median(lambda: np.matmul(dense, B, out=C), repeats)
        itemsize = np.dtype(dtype).itemsize
        stored = A.data.nbytes + A.indices.nbytes + A.indptr.nbytes
        out.append(LayerTime(lay.name, lay.m, lay.k, m.num_layers, dense_s, sparse_s,
                             lay.m * lay.k * itemsize / 2**20, stored / 2**20))
    progress(len(m.layers), len(m.layers))
    return out


def records(folder: str = RESULTS) -> List[dict]:
    """Every whole-model record under benchmarks/results (models-*/models.json.gz), newest first."""
    found = []
    for path in sorted(glob.glob(os.path.join(folder, "models-*", "models.json.gz")), reverse=True):
        with gzip.open(path, "rt") as f:
            data = json.load(f)
        for r in data["records"]:
            found.append(dict(r, record=os.path.relpath(path, folder)))
    return found


def matching_record(model: str, density: float, blocksize: int, kind: str, batch: Optional[int] = None,
                    found: Optional[List[dict]] = None) -> Optional[dict]:
    """The newest whole-model record of this model (any density: its dense rest is what counts),
    preferring the same density and block size, and the batch asked for."""
    found = records() if found is None else found
    same = [r for r in found if r["model"] == model and r["kind"] == kind and r.get("device", "cpu") == "cpu"
            and (batch is None or r.get("batch") == batch)]
    exact = [r for r in same if abs(r["density"] - density) < 1e-9 and r["blocksize"] == blocksize]
    return (exact or same or [None])[0]


def rest_share(record: dict) -> float:
    """The dense model's time outside its linear layers, as a share of its clocked time."""
    d = record["dense"]
    return d["rest_s"] / d["clocked_s"]


def predict(layers: List[LayerTime], rest: float) -> Dict[str, float]:
    """Amdahl: the dense model's time is its linear layers plus a `rest` share; sparse replaces
    the layers' time only."""
    if not 0.0 <= rest < 1.0:
        raise ValueError(f"the dense rest must be a share in [0, 1), got {rest}")
    dense_linear = sum(l.dense_s * l.per_model for l in layers)
    sparse_linear = sum(l.sparse_s * l.per_model for l in layers)
    dense_total = dense_linear / (1.0 - rest)
    rest_s = dense_total - dense_linear
    return dict(dense_linear_s=dense_linear, sparse_linear_s=sparse_linear, rest_s=rest_s,
                dense_s=dense_total, sparse_s=rest_s + sparse_linear,
                linear_speedup=dense_linear / sparse_linear,
                speedup=dense_total / (rest_s + sparse_linear),
                dense_mib=sum(l.dense_mib * l.per_model for l in layers),
                sparse_mib=sum(l.sparse_mib * l.per_model for l in layers))
