"""Julia's own SparseArrays ``A*B``, run and timed inside a separate Julia process.

The peer measures what a Julia user gets from the standard library, with Julia's clock and no
Python in the loop. One ``julia`` process serves the whole sweep over a pipe; operands travel
as raw little-endian files in a temporary folder (``/dev/shm`` where there is one). Protocol,
one line per request and one line per answer:

* ``load OP DIR DTYPE m k n nnzA nnzB`` — read the operands, compute ``C = A*B`` once, write C;
  answers ``ok NNZC`` (SpGEMM: C's CSC arrays; SpMM: C column-major).
* ``time REPEATS WARMUP MIN_TIME`` — time the loaded product; answers ``ok NUMBER t1 t2 ...``,
  seconds per call, each sample ``NUMBER`` calls long.
Errors answer ``error MESSAGE``.
"""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from typing import List, Optional, Tuple

import numpy as np
import scipy.sparse as sp

from . import julia_source

__all__ = ["julia_executable", "server", "JuliaServer"]


def julia_executable() -> Optional[str]:
    """``$SPARSEJL_JULIA`` if set and executable, else ``julia`` on the PATH, else None."""
    env = os.environ.get("SPARSEJL_JULIA")
    if env and os.access(env, os.X_OK):
        return env
    return shutil.which("julia")


class _Product:
    """What the timed call returns: the product read back from Julia."""

    def __init__(self, result):
        self.result = result


class JuliaServer:
    def __init__(self, exe: str):
        self.dir = tempfile.mkdtemp(prefix="sparsejl-bench-",
                                    dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        script = os.path.join(self.dir, "server.jl")
        with open(script, "w") as f:  # a file of its own also where the package is a zip
            f.write(julia_source("sparsearrays_server.jl"))
        self.proc = subprocess.Popen([exe, "--startup-file=no", "--history-file=no", script],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
        atexit.register(self.close)

    def _ask(self, line: str) -> List[str]:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the Julia process has exited ({self.proc.returncode})")
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().split()
        if not answer:
            raise RuntimeError("the Julia process closed its output")
        if answer[0] != "ok":
            raise RuntimeError("Julia: " + " ".join(answer[1:]))
        return answer[1:]

    def _put(self, name: str, arr) -> None:
        np.ascontiguousarray(arr).tofile(os.path.join(self.dir, name))

    def prepare(self, case, A, B):
        """Write the operands; the returned call has Julia compute C once and reads it back."""
        self._put("A_indptr", A.indptr.astype(np.int64))
        self._put("A_indices", A.indices.astype(np.int64))
        self._put("A_data", A.data)
        nnzB = 0
        if case.op == "spmm":
            self._put("B", B)
        else:
            self._put("B_indptr", B.indptr.astype(np.int64))
            self._put("B_indices", B.indices.astype(np.int64))
            self._put("B_data", B.data)
            nnzB = B.nnz
        request = (f"load {case.op} {self.dir} {np.dtype(case.dtype).name} "
                   f"{case.m} {case.k} {case.n} {A.nnz} {nnzB}")
        dtype = np.dtype(case.dtype)

        def run():
            nnzC = int(self._ask(request)[0])
            path = lambda name: os.path.join(self.dir, name)  # noqa: E731
            if case.op == "spmm":
                C = np.fromfile(path("C"), dtype=dtype).reshape(case.n, case.m).T
            else:
                C = sp.csc_matrix((np.fromfile(path("C_nzval"), dtype=dtype, count=nnzC),
                                   np.fromfile(path("C_rowval"), dtype=np.int64) - 1,
                                   np.fromfile(path("C_colptr"), dtype=np.int64) - 1),
                                  shape=(case.m, case.n)).tocsr()
            return _Product(C)
        return run

    def time_last(self, repeats: int, warmup: int, min_time: float) -> Tuple[List[float], int]:
        answer = self._ask(f"time {int(repeats)} {int(warmup)} {float(min_time)!r}")
        return [float(t) for t in answer[1:]], int(answer[0])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


_SERVER: Optional[JuliaServer] = None


def server() -> JuliaServer:
    """The one Julia process of this Python process, started on first use."""
    global _SERVER
    if _SERVER is None or _SERVER.proc.poll() is not None:
        exe = julia_executable()
        if exe is None:
            raise RuntimeError("no julia executable found")
        _SERVER = JuliaServer(exe)
    return _SERVER
