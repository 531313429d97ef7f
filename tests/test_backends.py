"""backends() tells the truth, with Julia and without it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import sparsejl

ROOT = Path(__file__).resolve().parents[1]


def test_backends_here():
    names = {s.name: s for s in sparsejl.backends()}
    assert {"julia", "scipy", "dense"} <= set(names)
    for s in names.values():
        assert s.available == (s.reason is None)
        assert s.device in ("cpu", "gpu")
    assert names["julia"].available, names["julia"].reason


SCRIPT = """
import json, warnings, numpy as np, scipy.sparse as sp, sparsejl
status = {s.name: [s.available, s.reason] for s in sparsejl.backends()}
A = sp.csr_array(np.eye(3)); B = np.arange(6.0).reshape(3, 2)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    default = sparsejl.spmm(A, B)
try:
    sparsejl.spmm(A, B, backend="julia"); forced = "ran"
except RuntimeError as exc:
    forced = str(exc)
print(json.dumps({"status": status, "default_ok": bool((default == B).all()),
                  "warnings": [str(w.message) for w in caught], "forced": forced}))
"""


def run_without_julia(**env):
    clean = {k: v for k, v in os.environ.items() if k not in ("SPARSEJL_JULIA",)}
    clean["PATH"] = os.pathsep.join(p for p in clean["PATH"].split(os.pathsep)
                                     if not (Path(p) / "julia").exists())
    clean["PYTHONPATH"] = str(ROOT)
    clean.update(env)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=clean, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_no_julia_on_path():
    result = run_without_julia()
    available, reason = result["status"]["julia"]
    assert not available and "no Julia found" in reason and "SPARSEJL_JULIA" in reason
    assert result["status"]["scipy"] == [True, None] and result["status"]["dense"] == [True, None]
    assert result["default_ok"]
    assert any("using the 'scipy' backend" in w for w in result["warnings"])
    assert "backend 'julia' is unavailable" in result["forced"]


def test_sparsejl_julia_pointing_at_nothing(tmp_path):
    result = run_without_julia(SPARSEJL_JULIA=str(tmp_path / "no-such-julia"))
    available, reason = result["status"]["julia"]
    assert not available and "is not an executable file" in reason
    assert result["default_ok"]
