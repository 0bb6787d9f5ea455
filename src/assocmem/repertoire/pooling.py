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

Sparse separation (``separation="sparsemax"`` or ``"entmax15"``, docs/reference.md §7): the softmax over the bag
is replaced by :class:`~assocmem.lagrangians.Sparsemax` or :class:`~assocmem.lagrangians.Entmax15`, so
``w_k = sparsemax(beta q_k . h_1 .. beta q_k . h_n)``: the sequences whose score lies below a threshold ``tau_k``
get weight exactly zero, and only the few at the top of the bag receive gradient, from the first step on (the
softmax starts near uniform over 10^4 sequences, where a single witness holds a weight of 10^-4). The threshold
needs every score of the bag, so the pooling makes two passes over the chunks: the scores ``(heads, n)`` (no larger
than the embeddings ``(n, d)`` for ``heads <= d``), then the weighted sum of each chunk's embeddings. A bag split into
parts has no exact merge of ``(a_s, lse_s)`` pairs here (the threshold is not a log-partition), so the sparse
separations refuse ``group=`` and :meth:`AttentionPooling.part`; abundance too (adding ``log c_i`` to a score is
"``c_i`` copies" only under the softmax).

Mean: ``a = sum_i c_i h_i / sum_i c_i`` (``c_i = 1`` without abundance); its weights are those fractions.
Max: ``a_j = max_i h_ij``, per feature; no weights.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from assocmem.engines.association import associate
from assocmem.engines.bank.sharded import ShardedBackend
from assocmem.lagrangians import Entmax15, Sparsemax
from assocmem.repertoire.config import SEPARATIONS

#: the sparse separations of the attention pooling by their Lagrangian (docs/reference.md §7); their names, and the
#: softmax's, are listed once, in :data:`assocmem.repertoire.config.SEPARATIONS`
SPARSE = {"sparsemax": Sparsemax, "entmax15": Entmax15}


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
        separation: str = "softmax",
    ) -> None:
        super().__init__()
        if separation not in SEPARATIONS:
            raise ValueError(
                f"AttentionPooling: separation must be one of {', '.join(map(repr, SEPARATIONS))}, got {separation!r}"
            )
        if separation != "softmax" and (group is not None or abundance):
            raise ValueError(
                f"AttentionPooling: separation={separation!r} needs the whole bag's scores in one process and no "
                f"abundance (group={group!r}, abundance={abundance}); only the softmax merges over parts and reads a "
                f"log count as repeated copies"
            )
        self.dim, self.heads, self.abundance, self.chunk, self.group = dim, heads, abundance, chunk, group
        self.separation = separation
        self.beta = float(beta) if beta is not None else 1.0 / math.sqrt(dim)
        self.sparse = SPARSE[separation](self.beta) if separation in SPARSE else None
        self.queries = nn.Parameter(torch.empty(heads, dim))
        nn.init.normal_(self.queries, std=1.0)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, heads={self.heads}, beta={self.beta:g}, abundance={self.abundance}, chunk={self.chunk}, "
            f"separation={self.separation!r}"
        )

    def scores(self, embeddings: Tensor) -> Tensor:
        """``q_k . h_i (heads, n)`` for every sequence of the bag, chunk by chunk (beta not applied)."""
        q = self.queries.to(embeddings.dtype)
        return torch.cat([q @ h.T for h in embeddings.split(self.chunk)], 1)

    def part(self, embeddings: Tensor, counts: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(a (heads, d), lse (heads,))`` over these embeddings ``(n, d)`` alone: merged over the parts of a
        bag with :func:`~assocmem.engines.bank.merge.merge`, they give the whole bag's. With a ``group``, these
        are this rank's part of the bag and the answer is already the whole bag's, the same on every rank. The
        softmax only."""
        if self.sparse is not None:
            raise ValueError(
                f"AttentionPooling.part: separation={self.separation!r} has no merge of parts (its threshold needs "
                f"the whole bag's scores); call the pooling on the whole bag"
            )
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
        """``w (heads, n)``: every sequence's weight in every head, ``exp(beta q . h + m - lse)``, by chunks (the
        softmax's; a sparse separation's weights come from :meth:`forward`)."""
        if self.sparse is not None:
            raise ValueError(
                f"AttentionPooling.weights: separation={self.separation!r} has no log-partition; its weights are "
                f"the second output of the pooling itself"
            )
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
        if self.sparse is not None:  # two passes: every score, then each chunk's share of the weighted sum
            w = self.sparse.activation(self.scores(embeddings))
            out = sum(
                wc @ h for wc, h in zip(w.split(self.chunk, 1), embeddings.split(self.chunk), strict=True)
            )
            return out, w
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
