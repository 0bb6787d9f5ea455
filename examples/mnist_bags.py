"""MNIST bags (Ilse et al. 2018): does a bag of digits contain a 9? HopfieldPooling against attention pooling.

A bag holds a Gaussian number of MNIST digits (mean ``--bag-mean``, sd ``--bag-sd``, at least 2); it is positive
when one of them is a ``--target``. Bags of different sizes are padded and the padding is passed as the
stored-pattern padding mask. Each digit is embedded by the same MLP; the bag is pooled by
``assocmem.nn.HopfieldPooling`` (a learned state pattern retrieves from the digits, Model B, docs/reference.md §2) or
by Ilse et al.'s attention pooling ``z = sum_i softmax_i(w^T tanh(V h_i)) h_i``, then classified.

    python examples/mnist_bags.py --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse

import torch
from mil import AttentionPooling, BagClassifier, HopfieldBagPooling, pad, train
from torch import nn

from assocmem.data import load


def make_bags(images: torch.Tensor, labels: torch.Tensor, count: int, mean: float, sd: float, target: int,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """``count`` bags drawn from the images; half of them positive (at least one ``target``), half without."""
    x = images.float().div(255.0).flatten(1)
    is_target = labels == target
    pos_pool, neg_pool = torch.nonzero(is_target).squeeze(1), torch.nonzero(~is_target).squeeze(1)
    bags, ys = [], []
    for i in range(count):
        n = max(2, round(mean + sd * float(torch.randn(1, generator=gen))))
        idx = neg_pool[torch.randint(0, len(neg_pool), (n,), generator=gen)]
        positive = i % 2 == 0
        if positive:
            k = int(torch.randint(1, max(2, n // 3), (1,), generator=gen))  # a few targets, at least one
            idx[:k] = pos_pool[torch.randint(0, len(pos_pool), (k,), generator=gen)]
            idx = idx[torch.randperm(n, generator=gen)]
        bags.append(x[idx])
        ys.append(float(positive))
    stacked, padding = pad(bags)
    return stacked, padding, torch.tensor(ys)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data-dir", default=None, help="folder with the MNIST IDX files (default: cache/download)"
    )
    p.add_argument("--target", type=int, default=9)
    p.add_argument("--bag-mean", type=float, default=10.0)
    p.add_argument("--bag-sd", type=float, default=2.0)
    p.add_argument("--train-bags", type=int, default=500)
    p.add_argument("--test-bags", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seeds", type=int, default=3)
    a = p.parse_args()
    data = load("mnist", data_dir=a.data_dir)
    print(f"MNIST bags: target digit {a.target}, bag size ~ N({a.bag_mean:g}, {a.bag_sd:g}^2); "
          f"{a.train_bags} training bags (training set), {a.test_bags} test bags (test set)")  # fmt: skip
    for name in ("HopfieldPooling", "attention pooling"):
        accs = []
        for seed in range(a.seeds):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(1000 + seed)
            train_set = make_bags(
                data.train.images, data.train.labels, a.train_bags, a.bag_mean, a.bag_sd, a.target, gen
            )
            test_set = make_bags(
                data.test.images, data.test.labels, a.test_bags, a.bag_mean, a.bag_sd, a.target, gen
            )
            width = 64
            encoder = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, width), nn.ReLU())
            if name == "HopfieldPooling":
                pooling = HopfieldBagPooling(width, hidden_size=32, scaling=1.0, dropout=0.0)
            else:
                pooling = AttentionPooling(width)
            model = BagClassifier(encoder, pooling, width)
            accs.append(
                train(model, train_set, test_set, epochs=a.epochs, lr=5e-4, seed=seed)["test_accuracy"]
            )
        mean = sum(accs) / len(accs)
        print(f"{name:>18}: test accuracy {mean:.3f} (seeds: {', '.join(f'{x:.3f}' for x in accs)})")


if __name__ == "__main__":
    main()
