"""Image grids: rows of small binary images (stored, cue, recalled), each framed by what happened to it.

A grid is drawn pixel for pixel (each image pixel becomes a ``scale x scale`` block, no smoothing) and framed:
green when a recalled image equals its stored image exactly, red when it does not, grey for stored images and
cues. Hidden cue pixels (occlusion) are shaded grey so the reader sees what the network was not shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from assocmem.report.figure import new_figure

INK = (0.12, 0.16, 0.22)  # +1 pixels
PAPER = (0.97, 0.98, 0.99)  # -1 pixels
HIDDEN = (0.78, 0.81, 0.86)  # pixels a cue hides
BORDER, GAP = 3, 6  # frame width and space between cells, in pixels
FRAMES = {None: (0.75, 0.77, 0.80), True: (0.09, 0.64, 0.29), False: (0.86, 0.15, 0.15)}


@dataclass(frozen=True)
class GridRow:
    """One row of a grid: a label, images ``(B, H, W)`` of +-1 pixels, optional ``exact`` flags ``(B,)`` (green or
    red frames; ``None`` for grey) and optional ``hidden`` pixels ``(B, H, W)`` shaded grey."""

    label: str
    images: Tensor
    exact: Tensor | None = None
    hidden: Tensor | None = None


def _cell(
    image: Tensor, hidden: Tensor | None, frame: tuple[float, float, float], scale: int, border: int
) -> Tensor:
    ink, paper = torch.tensor(INK), torch.tensor(PAPER)
    rgb = torch.where((image > 0).unsqueeze(-1), ink, paper)
    if hidden is not None:
        rgb = torch.where(hidden.unsqueeze(-1), torch.tensor(HIDDEN), rgb)
    rgb = rgb.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    h, w = rgb.shape[:2]
    out = torch.tensor(frame).expand(h + 2 * border, w + 2 * border, 3).clone()
    out[border : border + h, border : border + w] = rgb
    return out


def compose(rows: list[GridRow], *, scale: int = 4) -> Tensor:
    """The grid as one RGB array ``(height, width, 3)`` in [0, 1]; rows may hold different numbers of images."""
    if not rows:
        raise ValueError("compose: rows is empty; give at least one GridRow")
    cells = []
    for row in rows:
        if row.images.dim() != 3:
            shape = tuple(row.images.shape)
            raise ValueError(f"compose: row {row.label!r} needs images of shape (B, H, W), got {shape}")
        line = []
        for b, image in enumerate(row.images.detach().cpu()):
            exact = None if row.exact is None else bool(row.exact[b])
            hidden = None if row.hidden is None else row.hidden[b].cpu()
            line.append(_cell(image.float(), hidden, FRAMES[exact], scale, BORDER))
        cells.append(line)
    ch, cw, gap = *cells[0][0].shape[:2], GAP
    columns = max(len(line) for line in cells)
    grid = torch.ones(len(rows) * (ch + gap) - gap, columns * (cw + gap) - gap, 3)
    for r, line in enumerate(cells):
        for c, cell in enumerate(line):
            grid[r * (ch + gap) : r * (ch + gap) + ch, c * (cw + gap) : c * (cw + gap) + cw] = cell
    return grid


def sprite_grid(rows: list[GridRow], *, scale: int = 4, dpi: int = 100, label_width: float = 1.5) -> Any:
    """A matplotlib figure of the grid, one screen pixel per array pixel, row labels on the left."""
    grid = compose(rows, scale=scale)
    height, width = grid.shape[:2]
    total = width / dpi + label_width
    fig, ax = new_figure(figsize=(total, height / dpi), dpi=dpi)
    ax.set_position((label_width / total, 0.0, 1 - label_width / total, 1.0))
    ax.imshow(grid.numpy(), interpolation="nearest", aspect="equal")
    cell = rows[0].images.shape[1] * scale + 2 * BORDER
    centers = [r * (cell + GAP) + cell / 2 - 0.5 for r in range(len(rows))]
    ax.set_yticks(centers, [row.label for row in rows], fontsize=10)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig
