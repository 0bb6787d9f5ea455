"""Pooling a bag of sequence embeddings into one vector: attention (Hopfield pooling with learned queries), mean
and max (docs/repertoire.md, "The model"; the association is docs/reference.md §2, the merge of parts §8).

Attention. ``heads`` learned queries ``q_k`` (state patterns) retrieve from the bag's embeddings ``h_i`` (the
stored patterns, also the values) in one step of Model B's update:

    a_k = sum_i w_ki h_i,     w_ki = softmax_i(beta q_k . h_i + m_i),     beta = 1/sqrt(d) by default,

with ``m_i = log c_i`` when ``abundance`` is on (``c_i`` the clonal count) and 0 otherwise. Adding the log count to
the score is the same as repeating sequence ``i`` ``c_i`` times in the bag: an abundant clone weighs more, yet a
rare one that matches a query well still wins (its score grows linearly in ``q . h``, the count only
logarithmically). Counts as multiplicative weights of the values, the other choice, would let a clone of count
10^3 drown a witness of count 1 under mean pooling too; the log-count form is the one with a meaning in the
energy (a pattern stored ``c`` times).

The association runs through :func:`assocmem.engines.association.associate` (the engines' online softmax over
chunks of ``chunk`` sequences, with its log-partition ``lse_k``), so the score matrix is never held beyond one
chunk in inference; the weights ``w_ki = exp(beta q_k . h_i + m_i - lse_k)`` are computed from ``lse`` chunk by
chunk. A bag split into parts (a bag too large for one process: rows of a sharded bank, one part per rank) pools
exactly: each part gives :meth:`AttentionPooling.part` ``(a_s, lse_s)`` and
:func:`assocmem.engines.bank.merge.merge` combines them. With ``group=`` (a ``torch.distributed`` process group)
each rank passes its own sequences' embeddings and the pooling runs over a
:class:`~assocmem.engines.bank.sharded.ShardedBackend` of them: one all-gather of the ``(heads,)``
log-partitions and one all-reduce of the weighted ``(heads, d)`` outputs, the same answer on every rank, and each
rank's weights ``(heads, n_rank)`` its own sequences' share of the whole softmax. Gradients flow as that
backend's do (the answer's gradient averaged over ranks, the rows' gradients kept on their rank): training the
embedding across ranks then needs its parameter gradients summed over the group, which the training loop here
does not do (it trains one process on whole bags).

Mean: ``a = sum_i c_i h_i / sum_i c_i`` (``c_i = 1`` without abundance); its weights are those fractions.
Max: ``a_j = max_i h_ij``, per feature; no weights.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from assocmem.engines.association import associate
from assocmem.engines.bank.sharded import ShardedBackend


def score_mask(counts: Tensor | None, abundance: bool, like: Tensor) -> Tensor | None:
    """The additive mask ``(1, n)``: log counts with ``abundance``, else None (no mask)."""
    if not abundance or counts is None:
        return None
    return torch.log(counts.to(like.dtype)).unsqueeze(0)


class AttentionPooling(nn.Module):
    """Hopfield pooling of a bag ``(n, d) -> (heads, d)`` with ``heads`` learned queries (see the module)."""

    def __init__(
        self,
        dim: int,
        heads: int = 1,
        beta: float | None = None,
        *,
        abundance: bool = False,
        chunk: int = 4096,
        group: object = None,
    ) -> None:
        super().__init__()
        self.dim, self.heads, self.abundance, self.chunk, self.group = dim, heads, abundance, chunk, group
        self.beta = float(beta) if beta is not None else 1.0 / math.sqrt(dim)
        self.queries = nn.Parameter(torch.empty(heads, dim))
        nn.init.normal_(self.queries, std=1.0)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}, beta={self.beta:g}, abundance={self.abundance}, chunk={self.chunk}"

    def part(self, embeddings: Tensor, counts: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(a (heads, d), lse (heads,))`` over these embeddings ``(n, d)`` alone: merged over the parts of a
        bag with :func:`~assocmem.engines.bank.merge.merge`, they give the whole bag's. With a ``group``, these
        are this rank's part of the bag and the answer is already the whole bag's, the same on every rank."""
        q = self.queries.to(embeddings.dtype)
        mask = score_mask(counts, self.abundance, embeddings)
        if self.group is not None:  # this rank's part of the bag; merged over the group's ranks (§8)
            bank = ShardedBackend(torch.arange(len(embeddings)), embeddings, None, self.group, None)
            return bank.associate(q, self.beta, None if mask is None else mask.expand(self.heads, -1))
        out, lse, _ = associate(
            q, embeddings, embeddings, self.beta, mask, chunk_size=self.chunk, need_lse=True
        )
        assert lse is not None
        return out, lse

    def weights(self, embeddings: Tensor, counts: Tensor | None, lse: Tensor) -> Tensor:
        """``w (heads, n)``: every sequence's weight in every head, ``exp(beta q . h + m - lse)``, by chunks."""
        q = self.queries.to(embeddings.dtype)
        rows = []
        for start in range(0, embeddings.shape[0], self.chunk):
            h = embeddings[start : start + self.chunk]
            s = self.beta * (q @ h.T)
            m = score_mask(None if counts is None else counts[start : start + self.chunk], self.abundance, h)
            rows.append(torch.exp(s - lse.unsqueeze(1) if m is None else s + m - lse.unsqueeze(1)))
        return rows[0] if len(rows) == 1 else torch.cat(rows, 1)

    def forward(self, embeddings: Tensor, counts: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(pooled (heads, d), weights (heads, n))``."""
        out, lse = self.part(embeddings, counts)
        return out, self.weights(embeddings, counts, lse)


class MeanPooling(nn.Module):
    """``a = sum_i c_i h_i / sum_i c_i`` (``c_i = 1`` without abundance): ``(n, d) -> (1, d)``, weights ``(1, n)``."""

    heads = 1

    def __init__(self, *, abundance: bool = False) -> None:
        super().__init__()
        self.abundance = abundance

    def forward(self, embeddings: Tensor, counts: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.abundance and counts is not None:
            c = counts.to(embeddings.dtype)
            w = (c / c.sum()).unsqueeze(0)
        else:
            n = embeddings.shape[0]
            w = torch.full((1, n), 1.0 / n, dtype=embeddings.dtype, device=embeddings.device)
        return w @ embeddings, w


class MaxPooling(nn.Module):
    """``a_j = max_i h_ij``: ``(n, d) -> (1, d)``; no weights."""

    heads = 1

    def forward(self, embeddings: Tensor, counts: Tensor | None = None) -> tuple[Tensor, None]:
        return embeddings.amax(0, keepdim=True), None
