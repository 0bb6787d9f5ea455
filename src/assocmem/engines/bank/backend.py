"""The contract of a memory bank's backend: one association over every row of the bank (docs/bank.md).

A backend stores the rows ``xi_mu`` (and values ``v_mu``) of a :class:`~assocmem.engines.bank.MemoryBank` and
computes Model B's association ``softmax(beta q xi^T + mask) V`` with its log-partition (docs/reference.md §2);
the bank owns the loop (steps, tolerance, energy), so every backend retrieves the same way. The three backends:
:class:`~assocmem.engines.bank.local.LocalBackend` (the chunked exact engine in one process),
:class:`~assocmem.engines.bank.candidates.CandidateBackend` (a FAISS index proposes candidates, scored exactly,
with a certificate on the weight it did not score) and the sharded one on ``torch.distributed``.
"""

from __future__ import annotations

import abc

from torch import Tensor


class Backend(abc.ABC):
    """Where a bank's rows live and how one association over all of them is computed.

    ``size``: rows in the whole bank (all ranks); ``dim``: the pattern width ``d``; ``value_dim``: ``d_v``
    (``== dim`` when the bank stores no values).
    """

    size: int  # rows in the whole bank (all ranks)
    dim: int  # pattern width d
    value_dim: int  # d_v (== dim when the bank stores no values)

    @abc.abstractmethod
    def associate(
        self, queries: Tensor, beta: float | Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """softmax(beta q xi^T + mask) V over every row of the bank: (out (B, d_v), lse (B,), natural log). queries (B, d), replicated on every rank for a sharded bank; mask (B, size) boolean True = takes part (for a sharded backend: its own columns, (B, local rows)). Differentiable in queries, patterns, values, beta."""  # noqa: E501
