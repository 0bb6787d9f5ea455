"""Accuracy at the fixed point, and the proof that a trained network is a memory (docs/ham.md, "Recipes").

Every test image is clamped and the network relaxes with ``strict=True``: a sample that does not settle
(``max |dx/dt| <= tol``) is an error (:class:`~assocmem.DivergenceError` when the state runs away,
:class:`~assocmem.ConvergenceError` when it is only slow), never an accuracy. Along every relaxation the energy
is recorded at every step; an increase beyond the float type's rounding (``rounding`` times the energy's size)
counts against the sample (the energy is a sum of terms much larger than itself, so float32 rounding of it
reaches 1e-5 of its size).
"""

from __future__ import annotations

import torch
from torch import Tensor

from assocmem.checks import is_count
from assocmem.ham.classifier import HAMClassifier
from assocmem.ham.data import check_images

#: relative size of an energy increase that float rounding explains (per dtype)
ROUNDING = {torch.float32: 1e-4, torch.float64: 1e-10}


def energy_rises(energies: Tensor, dtype: torch.dtype) -> tuple[int, float, float]:
    """Over relaxations' energies ``(steps + 1, batch)``: how many never rose beyond rounding (:data:`ROUNDING`
    of ``dtype`` times the energy's size, at least 1), the largest rise and the largest relative rise (0 if none)."""
    e = energies.double()
    rise = e[1:] - e[:-1]
    rel = rise / torch.maximum(e[:-1].abs(), torch.ones_like(e[:-1]))
    count = int((rel <= ROUNDING.get(dtype, 1e-5)).all(0).sum())
    if not rise.numel():
        return count, 0.0, 0.0
    return count, max(float(rise.max()), 0.0), max(float(rel.max()), 0.0)


@torch.no_grad()
def evaluate(model: HAMClassifier, images: Tensor, labels: Tensor, batch_size: int = 500) -> dict:
    """Accuracy at the converged fixed point and the memory checks over ``images`` (one relaxation each).

    Returns ``accuracy``, ``converged`` (fraction of samples that settled: 1.0, or an error was raised),
    ``energy_non_increasing`` (fraction whose energy never rose beyond rounding), ``max_energy_increase`` and
    ``max_relative_energy_increase`` (over every step of every sample), ``mean_steps`` and ``max_steps``.
    """
    check_images(images, labels, "evaluate")
    if not is_count(batch_size):
        raise ValueError(f"evaluate: batch_size must be a positive int, got {batch_size!r}")
    correct = settled = monotone = 0
    worst = worst_rel = 0.0
    steps: list[int] = []
    for i in range(0, len(images), batch_size):
        x, y = images[i : i + batch_size], labels[i : i + batch_size]
        traj = model.settle(x, None, strict=True, record=True)
        correct += int((traj.states["labels"].argmax(1) == y).sum())
        settled += int(traj.converged.sum())
        count, rise, rel = energy_rises(traj.energies, x.dtype)
        monotone += count
        worst, worst_rel = max(worst, rise), max(worst_rel, rel)
        steps.append(int(traj.steps.max()))
    n = len(images)
    return {
        "accuracy": correct / n,
        "samples": n,
        "converged": settled / n,
        "energy_non_increasing": monotone / n,
        "max_energy_increase": max(worst, 0.0),
        "max_relative_energy_increase": max(worst_rel, 0.0),
        "mean_steps": sum(steps) / len(steps),
        "max_steps": max(steps),
    }


@torch.no_grad()
def energy_traces(model: HAMClassifier, images: Tensor) -> Tensor:
    """The energy of each image's relaxation at every step, ``(steps + 1, batch)`` (for the figure)."""
    return model.settle(images, None, strict=True, record=True).energies
