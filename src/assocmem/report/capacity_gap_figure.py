"""The capacity-gap plot: fraction of memories recalled exactly against the number stored, one line per model."""

from __future__ import annotations

from typing import Any

from assocmem.laboratory.capacity_gap import CLASSICAL_LOAD, CapacityGap
from assocmem.report.figure import new_figure

MARKERS = ("o", "s", "^", "D", "v", "P")


def capacity_plot(gap: CapacityGap) -> Any:
    """A figure of ``gap``: recall fraction against ``K`` (log axis), with the classical limit ``0.138 N`` dashed."""
    fig, ax = new_figure(figsize=(9.0, 4.0), dpi=100, layout="constrained")
    count = len(gap.recalled)
    for i, (name, fractions) in enumerate(gap.recalled.items()):
        # Hollow markers, each smaller than the one before, so curves that coincide (at 1.0) all stay visible.
        ax.plot(
            gap.memories,
            fractions,
            marker=MARKERS[i % len(MARKERS)],
            markersize=4 + 2.2 * (count - i),
            markerfacecolor="none",
            markeredgewidth=1.5,
            linewidth=1.8,
            label=name,
        )
    ax.axvline(
        CLASSICAL_LOAD * gap.neurons,
        color="0.3",
        linestyle="--",
        linewidth=1.2,
        label=f"{CLASSICAL_LOAD} N (classical limit)",
    )
    ax.set_xscale("log")
    ax.set_xlabel(f"stored random patterns K (N = {gap.neurons} neurons)")
    ax.set_ylabel(f"recalled exactly ({gap.flip:.0%} bits flipped)")
    ax.set_ylim(-0.04, 1.04)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig
