"""One job handed to Julia and waited for: the mailbox of docs/abi.md, in C or through ctypes.

A job is a C entry point `int32 f(int64 *args)` and its slots. With an owner thread, the slots go
into a buffer, the job into a four-int64 box (function, buffer, status, flag), and two POSIX
semaphores say "go" and "done"; without one (a Julia that this thread may enter), the job is
called right here. The C extension `_handover` does this in nanoseconds; where it is not built,
the same steps run through ctypes.
"""

from __future__ import annotations

import ctypes
import functools
import os
import time

import numpy as np

try:  # the call path in C (setup.py builds it); without it, the same steps through ctypes
    from .. import _handover
except ImportError:
    _handover = None

STATUS_FORKED = -1  # the call path saw a fork that Python's at-fork hook did not (one made in C)
ERRCAP = 4096
SLOTS = 64  # int64 slots of a job's argument buffer
SPIN_TRIES = 64  # sem_trywait polls before sleeping: a warm job returns within a few µs
WAIT_SLICE_S = 0.05  # a sleeping caller wakes this often to let Python see Ctrl-C


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


class Mailbox:
    """The buffers of one job at a time; the caller serialises jobs and keeps them alive.

    `run(fptr, head, arrays, spin_s)` writes `head` (ints, starting with `self.head`, the error
    buffer) and the data pointers of `arrays` (C-contiguous NumPy arrays) into the argument
    buffer, runs the job and returns its status. Without an owner thread (`owned=False`) it
    calls the job on the calling thread.
    """

    def __init__(self, owned: bool):
        self.owned = owned
        self._pid = os.getpid()
        self._libc = _libc()
        self.error = ctypes.create_string_buffer(ERRCAP)
        self.head = (ctypes.addressof(self.error), ERRCAP)
        self.box = (ctypes.c_int64 * 4)()
        self.go = ctypes.create_string_buffer(64)  # sem_t is 32 bytes on x86-64 glibc
        self.done = ctypes.create_string_buffer(64)
        self._libc.sem_init(self.go, 0, 0)
        self._libc.sem_init(self.done, 0, 0)
        self._args = np.zeros(SLOTS, dtype=np.int64)
        self.c_run = None if _handover is None else functools.partial(
            _handover.run, self._args.ctypes.data, SLOTS, ctypes.addressof(self.box) if owned else 0,
            ctypes.addressof(self.go), ctypes.addressof(self.done))
        self.run = self.c_run or self._run_ctypes

    def serve_args(self) -> tuple[int, int, int]:
        """The addresses that Julia's `serve(box, go, done)` waits on."""
        return ctypes.addressof(self.box), ctypes.addressof(self.go), ctypes.addressof(self.done)

    def holds_job(self) -> bool:
        """Whether the owner thread has a job it may still be working on."""
        return self.owned and self.box[1] != 0

    def wait_done(self) -> None:
        """Wait, however long, for the job handed over last."""
        while not self._wait_slice():
            pass

    def _run_ctypes(self, fptr: int, head: tuple, arrays: tuple, spin_s: float = 0.0) -> int:
        """The C module's `run`, step by step through ctypes (slower: ~1 µs per pointer)."""
        if os.getpid() != self._pid:
            return STATUS_FORKED
        args = head + tuple(a.ctypes.data for a in arrays)
        box, libc, done = self.box, self._libc, ctypes.addressof(self.done)
        box[1] = 0  # set when the job is handed over
        if len(args) > SLOTS:
            raise ValueError(f"a job of {len(args)} slots does not fit the {SLOTS}-slot buffer")
        self._args[:len(args)] = args
        if not self.owned:
            return _JOB(fptr)(self._args.ctypes.data)
        box[0], box[1], box[2], box[3] = fptr, self._args.ctypes.data, 0, 1
        libc.sem_post(ctypes.addressof(self.go))
        spin_until = time.monotonic() + spin_s if spin_s else 0.0
        for _ in range(SPIN_TRIES):
            if libc.sem_trywait(done) == 0:
                return box[2]
        while time.monotonic() < spin_until:  # the caller asked to spin longer (a GPU job)
            if libc.sem_trywait(done) == 0:
                return box[2]
        self.wait_done()  # Python runs its signal handlers between slices: Ctrl-C lands here
        return box[2]

    def _wait_slice(self) -> bool:
        now = time.clock_gettime(time.CLOCK_REALTIME) + WAIT_SLICE_S
        ts = _Timespec(int(now), int((now % 1) * 1e9))
        return self._libc.sem_timedwait(ctypes.addressof(self.done), ctypes.byref(ts)) == 0
