"""sparsejl's benchmark harness: sparsejl's kernels side by side with the field's libraries.

* :mod:`.sweep` — :class:`~.sweep.Case` and :func:`~.sweep.run` (the stable entry point)
* :mod:`.suites` — which cases a run measures (main job, quick, full) from published layer shapes
* :mod:`.peers` — one adapter per library; :mod:`.juliapeer` — Julia's SparseArrays in Julia
* :mod:`.matrices`, :mod:`.verify` — seeded operands and the check of each result against a float64 reference
* :mod:`.env`, :mod:`.threads` — what machine and thread settings a result came from
* :mod:`.records` — the one record format of every measurement (CPU sweep, GPU record, explorer),
  and the reader of every committed report
* :mod:`.curves` — what a speedup curve claims (break-even, crossings, noisy baselines)
* :mod:`.usermatrix` — a weight the user brings, as the sweep's operand
* :mod:`.targets`, :mod:`.report`, :mod:`.plot` — the issue's targets, JSON/Markdown/HTML, plots
* :mod:`.cli` — the ``sparsejl-bench`` command (also ``python -m sparsejl.bench``)
* :mod:`.gpu` — the GPU backends' own benchmark (``python -m sparsejl.bench.gpu``)
* ``julia/`` — the Julia code that the peers and probes run (package data)
"""
import importlib.resources


def julia_source(name: str) -> str:
    """The Julia file `name` of julia/ beside this package."""
    return importlib.resources.files(__name__).joinpath("julia", name).read_text()


from .sweep import Case, run  # noqa: E402 (after julia_source, which the modules it loads import)

__all__ = ["Case", "run"]
