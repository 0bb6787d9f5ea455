"""Creating and saving matplotlib figures without a screen.

Figures are plain ``matplotlib.figure.Figure`` objects, made without pyplot: no backend is chosen, no global
state is touched (a notebook's own backend keeps working), and nothing needs closing. matplotlib is imported
only when a figure is made, so importing assocmem stays fast. Figures are written atomically
(:func:`assocmem.files.atomic_path`).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any


def new_figure(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """A new figure and its axes: ``Figure(**figure_options).subplots(nrows, ncols, ...)``.

    Keyword arguments ``figsize``, ``dpi`` and ``layout`` go to the figure, the rest (``sharex``, ``squeeze``,
    ``subplot_kw``, ...) to ``subplots``. Returns ``(figure, axes)``.
    """
    from matplotlib.figure import Figure

    figure_options = {key: kwargs.pop(key) for key in ("figsize", "dpi", "layout") if key in kwargs}
    fig = Figure(**figure_options)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _save(fig: Any, target: Any, fmt: str, dpi: int) -> None:
    fig.savefig(target, dpi=dpi, bbox_inches="tight", format=fmt)


def save_figure(fig: Any, dest: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Save ``fig`` to ``dest`` (format from the suffix, default PNG) atomically; returns the path."""
    from assocmem.files import atomic_path

    dest = Path(dest)
    with atomic_path(dest) as tmp:
        _save(fig, tmp, dest.suffix.lstrip(".") or "png", dpi)
    return dest


def figure_png(fig: Any, *, dpi: int = 120) -> bytes:
    """The figure as PNG bytes (cropped like :func:`save_figure`), e.g. to embed in an HTML page."""
    buffer = io.BytesIO()
    _save(fig, buffer, "png", dpi)
    return buffer.getvalue()
