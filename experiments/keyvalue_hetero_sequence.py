"""Heteroassociative and sequence recall of the key-value memory (Tyulmankov et al. 2021, figure 5a, b and appendix
A.3; docs/keyvalue.md), against Kosko's bidirectional associative memory (BAM), the paper's Hopfield-type baseline.

Heteroassociation: T pairs of random +-1 keys (d = N = 40) and values (m = 20); each value is recalled from its key
with 60% of the entries set to 0. Sequences: a sequence of T random +-1 patterns (d = N = m = 40) is stored as
its transitions (key x_t, value x_t+1); prompted with the pattern in the middle, x_{T/2}, the memory runs in a loop
(each read-out's sign is the next query) and must return the rest of the sequence. BAM stores W = sum y x^T and
recalls by alternating y <- sign(W x), x <- sign(W^T y); in the sequence task each recalled y is the next cue.

Run: OMP_NUM_THREADS=1 .venv/bin/python experiments/keyvalue_hetero_sequence.py [--trials 64]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from assocmem.keyvalue import KeyValueMemory, baselines, tasks
from assocmem.report.figure import new_figure, save_figure

HETERO = [5, 10, 20, 30, 40, 50, 60, 80, 100]
SEQUENCE = [5, 10, 20, 30, 40, 50, 60, 80, 100, 120]


def bam_sequence(sequence: torch.Tensor, prompt: int) -> torch.Tensor:
    """BAM run in a loop on the transitions of ``sequence``: each recalled value is the next cue."""
    keys, values = sequence[:, :-1], sequence[:, 1:]
    x, out = sequence[:, prompt : prompt + 1], []
    for _ in range(sequence.shape[1] - prompt - 1):
        x = baselines.bam_recall(keys, values, x)
        out.append(x[:, 0])
    return torch.stack(out, dim=1)


def row(name: str, accs: list[float]) -> str:
    return f"{name:>24} " + " ".join(f"{a:5.3f}" for a in accs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/figures/keyvalue_hetero_sequence.png")
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(args.seed)
    begin = time.perf_counter()
    d, m = 40, 20
    hetero = {"KV sequential": [], "KV random p=4/N": [], "BAM": []}
    for T in HETERO:
        keys = tasks.random_patterns(args.trials, T, d, generator=g)
        values = tasks.random_patterns(args.trials, T, m, generator=g)
        cues = tasks.occlude(keys, 0.6, generator=g)
        for name, mem in (
            ("KV sequential", KeyValueMemory(d, d, m)),
            ("KV random p=4/N", KeyValueMemory(d, d, m, local_factor="random", p=4 / d)),
        ):
            state = mem.store(mem.init_state(args.trials), keys, values, generator=g)
            hetero[name].append(tasks.sign_accuracy(mem.read(state, cues), values))
        hetero["BAM"].append(tasks.sign_accuracy(baselines.bam_recall(keys, values, cues), values))
    print(
        f"heteroassociation: accuracy of the recalled values (d = N = {d}, m = {m}, 60% of the key set to 0)"
    )
    print(f"{'T':>24} " + " ".join(f"{t:>5}" for t in HETERO))
    for name, accs in hetero.items():
        print(row(name, accs))
    seq = {"KV sequential": [], "KV random p=4/N": [], "BAM": []}
    for T in SEQUENCE:
        sequence = tasks.random_patterns(args.trials, T, d, generator=g)
        prompt = T // 2
        target = sequence[:, prompt + 1 :]
        for name, mem in (
            ("KV sequential", KeyValueMemory(d, d)),
            ("KV random p=4/N", KeyValueMemory(d, d, local_factor="random", p=4 / d)),
        ):
            seq[name].append(
                tasks.sign_accuracy(tasks.sequence_recall(mem, sequence, prompt, generator=g), target)
            )
        seq["BAM"].append(tasks.sign_accuracy(bam_sequence(sequence, prompt), target))
    print(f"\nsequence recall from the middle pattern: accuracy over the rest of the sequence (d = N = {d})")
    print(f"{'T':>24} " + " ".join(f"{t:>5}" for t in SEQUENCE))
    for name, accs in seq.items():
        print(row(name, accs))

    fig, axes = new_figure(1, 2, figsize=(10, 3.6), layout="tight")
    for ax, curves, xs, title in (
        (axes[0], hetero, HETERO, f"(a) heteroassociation, d = N = {d}, m = {m}"),
        (axes[1], seq, SEQUENCE, f"(b) sequence recall, d = N = {d}"),
    ):
        for name, accs in curves.items():
            ax.plot(xs, accs, marker="o", ms=3, label=name, ls="--" if name == "BAM" else "-")
        ax.axvline(d, color="gray", lw=0.5)
        ax.set(
            xlabel="stored items T" if ax is axes[0] else "sequence length T",
            ylabel="accuracy",
            title=title,
            ylim=(0.45, 1.02),
        )
        ax.legend(fontsize=7)
    save_figure(fig, Path(args.out), dpi=80)
    print(f"\nfigure written to {args.out}; {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()
