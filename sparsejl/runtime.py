"""The embedded Julia runtime: started once per process, lazily on first use, and the jobs run on it.

This module knows nothing of sparse formats. It puts together sparsejl/julia: `find` (which
Julia, probed once), `boot` (libjulia started, SparseJL loaded) and `transport` (one job handed
over); it turns a job's status into Python exceptions and marks the runtime unusable in a child
made by fork. Jobs are C entry points of signature ``int32 f(int64 *args)`` (docs/abi.md).
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import time

import numpy as np

from .julia import boot, find, transport
from .julia.find import INSTALL_HINT, JuliaNotFound, find_julia, probe  # noqa: F401 (the public face)
from .julia.transport import _handover  # noqa: F401 (tests ask which call path is built)

FORKED = ("Julia was started in a parent process and cannot run in a child made by fork(); start children "
          "with multiprocessing's 'spawn' or 'forkserver' method, or use the 'scipy' or 'dense' backend there")
_STATUS_INVALID = 1  # 2: any other Julia exception


class JuliaError(RuntimeError):
    """An exception raised inside Julia, carried to Python with Julia's message."""


class Runtime:
    """A started Julia with SparseJL loaded. Use `get()`, not this constructor."""

    def __init__(self, booted: boot.Booted, start_seconds: float):
        self.lib, self.version, self.threads = booted.lib, booted.version, booted.threads
        self.start_seconds = start_seconds
        self._owner, self._mailbox = booted.owner, booted.mailbox
        self.forked = False  # set in a child made by fork (os.fork, multiprocessing): Julia is not there
        # a runtime started by someone else is entered directly: from any thread on Julia >= 1.9,
        # which adopts foreign threads, else only from the thread that booted sparsejl
        adopts = tuple(int(x) for x in self.version.split("-")[0].split(".")[:2]) >= (1, 9)
        self._direct_thread = None if self._owner is not None or adopts else threading.get_ident()
        self._lock = threading.Lock()  # one job at a time: the mailbox holds one
        self._entries = dict(booted.entries)
        self._head, self._c_run, self._send = self._mailbox.head, self._mailbox.c_run, self._mailbox.run

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
                status = self._send(fptr, self._head + slots, arrays, spin_s)
            except BaseException:
                if not self._mailbox.holds_job():  # raised before Julia had the job
                    raise
                # Interrupted while Julia still works on the buffers: keep them alive, and
                # the lock held, until it is done; then the runtime is usable again.
                release = False
                threading.Thread(target=self._finish_abandoned, args=(arrays, keepalive), daemon=True).start()
                raise
            message = self._mailbox.error.value.decode(errors="replace") if status > 0 else ""
        finally:
            if release:
                self._lock.release()
        if status == transport.STATUS_FORKED:
            raise RuntimeError(FORKED)
        if status == _STATUS_INVALID:
            raise ValueError(message)
        if status:
            raise JuliaError(message)

    def _finish_abandoned(self, args, keepalive) -> None:
        self._mailbox.wait_done()
        del args, keepalive
        self._lock.release()


_runtime: Runtime | None = None
_boot_error: JuliaNotFound | None = None  # a Julia probed fine but failed to start: not tried again
_start_lock = threading.Lock()


def _start() -> Runtime:
    global _boot_error
    if _boot_error is not None:
        raise _boot_error
    t0 = time.perf_counter()
    lib = boot.running_libjulia()
    info = None if lib is not None else find.probe(find.find_julia())  # failures: find remembers them
    try:
        booted = boot.attach(lib) if lib is not None else boot.start(info)
    except JuliaNotFound as exc:
        _boot_error = exc
        raise
    except OSError as exc:
        _boot_error = JuliaNotFound(f"libjulia could not be loaded: {exc}. {INSTALL_HINT}")
        raise _boot_error from None
    return Runtime(booted, time.perf_counter() - t0)


def _after_fork_in_child() -> None:
    global _start_lock
    _start_lock = threading.Lock()  # another thread may have held it at fork time
    if _runtime is not None:
        _runtime._lock = threading.Lock()
        _runtime.forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def get() -> Runtime:
    """The process's Julia runtime, started on first call. Raises JuliaNotFound when none works."""
    global _runtime
    if _runtime is None:
        with _start_lock:
            if _runtime is None:
                _runtime = _start()
    return _runtime


def unavailable_reason() -> str | None:
    """Why Julia cannot be used here, or None when it can; never starts Julia."""
    if _runtime is not None:
        return FORKED if _runtime.forked else None
    if _boot_error is not None:
        return str(_boot_error)
    if boot.running_libjulia() is not None:
        return None
    try:
        find.probe(find.find_julia())
    except JuliaNotFound as exc:
        return str(exc)
    return None


def retry() -> None:
    """Look for Julia anew, after installing or repairing one, without restarting Python.

    A Julia that failed its probe is not run again in this process (its executable changing
    counts as a new one); this forgets those failures, and a failed start that left no Julia in
    the process. A Julia that started but could not load SparseJL stays: Julia starts once.
    """
    global _boot_error
    with _start_lock:
        find.retry()
        if boot.running_libjulia() is None:
            _boot_error = None


def started() -> bool:
    return _runtime is not None


def julia_version() -> str:
    return get().version


def julia_threads() -> int:
    return get().threads
