"""The log-sum-exp Lagrangian, whose activation is the softmax (docs/reference.md §2, model B).

``L(x) = beta^-1 log sum_mu exp(beta x_mu)`` and ``g = softmax(beta x)``. As the hidden Lagrangian of the
two-layer network it gives, once the hidden layer is integrated out, the modern Hopfield energy
``1/2 |v|^2 - beta^-1 log sum_mu exp(beta xi_mu . v)`` (Ramsauer et al. 2020) and the attention update.
Convex, with a zero mode along the all-ones direction (the Hessian is positive semi-definite, not definite).
"""

from __future__ import annotations

import torch
from torch import Tensor

from assocmem.checks import positive_float
from assocmem.lagrangians.base import Lagrangian, as_feature_dim, check_batched


class LogSumExp(Lagrangian):
    """``L = beta^-1 logsumexp(beta x)``, ``g = softmax(beta x)``.

    ``dim=None`` (default) takes the softmax over all of a sample's units. An integer ``dim`` (a feature
    dimension of the batched tensor, e.g. ``1`` for the channels of a ``(batch, C, H, W)`` layer) takes it
    along that dimension only; ``L`` then sums the log-sum-exp over the other feature dimensions.
    """

    convex = True

    def __init__(self, beta: float = 1.0, dim: int | None = None) -> None:
        super().__init__()
        self.beta = positive_float(beta, "beta", "LogSumExp")
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
            raise TypeError(f"LogSumExp: dim must be an int or None, got {dim!r}")
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        check_batched(x, "LogSumExp")
        y = self.beta * x
        if self.dim is None:
            return torch.logsumexp(y.flatten(1), dim=1) / self.beta
        d = as_feature_dim(self.dim, x, "LogSumExp")
        lse = torch.logsumexp(y, dim=d)
        return (lse.flatten(1).sum(1) if lse.dim() > 1 else lse) / self.beta

    def activation(self, x: Tensor) -> Tensor:
        check_batched(x, "LogSumExp")
        y = self.beta * x
        if self.dim is None:
            return torch.softmax(y.flatten(1), dim=1).reshape(x.shape)
        return torch.softmax(y, dim=as_feature_dim(self.dim, x, "LogSumExp"))

    def extra_repr(self) -> str:
        return f"beta={self.beta}" + ("" if self.dim is None else f", dim={self.dim}")
