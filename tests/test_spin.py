"""A call's `spin_s` (the waiting thread polls that long before it sleeps), on both call paths.

Each path runs in a child process: the C extension's (where it is built) and the ctypes one
(the C module's import made to fail). The jobs are `eval`s of Julia source, some longer than
the spin, so that the spin, the sleep after it, Ctrl-C and the fork check are all crossed.
No timings are asserted.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparsejl import runtime

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import ctypes, math, os, signal, sys, threading
if sys.argv[1] == "ctypes":
    sys.modules["sparsejl._handover"] = None  # import of the C module fails
import sparsejl
from sparsejl import abi
from sparsejl import runtime
assert (runtime._handover is None) == (sys.argv[1] == "ctypes")
rt = runtime.get()

def run(src, spin_s):
    src = src.encode()
    out = ctypes.create_string_buffer(256)
    slots = abi.entry("eval").pack(source=ctypes.cast(src, ctypes.c_void_p).value, source_len=len(src),
                                   out=ctypes.addressof(out), out_cap=len(out))
    rt.call("eval", slots, (src, out), spin_s=spin_s)
    return out.value.decode()

assert run("1 + 1", 0.005) == "2"                                     # ends within the spin
assert run("Libc.systemsleep(0.05); 3", 0.005) == "3"                 # outlasts it: sleeps after
assert run("Libc.systemsleep(0.002); 4", 0.05) == "4"                 # ends while spinning
assert run("5", 0) == "5" and run("6", 0.0) == "6"
try:
    run('error("boom")', 0.005)
except sparsejl.JuliaError as exc:
    assert "boom" in str(exc), exc
else:
    raise AssertionError("the Julia error was lost")
for bad in (-0.001, math.nan, math.inf, -math.inf):
    try:
        run("7", bad)
    except ValueError as exc:
        assert "spin_s must be a finite number of seconds >= 0" in str(exc), exc
    else:
        raise AssertionError(f"spin_s={bad} was accepted")
if rt._c_run is not None:  # the C module checks its argument too
    try:
        rt._c_run(rt.entry("eval"), rt._head + abi.entry("eval").pack(source=0, source_len=0, out=0, out_cap=0), (), math.nan)
    except ValueError as exc:
        assert "spin_s" in str(exc), exc
    else:
        raise AssertionError("the C module accepted spin_s=nan")
assert run("8", 0.001) == "8"

# Ctrl-C while the job runs: during the spin (seen at its end on the C path), and after it
for spin_s in (0.5, 0.01):
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    try:
        run("Libc.systemsleep(1.5); 9", spin_s)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError(f"not interrupted (spin_s={spin_s})")
    assert run("10", spin_s) == "10"  # waits for the abandoned job, then runs

# a fork made in C (no Python at-fork hook): the child gets the fork error, not a hang
read, write = os.pipe()
pid = ctypes.CDLL(None).fork()
if pid == 0:
    try:
        answer = "ran: " + run("11", 0.005)
    except RuntimeError as exc:
        answer = str(exc)
    os.write(write, answer.encode()[:500])
    os._exit(0)
os.close(write)
with os.fdopen(read) as pipe:
    answer = pipe.read()
os.waitpid(pid, 0)
assert "cannot run in a child made by fork()" in answer, answer
print("ok")
"""


@pytest.mark.parametrize("path", ["c", "ctypes"])
def test_spin_on_both_call_paths(path):
    if path == "c" and runtime._handover is None:
        pytest.skip("the C call path is not built here (pip install -e . builds it)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", SCRIPT, path], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout + out.stderr[-3000:]
