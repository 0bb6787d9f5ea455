"""Recovering a motif from the top-weighted sequences without being told it: gapped k-mer enrichment.

The foreground is the ``top`` highest-weighted sequences of each bag, the background the bags' sequences (the
foreground is drawn from them). Every gapped k-mer (``letters`` amino acids at fixed offsets with at most
``max_gaps`` single-position gaps between them, written as for ``Motif.parse``: ``"SA/S"``) is counted once per
sequence that contains it. If the weights did not favour any k-mer, the foreground would be a random draw from its
bags, and the number of foreground sequences containing a k-mer found in ``K`` of the ``N`` background sequences
would be hypergeometric, ``n`` draws from ``N``. A k-mer is reported when its one-sided p-value
``P(X >= x)``, multiplied by the number ``m`` of k-mers that count as tested, is below ``alpha``: a Bonferroni
correction with Tarone's refinement, which counts only the k-mers that could reach significance at all (a k-mer in
``K`` background sequences cannot have a p-value below ``P(X = min(n, K))``, whatever the weights; ``m`` is the
least number for which at most ``m`` k-mers have that floor below ``alpha / m``). The family-wise error stays at
most ``alpha``; the rare k-mers no foreground could make significant no longer dilute the test. The best k-mer is
the one with the smallest p-value. Its letters' frequencies around it, in the foreground
sequences that contain it aligned on its first letter, form the recovered position frequency matrix (the
motif logo of ``figures.logo_figure``; information content ``log2(20) - H`` bits a position).

Against the bags' own sequences, a reported k-mer is one the weights favour, which need not be the label's motif:
an untrained or biased model can favour a common k-mer in every bag. With ``against`` (the negative bags), the
background is the top sequences of both sets, and a k-mer is reported when the weights favour it in the positive
bags more than in the negative ones: the same test, with the population the pooled top sequences.
(docs/repertoire.md, "Explanations".)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import torch
from torch import Tensor

from assocmem.checks import is_count
from assocmem.repertoire.alphabet import AMINO_ACIDS
from assocmem.repertoire.explain import BagExplanation, _checked

A = len(AMINO_ACIDS)


def shapes(letters: int, max_gaps: int) -> list[tuple[int, ...]]:
    """The offsets of every gapped k-mer of ``letters`` letters, first letter at 0, at most ``max_gaps`` gaps."""
    if letters == 1:
        return [(0,)]
    found = []
    for span in range(letters, letters + max_gaps + 1):
        for inner in combinations(range(1, span - 1), letters - 2):
            found.append((0, *inner, span - 1))
    return found


def pattern_text(offsets: tuple[int, ...], key: int) -> str:
    """The k-mer ``key`` (letter ``j`` is ``key // 20**j % 20``) at ``offsets`` in ``Motif.parse``'s notation."""
    text = ["/"] * (offsets[-1] + 1)
    for j, o in enumerate(offsets):
        text[o] = AMINO_ACIDS[key // A**j % A]
    return "".join(text)


def _keys(codes: Tensor, lengths: Tensor, offsets: tuple[int, ...]) -> Tensor:
    """``(n, P)`` the k-mer key at every start of every sequence, -1 where the k-mer runs past the end."""
    span = offsets[-1] + 1
    starts = codes.shape[1] - span + 1
    if starts <= 0:
        return torch.full((codes.shape[0], 0), -1, dtype=torch.int64)
    c = codes.long()
    key = torch.zeros(codes.shape[0], starts, dtype=torch.int64)
    for j, o in enumerate(offsets):
        key += c[:, o : o + starts] * A**j
    key[torch.arange(starts)[None, :] > (lengths - span)[:, None]] = -1
    return key


def _presence(key: Tensor, space: int) -> Tensor:
    """``(space,)``: how many sequences (rows of ``key``) contain each k-mer at least once."""
    rows = torch.arange(key.shape[0])[:, None].expand_as(key)
    valid = key >= 0
    pairs = torch.unique(rows[valid] * space + key[valid])
    return torch.bincount(pairs % space, minlength=space)


def log_tail(x: Tensor, big_k: Tensor, n: int, big_n: int) -> Tensor:
    """``log P(X >= x)`` for ``X`` hypergeometric: ``n`` draws from ``big_n`` items of which ``big_k`` count
    (float64, elementwise over ``x`` and ``big_k``), summed in the log domain."""
    x, big_k = x.double(), big_k.double()
    top = torch.minimum(big_k, torch.tensor(float(n), dtype=torch.float64))
    width = int((top - x).max().clamp_min(0)) + 1 if x.numel() else 1
    i = x[:, None] + torch.arange(width, dtype=torch.float64)[None, :]
    valid = i <= top[:, None]
    i = torch.where(valid, i, x[:, None])

    def lchoose(a: Tensor, b: Tensor) -> Tensor:
        return torch.lgamma(a + 1) - torch.lgamma(b + 1) - torch.lgamma(a - b + 1)

    k = big_k[:, None]
    total = lchoose(
        torch.tensor(float(big_n), dtype=torch.float64), torch.tensor(float(n), dtype=torch.float64)
    )
    terms = lchoose(k, i) + lchoose(big_n - k, n - i) - total
    terms = torch.where(valid & (n - i <= big_n - k), terms, torch.tensor(-math.inf, dtype=torch.float64))
    return torch.logsumexp(terms, dim=1).clamp_max(0.0)


@dataclass(frozen=True)
class RecoveredMotif:
    """The k-mer most enriched in the top-weighted sequences, its significance and its aligned letters.

    Attributes:
        pattern: the best k-mer in ``Motif.parse``'s notation (``"/"`` a one-position gap).
        found: whether it is significant: ``log10_p < log10(alpha)``.
        log10_p: log10 of its one-sided hypergeometric p-value times ``tested``, at most 0.
        foreground: top-weighted sequences that contain it, of ``foreground_size``.
        background: sequences of the bags that contain it, of ``background_size``.
        tested: the number of k-mers the correction counts (Tarone's ``m``, module docstring).
        frequencies: ``(width, 20)`` float64 letter frequencies of the foreground sequences that contain the
            k-mer, aligned on its first letter, ``flank`` positions either side (a row is zero where no
            sequence reaches).
        start: the row of ``frequencies`` holding the k-mer's first letter.
    """

    pattern: str
    found: bool
    log10_p: float
    foreground: int
    foreground_size: int
    background: int
    background_size: int
    tested: int
    frequencies: Tensor
    start: int

    @property
    def information(self) -> Tensor:
        """``(width,)`` bits of every aligned position, ``log2(20) - H``; 0 where no sequence reaches."""
        p = self.frequencies
        h = -(p * torch.log2(p.clamp_min(1e-300))).sum(1)
        return torch.where(p.sum(1) > 0, math.log2(A) - h, torch.zeros_like(h))

    @property
    def consensus(self) -> str:
        """The motif read off ``frequencies``: at each aligned position the most frequent letter where it holds a
        majority and the position carries at least 1 bit, else a gap ``/``; outer gaps trimmed (``""`` if none).
        It can extend the best k-mer with the letters that come with it (``W/H`` found, ``RDW/H`` read off)."""
        if self.frequencies.shape[0] == 0:
            return ""
        best = self.frequencies.max(1)
        keep = (best.values > 0.5) & (self.information >= 1.0)
        text = "".join(AMINO_ACIDS[int(i)] if k else "/" for i, k in zip(best.indices, keep, strict=True))
        return text.strip("/")

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "frequencies"}
        return {
            **out,
            "consensus": self.consensus,
            "alphabet": AMINO_ACIDS,
            "frequencies": self.frequencies.tolist(),
            "information": self.information.tolist(),
        }


def recover_motif(
    explanations: Sequence[BagExplanation],
    *,
    top: int = 10,
    letters: Sequence[int] = (2, 3, 4),
    max_gaps: int = 1,
    alpha: float = 0.01,
    flank: int = 2,
    against: Sequence[BagExplanation] | None = None,
) -> RecoveredMotif:
    """The gapped k-mer most enriched in the ``top`` highest-weighted sequences of each bag (module docstring).

    Pass the bags that carry the signal (the positive ones). ``against``: other bags (the negative ones) whose
    ``top`` sequences replace the background: the foreground is then drawn from the top sequences of both sets,
    and a k-mer is enriched when the weights favour it in the given bags more than in the others; a k-mer the
    weights favour everywhere (a preference unrelated to the label) is no longer reported. ``letters``: the k-mer
    lengths searched (2 to 5);
    ``max_gaps``: single-position gaps allowed between letters (0 to 2); ``alpha``: the family-wise error level
    of the Bonferroni-corrected test; ``flank``: positions shown either side of the k-mer in ``frequencies``.
    """
    who = "recover_motif"
    explanations = _checked(explanations, who)
    if not is_count(top):
        raise ValueError(f"{who}: top must be an integer >= 1, got {top!r}")
    if isinstance(letters, str | int) or not letters or any(not is_count(k, 2) or k > 5 for k in letters):
        raise ValueError(f"{who}: letters must be a list of k-mer lengths in [2, 5], got {letters!r}")
    if not is_count(max_gaps, 0) or max_gaps > 2:
        raise ValueError(f"{who}: max_gaps must be 0, 1 or 2, got {max_gaps!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ValueError(f"{who}: alpha must be a number in (0, 1), got {alpha!r}")
    if not is_count(flank, 0):
        raise ValueError(f"{who}: flank must be an integer >= 0, got {flank!r}")
    others = None if against is None else [(e.bag, e.top(top)) for e in _checked(against, f"{who}: against")]
    searched = [(k, s) for k in sorted(set(letters)) for s in shapes(k, max_gaps)]
    tops = [e.top(top) for e in explanations]
    n = sum(t.numel() for t in tops)
    if others is None:
        big_n = sum(e.bag.size for e in explanations)
    else:
        big_n = n + sum(index.numel() for _, index in others)
    floors = []  # the least p-value each k-mer present in the background could reach (Tarone)
    best: tuple[float, int, tuple[int, ...], int, int, int] | None = None
    for k, offsets in searched:
        space = A**k
        fg = torch.zeros(space, dtype=torch.int64)
        bg = torch.zeros(space, dtype=torch.int64)
        for e, index in zip(explanations, tops, strict=True):
            if others is None:
                key = _keys(e.bag.codes, e.bag.lengths, offsets)
                bg += _presence(key, space)
                fg += _presence(key[index], space)
            else:
                fg += _presence(_keys(e.bag.codes[index], e.bag.lengths[index], offsets), space)
        if others is not None:
            bg += fg
            for bag, index in others:
                bg += _presence(_keys(bag.codes[index], bag.lengths[index], offsets), space)
        present = bg > 0
        floors.append(_log_floor(bg[present], n, big_n))
        over = (fg > 0) & (fg * big_n > n * bg)  # above the expected count: only these can be significant
        candidates = over.nonzero().squeeze(1)
        if not candidates.numel():
            continue
        logp = log_tail(fg[candidates], bg[candidates], n, big_n)
        i = int(torch.argmin(logp))
        value = float(logp[i])
        # ties (the same p-value): the longer k-mer is the more specific one
        if best is None or value < best[0] - 1e-9 or (abs(value - best[0]) <= 1e-9 and k > best[1]):
            key_i = int(candidates[i])
            best = (value, k, offsets, key_i, int(fg[key_i]), int(bg[key_i]))
    tested = tarone(torch.cat(floors), math.log(alpha))
    if best is None:  # no k-mer is more frequent in the foreground than in the bags
        return RecoveredMotif(
            "", False, 0.0, 0, n, 0, big_n, tested, torch.zeros(0, A, dtype=torch.float64), 0
        )
    logp, _, offsets, key, fg_count, bg_count = best
    log10_p = min(0.0, (logp + math.log(tested)) / math.log(10))
    frequencies = _aligned(explanations, tops, offsets, key, flank)
    return RecoveredMotif(
        pattern=pattern_text(offsets, key),
        found=log10_p < math.log10(alpha),
        log10_p=log10_p,
        foreground=fg_count,
        foreground_size=n,
        background=bg_count,
        background_size=big_n,
        tested=tested,
        frequencies=frequencies,
        start=flank,
    )


def _log_floor(big_k: Tensor, n: int, big_n: int) -> Tensor:
    """``log P(X = min(n, K))``: the least p-value a k-mer in ``K`` of ``big_n`` background sequences can have."""
    top = big_k.clamp_max(n)
    return log_tail(top, big_k, n, big_n)


def tarone(log_floors: Tensor, log_alpha: float) -> int:
    """Tarone's count of tested hypotheses: the least ``m >= 1`` such that at most ``m`` of the floors lie at or
    below ``alpha / m`` (``log_floors``: the log of each hypothesis' least attainable p-value)."""
    ordered = torch.sort(log_floors.double()).values
    m = torch.arange(1, ordered.numel() + 2, dtype=torch.float64)
    reach = torch.searchsorted(ordered, log_alpha - torch.log(m), right=True)
    return int(m[reach <= m.long()][0])


def _aligned(
    explanations: list[BagExplanation], tops: list[Tensor], offsets: tuple[int, ...], key: int, flank: int
) -> Tensor:
    """Letter frequencies around the first occurrence of the k-mer in each foreground sequence holding it."""
    width = offsets[-1] + 1 + 2 * flank
    counts = torch.zeros(width, A + 1, dtype=torch.float64)
    for e, index in zip(explanations, tops, strict=True):
        codes, lengths = e.bag.codes[index], e.bag.lengths[index]
        hit = _keys(codes, lengths, offsets) == key
        rows = hit.any(1).nonzero().squeeze(1)
        if not rows.numel():
            continue
        first = hit[rows].long().argmax(1)
        pos = first[:, None] - flank + torch.arange(width)[None, :]
        inside = (pos >= 0) & (pos < lengths[rows][:, None])
        letter = torch.where(inside, codes.long()[rows[:, None], pos.clamp(0, codes.shape[1] - 1)], A)
        counts.scatter_add_(1, letter.T, torch.ones(width, rows.numel(), dtype=torch.float64))
    letters = counts[:, :A]
    return letters / letters.sum(1, keepdim=True).clamp_min(1)
