"""The capacity figures: measured recall against the number of memories, with the theory curves over them.

Drawn from the ``results.json`` dictionaries that ``assocmem capacity`` writes (:mod:`assocmem.laboratory.capacity`).
"""

from __future__ import annotations

import math
from typing import Any

from assocmem.report.figure import new_figure


def _errorbars(ax: Any, x: list[float], value: list[float], ci: list[list[float]], **kw: Any) -> None:
    lower = [max(0.0, v - c[0]) for v, c in zip(value, ci, strict=True)]
    upper = [max(0.0, c[1] - v) for v, c in zip(value, ci, strict=True)]
    ax.errorbar(x, value, yerr=[lower, upper], fmt="o-", capsize=3, **kw)


def capacity_figure(results: dict) -> Any:
    """Three panels against ``K``: fraction of perfect recalls, bit-error rate (log scale), mean final overlap.

    Measured points carry their 95% Wilson intervals; dashed lines are the signal-to-noise one-step theory
    (``P_bit`` and ``(1 - P_bit)^N``, on a dense grid of ``K``), and for the classical network the AGS retrieval
    overlap with its critical load ``alpha_c N``.
    """
    rows = results["results"]
    k = [r["memories"] for r in rows]
    n = results["neurons"]
    curves = results["theory"]
    grid = curves["memories"]
    fig, axes = new_figure(1, 3, figsize=(15, 4.4), layout="constrained")
    title = f"{results['model']['description']}, N = {n}, {results['flip']:.0%} of cue bits flipped, {results['mode']}"
    fig.suptitle(title)

    perfect = [r["perfect_recall"]["fraction"] for r in rows]
    _errorbars(
        axes[0], k, perfect, [r["perfect_recall"]["ci95"] for r in rows], label="measured (95% Wilson)"
    )
    axes[0].plot(grid, curves["one_step_perfect_recall"], "--", label="theory: (1 - P_bit)^N, one step")
    axes[0].set_ylabel("fraction of perfect recalls")
    axes[0].set_ylim(-0.03, 1.03)

    ber = [r["bit_error_rate"]["rate"] for r in rows]
    _errorbars(axes[1], k, ber, [r["bit_error_rate"]["ci95"] for r in rows], label="measured (95% Wilson)")
    axes[1].plot(grid, curves["one_step_bit_error"], "--", label="theory: signal/noise P_bit, one step")
    axes[1].set_yscale("symlog", linthresh=max(1e-5, 0.5 / (n * rows[0]["trials"])))
    axes[1].set_ylabel("bit-error rate after recall")

    overlap = [r["mean_final_overlap"]["value"] for r in rows]
    _errorbars(axes[2], k, overlap, [r["mean_final_overlap"]["ci95"] for r in rows], label="measured")
    axes[2].plot(grid, [1 - 2 * p for p in curves["one_step_bit_error"]], "--", label="theory, one step")
    if "ags_overlap" in curves:
        ags = [math.nan if a is None else a for a in curves["ags_overlap"]]
        axes[2].plot(grid, ags, "k:", label="AGS retrieval overlap (N -> inf)")
        axes[1].plot(grid, [(1 - a) / 2 for a in ags], "k:", label="AGS retrieval state (N -> inf)")
        alpha_c = curves["critical_load"]
        if alpha_c * n <= 1.5 * max(k):
            for ax in axes:
                ax.axvline(alpha_c * n, color="grey", lw=0.8)
            axes[2].text(alpha_c * n, 0.05, f" alpha_c N = {alpha_c * n:.0f}", color="grey")
    axes[2].set_ylabel("mean final overlap with the cued memory")
    axes[2].set_ylim(-0.05, 1.05)
    for ax in axes:
        ax.set_xlabel("stored memories K")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def sweep_figure(results: dict) -> Any:
    """Largest ``K`` below the bit-error threshold against ``N``, with the fitted scaling law."""
    pts = results["points"]
    fit = results["fit"]
    neurons = [p["neurons"] for p in pts]
    kmax = [p["largest_memories"] for p in pts]
    fig, ax = new_figure(figsize=(6.4, 4.6), layout="constrained")
    ax.plot(neurons, kmax, "o", label="measured largest K")
    if fit.get("law"):
        grid = [min(neurons) + (max(neurons) - min(neurons)) * i / 100 for i in range(101)]
        if fit["law"].startswith("K = A exp"):
            curve = [fit["prefactor"] * math.exp(fit["constant"] * x) for x in grid]
            label = f"fit: K = {fit['prefactor']:.3g} exp({fit['constant']:.3g} N)"
        else:
            curve = [fit["constant"] * x ** fit["exponent"] for x in grid]
            constant = f"{fit['constant']:.3g}"
            label = "fit: " + fit["law"].replace("c", constant, 1)
        ax.plot(grid, curve, "-", label=label)
        c = fit.get("one_step_theory_constant")
        if c is not None and "exponent" in fit:
            ax.plot(
                grid, [c * x ** fit["exponent"] for x in grid], "--", label=f"one-step theory: c = {c:.3g}"
            )
        elif c is not None:  # exp: the theory fixes the rate c; draw it through the middle of the fit
            mid = 0.5 * (min(neurons) + max(neurons))
            anchor = fit["prefactor"] * math.exp(fit["constant"] * mid)
            curve = [anchor * math.exp(c * (x - mid)) for x in grid]
            ax.plot(grid, curve, "--", label=f"one-step theory rate: c = {c:.3g}")
        if "ags_theory_constant" in fit:
            c = fit["ags_theory_constant"]
            ax.plot(grid, [c * x for x in grid], ":", label=f"AGS retrieval state: c = {c:.3g}")
    if not (fit.get("law") or "").startswith("K = A exp"):
        ax.set_xscale("log")  # a power law is a line on log-log axes, an exponential on semi-log ones
    ax.set_yscale("log")
    ax.set_xlabel("neurons N")
    ax.set_ylabel(f"largest K with bit-error rate <= {results['threshold']:g}")
    ax.set_title(results["model"]["description"])
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig
