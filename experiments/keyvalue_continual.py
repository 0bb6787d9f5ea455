"""Continual recall: the key-value memory's palimpsest curve, accuracy against the age of an item under a stream of
writes (Tyulmankov et al. 2021, figure 4a and appendix A.2; docs/keyvalue.md).

A stream of random +-1 patterns (d = N = 40): at each step, with probability 1/2 (never for a query's own target,
never in the first R steps) the input is a query for the pattern shown R steps before, with 60% of its entries set
to 0; otherwise it is a new pattern, stored (q = 1) only if it will be queried. The stream is max(1000, 20 R) steps
long, so the memory works in its steady state; the accuracy is taken at the query steps, for each delay R.

Memories: sequential slots (the turn passes at every step, stored or not: the paper's steps of width N), random
slots with p = 4/N, and random slots with the passive value decay lambda of section 3.2 (lambda chosen from a grid
on a short stream). The classical Hopfield network forgets nothing, so in a stream it holds every stored pattern:
its accuracy for K stored patterns is given for comparison (the blackout the paper contrasts with).

Run: OMP_NUM_THREADS=1 .venv/bin/python experiments/keyvalue_continual.py [--trials 32]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from assocmem.keyvalue import KeyValueMemory, PlasticityRule, baselines, tasks
from assocmem.report.figure import new_figure, save_figure

DELAYS = [1, 5, 10, 20, 30, 40, 45, 50, 60, 70, 80, 90, 100, 110, 120]
DECAYS = [0.5, 0.7, 0.8, 0.9, 0.95, 0.98]
HOPFIELD_LOADS = [5, 10, 40, 100, 300]


def passive(n: int, decay: float) -> KeyValueMemory:
    return KeyValueMemory(
        n, n, local_factor="random", p=4 / n, value_rule="passive", rule=PlasticityRule(value_decay=decay)
    )


def figure(curves: dict[str, list[float]], hopfield: dict[int, float], n: int, path: Path) -> None:

    fig, ax = new_figure(figsize=(6.5, 3.8), layout="tight")
    for name, accs in curves.items():
        ax.plot(DELAYS, accs, marker="o", ms=3, label=name)
    for k in (40, 300):
        ax.axhline(hopfield[k], color="gray", ls="--", lw=0.8)
        ax.text(DELAYS[-1], hopfield[k] + 0.005, f"classical Hopfield holding {k}", fontsize=7, ha="right")
    for m in range(1, 4):
        ax.axvline(m * n, color="gray", lw=0.4)
    ax.set(
        xlabel="delay R between storage and recall",
        ylabel="accuracy",
        ylim=(0.45, 1.02),
        title=f"continual recall, d = N = {n} (palimpsest)",
    )
    ax.legend(fontsize=7, loc="lower left")
    save_figure(fig, path, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=32, help="streams per delay")
    parser.add_argument("--size", type=int, default=40, help="N = d")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/figures/keyvalue_continual.png")
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(args.seed)
    begin = time.perf_counter()
    n = args.size
    print(
        f"lambda grid (random slots p = 4/N, passive value decay), mean accuracy over R = 10, 40, 80, "
        f"{args.trials // 2} streams of 1000 steps:"
    )
    scores = {}
    for lam in DECAYS:
        mem = passive(n, lam)
        scores[lam] = (
            sum(
                tasks.continual_recall(mem, r, batch=args.trials // 2, length=1000, generator=g)
                for r in (10, 40, 80)
            )
            / 3
        )
        print(f"  lambda = {lam:<6} {scores[lam]:.3f}")
    best = max(scores, key=scores.get)
    models = {
        "KV sequential": KeyValueMemory(n, n),
        "KV random p=4/N": KeyValueMemory(n, n, local_factor="random", p=4 / n),
        f"KV random p=4/N, passive lambda={best}": passive(n, best),
    }
    curves = {name: [] for name in models}
    for r in DELAYS:
        for name, mem in models.items():
            curves[name].append(tasks.continual_recall(mem, r, batch=args.trials, generator=g))
    print(
        f"\naccuracy at the query steps against the delay R (d = N = {n}, stream length max(1000, 20 R), "
        f"{args.trials} streams)"
    )
    print(f"{'R':>40} " + " ".join(f"{r:>5}" for r in DELAYS))
    for name, accs in curves.items():
        print(f"{name:>40} " + " ".join(f"{a:5.3f}" for a in accs))
    hopfield = {}
    for k in HOPFIELD_LOADS:
        patterns = tasks.random_patterns(args.trials, k, n, generator=g)
        cues = tasks.occlude(patterns, 0.6, generator=g)
        hopfield[k] = tasks.sign_accuracy(baselines.hopfield_recall(patterns, cues, generator=g), patterns)
    print(
        "\nclassical Hopfield network (no forgetting) holding K patterns, the same cue: "
        + ", ".join(f"K = {k}: {a:.3f}" for k, a in hopfield.items())
    )
    figure(curves, hopfield, n, Path(args.out))
    print(f"\nfigure written to {args.out}; {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()
