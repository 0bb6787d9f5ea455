"""Meta-learning the key-value memory's plasticity rule (Tyulmankov et al. 2021, section 3.2, figures 3 and C4;
docs/keyvalue.md): does gradient descent through write-then-read episodes recover the designed rule?

The rule (PlasticityRule) starts with every slope and offset at 0.01 (no preference for any rule), both rates at 0.5
and the value decay at 0.95, with the passive value rule of section 3.2 (the value synapses see no local factor).
Each Adam step stores 32 episodes of T random +-1 patterns, T uniform in [N/2, 2N] (d = N = 40), reads each back
from a cue with 60% of its entries set to 0 and descends the mean squared error of the read-outs. Reported: the
rule's parameters, two distances to the designed rule (the angle between the rules' coefficients on
(pre*post, pre, post, 1), and the angle between the weight changes both rules make from the same activity over
an episode), and the learned rule's accuracy against the designed one's for T inside and outside the training range.

Run: OMP_NUM_THREADS=1 .venv/bin/python experiments/keyvalue_metalearn.py [--steps 800]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from assocmem.keyvalue import KeyValueMemory, PlasticityRule, meta_learn, tasks, update_angles
from assocmem.report.figure import new_figure, save_figure

LENGTHS = [10, 20, 40, 60, 80, 120]
PARAMS = [
    "key_pre_a",
    "key_pre_b",
    "key_post_a",
    "key_post_b",
    "value_pre_a",
    "value_pre_b",
    "value_post_a",
    "value_post_b",
]
LABELS = ["a f^K", "b f^K", "a g^K", "b g^K", "a f^V", "b f^V", "a g^V", "b g^V"]


def accuracy(mem: KeyValueMemory, T: int, trials: int, g: torch.Generator) -> float:
    xi = tasks.random_patterns(trials, T, mem.key_size, generator=g)
    cues = tasks.occlude(xi, 0.6, generator=g)
    return tasks.sign_accuracy(tasks.autoassociative_recall(mem, xi, cues, generator=g), xi)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--size", type=int, default=40)
    parser.add_argument("--trials", type=int, default=64, help="episodes per accuracy point")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/figures/keyvalue_metalearn.png")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n = args.size
    runs = {}
    begin = time.perf_counter()
    for factor in ("sequential", "random"):
        g = torch.Generator().manual_seed(args.seed)
        mem = KeyValueMemory(
            n, n, local_factor=factor, p=4 / n, value_rule="passive", rule=PlasticityRule.uniform(0.01)
        )
        probe = tasks.random_patterns(32, 2 * n, n, generator=g)
        before = update_angles(mem, probe, generator=g)
        t0 = time.perf_counter()
        result = meta_learn(
            mem, steps=args.steps, batch=32, lr=1e-2, lr_final=1e-3, record_every=10, generator=g
        )
        seconds = time.perf_counter() - t0
        after = update_angles(mem, probe, generator=g)
        designed = KeyValueMemory(n, n, local_factor=factor, p=4 / n)
        acc = {T: (accuracy(designed, T, args.trials, g), accuracy(mem, T, args.trials, g)) for T in LENGTHS}
        runs[factor] = (result, before, after, acc)
        last = result.history[-1]
        print(
            f"{factor} local factor{' (p = 4/N)' if factor == 'random' else ''}: {args.steps} steps in "
            f"{seconds:.0f} s"
        )
        print(
            "  learned rule: "
            + ", ".join(f"{lab} = {last[p]:+.3f}" for lab, p in zip(LABELS, PARAMS, strict=True))
            + f", eta~K = {last['key_rate']:.3f}, eta~V = {last['value_rate']:.3f}, "
            f"lambda~ = {last['value_decay']:.3f}"
        )
        coef = mem.rule.coefficients("key").tolist(), mem.rule.coefficients("value").tolist()
        print(
            "  coefficients on (pre*post, pre, post, 1): key "
            + " ".join(f"{c:+.3f}" for c in coef[0])
            + " (designed 0 1 0 0); value "
            + " ".join(f"{c:+.3f}" for c in coef[1])
            + " (designed 1 0 0 0)"
        )
        print(
            f"  angle of the coefficients to the designed rule: key {result.history[0]['key_angle']:.1f} -> "
            f"{last['key_angle']:.1f} deg, value {result.history[0]['value_angle']:.1f} -> "
            f"{last['value_angle']:.1f} deg"
        )
        print(
            f"  angle of the weight changes over an episode of T = 2N: key {before['key']:.1f} -> "
            f"{after['key']:.1f} deg, value {before['value']:.1f} -> {after['value']:.1f} deg"
        )
        print(
            "  accuracy, designed / learned (training T in [N/2, 2N]): "
            + ", ".join(f"T = {T}: {a:.3f} / {b:.3f}" for T, (a, b) in acc.items())
        )

    fig, axes = new_figure(1, 4, figsize=(15, 3.6), layout="tight")
    for ax, factor in zip(axes[:2], runs, strict=True):
        hist = runs[factor][0].history
        steps = [h["step"] for h in hist]
        for p, lab in zip(PARAMS, LABELS, strict=True):
            ax.plot(steps, [h[p] for h in hist], label=lab, ls="-" if p.endswith("_a") else ":")
        ax.set(xlabel="meta-learning step", title=f"rule parameters, {factor} slots")
        ax.legend(fontsize=6, ncol=2)
    for factor, (result, *_rest) in runs.items():
        hist = result.history
        axes[2].plot([h["step"] for h in hist], [h["key_angle"] for h in hist], label=f"key, {factor}")
        axes[2].plot(
            [h["step"] for h in hist], [h["value_angle"] for h in hist], ls=":", label=f"value, {factor}"
        )
    axes[2].set(
        xlabel="meta-learning step", ylabel="degrees", title="angle to the designed rule (coefficients)"
    )
    axes[2].legend(fontsize=7)
    for factor, (*_rest, acc) in runs.items():
        axes[3].plot(
            LENGTHS, [a for a, _ in acc.values()], marker="o", ms=3, ls="--", label=f"designed, {factor}"
        )
        axes[3].plot(LENGTHS, [b for _, b in acc.values()], marker="o", ms=3, label=f"learned, {factor}")
    axes[3].axvspan(n / 2, 2 * n, color="gray", alpha=0.15)
    axes[3].set(
        xlabel="stored items T", ylabel="accuracy", title="recall (shaded: training T)", ylim=(0.45, 1.02)
    )
    axes[3].legend(fontsize=7)
    save_figure(fig, Path(args.out), dpi=80)
    print(f"\nfigure written to {args.out}; {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()
