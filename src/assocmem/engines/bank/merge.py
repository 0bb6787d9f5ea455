"""The exact merge of the associations of the parts of a memory (docs/reference.md §8).

Split the rows of a memory into parts ``s`` (the ranks of a sharded bank, the chunks of a stream). Each part
computes its own association ``out_s = softmax(beta q xi_s^T) V_s`` and log-partition
``lse_s = log sum_{mu in s} exp(beta q . xi_mu)``. The association over the whole memory is then, exactly,

    lse = log sum_s exp(lse_s),        out = sum_s exp(lse_s - lse) out_s,

because ``exp(lse_s - lse)`` is the share of the whole partition function held by part ``s``: the weights of
the part's rows in the whole softmax are their weights in the part's softmax times that share. A part that takes
no row of a query (every row hidden by a mask) has ``lse_s = -inf``, a share of exactly 0 and an ``out_s`` that
is never read (it may be NaN). The merge is differentiable (autograd through ``logsumexp`` and the products).
"""

from __future__ import annotations

import torch
from torch import Tensor

from assocmem.checks import nonfinite_error, require_like, require_tensor


def shares(lses: Tensor) -> tuple[Tensor, Tensor]:
    """The log-partition of the whole memory and each part's share of it, from the parts' ``lses (P, ...)``.

    Returns ``(lse (...), weights (P, ...))`` with ``lse = log sum_s exp(lse_s)`` and
    ``weights_s = exp(lse_s - lse)`` (they sum to 1 over the parts). A part with ``lse_s = -inf`` has weight 0;
    where every part is ``-inf`` (no row takes part) ``lse`` is ``-inf`` and every weight 0.
    """
    lse = torch.logsumexp(lses, 0)
    # where the whole memory is hidden, lse_s - lse is -inf - -inf = NaN: take 0 weight (the caller refuses -inf lse)
    finite = torch.where(torch.isneginf(lse), torch.zeros_like(lse), lse)
    return lse, torch.exp(lses - finite)


def merge(outs: Tensor, lses: Tensor) -> tuple[Tensor, Tensor]:
    """The association of a whole memory from those of its parts (docs/reference.md §8).

    ``outs (P, ..., d_v)``: each part's association ``softmax(beta q xi_s^T + M_s) V_s``; ``lses (P, ...)``: each
    part's log-partition (natural log; ``-inf`` for a part that takes no row of that query). Returns
    ``(out (..., d_v), lse (...))``, the association and log-partition over every row of every part: equal to one
    pass over the whole memory to rounding (tests/test_bank_merge.py checks it in float64).

    Example: two halves of ``xi`` merge into the association of the whole of it.
    """
    who = "merge"
    outs = require_tensor(outs, "outs", who)
    lses = require_tensor(lses, "lses", who)
    require_like(lses, "lses", outs, "outs", who)
    if outs.dim() < 2 or outs.shape[0] == 0 or outs.shape[-1] == 0 or lses.shape != outs.shape[:-1]:
        raise ValueError(
            f"{who}: outs must have shape (P, ..., d_v) with P, d_v > 0 and lses (P, ...) = the leading shape of "
            f"outs; got outs {tuple(outs.shape)} and lses {tuple(lses.shape)}"
        )
    if torch.isnan(lses).any() or torch.isposinf(lses).any():
        raise ValueError(f"{who}: lses holds NaN or +inf; a part's log-partition is finite or -inf (no row)")
    lse, weights = shares(lses)
    if torch.isneginf(lse).any():
        raise ValueError(
            f"{who}: every part's lse is -inf for some query: no row of the memory takes part in it"
        )
    taken = torch.where(
        weights.unsqueeze(-1) > 0, outs, torch.zeros_like(outs)
    )  # a hidden part's out is unread
    out = (weights.unsqueeze(-1) * taken).sum(0)
    if not bool(torch.isfinite(out.detach()).all()):
        raise nonfinite_error(who, [("outs", taken)], "the merged association overflowed")
    return out, lse
