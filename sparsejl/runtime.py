"""Find, start and call the embedded Julia runtime: once per process, lazily on first use.

This module knows nothing of sparse formats. It boots libjulia, loads the SparseJL package and
runs *jobs*: C entry points of signature ``int32 f(int64 *args)`` (docs/abi.md).

Julia 1.5 cannot be entered from an OS thread it did not start, so Julia is started on one
dedicated *owner* thread that then stays inside Julia (``SparseJL.CABI.serve``), and every Python
thread hands its jobs over through a mailbox and two POSIX semaphores. Where Julia was already
started in this process by another embedder (juliacall), that runtime is reused and jobs are
called directly from the calling thread, which Julia >= 1.9 adopts.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import math
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

try:  # the call path in C (setup.py builds it); without it, the same steps through ctypes
    from . import _handover
except ImportError:
    _handover = None

MIN_JULIA = (1, 5)
INSTALL_HINT = (
    "Install Julia >= 1.5 and put `julia` on PATH or set SPARSEJL_JULIA to its executable: "
    "on Debian/Ubuntu run scripts/install-julia.sh from the sparsejl sources (Julia 1.5.3 from "
    "Debian's archive); with internet access, `pip install juliapkg && python -m juliapkg` "
    "fetches official binaries, as does https://julialang.org/downloads. The 'scipy' and 'dense' "
    "backends work without Julia."
)
FORKED = ("Julia was started in a parent process and cannot run in a child made by fork(); start children "
          "with multiprocessing's 'spawn' or 'forkserver' method, or use the 'scipy' or 'dense' backend there")
_STATUS_INVALID, _STATUS_JULIA = 1, 2
_STATUS_FORKED = -1  # the call path saw a fork that Python's at-fork hook did not (one made in C)
_ERRCAP = 4096
_SLOTS = 64  # int64 slots of a job's argument buffer
_SPIN_TRIES = 64  # sem_trywait polls before sleeping: a warm job returns within a few µs
# (a call's `spin_s` keeps polling longer, for jobs that wait on a GPU: docs/abi.md)
_WAIT_SLICE_S = 0.05  # a sleeping caller wakes this often to let Python see Ctrl-C


class JuliaError(RuntimeError):
    """An exception raised inside Julia, carried to Python with Julia's message."""


class JuliaNotFound(RuntimeError):
    """No usable Julia: the message names what was tried and how to install one."""


def package_dir() -> Path:
    """The folder holding the Julia package SparseJL (its parent goes on Julia's LOAD_PATH)."""
    override = os.environ.get("SPARSEJL_JULIA_PROJECT")
    candidates = [Path(override)] if override else []
    here = Path(__file__).resolve().parent
    candidates += [here / "SparseJL", here.parent / "julia" / "SparseJL"]
    for path in candidates:
        if (path / "src" / "SparseJL.jl").is_file():
            return path
    raise JuliaNotFound("the Julia package SparseJL was not found in " + ", ".join(map(str, candidates)))


# ---------------------------------------------------------------- finding a Julia

def find_julia() -> str:
    """Path of the `julia` executable: $SPARSEJL_JULIA, then `julia` on PATH."""
    env = os.environ.get("SPARSEJL_JULIA")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise JuliaNotFound(f"SPARSEJL_JULIA={env!r} is not an executable file. {INSTALL_HINT}")
        return env
    found = shutil.which("julia")
    if not found:
        raise JuliaNotFound(f"no Julia found: SPARSEJL_JULIA is unset and `julia` is not on PATH. {INSTALL_HINT}")
    return found


_PROBE = (
    # a caught exception in compiled code first: some Julia builds crash there (docs/julia.md)
    "f() = try; error(\"probe\"); catch; 0; end; f(); "
    "import Libdl; print(join([string(VERSION), Sys.BINDIR, "
    "unsafe_string(Base.JLOptions().image_file), "
    "first(filter(p -> occursin(r\"^libjulia\\.so\", basename(p)), Libdl.dllist()))], \"\\n\"))"
)


def probe(julia: str) -> dict:
    """Ask `julia` in a child process for its version, libjulia and system image.

    Running it apart first means a broken or foreign program fails here, as a Python exception,
    instead of crashing this interpreter inside jl_init. The answer is cached per executable.
    """
    stat = os.stat(julia)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sparsejl" / "probe.json"
    key = f"{os.path.realpath(julia)}:{stat.st_size}:{stat.st_mtime_ns}"
    try:
        cached = json.loads(cache.read_text())
        if key in cached:
            return cached[key]
    except (OSError, ValueError):
        cached = {}
    try:
        out = subprocess.run([julia, "--startup-file=no", "--history-file=no", "-e", _PROBE],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JuliaNotFound(f"{julia} could not be run as Julia ({exc}). {INSTALL_HINT}") from None
    lines = out.stdout.splitlines()
    if out.returncode < 0:
        raise JuliaNotFound(f"{julia} crashed with signal {-out.returncode} on a caught exception; Debian's "
                            "julia 1.5.3 does this with libunwind 1.6, and scripts/install-julia.sh repairs it "
                            f"by adding libunwind 1.3.2 beside libjulia. {INSTALL_HINT}")
    if out.returncode != 0 or len(lines) != 4:
        detail = (out.stderr or out.stdout).strip()[-500:] or f"exit status {out.returncode}"
        raise JuliaNotFound(f"{julia} did not answer as a working Julia: {detail}. {INSTALL_HINT}")
    version = tuple(int(x) for x in lines[0].split("-")[0].split(".")[:2])
    if version < MIN_JULIA:
        raise JuliaNotFound(f"{julia} is Julia {lines[0]}, older than the 1.5 sparsejl needs. {INSTALL_HINT}")
    info = {"version": lines[0], "bindir": lines[1], "sysimage": lines[2], "libjulia": lines[3]}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cached[key] = info
        cache.write_text(json.dumps(cached))
    except OSError:
        pass
    return info


# ---------------------------------------------------------------- the running runtime

def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    for name in ("sem_post", "sem_wait", "sem_trywait", "sem_init"):
        getattr(libc, name).restype = ctypes.c_int
    libc.sem_post.argtypes = libc.sem_wait.argtypes = libc.sem_trywait.argtypes = [ctypes.c_void_p]
    libc.sem_timedwait.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    libc.sem_init.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint]
    return libc


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_JOB = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)


class Runtime:
    """A started Julia with SparseJL loaded. Use `get()`, not this constructor."""

    def __init__(self, lib, version: str, threads: int, resolve_ptr: int, eval_ptr: int, pid: int,
                 owner: threading.Thread | None, start_seconds: float):
        self.lib, self.version, self.threads = lib, version, threads
        self.start_seconds = start_seconds
        self._pid, self._owner = pid, owner
        self.forked = False  # set in a child made by fork (os.fork, multiprocessing): Julia is not there
        # a runtime started by someone else is entered directly: from any thread on Julia >= 1.9,
        # which adopts foreign threads, else only from the thread that booted sparsejl
        adopts = tuple(int(x) for x in version.split("-")[0].split(".")[:2]) >= (1, 9)
        self._direct_thread = None if owner is not None or adopts else threading.get_ident()
        self._lock = threading.Lock()
        self._entries = {"resolve": resolve_ptr, "eval": eval_ptr}
        self._err = ctypes.create_string_buffer(_ERRCAP)
        self._libc = _libc()
        self.box = (ctypes.c_int64 * 4)()
        self.go = ctypes.create_string_buffer(64)  # sem_t is 32 bytes on x86-64 glibc
        self.done = ctypes.create_string_buffer(64)
        self._libc.sem_init(self.go, 0, 0)
        self._libc.sem_init(self.done, 0, 0)
        # one argument buffer, reused: the lock is held until Julia is done with it
        self._args = np.zeros(_SLOTS, dtype=np.int64)
        self._head = (ctypes.addressof(self._err), _ERRCAP)
        self._c_run = None if _handover is None else functools.partial(
            _handover.run, self._args.ctypes.data, _SLOTS,
            0 if owner is None else ctypes.addressof(self.box),
            ctypes.addressof(self.go), ctypes.addressof(self.done))

    # -- jobs
    def entry(self, key: str) -> int:
        """The entry point for `key` (docs/abi.md), compiled by Julia on first request."""
        ptr = self._entries.get(key)
        if ptr is None:
            from . import abi
            name = key.encode("ascii")
            out = np.zeros(1, dtype=np.int64)
            self._run(self._entries["resolve"], abi.entry("resolve").pack(
                name=ctypes.cast(name, ctypes.c_void_p).value, name_len=len(name), out=out.ctypes.data), (),
                (name, out))
            ptr = self._entries[key] = int(out[0])
        return ptr

    def call(self, key: str, slots, keepalive=(), *, arrays=(), spin_s: float = 0.0) -> None:
        """Run the job `key` on `slots` (ints: sizes and pointers) followed by the data pointers
        of `arrays` (C-contiguous NumPy arrays). Raises on a Julia error.

        `arrays` and `keepalive` (whatever else the pointers in `slots` point into) stay alive
        until Julia is done with them, even when the caller is interrupted and leaves early.

        `spin_s`: seconds for which the waiting thread keeps polling for the job's end (GIL
        released) before it sleeps. A sleeping caller sees the end ~150 µs late, which matters
        for jobs that wait on a GPU for ~1 ms; it costs a core while it spins, so leave it 0
        (a few µs of polling, as every call does) for CPU jobs, whose Julia threads need the
        cores. Ctrl-C is seen once the spin ends (C call path) or between polls (ctypes path).
        """
        if spin_s and not 0.0 < spin_s < math.inf:
            raise ValueError(f"spin_s must be a finite number of seconds >= 0, not {spin_s!r}")
        self._run(self.entry(key), tuple(slots), tuple(arrays), keepalive, spin_s)

    def call_arrays(self, key: str, slots: tuple, arrays: tuple) -> None:
        """`call(key, slots, arrays=arrays)` for tuples, with less Python on the way."""
        self._run(self.entry(key), slots, arrays)

    def eval(self, source: str) -> str:
        """Evaluate Julia source in Main and return `string` of its value."""
        from . import abi
        src = source.encode()
        out = ctypes.create_string_buffer(1 << 16)
        self._run(self._entries["eval"], abi.entry("eval").pack(
            source=ctypes.cast(src, ctypes.c_void_p).value, source_len=len(src), out=ctypes.addressof(out),
            out_cap=len(out)), (), (src, out))
        return out.value.decode(errors="replace")

    def _run(self, fptr: int, slots: tuple, arrays: tuple, keepalive=(), spin_s: float = 0.0) -> None:
        if self.forked:
            raise RuntimeError(FORKED)
        if self._owner is None and self._direct_thread not in (None, threading.get_ident()):
            raise RuntimeError(f"Julia {self.version} was started by another embedder in this process and cannot "
                               "be entered from a thread it did not start (Julia >= 1.9 can); call sparsejl "
                               "from the thread that started Julia")
        self._lock.acquire()
        release = True
        try:
            try:
                if self._c_run is not None:
                    status = self._c_run(fptr, self._head + slots, arrays, spin_s)
                else:
                    status = self._run_ctypes(fptr, self._head + slots + tuple(a.ctypes.data for a in arrays), spin_s)
            except BaseException:
                if self._owner is None or self.box[1] == 0:  # raised before Julia had the job
                    raise
                # Interrupted while Julia still works on the buffers: keep them alive, and
                # the lock held, until it is done; then the runtime is usable again.
                release = False
                threading.Thread(target=self._finish_abandoned, args=(arrays, keepalive), daemon=True).start()
                raise
            message = self._err.value.decode(errors="replace") if status > 0 else ""
        finally:
            if release:
                self._lock.release()
        if status == _STATUS_FORKED:
            raise RuntimeError(FORKED)
        if status == _STATUS_INVALID:
            raise ValueError(message)
        if status:
            raise JuliaError(message)

    def _run_ctypes(self, fptr: int, args: tuple, spin_s: float = 0.0) -> int:
        """The C module's `run`, step by step through ctypes (slower: ~1 µs per pointer)."""
        if os.getpid() != self._pid:
            return _STATUS_FORKED
        box, libc, done = self.box, self._libc, ctypes.addressof(self.done)
        box[1] = 0  # set when the job is handed over
        if len(args) > _SLOTS:
            raise ValueError(f"a job of {len(args)} slots does not fit the {_SLOTS}-slot buffer")
        self._args[:len(args)] = args
        if self._owner is None:
            return _JOB(fptr)(self._args.ctypes.data)
        box[0], box[1], box[2], box[3] = fptr, self._args.ctypes.data, 0, 1
        libc.sem_post(ctypes.addressof(self.go))
        spin_until = time.monotonic() + spin_s if spin_s else 0.0
        for _ in range(_SPIN_TRIES):
            if libc.sem_trywait(done) == 0:
                return box[2]
        while time.monotonic() < spin_until:  # the caller asked to spin longer (a GPU job)
            if libc.sem_trywait(done) == 0:
                return box[2]
        while not self._wait_slice(done):
            pass  # Python runs its signal handlers between slices: Ctrl-C lands here
        return box[2]

    def _wait_slice(self, done: int) -> bool:
        now = time.clock_gettime(time.CLOCK_REALTIME) + _WAIT_SLICE_S
        ts = _Timespec(int(now), int((now % 1) * 1e9))
        return self._libc.sem_timedwait(done, ctypes.byref(ts)) == 0

    def _finish_abandoned(self, args, keepalive) -> None:
        while not self._wait_slice(ctypes.addressof(self.done)):
            pass
        del args, keepalive
        self._lock.release()


# ---------------------------------------------------------------- starting

_runtime: Runtime | None = None
_start_error: Exception | None = None
_start_lock = threading.Lock()

_BOOTSTRAP = """
try
    pushfirst!(LOAD_PATH, {load_path})
    using SparseJL
    string(join(UInt.(SparseJL.CABI.bootstrap_pointers()), " "), " ", Threads.nthreads(), " ", VERSION)
catch e
    "error: " * sprint(showerror, e)
end
"""


def _load(lib) -> str:
    lib.jl_eval_string.restype = ctypes.c_void_p
    lib.jl_eval_string.argtypes = [ctypes.c_char_p]
    lib.jl_string_ptr.restype = ctypes.c_char_p
    lib.jl_string_ptr.argtypes = [ctypes.c_void_p]
    src = _BOOTSTRAP.format(load_path=json.dumps(str(package_dir().parent)))
    value = lib.jl_eval_string(src.encode())
    if not value:
        return "error: Julia could not evaluate the sparsejl bootstrap"
    return lib.jl_string_ptr(value).decode()


def _parse(answer: str):
    if answer.startswith("error: "):
        raise JuliaNotFound("Julia started but could not load SparseJL: " + answer[7:])
    serve, resolve, evaluate, threads, version = answer.split()
    return int(serve), int(resolve), int(evaluate), int(threads), version


def _running_libjulia():
    """libjulia already initialised in this process by another embedder, else None."""
    try:
        lib = ctypes.CDLL(None)
        is_init = lib.jl_is_initialized
    except (OSError, AttributeError):
        return None
    return lib if is_init() else None


@contextlib.contextmanager
def _python_keeps_sigint():
    """Julia's start-up takes SIGINT for itself; give it back so Ctrl-C reaches Python.

    sigaction is process-wide and callable from any thread (signal.signal is main-thread only).
    Julia's own threads keep SIGINT blocked, so it is always delivered to a Python thread.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    saved = ctypes.create_string_buffer(256)  # larger than struct sigaction on every Linux ABI
    libc.sigaction(signal.SIGINT, None, saved)
    try:
        yield
    finally:
        libc.sigaction(signal.SIGINT, saved, None)


def _start() -> Runtime:
    t0 = time.perf_counter()
    lib = _running_libjulia()
    if lib is not None:  # juliacall or another embedder started Julia: reuse it
        serve, resolve, evaluate, threads, version = _parse(_load(lib))
        return Runtime(lib, version, threads, resolve, evaluate, os.getpid(), None, time.perf_counter() - t0)

    info = probe(find_julia())
    os.environ.setdefault("JULIA_NUM_THREADS", os.environ.get("SPARSEJL_NUM_THREADS", str(os.cpu_count() or 1)))
    booted: dict = {}
    ready = threading.Event()

    def owner():
        try:
            # libjulia brings libunwind, whose _Unwind_* symbols would otherwise serve the C++
            # exceptions of every extension loaded later (matplotlib's ft2font aborted on import):
            # libgcc_s in the global scope first keeps those symbols where C++ expects them.
            ctypes.CDLL("libgcc_s.so.1", mode=ctypes.RTLD_GLOBAL)
            lib = ctypes.CDLL(info["libjulia"], mode=ctypes.RTLD_GLOBAL)
            init = getattr(lib, "jl_init_with_image__threading", None) or lib.jl_init_with_image
            init.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
            with _python_keeps_sigint():
                init(info["bindir"].encode(), info["sysimage"].encode())
            serve, resolve, evaluate, threads, version = _parse(_load(lib))
            rt = Runtime(lib, version, threads, resolve, evaluate, os.getpid(), threading.current_thread(), 0.0)
            booted["runtime"] = rt
        except BaseException as exc:  # reported to the starting thread
            booted["error"] = exc
            return
        finally:
            ready.set()
        serve_fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(serve)
        serve_fn(ctypes.addressof(rt.box), ctypes.addressof(rt.go), ctypes.addressof(rt.done))

    threading.Thread(target=owner, name="sparsejl-julia", daemon=True).start()
    ready.wait()
    if "error" in booted:
        raise booted["error"]
    rt = booted["runtime"]
    rt.start_seconds = time.perf_counter() - t0
    return rt


def _after_fork_in_child() -> None:
    global _start_lock
    _start_lock = threading.Lock()  # another thread may have held it at fork time
    if _runtime is not None:
        _runtime._lock = threading.Lock()
        _runtime.forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def get() -> Runtime:
    """The process's Julia runtime, started on first call. Raises JuliaNotFound when none works."""
    global _runtime, _start_error
    if _runtime is not None:
        return _runtime
    with _start_lock:
        if _runtime is None:
            if _start_error is not None:
                raise _start_error
            try:
                _runtime = _start()
            except JuliaNotFound as exc:
                _start_error = exc
                raise
            except OSError as exc:
                _start_error = JuliaNotFound(f"libjulia could not be loaded: {exc}. {INSTALL_HINT}")
                raise _start_error from None
    return _runtime


def unavailable_reason() -> str | None:
    """Why Julia cannot be used here, or None when it can; never starts Julia."""
    if _runtime is not None:
        return FORKED if _runtime.forked else None
    if _start_error is not None:
        return str(_start_error)
    if _running_libjulia() is not None:
        return None
    try:
        probe(find_julia())
    except JuliaNotFound as exc:
        return str(exc)
    return None


def started() -> bool:
    return _runtime is not None


def julia_version() -> str:
    return get().version


def julia_threads() -> int:
    return get().threads
