"""The classical Hopfield network's critical load alpha_c = K/N ~ 0.138 (Amit, Gutfreund, Sompolinsky 1985).

For each N and load alpha = K/N, start from stored patterns (no flipped bits), relax asynchronously to a fixed
point and record the final overlap m with the pattern. Below alpha_c the network stays in the retrieval state
(AGS at zero temperature: m = 0.967 at alpha_c, about 1.6% wrong bits); above it the retrieval state is gone and
the overlap falls to a low value. At finite N the drop is smooth and sits somewhat above 0.138; the script
estimates, for each N, the load alpha_1/2(N) where half the runs keep m >= 0.9, and extrapolates it linearly
in N^(-1/2) to N -> infinity.

Run: .venv/bin/python experiments/classical_critical_load.py [--trials 100] [--neurons 250,500,1000,2000,4000]
"""

from __future__ import annotations

import argparse
import itertools
import math
import time

import numpy as np

from assocmem.laboratory import theory
from assocmem.laboratory.capacity import ModelSpec, measure_loads

LOADS = [0.08, 0.10, 0.12, 0.13, 0.14, 0.15, 0.16, 0.17, 0.18, 0.20, 0.22]


def half_point(loads: list[float], fractions: list[float]) -> float:
    """The load where the retrieved fraction crosses 1/2 (linear interpolation), nan if it never does."""
    points = list(zip(loads, fractions, strict=True))
    for (a0, f0), (a1, f1) in itertools.pairwise(points):
        if f0 >= 0.5 > f1:
            return a0 + (f0 - 0.5) * (a1 - a0) / (f0 - f1)
    return math.nan


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--neurons", default="250,500,1000,2000,4000")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(v) for v in args.neurons.split(",")]
    alpha_c, m_c = theory.ags_critical_load()
    print(
        f"Classical Hopfield network, recall from stored patterns, asynchronous updates, {args.trials} runs "
        f"per point.\n"
        f"Theory (AGS, N -> inf, T = 0): alpha_c = {alpha_c:.4f}, overlap at alpha_c m = {m_c:.4f} "
        f"({(1 - m_c) / 2:.2%} wrong bits).\n"
        f"Table: mean final overlap m / fraction of runs that stay retrieved (m >= 0.9).\n"
    )
    print(f"{'alpha':>6} {'AGS m':>6} " + " ".join(f"{'N = ' + str(n):>15}" for n in sizes))
    spec = ModelSpec("classical")
    table, begin = {}, time.perf_counter()
    for n in sizes:
        rows = measure_loads(spec, n, [round(a * n) for a in LOADS], args.trials, 0.0, seed=args.seed + n)
        table[n] = rows
    for j, alpha in enumerate(LOADS):
        ags = theory.ags_overlap(alpha)
        cells = []
        for n in sizes:
            r = table[n][j]
            cells.append(f"{r['mean_final_overlap']['value']:>6.3f} / {r['retrieved']['fraction']:>4.2f}")
        print(
            f"{alpha:>6.3f} {'  -   ' if math.isnan(ags) else f'{ags:6.3f}'} "
            + " ".join(f"{c:>15}" for c in cells)
        )
    halves = []
    for n in sizes:
        rows = table[n]
        halves.append(
            half_point([r["memories"] / n for r in rows], [r["retrieved"]["fraction"] for r in rows])
        )
    print("\nalpha_1/2(N), the load where half the runs stay retrieved:")
    for n, h in zip(sizes, halves, strict=True):
        print(f"  N = {n:>5}: {h:.4f}")
    ok = [(n, h) for n, h in zip(sizes, halves, strict=True) if not math.isnan(h)]
    if len(ok) >= 2:
        x = np.array([n**-0.5 for n, _ in ok])
        slope, intercept = np.polyfit(x, np.array([h for _, h in ok]), 1)
        print(
            f"linear fit alpha_1/2(N) = {intercept:.4f} + {slope:.3f} / sqrt(N): extrapolated N -> inf load "
            f"{intercept:.4f} (AGS alpha_c = {alpha_c:.4f})"
        )
    print(
        "\nFinite-size effects: in a network of N neurons the crosstalk noise on a bit is a sum of (K-1)(N-1)\n"
        "+-1 terms, so the load at which the retrieval state loses stability fluctuates from network to network\n"
        "by O(N^-1/2), and an unstable retrieval state decays only after a cascade of flips that takes longer to\n"
        "start in small networks: the drop of m is smooth, and retrieval survives somewhat above alpha_c, by an\n"
        "amount that shrinks as N grows (the AGS value is the N -> inf limit; below alpha_c the measured overlap\n"
        "matches AGS's m(alpha) to within the finite-size noise)."
    )
    print(f"\nwall time {time.perf_counter() - begin:.1f} s")


if __name__ == "__main__":
    main()
