"""The classic baseline of repertoire classification: logistic regression on the bag's k-mer counts.

Each bag becomes the vector of its k-mer frequencies: every window of ``k`` consecutive amino acids of every sequence
is a k-mer, indexed ``sum_j code_j * 20**(k-1-j)`` (``20**k`` of them), counted once per sequence or, with
``weighted``, once per copy (the clonal abundance), and divided by the bag's total. The features are the square
roots of these frequencies (which evens out the variance of rare and common k-mers, as for Poisson counts), centred
on the training bags' mean and scaled by one common factor. An L2-regularised logistic regression is fitted on the
training bags by L-BFGS,

    minimise  mean_b log(1 + exp(-s_b (w . x_b + c)))  +  (l2 / 2) |w|^2,      s_b = +-1,

for each ``l2`` of a grid; the one with the best validation AUC (ties: the larger ``l2``) scores the test bags.
Counting is vectorised over a bag (one ``unfold`` and one ``bincount``), not a loop over sequences.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from assocmem.checks import is_count
from assocmem.repertoire.alphabet import check_codes
from assocmem.repertoire.dataset import RepertoireDataset
from assocmem.repertoire.metrics import roc_auc

#: The regularisation strengths tried, weakest to strongest.
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


def kmer_counts(codes: Tensor, lengths: Tensor, counts: Tensor | None = None, *, k: int = 4) -> Tensor:
    """The k-mer counts of one bag: float64 ``(20**k,)``; each k-mer window of a sequence counts ``counts[i]``
    (1 when None). Sequences shorter than ``k`` contribute nothing.

    >>> from assocmem.repertoire import encode
    >>> c = kmer_counts(*encode(["CASS", "CAS"]), k=2)
    >>> int(c.sum()), int(c[1 * 20 + 0])   # 5 windows; "CA" twice
    (5, 2)
    """
    codes, lengths = check_codes(codes, lengths, "kmer_counts")
    if not is_count(k) or k > 5:
        raise ValueError(f"kmer_counts: k must be an integer in [1, 5] (20**k features), got {k!r}")
    n, width = codes.shape
    if counts is not None:
        if not isinstance(counts, Tensor) or counts.shape != (n,):
            raise ValueError(f"kmer_counts: counts must be a tensor ({n},), one per sequence")
        weights = counts.to(torch.float64)
    else:
        weights = torch.ones(n, dtype=torch.float64, device=codes.device)
    out = torch.zeros(20**k, dtype=torch.float64, device=codes.device)
    if width < k or n == 0:
        return out
    powers = 20 ** torch.arange(k - 1, -1, -1, device=codes.device)
    index = (codes.long().unfold(1, k, 1) * powers).sum(-1)  # (n, width - k + 1)
    valid = torch.arange(width - k + 1, device=codes.device)[None, :] <= (lengths[:, None] - k)
    w = weights[:, None].expand_as(valid)
    return out.index_add_(0, index[valid], w[valid])


def kmer_features(
    dataset: RepertoireDataset,
    *,
    k: int = 4,
    weighted: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Tensor:
    """The k-mer frequencies of every bag of ``dataset``: float32 ``(bags, 20**k)``, each row summing to 1."""
    rows = torch.empty(len(dataset), 20**k, dtype=torch.float32)
    for i in range(len(dataset)):
        bag = dataset[i]
        c = kmer_counts(bag.codes, bag.lengths, bag.counts if weighted else None, k=k)
        rows[i] = (c / c.sum().clamp_min(1)).to(torch.float32)
        if progress is not None:
            progress(1)
    return rows


def fit_logistic(x: Tensor, y: Tensor, l2: float, max_iter: int = 300) -> tuple[Tensor, Tensor]:
    """Weights and bias of the L2-regularised logistic regression (module docstring) by L-BFGS."""
    w = torch.zeros(x.shape[1], dtype=x.dtype, requires_grad=True)
    b = torch.zeros((), dtype=x.dtype, requires_grad=True)
    target = y.to(x.dtype)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-6,
        tolerance_change=1e-10,
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, target) + 0.5 * l2 * (w @ w)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


@dataclass
class KmerResult:
    """What :func:`kmer_baseline` found: the AUCs, the chosen ``l2``, and the test bags' scores (logits)."""

    k: int
    weighted: bool
    l2: float
    train_auc: float
    validation_auc: float
    test_auc: float
    test_scores: Tensor
    test_labels: Tensor
    validation_aucs: dict[float, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The result as plain numbers and lists (for metrics.json)."""
        return {
            "k": self.k, "weighted": self.weighted, "l2": self.l2, "train_auc": self.train_auc,
            "validation_auc": self.validation_auc, "test_auc": self.test_auc,
            "validation_auc_by_l2": {str(a): v for a, v in self.validation_aucs.items()},
            "test_scores": self.test_scores.tolist(), "test_labels": self.test_labels.tolist(),
            "seconds": self.seconds,
        }  # fmt: skip


def kmer_baseline(
    dataset: RepertoireDataset,
    split: dict[str, list[int]],
    *,
    k: int = 4,
    weighted: bool = False,
    l2_grid: Sequence[float] = L2_GRID,
    progress: Callable[[int], None] | None = None,
) -> KmerResult:
    """Fit the k-mer logistic regression on ``split["train"]``, choose ``l2`` on ``split["validation"]`` and
    score ``split["test"]`` (a split from :meth:`RepertoireDataset.split`)."""
    if not isinstance(dataset, RepertoireDataset):
        raise TypeError(f"kmer_baseline: dataset must be a RepertoireDataset, got {type(dataset).__name__}")
    if not isinstance(split, dict) or set(split) != {"train", "validation", "test"}:
        raise ValueError("kmer_baseline: split must map train, validation and test to bag indices")
    if not l2_grid or any(
        isinstance(a, bool) or not isinstance(a, int | float) or not a > 0 for a in l2_grid
    ):
        raise ValueError(f"kmer_baseline: l2_grid must hold positive numbers, got {l2_grid!r}")
    if not is_count(k) or k > 5:
        raise ValueError(f"kmer_baseline: k must be an integer in [1, 5], got {k!r}")
    labels = dataset.labels
    for part, idx in split.items():
        if len(idx) == 0 or len(set(labels[idx].tolist()) - {-1}) < 2 or bool((labels[idx] < 0).any()):
            raise ValueError(f"kmer_baseline: the {part} bags must be labelled and hold both classes")
    t0 = time.perf_counter()
    freq = kmer_features(dataset, k=k, weighted=weighted, progress=progress)
    t1 = time.perf_counter()
    x = freq.sqrt_()
    train, val, test = (torch.tensor(split[p], dtype=torch.int64) for p in ("train", "validation", "test"))
    x -= x[train].mean(0)
    x /= x[train].std().clamp_min(1e-12) * x.shape[1] ** 0.5  # one common scale: a training row has norm ~1
    aucs: dict[float, float] = {}
    fits = {}
    for a in sorted(l2_grid):
        w, b = fit_logistic(x[train], labels[train], float(a))
        fits[a] = (w, b)
        aucs[float(a)] = roc_auc(x[val] @ w + b, labels[val])
    best = max(sorted(aucs, reverse=True), key=lambda a: aucs[a])  # ties: the larger l2 (sorted first)
    w, b = fits[best]
    t2 = time.perf_counter()
    scores = x[test] @ w + b
    return KmerResult(
        k=k, weighted=weighted, l2=best, train_auc=roc_auc(x[train] @ w + b, labels[train]),
        validation_auc=aucs[best], test_auc=roc_auc(scores, labels[test]), test_scores=scores,
        test_labels=labels[test], validation_aucs=aucs,
        seconds={"features": t1 - t0, "fit": t2 - t1},
    )  # fmt: skip
