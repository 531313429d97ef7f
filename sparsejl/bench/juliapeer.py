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

__all__ = ["julia_executable", "server", "JuliaServer"]

SERVER_JL = r"""
# Nothing here may throw: a thrown exception crashes Debian's Julia 1.5.3 (seen on these
# machines), so every request is checked first and answered "error ..." instead. Types are
# passed as ::Type{T} so that no call is left to dynamic dispatch (one such read! crashed too).
using SparseArrays, LinearAlgebra
const LAST = Ref{Any}(nothing)

function readvec(path, ::Type{T}, n) where {T}
    v = Vector{T}(undef, n)
    open(io -> read!(io, v), path)
    v
end

# The CSR arrays of an m×k matrix are the CSC arrays of its k×m transpose.
function from_csr(dir, prefix, m, k, nnz, ::Type{T}) where {T}
    indptr = readvec(joinpath(dir, prefix * "indptr"), Int64, m + 1) .+ 1
    indices = readvec(joinpath(dir, prefix * "indices"), Int64, nnz) .+ 1
    data = readvec(joinpath(dir, prefix * "data"), T, nnz)
    copy(transpose(SparseMatrixCSC(k, m, indptr, indices, data)))
end

function load(op, dir, ::Type{T}, m, k, n, nnzA, nnzB) where {T}
    A = from_csr(dir, "A_", m, k, nnzA, T)
    B = op == "spmm" ? Matrix(transpose(reshape(readvec(joinpath(dir, "B"), T, k * n), n, k))) :
                       from_csr(dir, "B_", k, n, nnzB, T)
    C = A * B
    LAST[] = (A, B)
    if op == "spmm"
        write(joinpath(dir, "C"), C)
        return 0
    end
    write(joinpath(dir, "C_colptr"), Vector{Int64}(C.colptr))
    write(joinpath(dir, "C_rowval"), Vector{Int64}(C.rowval))
    write(joinpath(dir, "C_nzval"), C.nzval)
    nnz(C)
end

timeit(repeats, warmup, min_time) = timeit(LAST[]..., repeats, warmup, min_time)

function timeit(A, B, repeats, warmup, min_time)
    for _ in 1:warmup
        A * B
    end
    t0 = time_ns(); A * B; one = (time_ns() - t0) / 1e9
    number = one >= min_time ? 1 : min(1000, ceil(Int, min_time / max(one, 1e-7)))
    times = Float64[]
    for _ in 1:repeats
        t0 = time_ns()
        for _ in 1:number
            A * B
        end
        push!(times, (time_ns() - t0) / 1e9 / number)
    end
    string(number, " ", join(times, " "))
end

isint(s) = all(isdigit, s) && !isempty(s)

function answer(f)
    if length(f) == 9 && f[1] == "load" && f[2] in ("spmm", "spgemm") && isdir(f[3]) &&
            f[4] in ("float32", "float64") && all(isint, f[5:9])
        files = f[2] == "spmm" ? ("A_indptr", "A_indices", "A_data", "B") :
                ("A_indptr", "A_indices", "A_data", "B_indptr", "B_indices", "B_data")
        all(x -> isfile(joinpath(f[3], x)), files) || return "error operand files missing"
        v = [parse(Int, x) for x in f[5:9]]
        T = f[4] == "float32" ? Float32 : Float64
        nz = T === Float32 ? load(f[2], f[3], Float32, v[1], v[2], v[3], v[4], v[5]) :
                             load(f[2], f[3], Float64, v[1], v[2], v[3], v[4], v[5])
        return string("ok ", nz)
    elseif length(f) == 4 && f[1] == "time" && isint(f[2]) && isint(f[3])
        LAST[] === nothing && return "error no product loaded"
        t = tryparse(Float64, f[4])
        t === nothing && return "error bad min_time"
        return string("ok ", timeit(parse(Int, f[2]), parse(Int, f[3]), t))
    end
    "error bad request: " * join(f, " ")
end

function serve()
    while !eof(stdin)
        f = split(readline(stdin))
        isempty(f) || println(answer(f))
        flush(stdout)
    end
end

serve()
"""


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
        with open(script, "w") as f:
            f.write(SERVER_JL)
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
