"""Multiple-instance learning on bit patterns: is the signal pattern somewhere in the bag?

Every bag holds ``--bag-size`` random +-1 patterns of ``--bits`` bits; a positive bag has one of them replaced by
a fixed signal pattern. Instances are embedded by a small MLP and pooled by ``HopfieldPooling`` (a learned state
pattern retrieves the instance most like it: Model B's update, docs/reference.md §2) or, as a baseline, by the mean;
the pooled vector is classified. The mean dilutes the one signal instance among the others; the Hopfield
pooling picks it out.

    python examples/bit_pattern_mil.py
"""

from __future__ import annotations

import argparse

import torch
from mil import BagClassifier, HopfieldBagPooling, MeanPooling, pad, train
from torch import nn


def make_bags(count: int, size: int, bits: int, signal: torch.Tensor, gen: torch.Generator) -> tuple:
    bags = torch.randint(0, 2, (count, size, bits), generator=gen).float() * 2 - 1
    labels = (torch.rand(count, generator=gen) < 0.5).float()
    where = torch.randint(0, size, (count,), generator=gen)
    pos = labels.bool()
    bags[pos, where[pos]] = signal
    stacked, padding = pad(list(bags))
    return stacked, padding, labels


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bits", type=int, default=12)
    p.add_argument("--bag-size", type=int, default=16)
    p.add_argument("--train-bags", type=int, default=2000)
    p.add_argument("--test-bags", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seeds", type=int, default=3)
    a = p.parse_args()
    print(
        f"bags of {a.bag_size} patterns of {a.bits} bits; {a.train_bags} training and {a.test_bags} test bags"
    )
    for name in ("HopfieldPooling", "mean pooling"):
        accs = []
        for seed in range(a.seeds):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(100 + seed)
            signal = torch.randint(0, 2, (a.bits,), generator=gen).float() * 2 - 1
            train_set = make_bags(a.train_bags, a.bag_size, a.bits, signal, gen)
            test_set = make_bags(a.test_bags, a.bag_size, a.bits, signal, gen)
            width = 32
            encoder = nn.Sequential(nn.Linear(a.bits, width), nn.ReLU(), nn.Linear(width, width))
            pooling = HopfieldBagPooling(width, scaling=4.0) if name == "HopfieldPooling" else MeanPooling()
            accs.append(
                train(
                    BagClassifier(encoder, pooling, width), train_set, test_set, epochs=a.epochs, seed=seed
                )["test_accuracy"]
            )
        mean = sum(accs) / len(accs)
        print(f"{name:>16}: test accuracy {mean:.3f} (seeds: {', '.join(f'{x:.3f}' for x in accs)})")


if __name__ == "__main__":
    main()
