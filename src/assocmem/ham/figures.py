"""Figures of a HAM run: the training curves and the energy of test relaxations (matplotlib, Agg)."""

from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor

from assocmem.files import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curves_figure(history: list[dict], dest: str | os.PathLike, title: str) -> Path:
    """Training loss and train / test accuracy (test at the fixed point) per epoch."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(epochs, [r["train_loss"] for r in history], "o-")
    a.set(xlabel="epoch", ylabel="cross-entropy (training)", title=title)
    b.plot(epochs, [100 * r["train_accuracy"] for r in history], "o-", label="training (during the epoch)")
    b.plot(epochs, [100 * r["test"]["accuracy"] for r in history], "s-", label="test, at the fixed point")
    b.set(xlabel="epoch", ylabel="accuracy (%)")
    b.legend()
    fig.tight_layout()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(dest)


def energy_figure(energies: Tensor, dest: str | os.PathLike, title: str) -> Path:
    """``E(t) - E(end)`` of each test relaxation (``energies``: ``(steps + 1, batch)``), on a log scale."""
    plt = _pyplot()
    gap = (energies - energies[-1:]).double().clamp_min(1e-12).cpu()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.semilogy(gap.numpy(), lw=0.8)
    ax.set(xlabel="relaxation step", ylabel="E - E(fixed point)", title=title)
    fig.tight_layout()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(dest)
