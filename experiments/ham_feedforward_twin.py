"""The convolutional HAM recipe's feed-forward twin: the same maps (convolution, ReLU, average pooling, the
recipe's dense hidden layer if any, a linear read-out) trained as a plain network on the same images with the same
optimiser and rate schedule (a cosine decays over ``--epochs``), for comparison with the recorded HAM run
(docs/ham.md, "Recorded runs").

    ASSOCMEM_DATA=../shared/data python experiments/ham_feedforward_twin.py recipes/ham/conv-fashion.json --epochs 5

prints the test accuracy after every epoch.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from torch import nn

from assocmem.ham import load_images, load_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    c = load_recipe(args.recipe)
    torch.set_num_threads(1)
    torch.manual_seed(c.seed)
    d = load_images(c.dataset, data_dir=args.data_dir, train_size=c.train_size, test_size=c.test_size)
    conv = nn.Conv2d(1, c.channels, c.kernel, stride=c.stride, padding=c.kernel // 2)
    side = 28 // c.stride // c.pool
    width = c.channels * side * side
    hidden = nn.Linear(width, c.hidden) if c.hidden else None
    read = nn.Linear(c.hidden or width, 10)
    modules = [conv, read] + ([hidden] if hidden is not None else [])
    optimizer = torch.optim.Adam([p for m in modules for p in m.parameters()], lr=c.lr)
    activation = {"relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[c.hidden_activation]

    def logits(x: torch.Tensor) -> torch.Tensor:
        z = F.relu(F.avg_pool2d(F.relu(conv(x)), c.pool)).flatten(1)
        return read(activation(hidden(z)) if hidden is not None else z)

    generator = torch.Generator().manual_seed(c.seed)
    n = len(d.train_labels)
    epochs = args.epochs or c.epochs
    total = epochs * -(-n // c.batch_size)
    done = 0
    for epoch in range(epochs):
        order = torch.randperm(n, generator=generator)
        for b in range(0, n, c.batch_size):
            i = order[b : b + c.batch_size]
            loss = F.cross_entropy(logits(d.train_images[i]), d.train_labels[i])
            # the recipe's schedule over this run's epochs (HamConfig.lr_schedule)
            if c.lr_schedule == "cosine":
                for group in optimizer.param_groups:
                    group["lr"] = c.lr * (1 + math.cos(math.pi * done / total)) / 2
            done += 1
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            right = sum(
                int((logits(d.test_images[i : i + 1000]).argmax(1) == d.test_labels[i : i + 1000]).sum())
                for i in range(0, len(d.test_labels), 1000)
            )
            accuracy = torch.tensor(right / len(d.test_labels))
        print(f"epoch {epoch + 1}: test accuracy {100 * accuracy:.2f}%", flush=True)


if __name__ == "__main__":
    main()
