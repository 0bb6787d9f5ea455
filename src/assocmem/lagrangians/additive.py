"""Additive Lagrangians ``L(x) = sum_i F(x_i)``: one function of each neuron's own state (docs/reference.md §1-2).

The activation is ``g_i = F'(x_i)`` and the Hessian is diagonal with entries ``F''(x_i)``, so ``L`` is convex
exactly when ``F`` is. For additive Lagrangians a monotone activation already guarantees energy descent.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as TF
from torch import Tensor

from assocmem.checks import is_count, positive_float
from assocmem.lagrangians.base import Lagrangian, check_batched, sum_features


def keep_nan(x: Tensor, y: Tensor) -> Tensor:
    """``y`` with ``x``'s NaNs: a step function (``sign``, ``x > 0``, a constant) would turn a NaN into an ordinary
    number (``torch.sign(nan) = 0``); the activations keep it, as every other map does (docs/bad-input.md)."""
    return torch.where(torch.isnan(x), x, y)


class AdditiveLagrangian(Lagrangian):
    """``L(x) = sum_i F(x_i)`` with ``g_i = F'(x_i)``; subclasses define :meth:`F` and :meth:`dF` elementwise."""

    def F(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def dF(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        check_batched(x, type(self).__name__)
        return sum_features(self.F(x))

    def activation(self, x: Tensor) -> Tensor:
        check_batched(x, type(self).__name__)
        return self.dF(x)


class Identity(AdditiveLagrangian):
    """``L = 1/2 sum x^2``, ``g = x`` (linear neurons; model B's feature layer, Hopfield 1984's hidden layer)."""

    convex = True

    def F(self, x: Tensor) -> Tensor:
        return 0.5 * x * x

    def dF(self, x: Tensor) -> Tensor:
        return x


class Tanh(AdditiveLagrangian):
    """``L = beta^-1 sum log cosh(beta x)``, ``g = tanh(beta x)``: the smooth stand-in for binary +-1 units."""

    convex = True

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = positive_float(beta, "beta", "Tanh")

    def F(self, x: Tensor) -> Tensor:
        y = (self.beta * x).abs()
        # log cosh y = |y| + log(1 + exp(-2|y|)) - log 2, finite for every y.
        return (y + TF.softplus(-2.0 * y) - math.log(2.0)) / self.beta

    def dF(self, x: Tensor) -> Tensor:
        return torch.tanh(self.beta * x)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


class Sigmoid(AdditiveLagrangian):
    """``L = beta^-1 sum log(1 + exp(beta x))``, ``g = sigmoid(beta x)``: firing rates in (0, 1)."""

    convex = True

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = positive_float(beta, "beta", "Sigmoid")

    def F(self, x: Tensor) -> Tensor:
        return TF.softplus(x, beta=self.beta, threshold=20.0 / self.beta)

    def dF(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.beta * x)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


class ReLU(AdditiveLagrangian):
    """``L = 1/2 sum max(x, 0)^2``, ``g = max(x, 0)``."""

    convex = True

    def F(self, x: Tensor) -> Tensor:
        r = torch.relu(x)
        return 0.5 * r * r

    def dF(self, x: Tensor) -> Tensor:
        return torch.relu(x)


class RePU(AdditiveLagrangian):
    """Rectified polynomial ``L = sum ReP_n(x) = sum max(x, 0)^n``, ``g = n max(x, 0)^(n-1)``.

    ``F = ReP_n`` is the energy function of the rectified Dense Associative Memory (KH16, docs/reference.md §3):
    used as the hidden Lagrangian, integrating the hidden layer out gives ``E = -sum_mu ReP_n(xi_mu . g)``.
    Convex for every ``n >= 1``.
    """

    convex = True

    def __init__(self, n: float) -> None:
        super().__init__()
        self.n = positive_float(n, "n", "RePU")
        if self.n < 1:
            raise ValueError(f"RePU: n must be >= 1 (degree of the rectified polynomial), got {n!r}")

    def F(self, x: Tensor) -> Tensor:
        return torch.relu(x) ** self.n

    def dF(self, x: Tensor) -> Tensor:
        if self.n == 1:
            return keep_nan(x, (x > 0).to(x.dtype))
        return self.n * torch.relu(x) ** (self.n - 1)

    def extra_repr(self) -> str:
        return f"n={self.n:g}"


class Polynomial(AdditiveLagrangian):
    """``L = sum x^n`` (integer ``n >= 1``), ``g = n x^(n-1)``: the power-law DAM energy function of KH16.

    Convex only for even ``n`` (and ``n = 1``); odd ``n >= 3`` gives a valid binary DAM but no descent guarantee
    for the continuous dynamics.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        if not is_count(n):
            raise ValueError(f"Polynomial: n must be an integer >= 1, got {n!r}")
        self.n = n
        self.convex = n == 1 or n % 2 == 0

    def F(self, x: Tensor) -> Tensor:
        return x**self.n

    def dF(self, x: Tensor) -> Tensor:
        if self.n == 1:
            return keep_nan(x, torch.ones_like(x))
        return self.n * x ** (self.n - 1)

    def extra_repr(self) -> str:
        return f"n={self.n}"


class Exp(AdditiveLagrangian):
    """``L = beta^-1 sum exp(beta x)``, ``g = exp(beta x)``: the exponential DAM (Demircigil et al. 2017) at beta=1."""

    convex = True

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = positive_float(beta, "beta", "Exp")

    def F(self, x: Tensor) -> Tensor:
        return torch.exp(self.beta * x) / self.beta

    def dF(self, x: Tensor) -> Tensor:
        return torch.exp(self.beta * x)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


class Abs(AdditiveLagrangian):
    """``L = sum |x|``, ``g = sign(x)``: binary +-1 units (model A's feature layer). Convex, Hessian zero a.e."""

    convex = True

    def F(self, x: Tensor) -> Tensor:
        return x.abs()

    def dF(self, x: Tensor) -> Tensor:
        return keep_nan(x, torch.sign(x))


class Additive(AdditiveLagrangian):
    """``L = sum F(x_i)`` for any elementwise function ``F`` written with torch operations.

    The activation ``F'`` is taken by automatic differentiation (``torch.func.grad``), so it works inside
    ``torch.no_grad()`` and is itself differentiable. Pass ``derivative`` to give ``F'`` in closed form instead.
    ``convex`` is your statement that ``F`` is convex; :func:`assocmem.relax` relies on it.

    Example: ``Additive(lambda x: torch.log1p(x.exp()), convex=True)`` is :class:`Sigmoid` with ``beta = 1``.
    """

    def __init__(
        self,
        F: Callable[[Tensor], Tensor],
        *,
        convex: bool = False,
        derivative: Callable[[Tensor], Tensor] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if not callable(F):
            raise TypeError(f"Additive: F must be a callable elementwise function, got {type(F).__name__}")
        if derivative is not None and not callable(derivative):
            raise TypeError(f"Additive: derivative must be callable or None, got {type(derivative).__name__}")
        self._F = F
        self._derivative = derivative
        self.convex = bool(convex)
        self.label = name or getattr(F, "__name__", "F")

    def F(self, x: Tensor) -> Tensor:
        out = self._F(x)
        if not isinstance(out, Tensor) or out.shape != x.shape:
            raise ValueError(
                f"Additive: F must map a tensor elementwise to one of the same shape; for input shape "
                f"{tuple(x.shape)} it returned {getattr(out, 'shape', type(out).__name__)}"
            )
        return out

    def dF(self, x: Tensor) -> Tensor:
        if self._derivative is not None:
            return self._derivative(x)
        return torch.func.grad(lambda t: self.F(t).sum())(x)

    def extra_repr(self) -> str:
        return f"F={self.label}, convex={self.convex}"
