"""Autoassociative recall: the key-value memory of Tyulmankov et al. 2021 against the classical Hopfield network and
the library's dense memories (the paper's figure 2; docs/keyvalue.md).

Every episode stores T random +-1 patterns of d = N entries; each is then queried with 60% of its entries hidden,
and the accuracy is the fraction of entries whose sign comes back right (appendix A.1).

(a) The same +-1 cue for every network (the hidden entries set to random signs, the cue a binary network takes):
    key-value memories with N hidden units (sequential slots; random slots with p = 4/N and p = 2/N), the classical
    Hopfield network and the binary DAM (x^3) of N neurons, and the modern Hopfield network (one step of model B),
    which has one hidden unit per stored pattern (T of them), not N.
(b) The paper's cue (hidden entries set to 0): the key-value memory with its four read-outs (softmax, hard max,
    step at theta = d/5, linear) and both slot rules; the Hopfield network's first step from the partial cue is
    sign(T x~), then it relaxes asynchronously.
(c) Capacity: the largest T recalled with accuracy >= 0.98 (paper's cue), for N = 20 .. 160, and its slope C/N.

Run: OMP_NUM_THREADS=1 .venv/bin/python experiments/keyvalue_autoassociative.py [--trials 64] [--size 40]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from assocmem.keyvalue import KeyValueMemory, baselines, tasks
from assocmem.report.figure import new_figure, save_figure

LENGTHS = [5, 10, 15, 20, 30, 40, 50, 60, 80, 100]
SIZES = [20, 40, 80, 160]


def kv(n: int, **options: object) -> KeyValueMemory:
    return KeyValueMemory(n, n, **options)


def accuracy(recall: object, patterns: torch.Tensor, cues: torch.Tensor, g: torch.Generator) -> float:
    if isinstance(recall, KeyValueMemory):
        out = tasks.autoassociative_recall(recall, patterns, cues, generator=g)
    else:
        out = recall(patterns, cues, g)
    return tasks.sign_accuracy(out, patterns)


def same_cue_models(n: int) -> dict[str, object]:
    return {
        "KV sequential": kv(n),
        "KV random p=4/N": kv(n, local_factor="random", p=4 / n),
        "KV random p=2/N": kv(n, local_factor="random", p=2 / n),
        "classical Hopfield": lambda p, c, g: baselines.hopfield_recall(p, c, generator=g),
        "binary DAM x^3": lambda p, c, g: baselines.dam_recall(p, c, 3, generator=g),
        "modern Hopfield (T units)": lambda p, c, g: baselines.modern_recall(p, c),
    }


def paper_cue_models(n: int) -> dict[str, object]:
    return {
        "KV sequential softmax": kv(n),
        "KV sequential hardmax": kv(n, readout="hardmax"),
        "KV sequential step": kv(n, readout="step", threshold=n / 5),
        "KV sequential linear": kv(n, readout="linear"),
        "KV random p=4/N softmax": kv(n, local_factor="random", p=4 / n),
        "classical Hopfield": lambda p, c, g: baselines.hopfield_recall(p, c, generator=g),
    }


def sweep(models: dict[str, object], n: int, fill: str, trials: int, g: torch.Generator) -> dict[str, list]:
    rows: dict[str, list[float]] = {name: [] for name in models}
    for T in LENGTHS:
        patterns = tasks.random_patterns(trials, T, n, generator=g)
        cues = tasks.occlude(patterns, 0.6, fill=fill, generator=g)
        for name, model in models.items():
            rows[name].append(accuracy(model, patterns, cues, g))
    return rows


def capacity(model: object, n: int, trials: int, g: torch.Generator, threshold: float = 0.98) -> int:
    """The largest T with accuracy >= threshold (bisection; accuracy falls with T)."""

    def ok(T: int) -> bool:
        patterns = tasks.random_patterns(trials, T, n, generator=g)
        return accuracy(model, patterns, tasks.occlude(patterns, 0.6, generator=g), g) >= threshold

    if not ok(1):
        return 0
    low, high = 1, 2 * n
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if ok(mid) else (low, mid)
    return low


def table(title: str, rows: dict[str, list[float]]) -> None:
    print(f"\n{title}\n{'T':>27} " + " ".join(f"{t:>5}" for t in LENGTHS))
    for name, accs in rows.items():
        print(f"{name:>27} " + " ".join(f"{a:5.3f}" for a in accs))


def figure(same: dict, paper: dict, caps: dict, n: int, path: Path) -> None:

    fig, axes = new_figure(1, 3, figsize=(13, 3.8), layout="tight")
    for ax, rows, title in (
        (axes[0], same, f"(a) same +-1 cue, d = N = {n}"),
        (axes[1], paper, f"(b) paper's cue (60% set to 0), d = N = {n}"),
    ):
        for name, accs in rows.items():
            ax.plot(
                LENGTHS,
                accs,
                marker="o",
                ms=3,
                label=name,
                ls="--" if "Hopfield" in name or "DAM" in name else "-",
            )
        ax.axvline(n, color="gray", lw=0.5)
        ax.set(xlabel="stored items T", ylabel="accuracy", title=title, ylim=(0.45, 1.02))
        ax.legend(fontsize=7)
    for name, values in caps.items():
        axes[2].plot(SIZES, values, "o-", label=name)
    axes[2].set(xlabel="network size N (= d)", ylabel="capacity (accuracy >= 0.98)", title="(c) capacity")
    axes[2].legend(fontsize=7)
    save_figure(fig, path, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=64, help="episodes per point")
    parser.add_argument("--size", type=int, default=40, help="N = d of parts (a) and (b)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/figures/keyvalue_autoassociative.png")
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(args.seed)
    begin = time.perf_counter()
    n = args.size
    same = sweep(same_cue_models(n), n, "random", args.trials, g)
    table(f"(a) accuracy, the same +-1 cue for every network (60% of entries random), d = N = {n}", same)
    paper = sweep(paper_cue_models(n), n, "zero", args.trials, g)
    table(f"(b) accuracy, the paper's cue (60% of entries 0), d = N = {n}", paper)
    names = ["KV sequential", "KV random p=0.1", "KV random p=4/N", "classical Hopfield"]
    caps: dict[str, list[int]] = {name: [] for name in names}
    for size in SIZES:
        models = [
            kv(size),
            kv(size, local_factor="random", p=0.1),
            kv(size, local_factor="random", p=4 / size),
            lambda p, c, g: baselines.hopfield_recall(p, c, generator=g),
        ]
        for name, model in zip(names, models, strict=True):
            caps[name].append(capacity(model, size, args.trials, g))
    print("\n(c) capacity: the largest T recalled with accuracy >= 0.98 (paper's cue)")
    print(f"{'N':>20} " + " ".join(f"{s:>5}" for s in SIZES) + "   C/N (least squares)")
    for name, values in caps.items():
        slope = sum(c * s for c, s in zip(values, SIZES, strict=True)) / sum(s * s for s in SIZES)
        print(f"{name:>20} " + " ".join(f"{c:5d}" for c in values) + f"   {slope:.3f}")
    figure(same, paper, caps, n, Path(args.out))
    print(f"\nfigure written to {args.out}; {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()
