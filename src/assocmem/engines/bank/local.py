"""The local backend: the exact association over every row of a bank held in this process (docs/bank.md).

Rows held as float32 or float64 go through the chunked exact engine itself
(:func:`assocmem.engines.association.associate` with its log-partition: cache-sized chunks, online softmax);
float16 and int8 rows are read back in blocks of :data:`BLOCK` rows, converted to the queries' dtype, each block
associated by the same engine, and the blocks' partial results merged exactly
(:func:`~assocmem.engines.bank.merge.shares`, docs/reference.md §8): a block's ``(out_s, lse_s)`` is its own
softmax read-out and log-partition, and over any partition of the rows

    lse = log sum_s exp(lse_s),    out = sum_s exp(lse_s - lse) out_s

(a block whose every row the mask hides from a query has ``out_s = 0`` and ``lse_s = -inf`` there: a share of 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

from assocmem.engines.association import additive_mask, associate
from assocmem.engines.bank.backend import Backend
from assocmem.engines.bank.merge import shares
from assocmem.engines.bank.rows import Rows

#: Rows converted at once when the rows are stored as float16 or int8 (8 MiB of float32 at d = 32).
BLOCK = 1 << 16


class LocalBackend(Backend):
    """Every row of the bank in this process, associated exactly (:class:`Backend`).

    ``patterns``: the rows ``xi`` (:class:`~assocmem.engines.bank.rows.Rows`, any storage type); ``values``:
    their values (``None``: the patterns themselves); ``joint``: the association reads out ``[xi | v]`` (width
    ``d + d_v``), the patterns in front, so that a bank with values updates its states and reads its values out
    with one backend. Differentiable in the queries and ``beta``, and in the patterns and values when they are
    held as float tensors (storage ``None``).
    """

    def __init__(self, patterns: Rows, values: Rows | None = None, *, joint: bool = False) -> None:
        self.patterns, self.values, self.joint = patterns, values, joint and values is not None
        self.size, self.dim = patterns.size, patterns.dim
        self.value_dim = self.dim if values is None else values.dim + (self.dim if self.joint else 0)

    def read(self, rows: Tensor, index: Tensor | None, lo: int = 0, hi: int = 0) -> Tensor:
        """The values read out for ``rows`` (these rows' patterns, already converted): the rows ``index`` (or
        ``lo`` to ``hi`` when ``index`` is None) of ``V``, ``[xi | v]`` when joint."""
        v = self.values
        if v is None:
            return rows
        part = v.take(index, rows.dtype) if index is not None else v.block(lo, hi, rows.dtype)
        return torch.cat([rows, part], -1) if self.joint else part

    def associate(
        self, queries: Tensor, beta: float | Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The exact association over every row: ``(out (B, d_v), lse (B,))`` (:meth:`Backend.associate`)."""
        m = additive_mask(mask, (queries.shape[0], self.size), queries, "LocalBackend.associate")
        return self.exact(queries, beta, m)

    def exact(self, queries: Tensor, beta: float | Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """:meth:`associate` with ``mask`` already additive ``(B, size)`` (or ``None``)."""
        p, v, dtype = self.patterns, self.values, queries.dtype
        if p.exact and p.data.dtype == dtype and (v is None or (v.exact and v.data.dtype == dtype)):
            vals = self.read(p.data, None, 0, self.size)
            out, lse, _ = associate(queries, p.data, vals, beta, mask, need_lse=True)
            return out, lse
        outs, lses = [], []
        for lo in range(0, self.size, BLOCK):
            hi = min(lo + BLOCK, self.size)
            rows = p.block(lo, hi, dtype)
            o, ls, _ = associate(  # a block that hides every row from a query: out 0, lse -inf (weight 0)
                queries, rows, self.read(rows, None, lo, hi), beta, None if mask is None else mask[:, lo:hi],
                need_lse=True,
            )  # fmt: skip
            outs.append(o)
            lses.append(ls)
        if len(outs) == 1:
            return outs[0], lses[0]
        lse, weights = shares(torch.stack(lses))
        return (weights.unsqueeze(-1) * torch.stack(outs)).sum(0), lse

    def joined(self, patterns: Rows, values: Rows | None) -> LocalBackend:
        """This backend with ``patterns`` (and ``values``) appended."""
        return LocalBackend(
            self.patterns.joined(patterns),
            None if self.values is None else self.values.joined(values),
            joint=self.joint,
        )

    def select(self, keep: Tensor) -> LocalBackend:
        """This backend with only the rows where ``keep (size,)`` is True."""
        v = None if self.values is None else self.values.select(keep)
        return LocalBackend(self.patterns.select(keep), v, joint=self.joint)
