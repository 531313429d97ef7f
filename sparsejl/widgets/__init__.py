"""Jupyter front end: an ipywidgets explorer over sparsejl's benchmark sweep.

>>> from sparsejl.widgets import DensityExplorer
>>> DensityExplorer()          # in a notebook cell, or `sparsejl-explorer` for a standalone page

Parts: :mod:`.controls` (what to measure, Run / Stop), :mod:`.runner` (the sweep on a thread),
:mod:`.view` (plot, table, notes), composed by :mod:`.explorer`; :mod:`.app` is the Voilà launcher.
"""
from .explorer import DensityExplorer, break_even, read_report, records_to_csv

__all__ = ["DensityExplorer", "break_even", "read_report", "records_to_csv"]
