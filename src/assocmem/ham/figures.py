"""Figures of a HAM run: the training curves and the energy of test relaxations (matplotlib, Agg)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor

from assocmem.files import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float, height: float, panels: int = 1) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure  # a Figure object, no pyplot: no global state, no display

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(1, panels)


def _save(fig: Figure, dest: str | os.PathLike) -> Path:
    fig.tight_layout()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return Path(dest)


def curves_figure(
    history: list[dict], dest: str | os.PathLike, title: str, headline: str = "accuracy"
) -> Path:
    """Per epoch: the training loss, and train / test accuracy (test at the fixed point) for a classifier or
    the test measure ``headline`` (an error) for the other tasks."""
    epochs = [r["epoch"] for r in history]
    fig, (a, b) = _figure(9, 3.2, 2)
    if headline == "accuracy":
        a.plot(epochs, [r["train_loss"] for r in history], "o-")
        a.set(xlabel="epoch", ylabel="cross-entropy (training)", title=title)
        b.plot(
            epochs, [100 * r["train_accuracy"] for r in history], "o-", label="training (during the epoch)"
        )
        b.plot(epochs, [100 * r["test"]["accuracy"] for r in history], "s-", label="test, at the fixed point")
        b.set(xlabel="epoch", ylabel="accuracy (%)")
    else:
        a.plot(epochs, [r["train_loss"] for r in history], "o-", label="mean over the epoch")
        a.plot(epochs, [r["last_minibatch_loss"] for r in history], "x--", label="last minibatch")
        a.set(xlabel="epoch", ylabel="training loss", title=title)
        a.legend()
        b.plot(epochs, [r["test"][headline] for r in history], "s-", label=f"test {headline}")
        b.set(xlabel="epoch", ylabel=headline)
    b.legend()
    return _save(fig, dest)


def energy_figure(energies: Tensor, dest: str | os.PathLike, title: str, end: str = "fixed point") -> Path:
    """``E(t) - E(end)`` of each test relaxation (``energies``: ``(steps + 1, batch)``), on a log scale; ``end``
    names the last state in the axis label."""
    gap = (energies - energies[-1:]).double().clamp_min(1e-12).cpu()
    fig, ax = _figure(5, 3.2)
    ax.semilogy(gap.numpy(), lw=0.8)
    ax.set(xlabel="relaxation step", ylabel=f"E - E({end})", title=title)
    return _save(fig, dest)
