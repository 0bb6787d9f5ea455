"""Multiple-instance learning helpers shared by the examples: padded bags, two poolings, a training loop.

A bag is a set of instances with one label; a bag model embeds every instance, pools the set into one vector
and classifies it. The poolings compared are ``assocmem.nn.HopfieldPooling`` (a learned state pattern retrieves
from the instances: Model B's update, docs/reference.md §2) and the attention pooling of Ilse et al. 2018
(``a = softmax_i(w^T tanh(V h_i))``, ``z = sum_i a_i h_i``), or a plain mean.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from assocmem.nn import HopfieldPooling


class AttentionPooling(nn.Module):
    """Ilse et al. 2018: ``z = sum_i softmax_i(w^T tanh(V h_i)) h_i`` over the unpadded instances."""

    def __init__(self, width: int, hidden: int = 32) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(width, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, h: Tensor, padding: Tensor) -> Tensor:
        a = self.score(h).squeeze(-1).masked_fill(padding, float("-inf")).softmax(-1)
        return (a.unsqueeze(-1) * h).sum(1)


class MeanPooling(nn.Module):
    """The mean of the unpadded instances."""

    def forward(self, h: Tensor, padding: Tensor) -> Tensor:
        keep = (~padding).unsqueeze(-1).to(h.dtype)
        return (h * keep).sum(1) / keep.sum(1)


class HopfieldBagPooling(nn.Module):
    """``HopfieldPooling`` with the padding as the stored-pattern padding mask."""

    def __init__(self, width: int, **options: object) -> None:
        super().__init__()
        self.pool = HopfieldPooling(width, **options)

    def forward(self, h: Tensor, padding: Tensor) -> Tensor:
        return self.pool(h, stored_pattern_padding_mask=padding)


class BagClassifier(nn.Module):
    """Instance encoder -> pooling -> linear logit."""

    def __init__(self, encoder: nn.Module, pooling: nn.Module, width: int) -> None:
        super().__init__()
        self.encoder, self.pooling, self.head = encoder, pooling, nn.Linear(width, 1)

    def forward(self, bags: Tensor, padding: Tensor) -> Tensor:
        b, n = bags.shape[:2]
        h = self.encoder(bags.flatten(0, 1)).view(b, n, -1)
        return self.head(self.pooling(h, padding)).squeeze(-1)


def pad(bags: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Stack bags of different sizes: ``(B, N_max, *)`` and the padding mask ``(B, N_max)`` (True = padding)."""
    n = max(len(b) for b in bags)
    out = bags[0].new_zeros((len(bags), n, *bags[0].shape[1:]))
    padding = torch.ones(len(bags), n, dtype=torch.bool)
    for i, b in enumerate(bags):
        out[i, : len(b)] = b
        padding[i, : len(b)] = False
    return out, padding


def train(
    model: nn.Module,
    train_set: tuple[Tensor, Tensor, Tensor],
    test_set: tuple[Tensor, Tensor, Tensor],
    *,
    epochs: int,
    batch: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
) -> dict[str, float]:
    """Adam on the binary cross-entropy; returns the final train loss and test accuracy."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    bags, padding, labels = train_set
    loss = torch.tensor(0.0)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(labels), generator=gen)
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            loss = nn.functional.binary_cross_entropy_with_logits(model(bags[idx], padding[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        tb, tp, tl = test_set
        acc = float(((model(tb, tp) > 0).float() == tl).float().mean())
    return {"train_loss": float(loss.detach()), "test_accuracy": acc}
