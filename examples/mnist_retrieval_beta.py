"""Retrieve MNIST digits from half-masked images with Model B, and show the role of beta (docs/reference.md §2).

K training digits (pixels scaled to [-1, 1]) are the memories; each query is one of them with its lower half
set to 0 (unknown). One update x <- xi^T softmax(beta xi x) is run for several inverse temperatures beta.
Ramsauer et al. 2020 predict three kinds of fixed points: a global average of all memories (small beta),
metastable averages of similar memories (intermediate beta) and single memories (large beta). For each beta
the script prints the participation ratio 1 / sum_mu w_mu^2 (how many memories the state averages over), the
fraction of queries whose largest weight is their own memory, and the error of the retrieved lower half; it
draws the queries and their retrievals in a figure.

    python examples/mnist_retrieval_beta.py --data-dir ../shared/data/mnist --out docs/figures
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import assocmem as am
from assocmem.data import load

BETAS = (0.001, 0.03, 0.06, 0.1, 0.3, 1.0)


def prepare(images: torch.Tensor, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """K memories (pixels in [-1, 1], flattened) and the same images with their lower half set to 0."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(images.shape[0], generator=gen)[:k]
    memories = images[idx].double().div(127.5).sub(1.0).flatten(1)
    queries = memories.clone().view(k, 28, 28)
    queries[:, 14:] = 0.0
    return memories, queries.flatten(1)


def measure(
    memories: torch.Tensor, queries: torch.Tensor, betas: tuple[float, ...]
) -> list[dict[str, float]]:
    """For each beta: participation ratio, fraction retrieving their own memory, error on the masked half."""
    rows = []
    own = torch.arange(memories.shape[0])
    for beta in betas:
        res = am.retrieve(memories, queries, beta, return_weights=True)
        w = res.weights
        lower = (res.states - memories).view(-1, 28, 28)[:, 14:]
        rows.append({
            "beta": beta,
            "participation": float((1.0 / (w * w).sum(1)).mean()),
            "own_memory": float((w.argmax(1) == own).double().mean()),
            "lower_half_rmse": float(lower.pow(2).mean().sqrt()),
        })  # fmt: skip
    return rows


def figure(
    memories: torch.Tensor, queries: torch.Tensor, betas: tuple[float, ...], path: Path, n: int = 6
) -> None:
    """Columns: n examples; rows: the masked query, the retrieval at each beta, the stored original."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("masked query", queries[:n])]
    rows += [(f"beta = {b:g}", am.retrieve(memories, queries[:n], b)) for b in betas]
    rows.append(("stored", memories[:n]))
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n, 1.35 * len(rows)))
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(images[c].view(28, 28).numpy(), cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(
        "Model B retrieval of half-masked MNIST digits: average -> metastable -> single pattern", fontsize=9
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data-dir", default=None, help="folder with the MNIST IDX files (default: cache/download)"
    )
    p.add_argument("--memories", type=int, default=1000, help="K, the number of stored digits")
    p.add_argument("--out", default="docs/figures", help="folder for mnist_retrieval_beta.png")
    a = p.parse_args()
    data = load("mnist", data_dir=a.data_dir)
    memories, queries = prepare(data.train.images, a.memories)
    print(
        f"K = {a.memories} MNIST training digits as memories; queries: the same digits, lower half set to 0"
    )
    print(f"{'beta':>8} {'participation ratio':>20} {'own memory':>11} {'lower-half RMSE':>16}")
    for row in measure(memories, queries, BETAS):
        print(
            f"{row['beta']:8g} {row['participation']:20.2f} {row['own_memory']:11.3f} {row['lower_half_rmse']:16.3f}"
        )
    path = Path(a.out) / "mnist_retrieval_beta.png"
    figure(memories, queries, BETAS, path)
    print(f"figure written to {path}")


if __name__ == "__main__":
    main()
