"""Energy against time: the descent of each cue's energy along a model's dynamics, one panel per model.

Every cue is a thin line; the mean over the cues of each kind is a thick one. The energy never increases along
the dynamics of any of the demo's models (docs/reference.md §1-3), which the panel shows at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from assocmem.report.figure import new_figure

COLORS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea")


@dataclass(frozen=True)
class EnergyTrace:
    """The energies ``(T, B)`` of ``B`` cues at the times ``(T,)``, with a legend label."""

    label: str
    times: Tensor
    energies: Tensor


def energy_descent(traces: Sequence[EnergyTrace], *, title: str, xlabel: str, max_lines: int = 24) -> Any:
    """A figure of energy against time for each trace (up to ``max_lines`` thin lines each, and their mean)."""
    fig, ax = new_figure(figsize=(4.2, 3.0), dpi=100, layout="constrained")
    for i, trace in enumerate(traces):
        color = COLORS[i % len(COLORS)]
        t = trace.times.detach().cpu().numpy()
        e = trace.energies.detach().cpu().double().numpy()
        ax.plot(t, e[:, :max_lines], color=color, alpha=0.18, linewidth=0.8)
        ax.plot(t, e.mean(axis=1), color=color, linewidth=2.2, label=f"{trace.label} (mean)")
    if all(bool((trace.times == trace.times.round()).all()) for trace in traces):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # sweeps and updates are counted, not measured
    ax.set_title(title, fontsize=11, pad=14)  # room for the axis offset (e.g. 1e7) at its left
    ax.set_xlabel(xlabel)
    ax.set_ylabel("energy E")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return fig
