"""Julia's threads between calls: held for the length of one job, asleep (not spinning) after it."""

import time

import numpy as np
import pytest
import scipy.sparse as sp

import sparsejl
from sparsejl import runtime

TIDS = ("tids = zeros(Int, Threads.nthreads()); "
        "Threads.@threads for i in 1:Threads.nthreads(); tids[Threads.threadid()] = ccall(:gettid, Cint, ()); end; "
        "join(tids, ' ')")


def _product():
    rng = np.random.default_rng(3)
    W = sp.random_array((3072, 768), density=0.1, format="csr", dtype=np.float64, rng=rng)
    X = rng.standard_normal((768, 64))
    return W, X


def _cpu_ns(tid: int) -> int:
    with open(f"/proc/self/task/{tid}/schedstat") as f:
        return int(f.read().split()[0])


def test_threads_tasks_of_eval_run_and_products_stay_right_after():
    """`eval` hands the helper threads back to Julia's scheduler, so code that schedules tasks on
    every thread runs; the next product takes the helpers again."""
    W, X = _product()
    assert np.allclose(sparsejl.spmm(W, X), W @ X)
    rt = runtime.get()
    tids = [int(t) for t in rt.eval(TIDS).split()]
    assert len(tids) == rt.threads and len(set(tids)) == rt.threads
    for _ in range(3):
        assert np.allclose(sparsejl.spmm(W, X), W @ X)


def test_julia_threads_sleep_after_a_call():
    """After a product the other Julia threads use (almost) no CPU: they sleep on a semaphore
    instead of spinning for 4 ms in Julia's scheduler, which took a core from NumPy's next call."""
    rt = runtime.get()
    if rt.threads < 2:
        pytest.skip("one Julia thread: no helper threads to watch")
    W, X = _product()
    tids = [int(t) for t in rt.eval(TIDS).split()]
    for _ in range(5):
        sparsejl.spmm(W, X)
    used = []
    for _ in range(8):
        time.sleep(0.05)
        sparsejl.spmm(W, X)
        before = {t: _cpu_ns(t) for t in tids[1:]}
        time.sleep(0.05)
        used.append(max(_cpu_ns(t) - before[t] for t in tids[1:]))
    # Julia 1.5's scheduler spins 4 ms after each task; 1 ms leaves room for a helper woken late
    assert max(used) < 1_000_000, f"helper threads used {used} ns of CPU in the 50 ms after a call"


def test_owner_thread_sleeps_after_a_stream_of_calls():
    """Each call posts the owner's semaphore, also while the owner is still polling for the next
    job; the owner spends those posts before it sleeps. Unspent, each woke it at once for another
    poll: after n calls it kept a core for n polls (here 400 x 0.2 ms)."""
    rt = runtime.get()
    owner = int(rt.eval("ccall(:gettid, Cint, ())"))
    A = sp.random_array((64, 64), density=0.2, format="csr", dtype=np.float64, rng=np.random.default_rng(1))
    X = np.ones((64, 4))
    spin = rt.eval("SparseJL.CABI.SPIN_NS[]")
    rt.eval("SparseJL.CABI.SPIN_NS[] = 200_000")   # calls of the stream find it polling, anywhere
    try:
        for _ in range(400):
            assert np.allclose(sparsejl.spmm(A, X), A @ X)
        time.sleep(0.002)                          # its own poll after the last call ends
        before = _cpu_ns(owner)
        time.sleep(0.1)
        used = _cpu_ns(owner) - before
    finally:
        rt.eval(f"SparseJL.CABI.SPIN_NS[] = {int(spin)}")
    assert used < 10_000_000, f"the owner thread used {used / 1e6:.1f} ms of CPU in the 100 ms after a stream of calls"
