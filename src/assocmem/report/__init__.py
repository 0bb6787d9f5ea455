"""Figures and reports: matplotlib figures (Agg backend, no screen) saved atomically, one figure kind to a file."""

from assocmem.report.figure import new_figure, save_figure

__all__ = ["new_figure", "save_figure"]
