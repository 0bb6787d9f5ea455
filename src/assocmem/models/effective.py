"""Named models: presets of the microscopic network with particular Lagrangians (docs/reference.md §2).

| model | L_v | L_h | effective energy (h integrated out) |
|---|---|---|---|
| A | smooth stand-in for sum |v| (Tanh) or Abs | sum_mu F(h_mu) | -sum_mu F(xi_mu . g(v)) + Legendre term |
| B | 1/2 sum v^2 | beta^-1 log sum exp(beta h) | 1/2 |v|^2 - beta^-1 log sum_mu exp(beta xi_mu . v) |
| C | sqrt(sum v^2) | sum_mu F(h_mu) | -sum_mu F(xi_mu . v/|v|) |
| Hopfield 1984 | any (Tanh) | 1/2 sum h^2 | -1/2 g^T xi^T xi g + sum (v g - int g) |

Each returns the two-layer :class:`~assocmem.Network` (layers ``"v"`` and ``"h"``, synapse ``"xi"``) or, with
``reduced=True``, the one-layer network with ``h`` integrated out.
"""

from __future__ import annotations

from torch import Tensor

from assocmem.lagrangians import (
    AdditiveLagrangian,
    Identity,
    Lagrangian,
    LogSumExp,
    RePU,
    Spherical,
    Tanh,
)
from assocmem.models.microscopic import microscopic
from assocmem.network import Network


def _additive(hidden: Lagrangian | None, who: str) -> Lagrangian:
    if hidden is None:
        return RePU(3)
    if not isinstance(hidden, AdditiveLagrangian):
        raise TypeError(
            f"{who}: hidden must be an additive Lagrangian sum_mu F(h_mu) (e.g. RePU(3), Polynomial(4), Exp()), "
            f"got {hidden!r}"
        )
    return hidden


def model_a(
    patterns: Tensor,
    hidden: Lagrangian | None = None,
    *,
    feature: Lagrangian | None = None,
    tau_f: float = 1.0,
    tau_h: float = 1.0,
    reduced: bool = False,
) -> Network:
    """Model A, the Dense Associative Memory: ``E = -sum_mu F(xi_mu . g(v))`` after integrating out ``h``.

    ``hidden`` is ``L_h = sum F`` (default ``RePU(3)``: ``F(x) = max(x, 0)^3``); ``Polynomial(2)`` gives the
    classical Hopfield energy (self-coupling included). ``feature`` defaults to ``Tanh()``, the smooth version of
    binary units that the ODE dynamics need; ``Abs()`` gives the binary units of KH16 exactly (for energies).
    """
    return microscopic(
        patterns,
        feature if feature is not None else Tanh(),
        _additive(hidden, "model_a"),
        tau_f=tau_f,
        tau_h=tau_h,
        reduced=reduced,
    )


def model_b(
    patterns: Tensor, beta: float = 1.0, *, tau_f: float = 1.0, tau_h: float = 1.0, reduced: bool = False
) -> Network:
    """Model B, the modern Hopfield network: ``E = 1/2 |v|^2 - beta^-1 log sum_mu exp(beta xi_mu . v)``.

    An Euler step of the reduced network with ``dt = tau_f`` is ``v <- xi^T softmax(beta xi v)``, the attention
    update of Ramsauer et al. 2020, whose energy differs from this one by ``beta^-1 log K + 1/2 M^2``.
    """
    return microscopic(patterns, Identity(), LogSumExp(beta), tau_f=tau_f, tau_h=tau_h, reduced=reduced)


def model_c(
    patterns: Tensor,
    hidden: Lagrangian | None = None,
    *,
    tau_f: float = 1.0,
    tau_h: float = 1.0,
    reduced: bool = False,
) -> Network:
    """Model C, the spherical memory: ``E = -sum_mu F(xi_mu . v/|v|)`` (default ``F = RePU(3)``).

    The general network gives ``tau dv/dt = xi^T f(xi v/|v|) - v``, i.e. docs/reference.md §2's ``alpha = 1``; since the
    energy depends only on the direction of ``v``, every ``alpha > 0`` has the same fixed directions.
    """
    return microscopic(
        patterns, Spherical(), _additive(hidden, "model_c"), tau_f=tau_f, tau_h=tau_h, reduced=reduced
    )


def continuous_hopfield(
    patterns: Tensor,
    feature: Lagrangian | None = None,
    *,
    tau_f: float = 1.0,
    tau_h: float = 1.0,
    reduced: bool = False,
) -> Network:
    """The continuous Hopfield network (1984): ``E = -1/2 g^T T g + sum (v g - int g)`` with ``T = xi^T xi``.

    Linear hidden neurons (``L_h = 1/2 sum h^2``) integrated out leave the Hebbian couplings ``T``; ``feature``
    defaults to ``Tanh()``.
    """
    return microscopic(
        patterns,
        feature if feature is not None else Tanh(),
        Identity(),
        tau_f=tau_f,
        tau_h=tau_h,
        reduced=reduced,
    )
