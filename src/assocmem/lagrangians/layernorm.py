"""The layer-norm Lagrangian (Krotov 2021, hierarchical associative memory; docs/reference.md §4).

For a sample with ``D`` units, mean ``m`` and variance ``s^2 = mean((x - m)^2)``:

    L(x) = D gamma sqrt(s^2 + eps) + sum_i delta_i x_i,     g_i = gamma (x_i - m) / sqrt(s^2 + eps) + delta_i

so the activation is layer normalisation with a scalar gain ``gamma`` and a bias ``delta`` (one per unit, or a
scalar). Statistics are taken over all feature dimensions of each sample separately, never across the batch; with
``dim`` given, over that dimension only, each slice on its own: on a token layer ``(batch, tokens, D)``,
``LayerNorm(dim=-1)`` is the Energy Transformer's neuron, one square root per token, ``L`` the sum over tokens
(docs/reference.md §6). Convex for ``gamma >= 0`` (the square root of a positive-definite quadratic form is
convex); the Hessian has a zero mode along the all-ones direction and along ``x - m``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from assocmem.checks import positive_float
from assocmem.lagrangians.base import (
    Lagrangian,
    as_feature_dim,
    check_batched,
    register_value,
    sum_features,
)


class LayerNorm(Lagrangian):
    """``L = D gamma sqrt(var(x) + eps) + delta . x``; ``g = gamma (x - mean) / sqrt(var + eps) + delta``.

    ``gamma`` is a scalar (a float, or a 0-d tensor / ``nn.Parameter`` to train it); ``delta`` is ``None``,
    a float, or a tensor that broadcasts against the layer shape (an ``nn.Parameter`` to train it).

    ``dim=None`` (default) normalises all of a sample's units together (``D`` is their number). An integer
    ``dim`` (a feature dimension of the batched tensor; ``-1`` for the last) normalises along that dimension
    only, every slice on its own (``D`` is that dimension's size) and ``L`` sums over the slices: on a token
    layer ``(batch, tokens, D)``, ``LayerNorm(dim=-1)`` has one square root per token.

    Example: ``Layer((16, 64), LayerNorm(dim=-1))``, 16 tokens of 64 units, each normalised on its own.
    """

    def __init__(
        self,
        gamma: float | Tensor = 1.0,
        delta: float | Tensor | None = None,
        eps: float = 1e-5,
        dim: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(gamma, torch.Tensor):
            if gamma.numel() != 1:
                raise ValueError(
                    f"LayerNorm: gamma must be a scalar (the Lagrangian of a per-unit gain is not a gradient); "
                    f"got shape {tuple(gamma.shape)}"
                )
        elif not isinstance(gamma, (int, float)) or isinstance(gamma, bool):
            raise TypeError(f"LayerNorm: gamma must be a number or a scalar tensor, got {gamma!r}")
        meta = isinstance(gamma, torch.Tensor) and gamma.is_meta
        if not (meta or bool(torch.isfinite(torch.as_tensor(gamma).detach()).all())):
            raise ValueError(f"LayerNorm: gamma must be finite, got {gamma!r}")
        register_value(self, "gamma", gamma)
        if delta is not None and not isinstance(delta, (torch.Tensor, int, float)):
            raise TypeError(
                f"LayerNorm: delta must be None, a number or a tensor, got {type(delta).__name__}"
            )
        if delta is None:
            self.delta = None
        else:
            register_value(self, "delta", delta)
        self.eps = positive_float(eps, "eps", "LayerNorm")
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
            raise TypeError(f"LayerNorm: dim must be an int or None, got {dim!r}")
        self.dim = dim

    @property
    def convex(self) -> bool:  # type: ignore[override]
        return bool(self.gamma >= 0)

    def _centred(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x - mean`` and ``sqrt(var + eps)`` (keeping the reduced dimension), over all features per sample
        (flattened to ``(batch, D)``) or, with ``dim``, along that dimension of ``x``."""
        if self.dim is None:
            flat = x.flatten(1)
            d = 1
        else:
            flat, d = x, as_feature_dim(self.dim, x, "LayerNorm")
        centred = flat - flat.mean(dim=d, keepdim=True)
        scale = torch.sqrt(centred.pow(2).mean(dim=d, keepdim=True) + self.eps)
        return centred, scale

    def _check_delta(self, x: Tensor) -> None:
        if isinstance(self.delta, Tensor):
            try:
                torch.broadcast_shapes(self.delta.shape, x.shape[1:])
            except RuntimeError:
                raise ValueError(
                    f"LayerNorm: delta of shape {tuple(self.delta.shape)} does not broadcast against the layer "
                    f"shape {tuple(x.shape[1:])}"
                ) from None

    def forward(self, x: Tensor) -> Tensor:
        check_batched(x, "LayerNorm")
        self._check_delta(x)
        centred, scale = self._centred(x)
        if self.dim is None:
            out = centred.shape[1] * self.gamma * scale.squeeze(1)
        else:  # D gamma sqrt(var + eps) for every slice, summed over the slices of each sample
            out = centred.shape[as_feature_dim(self.dim, x, "LayerNorm")] * self.gamma * sum_features(scale)
        if self.delta is not None:
            out = out + sum_features(self.delta * x)
        return out

    def activation(self, x: Tensor) -> Tensor:
        check_batched(x, "LayerNorm")
        self._check_delta(x)
        centred, scale = self._centred(x)
        g = (self.gamma * centred / scale).reshape(x.shape)
        if self.delta is not None:
            g = g + self.delta
        return g

    def extra_repr(self) -> str:
        gamma = self.gamma.item() if isinstance(self.gamma, Tensor) else self.gamma
        has_delta = (
            "none" if self.delta is None else "scalar" if not isinstance(self.delta, Tensor) else "tensor"
        )
        return f"gamma={gamma:g}, delta={has_delta}, eps={self.eps:g}" + (
            "" if self.dim is None else f", dim={self.dim}"
        )
