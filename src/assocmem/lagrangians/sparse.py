"""Sparse separation functions: the sparsemax and 1.5-entmax Lagrangians (docs/reference.md §7).

Both are convex conjugates of a regulariser over the probability simplex ``Delta``, so their activation is the
maximiser of a variational problem:

    sparsemax:  L(x) = beta^-1 max_{p in Delta} (p . beta x - 1/2 |p|^2),          g = [beta x - tau]_+
    1.5-entmax: L(x) = beta^-1 max_{p in Delta} (p . beta x + H_1.5(p)),           g = [beta x / 2 - tau]_+^2
                H_1.5(p) = sum_j (p_j - p_j^1.5) / 0.75  (Tsallis, alpha = 3/2)

with the threshold ``tau`` that makes ``g`` sum to one. Unlike the softmax, whole ranges of scores get exactly zero
weight: ``g`` is one-hot once the top score leads every other by ``1`` (sparsemax) or ``2`` (1.5-entmax), and at
small ``beta`` both tend to the uniform vector, as the softmax does (§7, "When retrieval is exact").

The threshold is computed exactly by sorting (Michelot's projection onto the simplex for sparsemax; the
closed-form root of the support's quadratic for 1.5-entmax, Peters, Niculae & Martins 2019): with the scores
sorted in decreasing order, the support is the largest ``k`` whose ``k``-th score lies above the threshold that
the top ``k`` scores alone would give. Everything is plain tensor algebra, so autograd differentiates it (and
twice, for the Hessian), and on a fixed support the result is the exact Jacobian: ``diag(s) - s s^T / sum(s)``
with ``s`` the support's indicator (sparsemax) or ``sqrt(g)`` (1.5-entmax).

As :class:`~assocmem.lagrangians.LogSumExp` with ``dim=None``, the simplex is a sample's units, all of them:
``(batch, *shape)``, one distribution per sample.
"""

from __future__ import annotations

import torch
from torch import Tensor

from assocmem.checks import positive_float
from assocmem.lagrangians.base import Lagrangian, check_batched


def _sorted_stats(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Scores ``(batch, n)`` sorted in decreasing order, their running sums and the ranks ``1..n``."""
    top = torch.sort(z, dim=1, descending=True).values
    ranks = torch.arange(1, z.shape[1] + 1, device=z.device, dtype=z.dtype)
    return top, top.cumsum(1), ranks


def _pick(values: Tensor, support: Tensor) -> Tensor:
    """``values[b, k_b - 1]`` with ``k_b`` the support size of row ``b`` (at least one): ``(batch, 1)``."""
    k = support.sum(1, keepdim=True).clamp(min=1)
    return values.gather(1, k - 1)


def sparsemax_threshold(z: Tensor) -> Tensor:
    """``tau (batch, 1)`` with ``sum_j [z_j - tau]_+ = 1`` for scores ``z (batch, n)``."""
    top, sums, ranks = _sorted_stats(z)
    candidates = (sums - 1) / ranks  # the threshold if the top k scores were the support
    return _pick(candidates, top > candidates)


def entmax15_threshold(z: Tensor) -> Tensor:
    """``tau (batch, 1)`` with ``sum_j [z_j / 2 - tau]_+^2 = 1`` for scores ``z (batch, n)``."""
    top, sums, ranks = _sorted_stats(z / 2)
    mean = sums / ranks
    square = (top * top).cumsum(1) / ranks
    # on a support of k scores: k tau^2 - 2 tau sum + sum of squares = 1, the smaller root
    delta = ((1 - ranks * (square - mean * mean)) / ranks).clamp(min=0)
    candidates = mean - delta.sqrt()
    return _pick(candidates, top > candidates)


class _Simplex(Lagrangian):
    """``L = beta^-1 (g . beta x - Omega(g))`` with ``g`` the maximiser over the simplex (the subclass's
    :meth:`activation`) and ``Omega`` its regulariser: the variational definition, evaluated at its solution."""

    convex = True

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = positive_float(beta, "beta", type(self).__name__)

    def _regulariser(self, p: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        check_batched(x, type(self).__name__)
        z = self.beta * x.flatten(1)
        p = self.activation(x).flatten(1)
        return ((p * z).sum(1) - self._regulariser(p)) / self.beta

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


class Sparsemax(_Simplex):
    """``L = beta^-1 max_{p in Delta} (p . beta x - |p|^2 / 2)``, ``g = sparsemax(beta x) = [beta x - tau]_+``
    over each sample's units (see the module)."""

    def activation(self, x: Tensor) -> Tensor:
        check_batched(x, type(self).__name__)
        z = self.beta * x.flatten(1)
        return (z - sparsemax_threshold(z)).clamp(min=0).reshape(x.shape)

    def _regulariser(self, p: Tensor) -> Tensor:
        """``Omega(p) = |p|^2 / 2`` per sample, ``(batch, n) -> (batch,)``."""
        return 0.5 * (p * p).sum(1)


class Entmax15(_Simplex):
    """``L = beta^-1 max_{p in Delta} (p . beta x + H_1.5(p))``, ``g = entmax15(beta x) = [beta x / 2 - tau]_+^2``
    over each sample's units (see the module)."""

    def activation(self, x: Tensor) -> Tensor:
        check_batched(x, type(self).__name__)
        z = self.beta * x.flatten(1)
        return (z / 2 - entmax15_threshold(z)).clamp(min=0).square().reshape(x.shape)

    def _regulariser(self, p: Tensor) -> Tensor:
        """``Omega(p) = -H_1.5(p) = sum_j (p_j^1.5 - p_j) / 0.75`` per sample, ``(batch, n) -> (batch,)``."""
        return ((p.pow(1.5) - p) / 0.75).sum(1)
