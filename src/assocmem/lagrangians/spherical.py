"""The spherical Lagrangian of model C (docs/reference.md §2): ``L = |x|``, ``g = x / |x|``.

The activation is the unit vector along the sample's state (all feature dimensions together), so the effective
energy ``-sum_mu F(xi_mu . v/|v|)`` depends only on the direction of ``v``. Convex; its Hessian
``(I - g g^T) / |x|`` has a zero mode along ``x``. At ``x = 0`` the gradient is undefined; the activation
returns 0 there (a valid subgradient).
"""

from __future__ import annotations

import torch
from torch import Tensor

from assocmem.lagrangians.base import Lagrangian, check_batched


class Spherical(Lagrangian):
    """``L = sqrt(sum_i x_i^2)`` per sample, ``g = x / |x|``."""

    convex = True

    def forward(self, x: Tensor) -> Tensor:
        check_batched(x, "Spherical")
        return torch.linalg.vector_norm(x.flatten(1), dim=1)

    def activation(self, x: Tensor) -> Tensor:
        check_batched(x, "Spherical")
        norm = torch.linalg.vector_norm(x.flatten(1), dim=1)
        tiny = torch.finfo(x.dtype).tiny
        scale = torch.where(norm > 0, 1.0 / norm.clamp_min(tiny), torch.zeros_like(norm))
        return x * scale.reshape((-1,) + (1,) * (x.dim() - 1))
