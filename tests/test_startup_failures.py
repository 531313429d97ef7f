"""A Julia that is missing, foreign, too old or crashing: a clear error, and the other backends work."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, warnings, numpy as np, scipy.sparse as sp, sparsejl
reason = {s.name: s.reason for s in sparsejl.backends()}["julia"]
A = sp.csr_array(np.eye(3)); B = np.arange(6.0).reshape(3, 2)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fallback = bool((sparsejl.spmm(A, B) == B).all() and (sparsejl.spmm(A, B, backend="dense") == B).all())
try:
    sparsejl.spmm(A, B, backend="julia"); forced = None
except RuntimeError as exc:
    forced = str(exc)
print(json.dumps({"reason": reason, "fallback": fallback, "forced": forced}))
"""


def fake(tmp_path, body):
    path = tmp_path / "julia"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("case,words", [
    ("missing", "is not an executable file"),
    ("not-julia", "did not answer as a working Julia"),
    ("too-old", "older than the 1.5"),
    ("crashes", "crashed with signal"),
    ("not-executable", "is not an executable file"),
])
def test_start_up_failure(case, words, tmp_path):
    julia = {
        "missing": lambda: str(tmp_path / "nothing-here"),
        "not-julia": lambda: "/bin/true",
        "too-old": lambda: fake(tmp_path, 'printf "1.4.2\\n/usr/bin\\n/x/sys.so\\n/x/libjulia.so.1"'),
        "crashes": lambda: fake(tmp_path, "kill -SEGV $$"),
        "not-executable": lambda: fake(tmp_path, "exit 0"),
    }[case]()
    if case == "not-executable":
        os.chmod(julia, 0o644)
    env = dict(os.environ, SPARSEJL_JULIA=julia, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert words in result["reason"] and "SPARSEJL_JULIA" in result["reason"]
    assert result["fallback"]
    assert result["forced"] and words in result["forced"]


PROBES = """
import json, sys, warnings, numpy as np, scipy.sparse as sp, sparsejl
from sparsejl import runtime
log, stub = sys.argv[1], sys.argv[2]
A = sp.csr_array(np.eye(3)); B = np.ones((3, 2))
runs = lambda: len(open(log).read().split())  # one word per start of the stub
seen = []

def use():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(5):
            assert (sparsejl.spmm(A, B) == B).all()  # falls back to SciPy
    try:
        sparsejl.spmm(A, B, backend="julia")
    except RuntimeError as exc:
        assert "exit status 3" in str(exc), exc
    else:
        raise AssertionError("the stub was taken for Julia")
    sparsejl.backends()
    seen.append(runs())

use()
runtime.retry(); use()
with open(stub, "a") as f:
    f.write("# changed\\n")  # a new executable at the same path: probed without retry()
use()
use()
print(json.dumps(seen))
"""


def test_a_failed_probe_runs_once_until_retry(tmp_path):
    log = tmp_path / "starts.log"
    log.write_text("")
    stub = fake(tmp_path, f"echo started >> {log}\nexit 3")
    env = dict(os.environ, SPARSEJL_JULIA=stub, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", PROBES, str(log), stub], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == [1, 2, 3, 3]
