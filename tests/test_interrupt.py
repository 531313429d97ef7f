"""Ctrl-C and Jupyter's kernel interrupt during a long Julia call: KeyboardInterrupt, runtime still usable.

The caller waits in 50 ms slices, so KeyboardInterrupt is raised at once (within a slice); the
Julia kernel itself runs to its end in the background, holding its operands alive, and the next
call waits for it.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LONG_CALL = """
import os, signal, threading, time, numpy as np, scipy.sparse as sp, sparsejl
rng = np.random.default_rng(0)
A = sp.bsr_array(rng.standard_normal((2048, 2048)), blocksize=(64, 64))
B = rng.standard_normal((2048, 64))
sparsejl.spmm(A, B, backend="julia")
one = float("inf")
for _ in range(3):  # the fastest of three: one slow sample must not shorten the long call
    t = time.perf_counter(); sparsejl.spmm(A, B, backend="julia"); one = min(one, time.perf_counter() - t)
B = rng.standard_normal((2048, max(64, int(64 * 2.0 / one))))       # a call of about 2 s
"""

PLAIN = LONG_CALL + """
for attempt in range(3):
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    t = time.perf_counter()
    try:
        sparsejl.spmm(A, B, backend="julia")
    except KeyboardInterrupt:
        print(f"interrupted after {time.perf_counter() - t:.2f} s")
        break
    took = time.perf_counter() - t
    print(f"not interrupted in {took:.2f} s")
    if took > 0.45:  # the signal came during the call (at 0.3 s) and was missed: a real failure
        break
    # A busy machine slowed the sizing calls, so this call ended before the signal: size it again
    # (the pending SIGINT lands in the sleep below, before the next attempt).
    try:
        time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    B = rng.standard_normal((2048, int(B.shape[1] * min(8.0, 2.0 / took))))
small = sp.csr_array(np.eye(3))
print("usable", np.allclose(sparsejl.spmm(small, np.ones(3), backend="julia"), 1.0))
"""


def test_ctrl_c_during_a_long_call():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", PLAIN], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "interrupted after" in out.stdout and "usable True" in out.stdout, out.stdout


def test_jupyter_kernel_interrupt():
    jupyter_client = pytest.importorskip("jupyter_client", reason="jupyter_client is installed by scripts/setup.sh")
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3", env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert kc.execute_interactive(LONG_CALL, timeout=300)["content"]["status"] == "ok"
        msg_id = kc.execute('sparsejl.spmm(A, B, backend="julia")')
        kc.get_iopub_msg(timeout=30)  # busy
        import time
        time.sleep(0.5)
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=120)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        for _ in range(3):  # ipykernel 7 may abort a request sent right after an error reply: resend it
            check = kc.execute_interactive('import numpy as np; assert np.allclose(sparsejl.spmm(A, B[:, :3], backend="julia"), A @ B[:, :3])',
                                           timeout=300)
            if check["content"]["status"] != "aborted":
                break
        assert check["content"]["status"] == "ok", check["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
