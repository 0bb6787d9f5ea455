"""Sprites: a generated set of small, left-right symmetric binary images, so the demo needs no download.

Each sprite is a ``size x size`` image of +-1 pixels (+1 = ink) whose left half is random and whose right half is
its mirror image, which makes random noise look like a creature or a face. The set is a pure function of the seed,
so every machine gets the same pictures. Sprites are as close to random +-1 patterns as pictures get: two sprites
agree on about half their pixels (the overlap of two of them has mean 0 and standard deviation ``sqrt(2/N)`` with
``N = size^2``, twice the variance of independent patterns, because each random pixel appears twice).
"""

from __future__ import annotations

import torch
from torch import Tensor

from assocmem.checks import is_count


def sprites(count: int, size: int = 16, *, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
    """``count`` distinct mirror-symmetric sprites of ``size x size`` +-1 pixels, shape ``(count, size, size)``.

    ``size`` must be even (the left half is mirrored). The same ``seed`` always gives the same sprites; two
    different sprites never coincide. Flatten with ``.flatten(1)`` to store them as ``(K, N)`` patterns.

    Example: ``sprites(48, 16).flatten(1)`` is the demo's 48 memories of N = 256 pixels.
    """
    for name, value, least in (("count", count, 1), ("size", size, 2)):
        if not is_count(value, least):
            raise ValueError(f"sprites: {name} must be an int >= {least}, got {value!r}")
    if size % 2:
        raise ValueError(f"sprites: size must be even (the right half mirrors the left), got {size}")
    half_bits = size * size // 2
    if half_bits < 63 and count > 2**half_bits:
        raise ValueError(
            f"sprites: only {2**half_bits} distinct sprites of size {size} exist, asked for {count}"
        )
    gen = torch.Generator().manual_seed(seed)
    kept: dict[bytes, Tensor] = {}
    while len(kept) < count:  # a repeated sprite (rare unless size is tiny) is dropped and drawn again
        for half in torch.rand(count - len(kept), size, size // 2, generator=gen) < 0.5:
            kept.setdefault(half.numpy().tobytes(), half)
    halves = torch.stack(list(kept.values()))
    images = torch.cat([halves, halves.flip(-1)], dim=-1)
    return 2.0 * images.to(dtype) - 1.0
