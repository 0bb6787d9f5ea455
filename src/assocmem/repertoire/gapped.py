"""Gapped k-mers: a sequence's conjunctions of letters at fixed offsets, as features and as a sequence embedding
(docs/repertoire.md, "Gapped k-mers at 0.01%").

A *pattern* is a tuple of offsets that starts at 0, e.g. ``(0, 1, 3)``: the letters at positions ``s``, ``s + 1``
and ``s + 3`` of a sequence, for every start ``s`` whose last offset stays inside the sequence. The patterns of
``span`` and ``letters`` are every such tuple of 2 to ``letters`` offsets whose last offset is below ``span`` (span
5, up to 3 letters: 4 pairs and 6 triples); the gap positions are part of a feature's identity (``RD/H`` at
``(0, 1, 3)`` is not ``RDH`` at ``(0, 1, 2)``). Feature ``id = base(p) + sum_j c_j 20**(m-1-j)`` for the letter
codes ``c_0 .. c_{m-1}`` read at pattern ``p``'s ``m`` offsets, ``base(p)`` the features of the patterns before it:
``features(span, letters) = sum_p 20**len(p)`` ids (49 600 for span 5 and 3 letters).

:class:`GappedEmbedding` is the convolution of :mod:`.embedding` with gapped k-mers in place of single letters:
a window starting at ``s`` responds ``act(b + sum_p E[f_p(s)])``, the sum of a learned vector ``E[f] (dim,)`` over
the window's feature of each pattern ``p`` (``torch.nn.EmbeddingBag``; a pattern that runs past the sequence's end
adds nothing, so a short pattern is read up to the last letter), and the embedding is the maximum over the
``max(l - 1, 1)`` starts. A
single feature such as the motif's ``DW/H`` moves a window's response by itself from the first step, where a
convolution's response is a sum over single letters. The model embeds a bag in chunks as it does with the
convolution (:func:`.embedding.embed_chunks`).
"""

from __future__ import annotations

from itertools import combinations

import torch
from torch import Tensor, nn

from assocmem.checks import is_count
from assocmem.repertoire.alphabet import check_codes
from assocmem.repertoire.embedding import LETTERS, POSITION_FEATURES

#: Feature ids of one pattern set beyond this are refused (the table holds one vector each).
MAX_FEATURES = 1 << 24
#: A CDR3's length in the middle of the usual 10 to 20, for the scale of a fresh embedding.
TYPICAL_LENGTH = 15


def gapped_patterns(span: int, letters: int) -> tuple[tuple[int, ...], ...]:
    """Every pattern of 2 to ``letters`` offsets, the first 0 and the last below ``span``, shortest first.

    >>> gapped_patterns(3, 3)
    ((0, 1), (0, 2), (0, 1, 2))
    """
    return tuple((0, *rest) for m in range(2, letters + 1) for rest in combinations(range(1, span), m - 1))


def feature_count(patterns: tuple[tuple[int, ...], ...]) -> int:
    """The number of feature ids of ``patterns`` (``20**m`` for a pattern of ``m`` letters)."""
    return sum(20 ** len(p) for p in patterns)


def pattern_name(pattern: tuple[int, ...], letters: str) -> str:
    """A feature as a motif pattern, ``/`` for each gap: ``pattern_name((0, 1, 3), "DWH") == "DW/H"``."""
    out = ["/"] * (pattern[-1] + 1)
    for o, ch in zip(pattern, letters, strict=True):
        out[o] = ch
    return "".join(out)


def gapped_ids(codes: Tensor, lengths: Tensor, patterns: tuple[tuple[int, ...], ...]) -> Tensor:
    """The feature ids of every window of every pattern: int64 ``(n, windows)``, one row a sequence; a window that
    runs past its sequence's end holds ``feature_count(patterns)`` (the padding id). Codes and lengths are taken as
    checked (:func:`.alphabet.check_codes`)."""
    n, width = codes.shape
    pad = feature_count(patterns)
    wide = codes.to(torch.int64)
    parts, base = [], 0
    for p in patterns:
        windows = max(width - p[-1], 0)
        index = wide[:, p[0] : p[0] + windows].clone()
        for o in p[1:]:  # Horner's rule over the pattern's letters
            index.mul_(20).add_(wide[:, o : o + windows])
        index.add_(base)
        past_end = torch.arange(windows, device=codes.device)[None, :] > (lengths[:, None] - 1 - p[-1])
        parts.append(index.masked_fill_(past_end, pad))
        base += 20 ** len(p)
    return torch.cat(parts, 1) if parts else torch.full((n, 0), pad, dtype=torch.int64)


def check_shape(span: object, letters: object, who: str) -> None:
    """``span`` (an int >= 2) and ``letters`` (an int in ``[2, min(span, 4)]``), or a clear error."""
    if not is_count(span) or span < 2:
        raise ValueError(f"{who}: span must be an integer >= 2 (positions, gaps included), got {span!r}")
    if not is_count(letters) or not 2 <= letters <= min(span, 4):
        raise ValueError(
            f"{who}: letters must be an integer in [2, {min(span, 4)}] (span {span}), got {letters!r}"
        )


def gapped_counts(
    codes: Tensor, lengths: Tensor, counts: Tensor | None = None, *, span: int = 5, letters: int = 3
) -> Tensor:
    """How often each gapped k-mer of 2 to ``letters`` letters within ``span`` positions occurs in one bag: float64
    ``(features,)`` in the id order of the module docstring, each window counting ``counts[i]`` (1 when None).

    >>> from assocmem.repertoire import encode
    >>> c = gapped_counts(*encode(["RDWAH", "RDW"]), span=3, letters=3)
    >>> int(c.sum()), int(c[800 + 14 * 400 + 2 * 20 + 18])   # 14 windows; "RDW" at (0, 1, 2) twice
    (14, 2)
    """
    who = "gapped_counts"
    codes, lengths = check_codes(codes, lengths, who)
    check_shape(span, letters, who)
    n = codes.shape[0]
    if counts is not None and (not isinstance(counts, Tensor) or counts.shape != (n,)):
        raise ValueError(f"{who}: counts must be a tensor ({n},), one per sequence")
    patterns = gapped_patterns(span, letters)
    size = feature_count(patterns)
    if n == 0:
        return torch.zeros(size, dtype=torch.float64, device=codes.device)
    ids = gapped_ids(codes, lengths, patterns)
    w = None if counts is None else counts.to(torch.float64)[:, None].expand(ids.shape).reshape(-1)
    return torch.bincount(ids.reshape(-1), weights=w, minlength=size + 1)[:size].to(torch.float64)


def window_ids(codes: Tensor, lengths: Tensor, patterns: tuple[tuple[int, ...], ...], span: int) -> Tensor:
    """The feature ids of every pattern at every window start: int64 ``(n, windows, patterns)`` with ``windows =
    max(L - 1, 1)`` (the starts of a pair); a pattern that runs past its sequence's end holds
    ``feature_count(patterns)`` (the padding id)."""
    width = codes.shape[1]
    windows = max(width - 1, 1)
    wide = torch.nn.functional.pad(codes.to(torch.int64), (0, windows + span - 1 - width), value=0)
    pad = feature_count(patterns)
    starts = torch.arange(windows, device=codes.device)[None, :]
    out, base = [], 0
    for p in patterns:
        index = wide[:, p[0] : p[0] + windows].clone()
        for o in p[1:]:  # Horner's rule over the pattern's letters
            index.mul_(20).add_(wide[:, o : o + windows])
        index.add_(base).masked_fill_(starts + p[-1] >= lengths[:, None], pad)
        out.append(index)
        base += 20 ** len(p)
    return torch.stack(out, -1)


class GappedEmbedding(nn.Module):
    """``h = max over windows of act(b + sum over the patterns of E[gapped k-mer])``, coded sequences
    ``(n, L) -> (n, dim)``."""

    def __init__(self, dim: int, span: int, letters: int, activation: str = "selu") -> None:
        super().__init__()
        self.dim, self.span, self.letters, self.activation = dim, span, letters, activation
        self.patterns = gapped_patterns(span, letters)
        self.features = feature_count(self.patterns)
        if self.features > MAX_FEATURES:
            raise ValueError(
                f"GappedEmbedding: span {span} and {letters} letters give {self.features} features, over "
                f"{MAX_FEATURES}"
            )
        self.table = nn.EmbeddingBag(self.features + 1, dim, mode="sum", padding_idx=self.features)
        self.bias = nn.Parameter(torch.zeros(dim))
        self.act = nn.SELU() if activation == "selu" else nn.ReLU()

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, span={self.span}, letters={self.letters}, features={self.features}, "
            f"activation={self.activation!r}"
        )

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """``E[f] ~ N(0, 1/(23 span))``, the LeCun-normal draw of a convolution weight ``span`` residues wide over
        the 23 one-hot and position inputs, so a fresh window's sum of ``patterns`` vectors has the spread of a
        fresh convolution's response; the padding row and the bias zero."""
        with torch.no_grad():
            w = self.table.weight
            inputs = (LETTERS + POSITION_FEATURES) * self.span  # a convolution's fan-in over that width
            w.copy_((torch.randn(w.shape, generator=generator) / inputs**0.5).to(w.dtype))
            w[self.features].zero_()
            self.bias.zero_()

    def from_codes(self, codes: Tensor, lengths: Tensor, dtype: torch.dtype) -> Tensor:
        """Embeddings ``(n, dim)`` of coded sequences ``(n, L)`` (``PAD`` after each end)."""
        ids = window_ids(codes, lengths, self.patterns, self.span)  # (n, windows, patterns)
        n, windows, _ = ids.shape
        y = self.act(self.table(ids.reshape(n * windows, -1)).view(n, windows, -1) + self.bias)
        valid = torch.arange(windows, device=ids.device) < (lengths - 1).clamp(min=1).unsqueeze(1)
        return y.masked_fill(~valid.unsqueeze(-1), float("-inf")).amax(1)
