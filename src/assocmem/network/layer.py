"""A layer of neurons: shape, Lagrangian and time constant (docs/reference.md §1 and §4)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from assocmem.checks import positive_float
from assocmem.lagrangians import Lagrangian
from assocmem.lagrangians.base import sum_features


class Layer(nn.Module):
    """Neurons with state ``x`` of shape ``(batch, *shape)``, Lagrangian ``L`` and time constant ``tau``.

    The layer's share of the network energy is the Legendre term ``x . g - L(x)`` with ``g = dL/dx``;
    its dynamics are ``tau dx/dt = -dE/dg`` (docs/reference.md §1).

    Example: ``Layer(784, Tanh(beta=1.0), tau=1.0)``; ``Layer((1, 28, 28), Identity())`` for an image layer.
    """

    def __init__(self, shape: int | Sequence[int], lagrangian: Lagrangian, tau: float = 1.0) -> None:
        super().__init__()
        if isinstance(shape, int) and not isinstance(shape, bool):
            shape = (shape,)
        try:
            dims = tuple(int(s) for s in shape)
            ok = len(dims) > 0 and all(s >= 1 and s == t for s, t in zip(dims, shape, strict=True))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(
                f"Layer: shape must be a positive int or a non-empty sequence of them, got {shape!r}"
            )
        if not isinstance(lagrangian, Lagrangian):
            raise TypeError(
                f"Layer: lagrangian must be an assocmem Lagrangian such as Tanh() or LogSumExp(), "
                f"got {type(lagrangian).__name__}"
            )
        self.shape: tuple[int, ...] = dims
        self.lagrangian = lagrangian
        self.tau = positive_float(tau, "tau", "Layer")

    @property
    def size(self) -> int:
        """Number of neurons (product of the shape)."""
        return math.prod(self.shape)

    def activation(self, x: Tensor) -> Tensor:
        """``g = dL/dx``, shape of ``x``."""
        return self.lagrangian.activation(x)

    def legendre(self, x: Tensor, g: Tensor) -> Tensor:
        """The layer's energy term ``x . g - L(x)``, per sample (shape ``(batch,)``)."""
        return sum_features(x * g) - self.lagrangian(x)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, tau={self.tau:g}"
