"""Corrupted cues: the partial or noisy versions of stored patterns that an associative memory completes.

Two kinds, both keeping cues binary (+-1) so that every model, binary or continuous, gets the same cue:

- :func:`flip_bits`: a fixed number of randomly chosen pixels of each pattern change sign (noise);
- :func:`mask_rows`: the bottom rows of each image are hidden, i.e. replaced by blank (-1) pixels (occlusion).
"""

from __future__ import annotations

import torch
from torch import Tensor

from assocmem.checks import is_fraction


def _check_fraction(fraction: object, who: str, name: str) -> float:
    if not is_fraction(fraction):
        raise ValueError(f"{who}: {name} must be a number in [0, 1], got {fraction!r}")
    return float(fraction)


def flip_bits(patterns: Tensor, fraction: float, *, generator: torch.Generator | None = None) -> Tensor:
    """Copies of ``patterns`` (``(B, N)``, +-1) with exactly ``round(fraction * N)`` pixels of each flipped.

    The flipped pixels are chosen uniformly at random for each pattern (from ``generator``), so every cue sits at
    the same Hamming distance from its pattern.

    Example: ``flip_bits(xi, 0.2, generator=torch.Generator().manual_seed(0))``.
    """
    fraction = _check_fraction(fraction, "flip_bits", "fraction")
    if not isinstance(patterns, Tensor) or patterns.dim() != 2:
        raise ValueError(
            f"flip_bits: patterns must be a (B, N) tensor, got {getattr(patterns, 'shape', patterns)!r}"
        )
    b, n = patterns.shape
    count = round(fraction * n)
    scores = torch.rand(b, n, generator=generator).to(patterns.device)
    chosen = torch.zeros(b, n, dtype=torch.bool, device=patterns.device)
    chosen.scatter_(1, scores.argsort(dim=1)[:, :count], True)
    return torch.where(chosen, -patterns, patterns)


def mask_rows(images: Tensor, fraction: float, *, fill: float = -1.0) -> tuple[Tensor, Tensor]:
    """Hide the bottom ``round(fraction * H)`` rows of each image ``(B, H, W)``: they become ``fill`` (blank).

    Returns ``(cues, hidden)``: the masked images and the boolean mask of hidden pixels, both ``(B, H, W)``.

    Example: ``cues, hidden = mask_rows(sprites(48), 0.375)`` hides the bottom 6 of 16 rows.
    """
    fraction = _check_fraction(fraction, "mask_rows", "fraction")
    if not isinstance(images, Tensor) or images.dim() != 3:
        raise ValueError(
            f"mask_rows: images must be a (B, H, W) tensor, got {getattr(images, 'shape', images)!r}"
        )
    rows = round(fraction * images.shape[1])
    hidden = torch.zeros(images.shape, dtype=torch.bool, device=images.device)
    if rows:
        hidden[:, -rows:, :] = True
    return images.masked_fill(hidden, fill), hidden
