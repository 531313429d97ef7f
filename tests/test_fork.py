"""Children of a process that runs Julia: fork gives a clear error (no hang); spawn works."""

import multiprocessing as mp
import warnings

import numpy as np
import scipy.sparse as sp

import sparsejl
from sparsejl import runtime


def product(backend):
    A = sp.csr_array(np.eye(4) * 2.0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sparsejl.spmm(A, np.ones(4), backend=backend).tolist()
    except RuntimeError as exc:
        return str(exc)


def test_fork_after_julia_started():
    runtime.get()
    with mp.get_context("fork").Pool(1) as pool:
        forced = pool.apply_async(product, ("julia",)).get(timeout=60)
        default = pool.apply_async(product, (None,)).get(timeout=60)
    assert "cannot run in a child made by fork()" in forced and "'spawn'" in forced
    assert default == [2.0] * 4  # falls back to SciPy in the child


def test_spawn_children_start_their_own_julia():
    runtime.get()
    with mp.get_context("spawn").Pool(2) as pool:
        results = pool.map(product, ["julia"] * 2, chunksize=1)
    assert results == [[2.0] * 4] * 2
