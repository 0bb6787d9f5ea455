"""The capacity gap: how many random memories each model recalls as the number stored grows (docs/reference.md §3, §5).

For each number of memories ``K``, random +-1 patterns of ``N`` bits are stored, cues are made by flipping a
fraction of the bits of (up to ``cues``) stored patterns, and the fraction of cues recalled exactly is measured.
The classical network fails near ``K = 0.138 N``; dense models keep recalling far beyond it (``N^(n-1)`` for
``F = x^n``, exponentially many for ``F = exp``, and likewise for the softmax model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from assocmem.checks import is_count
from assocmem.data.corruption import flip_bits
from assocmem.laboratory.capacity import random_patterns
from assocmem.laboratory.demo_models import DemoModel, readout
from assocmem.laboratory.theory import ags_critical_load

#: Classical Hopfield critical load K/N, 0.138 (Amit, Gutfreund & Sompolinsky 1985; docs/reference.md §5),
#: solved from their mean-field equations.
CLASSICAL_LOAD = round(ags_critical_load()[0], 3)


@dataclass(frozen=True)
class CapacityGap:
    """``recalled[name][i]``: the fraction of cues model ``name`` recalled exactly with ``memories[i]`` stored
    patterns of ``neurons`` bits, from ``cues[i]`` cues with ``flip`` of their bits flipped."""

    neurons: int
    flip: float
    memories: list[int]
    cues: list[int]
    recalled: dict[str, list[float]]

    def reach(self, name: str, level: float = 0.9) -> int | None:
        """The largest ``K`` up to which model ``name`` recalled at least ``level`` of its cues at every point
        (``None`` when it fell below already at the smallest ``K``)."""
        reached = None
        for k, fraction in zip(self.memories, self.recalled[name], strict=True):
            if fraction < level:
                break
            reached = k
        return reached

    def describe(self) -> str:
        """One paragraph: what was measured and how far each model keeps recalling."""
        text = (
            f"Random ±1 patterns of N = {self.neurons} bits, recalled from cues with {self.flip:.0%} of the bits "
            f"flipped ({min(self.cues)}–{max(self.cues)} cues per point). Largest K with at least 90% of the cues "
            "recalled exactly:"
        )
        parts = []
        for name in self.recalled:
            k = self.reach(name)
            if k is None:
                parts.append(f"{name}: below 90% already at K = {self.memories[0]}")
            elif k == self.memories[-1]:
                parts.append(f"{name}: every K measured (up to {k}, {k / self.neurons:g} N)")
            else:
                parts.append(f"{name}: K = {k} ({k / self.neurons:g} N)")
        return f"{text} {'; '.join(parts)}."


def capacity_gap(
    models: Sequence[DemoModel],
    memories: Sequence[int],
    *,
    neurons: int = 100,
    flip: float = 0.2,
    cues: int = 100,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> CapacityGap:
    """Measure the fraction of exact recalls of each model for each number of stored patterns in ``memories``.

    Each point stores fresh random patterns (``ceil(cues / K)`` independent sets when ``K < cues``, so every
    point has at least ``cues`` cues) and recalls up to ``cues`` stored patterns of each set from corrupted cues.
    ``progress(label)`` is called after each point of each model.

    Example: ``capacity_gap(demo_models()[:2], [5, 10, 20, 40], neurons=100)``.
    """
    if not memories or any(not is_count(k) for k in memories):
        raise ValueError(
            f"capacity_gap: memories must be a non-empty list of positive ints, got {memories!r}"
        )
    if not is_count(neurons, 2):
        raise ValueError(f"capacity_gap: neurons must be an int >= 2, got {neurons!r}")
    recalled: dict[str, list[float]] = {model.name: [] for model in models}
    counts = []
    for model in models:
        gen = torch.Generator().manual_seed(seed)  # every model sees the same patterns and cues
        counts = []
        for k in memories:
            sets, per_set = -(-cues // k), min(k, cues)
            exact = 0
            for _ in range(sets):
                patterns = random_patterns(k, neurons, gen)
                shown = patterns[:per_set]  # random patterns: the first ones are as good as any
                run = model.recall(patterns, flip_bits(shown, flip, generator=gen), gen, record=False)
                exact += int((readout(run) == shown).all(dim=1).sum())
            counts.append(sets * per_set)
            recalled[model.name].append(exact / (sets * per_set))
            if progress is not None:
                progress(f"capacity: {model.name}, K = {k}")
    return CapacityGap(neurons, flip, list(memories), counts, recalled)
