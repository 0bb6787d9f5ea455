"""The networks the key-value memory is compared with, on the same patterns and cues (docs/reference.md §10).

Each function takes batches of episodes -- ``patterns`` (B, T, d) stored, ``cues`` (B, L, d) -- and returns what
the network recalls for every cue, (B, L, ·). The library's own engines are used as they are, one episode at a time
(each engine holds one memory):

- :func:`hopfield_recall`: :class:`assocmem.ClassicalHopfield` (Hebbian ``T = xi^T xi``, zero diagonal), run
  asynchronously to a fixed point. A cue may hold zeros for unknown entries (the paper's cue): the network's first
  synchronous step then sets every spin to the sign of its field ``T x~`` (a zero field to a random sign).
- :func:`dam_recall`: :class:`assocmem.BinaryDAM` with ``F(x) = x^n``; cues must be +-1.
- :func:`modern_recall`: :func:`assocmem.retrieve`, one step of model B, ``xi^T softmax(beta xi x)``: a memory
  with one hidden unit per stored pattern (a key-value memory that never runs out of slots).
- :func:`bam_recall`: Kosko's bidirectional associative memory (1988), the paper's heteroassociative baseline:
  ``W = sum_t y_t x_t^T``; from a cue, ``y <- sign(W x)``, ``x <- sign(W^T y)`` until nothing changes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from assocmem.checks import is_count
from assocmem.engines import BinaryDAM, ClassicalHopfield, retrieve


def _pairs(patterns: Tensor, cues: Tensor, who: str) -> None:
    if patterns.dim() != 3 or cues.dim() != 3 or patterns.shape[0] != cues.shape[0]:
        raise ValueError(
            f"{who}: patterns must be (B, T, d) and cues (B, L, d) with the same B, got "
            f"{tuple(patterns.shape)} and {tuple(cues.shape)}"
        )


def hopfield_recall(
    patterns: Tensor, cues: Tensor, *, max_steps: int = 100, generator: torch.Generator | None = None
) -> Tensor:
    """The classical Hopfield network of every episode, recalled asynchronously from its cues (+-1, or with zeros
    for unknown entries: see the module docstring)."""
    _pairs(patterns, cues, "hopfield_recall")
    out = []
    for p, c in zip(patterns, cues, strict=True):
        net = ClassicalHopfield(p)
        if bool((c == 0).any()):
            field = c @ net.couplings
            dev = generator.device if generator is not None else c.device
            coin = torch.randint(0, 2, c.shape, generator=generator, device=dev).to(c) * 2 - 1
            c = torch.where(field == 0, coin, torch.sign(field))
        out.append(net.recall(c, max_steps=max_steps, generator=generator).states)
    return torch.stack(out)


def dam_recall(
    patterns: Tensor,
    cues: Tensor,
    n: int = 3,
    *,
    max_steps: int = 100,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The binary Dense Associative Memory ``E = -sum_mu (xi_mu . sigma)^n`` of every episode, recalled
    asynchronously from its +-1 cues."""
    _pairs(patterns, cues, "dam_recall")
    return torch.stack(
        [
            BinaryDAM(p, F="power", n=n).recall(c, max_steps=max_steps, generator=generator).states
            for p, c in zip(patterns, cues, strict=True)
        ]
    )


def modern_recall(patterns: Tensor, cues: Tensor, beta: float = 1.0) -> Tensor:
    """One step of the modern Hopfield network holding every pattern of its episode (one memory per batch item)."""
    _pairs(patterns, cues, "modern_recall")
    return retrieve(patterns, cues, beta)


def bam_recall(keys: Tensor, values: Tensor, cues: Tensor, *, max_steps: int = 100) -> Tensor:
    """Kosko's BAM: ``W = sum_t y_t x_t^T`` per episode; from each cue, alternate ``y <- sign(W x)`` and
    ``x <- sign(W^T y)`` (synchronously, a zero field keeping the old sign) until ``y`` stops changing or
    ``max_steps`` rounds. Returns ``y`` (B, L, m)."""
    _pairs(keys, cues, "bam_recall")
    if values.dim() != 3 or values.shape[:2] != keys.shape[:2]:
        raise ValueError(f"bam_recall: values must be (B, T, m) beside keys {tuple(keys.shape)}")
    if not is_count(max_steps):
        raise ValueError(f"bam_recall: max_steps must be an integer >= 1, got {max_steps!r}")
    W = values.transpose(1, 2) @ keys  # (B, m, d)
    x = cues
    y = torch.sign(x @ W.transpose(1, 2))
    for _ in range(max_steps):
        field = y @ W
        x = torch.where(field == 0, x, torch.sign(field))
        field = x @ W.transpose(1, 2)
        new = torch.where(field == 0, y, torch.sign(field))
        if torch.equal(new, y):
            break
        y = new
    return y
