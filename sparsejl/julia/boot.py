"""Julia started in this process, SparseJL loaded: on an owner thread of its own, or the Julia
that another embedder (juliacall) already started here.

Julia 1.5 cannot be entered from an OS thread it did not start, so the owner thread boots
libjulia and then stays inside Julia (``SparseJL.CABI.serve``), taking jobs from a mailbox
(transport.py). A Julia started by someone else is entered directly from the calling thread,
which Julia >= 1.9 adopts.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import signal
import threading
from dataclasses import dataclass

from .find import JuliaNotFound, package_dir
from .transport import Mailbox


@dataclass
class Booted:
    lib: ctypes.CDLL
    version: str
    threads: int
    entries: dict  # "resolve" and "eval": the two entry points every other one is found through
    owner: threading.Thread | None  # None: a Julia another embedder started, entered directly
    mailbox: Mailbox
    serve: int  # SparseJL.CABI.serve, which the owner thread runs


_BOOTSTRAP = """
try
    pushfirst!(LOAD_PATH, {load_path})
    using SparseJL
    string(join(UInt.(SparseJL.CABI.bootstrap_pointers()), " "), " ", Threads.nthreads(), " ", VERSION)
catch e
    "error: " * sprint(showerror, e)
end
"""


def _load_sparsejl(lib, owner: threading.Thread | None) -> Booted:
    lib.jl_eval_string.restype = ctypes.c_void_p
    lib.jl_eval_string.argtypes = [ctypes.c_char_p]
    lib.jl_string_ptr.restype = ctypes.c_char_p
    lib.jl_string_ptr.argtypes = [ctypes.c_void_p]
    value = lib.jl_eval_string(_BOOTSTRAP.format(load_path=json.dumps(str(package_dir().parent))).encode())
    answer = lib.jl_string_ptr(value).decode() if value else "error: Julia could not evaluate the sparsejl bootstrap"
    if answer.startswith("error: "):
        raise JuliaNotFound("Julia started but could not load SparseJL: " + answer[7:])
    serve, resolve, evaluate, threads, version = answer.split()
    return Booted(lib, version, int(threads), {"resolve": int(resolve), "eval": int(evaluate)}, owner,
                  Mailbox(owned=owner is not None), int(serve))


def running_libjulia():
    """libjulia already initialised in this process by another embedder, else None."""
    try:
        lib = ctypes.CDLL(None)
        is_init = lib.jl_is_initialized
    except (OSError, AttributeError):
        return None
    return lib if is_init() else None


def attach(lib) -> Booted:
    """The Julia that another embedder started in this process, with SparseJL loaded."""
    return _load_sparsejl(lib, None)


#: (package, its library) of libraries with an LLVM of their own whose symbols they export: loaded
#: after libjulia, their LLVM calls bind to Julia's LLVM in the global scope (another version), and
#: the process dies as they load (Triton's libtriton.so, imported by PyTorch's optimizers where
#: Triton is installed: a segfault in its static constructors). Loaded first, each binds to itself.
LLVM_CARRIERS = (("triton", ("_C", "libtriton.so")),)


def load_llvm_carriers() -> None:
    """Load the installed libraries of `LLVM_CARRIERS` (RTLD_LOCAL, without importing their
    packages). One that does not load is left to its package, which will report it."""
    for package, parts in LLVM_CARRIERS:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        for folder in getattr(spec, "submodule_search_locations", None) or ():
            path = os.path.join(folder, *parts)
            if os.path.exists(path):
                try:
                    ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
                except OSError:
                    pass


def prepare_environment() -> None:
    """What Julia reads from the environment once, in jl_init."""
    os.environ.setdefault("JULIA_NUM_THREADS", os.environ.get("SPARSEJL_NUM_THREADS", str(os.cpu_count() or 1)))


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


def start(info: dict) -> Booted:
    """Julia booted from `info` (find.probe's answer) on a new owner thread, SparseJL loaded,
    the thread serving jobs."""
    prepare_environment()
    booted: dict = {}
    ready = threading.Event()

    def owner():
        try:
            # libjulia brings libunwind, whose _Unwind_* symbols would otherwise serve the C++
            # exceptions of every extension loaded later (matplotlib's ft2font aborted on import):
            # libgcc_s in the global scope first keeps those symbols where C++ expects them.
            ctypes.CDLL("libgcc_s.so.1", mode=ctypes.RTLD_GLOBAL)
            load_llvm_carriers()
            lib = ctypes.CDLL(info["libjulia"], mode=ctypes.RTLD_GLOBAL)
            init = getattr(lib, "jl_init_with_image__threading", None) or lib.jl_init_with_image
            init.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
            with _python_keeps_sigint():
                init(info["bindir"].encode(), info["sysimage"].encode())
            julia = booted["julia"] = _load_sparsejl(lib, threading.current_thread())
        except BaseException as exc:  # reported to the starting thread
            booted["error"] = exc
            return
        finally:
            ready.set()
        serve = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(julia.serve)
        serve(*julia.mailbox.serve_args())

    threading.Thread(target=owner, name="sparsejl-julia", daemon=True).start()
    ready.wait()
    if "error" in booted:
        raise booted["error"]
    return booted["julia"]
