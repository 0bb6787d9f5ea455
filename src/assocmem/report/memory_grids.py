"""Figures of learned classifier memories: a grid of one model's memories, and models of several n side by side.

Each memory's pixel part is drawn as an image on a blue-white-red scale from -1 to 1 (white = 0); the class it
votes for (:func:`assocmem.classifier.prototypes.votes`) is written in its corner.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from assocmem.classifier.prototypes import votes
from assocmem.report.figure import new_figure, save_figure


def image_shape(pixels: int) -> tuple[int, int]:
    """The (rows, cols) a memory of ``pixels`` values is drawn as: square when it can be, else one row."""
    side = math.isqrt(pixels)
    return (side, side) if side * side == pixels else (1, pixels)


def tile(pixel_parts: Tensor, rows: int, cols: int) -> Tensor:
    """The first ``rows * cols`` memories ``(K, P)`` tiled into one image, separated by one blank pixel."""
    h, w = image_shape(pixel_parts.shape[1])
    count = min(rows * cols, pixel_parts.shape[0])
    canvas = torch.full((rows * (h + 1) - 1, cols * (w + 1) - 1), float("nan"))
    for k in range(count):
        r, c = divmod(k, cols)
        canvas[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = pixel_parts[k].reshape(h, w)
    return canvas


def draw_memories(ax: Any, memories: Tensor, pixels: int, rows: int, cols: int, labels: bool = True) -> Any:
    """Draw the first ``rows * cols`` memories ``(K, pixels + classes)`` on ``ax``; returns the image."""
    xi = memories.detach().float().cpu()
    image = ax.imshow(
        tile(xi[:, :pixels], rows, cols).numpy(), cmap="bwr", vmin=-1.0, vmax=1.0, interpolation="nearest"
    )
    ax.set_axis_off()
    if labels and xi.shape[1] - pixels >= 2:
        h, w = image_shape(pixels)
        voted = votes(xi[:, pixels:])
        for k in range(min(rows * cols, xi.shape[0])):
            r, c = divmod(k, cols)
            single = int(voted.count[k]) == 1
            ax.text(
                c * (w + 1) + 0.5,
                r * (h + 1) + 0.5,
                str(int(voted.label[k])),
                fontsize=5,
                va="top",
                ha="left",
                color="black" if single else "0.55",
            )
    return image


def memories_figure(
    memories: Tensor, pixels: int, dest: str | os.PathLike, *, rows: int = 10, cols: int = 10, title: str = ""
) -> Path:
    """Save a grid of the first ``rows * cols`` learned memories to ``dest`` (e.g. ``DIR/memories.png``)."""
    fig, ax = new_figure(figsize=(cols * 0.6 + 1.0, rows * 0.6 + 0.4), layout="constrained")
    image = draw_memories(ax, memories, pixels, rows, cols)
    fig.colorbar(image, ax=ax, shrink=0.6, ticks=[-1, 0, 1])
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, dest)


def prototypes_figure(
    panels: Sequence[tuple[str, Tensor]],
    pixels: int,
    dest: str | os.PathLike,
    *,
    rows: int = 6,
    cols: int = 6,
) -> Path:
    """Memories of several models side by side; ``panels`` are ``(title, memories)`` pairs (e.g. one per n)."""
    fig, axes = new_figure(
        1, len(panels), figsize=(3.0 * len(panels), 3.4), layout="constrained", squeeze=False
    )
    image = None
    for ax, (title, memories) in zip(axes[0], panels, strict=True):
        image = draw_memories(ax, memories, pixels, rows, cols)
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=list(axes[0]), shrink=0.7, ticks=[-1, 0, 1])
    return save_figure(fig, dest)
