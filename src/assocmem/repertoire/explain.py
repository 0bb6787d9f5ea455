"""The attention weight of every sequence of a bag, as a first-class output: rankings, tables, motif rates.

A bag's attention pooling gives every sequence ``i`` a weight ``a_hi`` per head ``h`` (each head's weights sum to
1 over the bag; docs/repertoire.md, "Explanations"). :func:`explain_bag` runs a model on one bag and keeps its
weights beside the bag; a :class:`BagExplanation` ranks the sequences by weight (per head, or by the heads' mean,
which also sums to 1) and writes them as a table (:func:`write_weights`: repertoire, sequence, count, weights,
rank, witness). :func:`motif_in_top` measures what the issue asks to record: the rate at which the top-ranked
sequences of the positive bags contain the implanted motif, against the witness rate of those bags.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from assocmem.checks import is_count, where_not_finite
from assocmem.files import write_text
from assocmem.repertoire.bag import Repertoire


class _Matches(Protocol):
    def matches(self, sequence: str) -> bool: ...


@dataclass(frozen=True)
class BagExplanation:
    """One bag and what the model made of it: the bag's logit and the attention weight of every sequence.

    Attributes:
        bag: the repertoire explained.
        logit: the model's logit for label 1.
        weights: ``(heads, n)`` attention weights (each row sums to 1), on the CPU, detached.
    """

    bag: Repertoire
    logit: float
    weights: Tensor

    def __post_init__(self) -> None:
        who = "BagExplanation"
        if not isinstance(self.bag, Repertoire):
            raise TypeError(f"{who}: bag must be a Repertoire, got {type(self.bag).__name__}")
        w = self.weights
        if not isinstance(w, Tensor) or not w.is_floating_point():
            kind = f"{w.dtype} tensor" if isinstance(w, Tensor) else type(w).__name__
            raise TypeError(f"{who}: weights must be a floating point tensor, got {kind}")
        if w.is_meta:
            raise ValueError(f"{who}: weights is on the meta device (a shape without values)")
        if w.dim() != 2 or w.shape[1] != self.bag.size or w.shape[0] < 1:
            raise ValueError(
                f"{who}: weights must be (heads, {self.bag.size}), one row per head over the bag's "
                f"{self.bag.size} sequences, got {tuple(w.shape)}"
            )
        if (where := where_not_finite(w)) is not None:
            raise ValueError(f"{who}: weights of bag {self.bag.name!r} hold {where}")
        if not isinstance(self.logit, float):
            raise TypeError(f"{who}: logit must be a float, got {type(self.logit).__name__}")

    @property
    def heads(self) -> int:
        """The number of attention heads."""
        return self.weights.shape[0]

    @property
    def combined(self) -> Tensor:
        """``(n,)``: the heads' mean weight of every sequence (sums to 1, like each head)."""
        return self.weights.mean(0)

    def _scores(self, head: int | None) -> Tensor:
        if head is None:
            return self.combined
        if not is_count(head, 0) or head >= self.heads:
            raise ValueError(
                f"BagExplanation: head must be None (the heads' mean) or in [0, {self.heads}), got {head!r}"
            )
        return self.weights[head]

    def order(self, head: int | None = None) -> Tensor:
        """The sequences' indices from the highest weight down (ties: the earlier sequence first)."""
        return torch.sort(self._scores(head), descending=True, stable=True).indices

    def ranks(self, head: int | None = None) -> Tensor:
        """``(n,)`` int64: every sequence's rank, 1 for the highest weight (:meth:`order` inverted)."""
        order = self.order(head)
        ranks = torch.empty_like(order)
        ranks[order] = torch.arange(1, order.numel() + 1)
        return ranks

    def top(self, k: int, head: int | None = None) -> Tensor:
        """The indices of the ``k`` highest-weighted sequences (all of them when the bag is smaller)."""
        if not is_count(k):
            raise ValueError(f"BagExplanation.top: k must be an integer >= 1, got {k!r}")
        return self.order(head)[:k]


def explain_bag(model: torch.nn.Module, bag: Repertoire) -> BagExplanation:
    """Run ``model`` on ``bag`` (no gradient) and keep its logit and attention weights.

    ``model`` follows the repertoire classifier's contract: ``model(bag)`` returns an output with ``logit`` (a
    scalar) and ``weights`` (``(heads, n)``, ``None`` for max pooling, which has no weights to explain).
    """
    if not isinstance(bag, Repertoire):
        raise TypeError(f"explain_bag: bag must be a Repertoire, got {type(bag).__name__}")
    if not callable(model):
        raise TypeError(f"explain_bag: model must be a repertoire classifier, got {type(model).__name__}")
    with torch.no_grad():
        out = model(bag)
    if out.weights is None:
        pooling = getattr(model, "pooling", "?")
        raise ValueError(f"explain_bag: the model pools by {pooling!r}, which gives no weights to explain")
    return BagExplanation(bag, float(out.logit), out.weights.detach().float().cpu())


#: The columns of :func:`weights_table`, before the per-head ones.
COLUMNS = ("repertoire", "sequence", "count", "weight", "rank", "witness")


def weights_table(explanation: BagExplanation) -> str:
    """The bag's sequences as a TSV table, highest weight first.

    Columns: ``repertoire``, ``sequence``, ``count`` (clonal abundance), ``weight`` (the heads' mean), ``rank``
    (1 = highest mean weight), ``witness`` (1 / 0 for a simulated bag, ``NA`` when unknown), then for more than
    one head ``weight_h<i>`` and ``rank_h<i>`` of every head ``i``.
    """
    if not isinstance(explanation, BagExplanation):
        raise TypeError(
            f"weights_table: explanation must be a BagExplanation, got {type(explanation).__name__}"
        )
    e, bag = explanation, explanation.bag
    order = e.order().tolist()
    heads = range(e.heads) if e.heads > 1 else range(0)
    header = [*COLUMNS, *(c for h in heads for c in (f"weight_h{h}", f"rank_h{h}"))]
    columns: list[list[str]] = [
        [bag.name] * bag.size,
        bag.sequences(),
        [str(c) for c in bag.counts.tolist()],
        [f"{w:.6g}" for w in e.combined.tolist()],
        [str(r) for r in e.ranks().tolist()],
        ["NA"] * bag.size if bag.witness is None else [str(int(w)) for w in bag.witness.tolist()],
    ]
    for h in heads:
        columns.append([f"{w:.6g}" for w in e.weights[h].tolist()])
        columns.append([str(r) for r in e.ranks(h).tolist()])
    lines = ["\t".join(header)]
    lines += ["\t".join(col[i] for col in columns) for i in order]
    return "\n".join(lines) + "\n"


def write_weights(dest: str | os.PathLike, explanation: BagExplanation) -> Path:
    """Write :func:`weights_table` to ``dest`` atomically; returns the path."""
    return write_text(dest, weights_table(explanation))


@dataclass(frozen=True)
class MotifRate:
    """How often the top-ranked sequences of some bags contain a motif, against the bags as a whole.

    Attributes:
        top: sequences taken from the top of each bag.
        bags: bags counted.
        top_sequences: top-ranked sequences counted (``top`` per bag, fewer in a smaller bag).
        top_rate: the fraction of the top-ranked sequences that contain the motif.
        bag_rate: the fraction of all sequences of the bags that contain the motif.
        witness_rate: the fraction of the bags' sequences that are witnesses (None when unknown).
        top_witness_rate: the fraction of the top-ranked sequences that are witnesses (None when unknown).
    """

    top: int
    bags: int
    top_sequences: int
    top_rate: float
    bag_rate: float
    witness_rate: float | None
    top_witness_rate: float | None

    @property
    def enrichment(self) -> float:
        """``top_rate / bag_rate`` (infinite when no sequence of the bags contains the motif)."""
        return self.top_rate / self.bag_rate if self.bag_rate > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "enrichment": self.enrichment}


def motif_in_top(explanations: Sequence[BagExplanation], motif: _Matches, *, top: int = 10) -> MotifRate:
    """The rate at which the ``top`` highest-weighted sequences of each bag contain ``motif`` (anything with
    ``matches(sequence) -> bool``, e.g. a ``Motif``), beside the rate over all sequences of those bags and the
    witness rate. Pass the positive bags: the issue records the first rate against the witness rate."""
    who = "motif_in_top"
    explanations = _checked(explanations, who)
    if not callable(getattr(motif, "matches", None)):
        raise TypeError(
            f"{who}: motif must have a matches(sequence) method (a Motif), got {type(motif).__name__}"
        )
    if not is_count(top):
        raise ValueError(f"{who}: top must be an integer >= 1, got {top!r}")
    hits = picked = total = in_bag = 0
    witnesses = top_witnesses = 0
    known = all(e.bag.witness is not None for e in explanations)
    occurs = getattr(motif, "occurs", None)  # a Motif matches a whole encoded bag at once
    for e in explanations:
        if callable(occurs):
            contains = occurs(e.bag.codes, e.bag.lengths).cpu()
        else:
            contains = torch.tensor([motif.matches(s) for s in e.bag.sequences()], dtype=torch.bool)
        index = e.top(top)
        hits += int(contains[index].sum())
        picked += index.numel()
        in_bag += int(contains.sum())
        total += e.bag.size
        if known:
            witnesses += int(e.bag.witness.sum())
            top_witnesses += int(e.bag.witness[index].sum())
    return MotifRate(
        top=top,
        bags=len(explanations),
        top_sequences=picked,
        top_rate=hits / picked,
        bag_rate=in_bag / total,
        witness_rate=witnesses / total if known else None,
        top_witness_rate=top_witnesses / picked if known else None,
    )


def _checked(explanations: object, who: str) -> list[BagExplanation]:
    if isinstance(explanations, BagExplanation) or not isinstance(explanations, Sequence):
        raise TypeError(
            f"{who}: explanations must be a list of BagExplanation, got {type(explanations).__name__}"
        )
    if not explanations:
        raise ValueError(f"{who}: explanations is empty; pass at least one bag")
    for i, e in enumerate(explanations):
        if not isinstance(e, BagExplanation):
            raise TypeError(f"{who}: explanations[{i}] must be a BagExplanation, got {type(e).__name__}")
    return list(explanations)
