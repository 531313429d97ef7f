"""Jupyter front end: an ipywidgets explorer over sparsejl's benchmark sweep.

>>> from sparsejl.widgets import DensityExplorer
>>> DensityExplorer()          # in a notebook cell, or `sparsejl-explorer` for a standalone page
"""
from .explorer import DensityExplorer, break_even, read_report, records_to_csv

__all__ = ["DensityExplorer", "break_even", "read_report", "records_to_csv"]
