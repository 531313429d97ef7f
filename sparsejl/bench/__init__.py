"""sparsejl's benchmark harness: sparsejl's kernels side by side with the field's libraries.

* :mod:`.sweep` — :class:`~.sweep.Case` and :func:`~.sweep.run` (the stable entry point)
* :mod:`.suites` — which cases a run measures (main job, quick, full) from published layer shapes
* :mod:`.peers` — one adapter per library; :mod:`.juliapeer` — Julia's SparseArrays in Julia
* :mod:`.matrices`, :mod:`.check` — seeded operands and the float64 reference check
* :mod:`.env`, :mod:`.threads` — what machine and thread settings a result came from
* :mod:`.targets`, :mod:`.report`, :mod:`.plot` — the issue's targets, JSON/Markdown/HTML, plots
* :mod:`.cli` — the ``sparsejl-bench`` command (also ``python -m sparsejl.bench``)
* :mod:`.gpu` — the GPU backends' own benchmark (``python -m sparsejl.bench.gpu``)
"""
from .sweep import Case, run

__all__ = ["Case", "run"]
