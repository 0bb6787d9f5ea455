"""The Lagrangian of a layer of neurons (docs/reference.md §1).

A layer's state ``x`` has shape ``(batch, *shape)``. Its Lagrangian ``L`` is a scalar function of one sample's
state, evaluated for every sample at once: ``L(x)`` has shape ``(batch,)``. The activation is its gradient,
``g = dL/dx``, returned in closed form by :meth:`Lagrangian.activation` with the shape of ``x``. The energy of
the layer is the Legendre term ``x . g - L(x)``; the dynamics never increase the network energy when every
Lagrangian is convex (positive semi-definite Hessian), which :attr:`Lagrangian.convex` declares.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Lagrangian(nn.Module):
    """Base class: a per-sample scalar function of a batched layer state, with a closed-form gradient.

    Subclasses implement :meth:`forward` (``L(x)``, shape ``(batch,)``) and :meth:`activation`
    (``g = dL/dx``, shape of ``x``) and set :attr:`convex`.
    """

    #: True when the Hessian of L is positive semi-definite everywhere (energy descent is guaranteed).
    convex: bool = False

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def activation(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def check_batched(x: Tensor, who: str) -> None:
    """Raise a clear error unless ``x`` is a floating tensor of shape ``(batch, *shape)``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(
            f"{who}: x must have shape (batch, *shape) with at least one feature dimension, got shape "
            f"{tuple(x.shape)}; add a batch dimension with x.unsqueeze(0)"
        )
    if not x.is_floating_point():
        raise TypeError(f"{who}: x must be a floating-point tensor, got dtype {x.dtype}")


def sum_features(t: Tensor) -> Tensor:
    """Sum over every dimension but the first (batch) one: ``(batch, *shape) -> (batch,)``."""
    return t.flatten(1).sum(1)


def register_value(module: nn.Module, name: str, value: float | Tensor) -> None:
    """Store a hyper-parameter: an ``nn.Parameter`` is trainable, another tensor a buffer, a number stays a number."""
    if isinstance(value, nn.Parameter):
        module.register_parameter(name, value)
    elif isinstance(value, Tensor):
        module.register_buffer(name, value)
    else:
        setattr(module, name, float(value))


def as_feature_dim(dim: int, x: Tensor, who: str) -> int:
    """Turn ``dim`` (counted over the whole tensor, negative allowed) into a non-negative feature dimension."""
    d = dim + x.dim() if dim < 0 else dim
    if not 1 <= d < x.dim():
        raise ValueError(
            f"{who}: dim={dim} must name a feature dimension of x with shape {tuple(x.shape)} "
            f"(dimension 0 is the batch)"
        )
    return d


def hessian_vector(lagrangian: Lagrangian, x: Tensor, v: Tensor) -> Tensor:
    """Hessian of ``L`` at ``x`` applied to ``v``, per sample (autograd; used to check convexity and descent)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(lagrangian(x).sum(), x, create_graph=True)
        (hv,) = torch.autograd.grad((g * v).sum(), x)
    return hv
