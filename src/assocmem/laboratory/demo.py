"""``assocmem demo``'s experiment: store a set of sprites in each model, corrupt them, recall them, measure.

:func:`run_demo` stores ``memories`` generated sprites (:func:`assocmem.data.sprites`) of ``size x size`` pixels
in each model of :func:`~assocmem.laboratory.demo_models.demo_models`, makes two kinds of cue from every sprite
(a fraction of its pixels flipped; its bottom rows hidden) and recalls them. A recall counts as exact when the +-1
read-out equals the stored sprite in every pixel. With the default 48 sprites of 256 pixels the load
``K/N = 0.19`` is beyond the classical network's ``0.138`` (docs/reference.md §5) and well within every dense
model's capacity, so the table shows the capacity gap directly; the capacity sweep
(:mod:`assocmem.laboratory.capacity_gap`) shows it against the number of memories.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from assocmem.data.corruption import flip_bits, mask_rows
from assocmem.data.sprites import sprites
from assocmem.dynamics import FixedPoint
from assocmem.laboratory.demo_models import DemoModel, demo_models, readout


@dataclass(frozen=True)
class Corruption:
    """One kind of cue: ``cues`` ``(K, N)`` made from every stored pattern; ``hidden`` marks the pixels the cue
    hides (``None`` for noise), which the report shades grey."""

    key: str
    label: str
    cues: Tensor
    hidden: Tensor | None


@dataclass(frozen=True)
class Outcome:
    """One row of the demo's table: a model's recall of one kind of cue, timed."""

    model: DemoModel
    corruption: Corruption
    run: FixedPoint
    seconds: float
    patterns: Tensor = field(repr=False)

    @property
    def recalled_states(self) -> Tensor:
        """``(K, N)``: the +-1 read-out of the final states."""
        return readout(self.run)

    @property
    def exact(self) -> Tensor:
        """``(K,)`` bool: the read-out equals the stored pattern in every pixel."""
        return (self.recalled_states == self.patterns).all(dim=1)

    @property
    def recalled(self) -> int:
        return int(self.exact.sum())

    @property
    def energy_start(self) -> float:
        return float(self.run.energies[0].mean())

    @property
    def energy_end(self) -> float:
        return float(self.run.energies[-1].mean())


@dataclass(frozen=True)
class DemoResult:
    """Everything :func:`run_demo` measured: the sprites, the cues, one :class:`Outcome` per model and cue."""

    images: Tensor
    corruptions: list[Corruption]
    models: list[DemoModel]
    outcomes: list[Outcome]
    seed: int

    @property
    def patterns(self) -> Tensor:
        return self.images.flatten(1)

    @property
    def memories(self) -> int:
        return self.images.shape[0]

    @property
    def neurons(self) -> int:
        return self.patterns.shape[1]

    def outcome(self, model: str, corruption: str) -> Outcome:
        """The outcome for a model key (``"dam3"``) and a corruption key (``"flip"`` or ``"mask"``)."""
        for o in self.outcomes:
            if o.model.key == model and o.corruption.key == corruption:
                return o
        raise KeyError(f"no outcome for model {model!r} and corruption {corruption!r}")

    def table(self) -> str:
        """The plain-text table: model, memories stored, corruption, recall accuracy, energy start -> end, time."""
        head = ("model", "memories", "corruption", "recall accuracy", "energy start -> end", "time")
        rows = [
            (
                o.model.name,
                f"{self.memories} = {self.memories / self.neurons:.2f} N",
                o.corruption.label,
                f"{o.recalled}/{self.memories} ({o.recalled / self.memories:.0%})",
                f"{o.energy_start:.4g} -> {o.energy_end:.4g}",
                f"{o.seconds:.2f} s",
            )
            for o in self.outcomes
        ]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [head, *rows]
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


def make_corruptions(
    images: Tensor, flip: float, mask: float, generator: torch.Generator
) -> list[Corruption]:
    """The demo's two kinds of cue for every image: ``flip`` of the pixels flipped; the bottom ``mask`` of the
    rows hidden (set blank, -1)."""
    patterns = images.flatten(1)
    size = images.shape[1]
    masked, hidden = mask_rows(images, mask)
    rows = int(hidden[0].any(dim=1).sum())
    return [
        Corruption(
            "flip", f"{flip:.0%} pixels flipped", flip_bits(patterns, flip, generator=generator), None
        ),
        Corruption("mask", f"{rows} of {size} rows hidden", masked.flatten(1), hidden.flatten(1)),
    ]


def run_demo(
    memories: int = 48,
    size: int = 16,
    *,
    flip: float = 0.2,
    mask: float = 0.375,
    seed: int = 0,
    models: list[DemoModel] | None = None,
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """Store ``memories`` sprites of ``size x size`` pixels in every model, recall them from both kinds of cue.

    ``progress(label)`` is called after each model and cue is done (``len(models) * 2`` calls). Each model first
    recalls one cue untimed, so the times measure recall, not compilation (the binary models' numba loop).

    Example: ``print(run_demo(48).table())``.
    """
    gen = torch.Generator().manual_seed(seed)
    images = sprites(memories, size, seed=seed)
    corruptions = make_corruptions(images, flip, mask, gen)
    models = demo_models() if models is None else models
    outcomes = []
    for model in models:
        model.recall(images.flatten(1), corruptions[0].cues[:1].clone(), gen)  # warm-up: compiles, allocates
        for corruption in corruptions:
            start = time.perf_counter()
            run = model.recall(images.flatten(1), corruption.cues.clone(), gen)
            seconds = time.perf_counter() - start
            outcomes.append(Outcome(model, corruption, run, seconds, images.flatten(1)))
            if progress is not None:
                progress(f"{model.name}, {corruption.label}")
    return DemoResult(images, corruptions, list(models), outcomes, seed)
