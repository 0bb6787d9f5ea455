"""The classic baseline of repertoire classification: logistic regression on the bag's k-mer counts.

Each bag becomes the vector of its k-mer frequencies: every window of ``k`` consecutive amino acids of every sequence
is a k-mer, indexed ``sum_j code_j * 20**(k-1-j)`` (``20**k`` of them), counted once per sequence or, with
``weighted``, once per copy (the clonal abundance), and divided by the bag's total. The features are the square
roots of these frequencies (which evens out the variance of rare and common k-mers, as for Poisson counts), centred
on the training bags' mean and scaled by one common factor. An L2-regularised logistic regression is fitted on the
training bags by L-BFGS,

    minimise  mean_b log(1 + exp(-s_b (w . x_b + c)))  +  (l2 / 2) |w|^2,      s_b = +-1,

for each ``l2`` of a grid and each ``k`` asked for; the pair with the best validation AUC scores the test bags.
Counting is vectorised over a bag (one ``unfold`` and one ``bincount``), not a loop over sequences. With ``span``
the features are instead the gapped k-mers of 2 to ``k`` letters within ``span`` positions (:mod:`.gapped`, the
conjunctions the gapped sequence embedding starts from), counted and scaled the same way.
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
from assocmem.repertoire.gapped import (
    MAX_FEATURES,
    check_shape,
    feature_count,
    gapped_counts,
    gapped_patterns,
)
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
    if width < k or n == 0:
        return torch.zeros(20**k, dtype=torch.float64, device=codes.device)
    windows = width - k + 1
    wide = codes.to(torch.int64)
    index = wide[:, :windows].clone()
    for j in range(1, k):  # Horner's rule over the window's letters
        index.mul_(20).add_(wide[:, j : j + windows])
    past_end = torch.arange(windows, device=codes.device)[None, :] > (lengths[:, None] - k)
    index.masked_fill_(past_end, 20**k)  # windows past a sequence's end go to one extra bin, dropped
    w = weights[:, None].expand(n, windows).reshape(-1)
    return torch.bincount(index.reshape(-1), weights=w, minlength=20**k + 1)[: 20**k]


def kmer_features(
    dataset: RepertoireDataset,
    *,
    k: int = 4,
    weighted: bool = False,
    progress: Callable[[int], None] | None = None,
    span: int | None = None,
) -> Tensor:
    """The k-mer frequencies of every bag of ``dataset``: float32 ``(bags, 20**k)``, each row summing to 1 (with
    ``span``: the gapped k-mers of 2 to ``k`` letters within ``span`` positions, ``(bags, features)``)."""
    patterns = gapped_patterns(span, k) if span is not None else ()
    rows = torch.empty(
        len(dataset), feature_count(patterns) if span is not None else 20**k, dtype=torch.float32
    )
    for i in range(len(dataset)):
        bag = dataset[i]
        counts = bag.counts if weighted else None
        if span is None:
            c = kmer_counts(bag.codes, bag.lengths, counts, k=k)
        else:
            c = gapped_counts(bag.codes, bag.lengths, counts, span=span, letters=k)
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
    """What :func:`kmer_baseline` found: the AUCs, the chosen ``k`` and ``l2``, the test bags' scores (logits)."""

    k: int
    weighted: bool
    l2: float
    train_auc: float
    validation_auc: float
    test_auc: float
    test_scores: Tensor
    test_labels: Tensor
    validation_aucs: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    span: int | None = None  #: None: contiguous k-mers; else gapped k-mers of 2 to k letters within span

    def to_dict(self) -> dict:
        """The result as plain numbers and lists (for metrics.json)."""
        return {
            "k": self.k, "span": self.span, "weighted": self.weighted, "l2": self.l2, "train_auc": self.train_auc,
            "validation_auc": self.validation_auc, "test_auc": self.test_auc,
            "validation_auc_by_setting": self.validation_aucs,
            "test_scores": self.test_scores.tolist(), "test_labels": self.test_labels.tolist(),
            "seconds": self.seconds,
        }  # fmt: skip


def _candidates(
    dataset: RepertoireDataset,
    split: dict[str, Tensor],
    k: int,
    weighted: bool,
    l2_grid: Sequence[float],
    progress: Callable[[int], None] | None,
    span: int | None,
) -> list[dict]:
    """One fit per ``l2`` on the k-mer features of length ``k``: its AUCs and test scores."""
    labels = dataset.labels
    train, val, test = split["train"], split["validation"], split["test"]
    x = kmer_features(dataset, k=k, weighted=weighted, progress=progress, span=span).sqrt_()
    x -= x[train].mean(0)
    x /= x[train].std().clamp_min(1e-12) * x.shape[1] ** 0.5  # one common scale: a training row has norm ~1
    out = []
    for a in sorted(l2_grid, reverse=True):  # strongest first: ties go to it
        w, b = fit_logistic(x[train], labels[train], float(a))
        out.append({
            "k": k, "l2": float(a), "validation": roc_auc(x[val] @ w + b, labels[val]),
            "train": roc_auc(x[train] @ w + b, labels[train]), "scores": x[test] @ w + b,
        })  # fmt: skip
    return out


def kmer_baseline(
    dataset: RepertoireDataset,
    split: dict[str, list[int]],
    *,
    k: int | Sequence[int] = (3, 4),
    weighted: bool = False,
    l2_grid: Sequence[float] = L2_GRID,
    progress: Callable[[int], None] | None = None,
    span: int | None = None,
) -> KmerResult:
    """Fit the k-mer logistic regression on ``split["train"]`` for every ``k`` (one length or several) and ``l2``,
    choose the pair with the best AUC on ``split["validation"]`` (ties: the smaller ``k``, the larger ``l2``) and
    score ``split["test"]`` with it (a split from :meth:`RepertoireDataset.split`). ``span``: the features are the
    gapped k-mers of 2 to ``k`` letters (``k`` in [2, 4]) within ``span`` positions, gaps included (:mod:`.gapped`);
    None: the contiguous k-mers of length ``k``."""
    if not isinstance(dataset, RepertoireDataset):
        raise TypeError(f"kmer_baseline: dataset must be a RepertoireDataset, got {type(dataset).__name__}")
    if not isinstance(split, dict) or set(split) != {"train", "validation", "test"}:
        raise ValueError("kmer_baseline: split must map train, validation and test to bag indices")
    if not l2_grid or any(
        isinstance(a, bool) or not isinstance(a, int | float) or not a > 0 for a in l2_grid
    ):
        raise ValueError(f"kmer_baseline: l2_grid must hold positive numbers, got {l2_grid!r}")
    ks = [k] if not isinstance(k, Sequence) else list(k)
    if not ks or any(not is_count(j) or j > 5 for j in ks):
        raise ValueError(f"kmer_baseline: k must be integers in [1, 5], got {k!r}")
    if span is not None:
        for j in ks:
            check_shape(span, j, "kmer_baseline")
            if feature_count(gapped_patterns(span, j)) > MAX_FEATURES:
                raise ValueError(f"kmer_baseline: span {span} with k {j} gives over {MAX_FEATURES} features")
    labels = dataset.labels
    for part, idx in split.items():
        if len(idx) == 0 or len(set(labels[idx].tolist()) - {-1}) < 2 or bool((labels[idx] < 0).any()):
            raise ValueError(f"kmer_baseline: the {part} bags must be labelled and hold both classes")
    parts = {p: torch.tensor(split[p], dtype=torch.int64) for p in ("train", "validation", "test")}
    found, seconds = [], {}
    for j in sorted(set(ks)):
        t = time.perf_counter()
        found += _candidates(dataset, parts, j, weighted, l2_grid, progress, span)
        seconds[f"k={j}"] = time.perf_counter() - t
    best = max(found, key=lambda c: c["validation"])  # the first of equals: the smaller k, the larger l2
    return KmerResult(
        k=best["k"], weighted=weighted, l2=best["l2"], train_auc=best["train"], validation_auc=best["validation"],
        test_auc=roc_auc(best["scores"], labels[parts["test"]]), test_scores=best["scores"],
        test_labels=labels[parts["test"]], seconds=seconds, span=span,
        validation_aucs={f"k={c['k']} l2={c['l2']:g}": c["validation"] for c in found},
    )  # fmt: skip
