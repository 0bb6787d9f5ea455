"""The interaction function ``F`` of the Dense Associative Memory (KH16; docs/reference.md §2 and §3).

The binary DAM's energy is ``E = -sum_mu F(xi_mu . sigma)``. In the general network ``F`` is the per-neuron
function of the hidden layer's additive Lagrangian ``L_h = sum_mu F(h_mu)`` (model A), so an interaction function
*is* an :class:`~assocmem.lagrangians.AdditiveLagrangian`; this module only turns the names the papers use into one.

| name | ``F(x)`` | Lagrangian |
|---|---|---|
| ``"power"`` | ``x^n`` (``n = 2``: classical Hopfield, Hopfield 1982) | ``Polynomial(n)`` |
| ``"rectified"`` | ``ReP_n(x) = max(x, 0)^n`` | ``RePU(n)`` |
| ``"exp"`` | ``beta^-1 exp(beta x)`` (Demircigil et al. 2017 at ``beta = 1``) | ``Exp(beta)`` |
| a callable | any elementwise torch function | ``Additive(F)`` |
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from assocmem.lagrangians import Additive, AdditiveLagrangian, Exp, Polynomial, RePU

#: The named interaction functions.
KINDS = ("power", "rectified", "exp")


def interaction(
    F: str | Callable[[Tensor], Tensor] | AdditiveLagrangian,
    n: float | None = None,
    beta: float | None = None,
    *,
    who: str = "interaction",
) -> AdditiveLagrangian:
    """The additive Lagrangian ``sum_mu F(h_mu)`` for an interaction named as in KH16.

    ``F`` is ``"power"`` or ``"rectified"`` (both need the degree ``n >= 1``; ``"power"`` an integer), ``"exp"``
    (optional inverse temperature ``beta``, default 1), an elementwise callable, or an additive Lagrangian, which
    is returned as it is. ``who`` names the caller in error messages.

    Example: ``interaction("rectified", n=3).F(torch.tensor([-1.0, 2.0]))`` is ``tensor([0., 8.])``.
    """
    if isinstance(F, AdditiveLagrangian):
        if n is not None or beta is not None:
            raise ValueError(f"{who}: n and beta belong to a named F; {F!r} already fixes them")
        return F
    if callable(F) and not isinstance(F, str):
        if n is not None or beta is not None:
            raise ValueError(
                f"{who}: n and beta only apply to F='power', 'rectified' or 'exp', not a callable F"
            )
        return Additive(F)
    if F not in KINDS:
        raise ValueError(f"{who}: F must be one of {', '.join(map(repr, KINDS))} or a callable, got {F!r}")
    if F == "exp":
        if n is not None:
            raise ValueError(f"{who}: F='exp' takes beta, not a degree n (got n={n!r})")
        return Exp(1.0 if beta is None else beta)
    if beta is not None:
        raise ValueError(
            f"{who}: beta only applies to F='exp'; F={F!r} is homogeneous, so a temperature only rescales the energy"
        )
    if n is None:
        raise ValueError(f"{who}: F={F!r} needs its degree n (an interaction vertex of n spins), e.g. n=3")
    if isinstance(n, bool) or not isinstance(n, int | float) or not n >= 1:
        raise ValueError(f"{who}: the degree n must be a number >= 1, got {n!r}")
    if F == "power":
        if int(n) != n:
            raise ValueError(f"{who}: F='power' needs an integer degree n (x^n of a negative x), got {n!r}")
        return Polynomial(int(n))
    return RePU(n)
