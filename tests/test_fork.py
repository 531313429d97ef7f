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


def test_fork_made_in_c_is_caught_by_the_call_path():
    """libc's fork() runs no Python at-fork hook; the C call path's pthread_atfork handler sees it."""
    import ctypes
    import os

    if runtime._handover is None:
        import pytest
        pytest.skip("the C call path is not built here (pip install -e . builds it); the ctypes path checks the pid")
    runtime.get()
    read, write = os.pipe()
    pid = ctypes.CDLL(None).fork()
    if pid == 0:  # the child: report the product's outcome through the pipe, then leave at once
        os.write(write, product("julia").encode()[:500])
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    assert "cannot run in a child made by fork()" in answer
