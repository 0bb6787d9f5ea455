"""The certificate of a candidate search: a bound on the softmax weight of every row it did not score
(docs/bank.md, "The certificate"; docs/reference.md §8).

Scores ``z_mu = beta xi_mu . q``. The search scores a set ``C`` of rows exactly; the others are split into parts
``p`` of ``n_p`` rows, each with a number ``u_p`` no smaller than any of its rows' scores. Then the rows outside
``C`` together have the weight

    W = sum_{mu not in C} e^{z_mu} / (S_C + sum_{mu not in C} e^{z_mu}) <= U / (S_C + U) = sigmoid(log U - log S_C),

with ``S_C = sum_{mu in C} e^{z_mu}`` and ``U = sum_p n_p e^{u_p}``, because ``x / (S_C + x)`` grows with ``x``.
The read-out ``sum_C e^z v / S_C`` then differs from the exact update by at most ``2 W max_mu |v_mu|``, and the
log-partition ``log S_C`` from the exact one by at most ``-log(1 - W)``.

Where the ``u_p`` come from: the exact top ``k`` of a flat index gives one part, every row not returned, with
``u = `` the ``k``-th score (no unreturned row scores more); a cluster ``c`` with centroid ``m_c`` and radius
``r_c = max_{mu in c} |xi_mu - m_c|`` gives ``u_c = beta (q . m_c + |q| r_c)`` by Cauchy-Schwarz. Each ``u`` is
raised by a bound on the rounding of the products that computed it (:func:`rounding_slack`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Certificate:
    """What a candidate search certifies, per query ``(B,)``.

    ``bound``: the certified weight of the rows not scored exactly (``W`` above; 0 when every row was scored or
    the exact pass answered); ``fallback``: True where the bound exceeded the tolerance and the exact pass over
    every row answered instead; ``scored``: the rows scored exactly (the whole bank where it fell back).
    """

    bound: Tensor
    fallback: Tensor
    scored: Tensor


def outside_bound(log_inside: Tensor, log_outside: Tensor) -> Tensor:
    """``U / (S_C + U)`` from ``log S_C`` and ``log U`` (``-inf``: nothing outside, bound 0; nothing inside: 1)."""
    inside_gone = torch.isneginf(log_inside)
    w = torch.sigmoid(log_outside - torch.where(inside_gone, torch.zeros_like(log_inside), log_inside))
    return torch.where(inside_gone, torch.ones_like(w), w)


def log_outside(counts: Tensor, u: Tensor) -> Tensor:
    """``log sum_p n_p e^{u_p}`` over the last axis (parts with ``n_p = 0`` add nothing; none: ``-inf``)."""
    return torch.logsumexp(torch.where(counts > 0, torch.log(counts.to(u.dtype)) + u, -torch.inf), -1)


def rounding_slack(dim: int, dtype: torch.dtype, magnitude: Tensor) -> Tensor:
    """A bound on the rounding error of a dot product of ``dim`` terms in ``dtype`` whose exact terms' absolute
    values sum to at most ``magnitude`` (Higham's ``gamma_n = n u / (1 - n u)``, doubled to cover the
    conversions of its inputs)."""
    u = torch.finfo(dtype).eps / 2
    return 2 * (dim + 2) * u / (1 - (dim + 2) * u) * magnitude
