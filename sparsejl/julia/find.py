"""Which Julia to run and whether it works, asked once per executable; where SparseJL lies."""

from __future__ import annotations

import importlib.resources
import json
import os
import shutil
import subprocess
from pathlib import Path

MIN_JULIA = (1, 5)
INSTALL_HINT = (
    "Install Julia >= 1.5 and put `julia` on PATH or set SPARSEJL_JULIA to its executable: "
    "on Debian/Ubuntu run scripts/install-julia.sh from the sparsejl sources (Julia 1.5.3 from "
    "Debian's archive); with internet access, `pip install juliapkg && python -m juliapkg` "
    "fetches official binaries, as does https://julialang.org/downloads. The 'scipy' and 'dense' "
    "backends work without Julia."
)


class JuliaNotFound(RuntimeError):
    """No usable Julia: the message names what was tried and how to install one."""


def package_dir() -> Path:
    """The folder holding the Julia package SparseJL (its parent goes on Julia's LOAD_PATH)."""
    override = os.environ.get("SPARSEJL_JULIA_PROJECT")
    candidates = [Path(override)] if override else []
    here = Path(str(importlib.resources.files("sparsejl")))
    candidates += [here / "SparseJL", here.parent / "julia" / "SparseJL"]  # a wheel's, a checkout's
    for path in candidates:
        if (path / "src" / "SparseJL.jl").is_file():
            return path
    raise JuliaNotFound("the Julia package SparseJL was not found in " + ", ".join(map(str, candidates)))


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

# answers of this process, failures included, per executable as it is now (path, size, mtime)
_answers: dict[str, dict | JuliaNotFound] = {}


def retry() -> None:
    """Forget the failed probes: the next probe of those executables runs them again."""
    for key in [k for k, v in _answers.items() if isinstance(v, JuliaNotFound)]:
        del _answers[key]


def probe(julia: str) -> dict:
    """Ask `julia` in a child process for its version, libjulia and system image.

    Running it apart first means a broken or foreign program fails here, as a Python exception,
    instead of crashing this interpreter inside jl_init. A working answer is kept on disk, a
    failure in this process only (until `retry()`, or until the executable changes).
    """
    stat = os.stat(julia)
    key = f"{os.path.realpath(julia)}:{stat.st_size}:{stat.st_mtime_ns}"
    answer = _answers.get(key)
    if answer is None:
        try:
            answer = _cached_probe(julia, key)
        except JuliaNotFound as exc:
            answer = exc
        _answers[key] = answer
    if isinstance(answer, JuliaNotFound):
        raise answer
    return answer


def _cached_probe(julia: str, key: str) -> dict:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sparsejl" / "probe.json"
    try:
        cached = json.loads(cache.read_text())
        if key in cached:
            return cached[key]
    except (OSError, ValueError):
        cached = {}
    info = _run_probe(julia)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cached[key] = info
        cache.write_text(json.dumps(cached))
    except OSError:
        pass
    return info


def _run_probe(julia: str) -> dict:
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
    return {"version": lines[0], "bindir": lines[1], "sysimage": lines[2], "libjulia": lines[3]}
