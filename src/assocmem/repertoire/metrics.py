"""The receiver operating characteristic of bag scores: the curve and the area under it.

The area is the Mann-Whitney statistic: the probability that a random positive bag scores above a random negative
one, a tie counting one half. It is computed from the average ranks of the scores, so ties are exact.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(scores: object, labels: object, who: str) -> tuple[Tensor, Tensor]:
    if not isinstance(scores, Tensor) or not scores.is_floating_point():
        raise TypeError(
            f"{who}: scores must be a floating point tensor, got {getattr(scores, 'dtype', scores)!r}"
        )
    if not isinstance(labels, Tensor):
        raise TypeError(f"{who}: labels must be a tensor of 0 and 1, got {type(labels).__name__}")
    if scores.dim() != 1 or labels.shape != scores.shape:
        raise ValueError(
            f"{who}: scores and labels must be two vectors of one length, got {tuple(scores.shape)} "
            f"and {tuple(labels.shape)}"
        )
    if scores.is_meta or labels.is_meta:
        raise ValueError(f"{who}: scores and labels must hold values, not lie on the meta device")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError(
            f"{who}: scores must be finite; index {int((~torch.isfinite(scores)).nonzero()[0])} is not"
        )
    if labels.is_floating_point() and not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError(f"{who}: labels must be 0 or 1")
    y = labels.to(torch.int64)
    if not bool(((y == 0) | (y == 1)).all()):
        raise ValueError(f"{who}: labels must be 0 or 1")
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        raise ValueError(
            f"{who}: labels must hold both classes (got {positives} positive of {len(y)}); the ROC is undefined"
        )
    return scores.detach().to(torch.float64).cpu(), y.cpu()


def roc_curve(scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1).

    Bags with equal scores change the rates together (one diagonal step), so the trapezoid area under the curve
    equals :func:`roc_auc`.
    """
    s, y = _check(scores, labels, "roc_curve")
    order = torch.argsort(s, descending=True, stable=True)
    s, y = s[order], y[order]
    last_of_tie = torch.ones(len(s), dtype=torch.bool)
    last_of_tie[:-1] = s[1:] != s[:-1]
    tp = torch.cumsum(y, 0)[last_of_tie].to(torch.float64)
    fp = torch.cumsum(1 - y, 0)[last_of_tie].to(torch.float64)
    zero = torch.zeros(1, dtype=torch.float64)
    return torch.cat([zero, fp / fp[-1]]), torch.cat([zero, tp / tp[-1]])


def roc_auc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative) + P(equal) / 2.

    >>> roc_auc(torch.tensor([0.1, 0.4, 0.4, 0.8]), torch.tensor([0, 0, 1, 1]))
    0.875
    """
    s, y = _check(scores, labels, "roc_auc")
    _, inverse, counts = torch.unique(s, return_inverse=True, return_counts=True)
    first = torch.cumsum(counts, 0) - counts  # rank (from 0) of each distinct value's first occurrence
    average_rank = first.to(torch.float64) + (counts.to(torch.float64) + 1) / 2  # ranks from 1, ties averaged
    ranks = average_rank[inverse]
    n1 = int(y.sum())
    n0 = len(y) - n1
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
