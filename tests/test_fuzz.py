"""Malformed operands never crash the interpreter: the fuzzer runs in a child process."""

import os
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_fuzz_malformed_operands_in_a_child_process():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), str(HERE)]))
    out = subprocess.run([sys.executable, str(HERE / "fuzz_malformed.py"), "400"], env=env,
                         capture_output=True, text=True, timeout=600)
    if out.returncode < 0:
        raise AssertionError(f"the fuzzer died of {signal.Signals(-out.returncode).name}:\n{out.stderr[-3000:]}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "every malformed operand raised" in out.stdout
