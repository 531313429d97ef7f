"""Jupyter front end: an ipywidgets explorer over sparsejl's benchmark sweep.

>>> from sparsejl.widgets import DensityExplorer
>>> DensityExplorer()          # in a notebook cell, or `sparsejl-explorer` for a standalone page
"""


def _load_matplotlib_before_julia():
    """Julia 1.5 loads its own libunwind, whose ``_Unwind_*`` symbols then serve every C++
    extension loaded later: matplotlib's ``ft2font`` (pybind11) aborts the process on import
    when Julia has started first. Loading libgcc_s globally before Julia, and matplotlib's
    extensions now, keeps the explorer's plots working whatever runs after."""
    import ctypes
    try:
        from .. import runtime
        started = runtime.started()
    except Exception:
        started = False
    if not started:
        try:
            ctypes.CDLL("libgcc_s.so.1", mode=ctypes.RTLD_GLOBAL)
        except OSError:
            pass
    try:
        import matplotlib.backends.backend_agg  # noqa: F401  (loads ft2font)
    except Exception:
        pass


_load_matplotlib_before_julia()

from .explorer import DensityExplorer, break_even, read_report, records_to_csv  # noqa: E402

__all__ = ["DensityExplorer", "break_even", "read_report", "records_to_csv"]
