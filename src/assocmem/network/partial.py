"""Clamping part of a layer whose Lagrangian couples its units (docs/reference.md §1).

With ``d = u - x`` (``tau dx/dt`` of a free layer) the energy's gradient in a layer's state is ``dE/dx = -H d``,
``H`` the Hessian of the layer's Lagrangian. Holding the clamped units ``c`` and moving the free ones ``m`` by
``tau dx_m/dt = d_m`` gives

    dE/dt = -(1/tau) [ d_m . H_mm d_m + d_m . H_mc d_c ]

whose second term has no sign: for a Lagrangian that couples its units (softmax, spherical, layer norm) the
energy can rise (measured: 4.6e-6 on MNIST completion in float64 at rtol 1e-9). The free units of such a layer
therefore follow the energy's gradient flow restricted to them, preconditioned by ``H_mm^-1``:

    tau dx_m/dt = H_mm^-1 (H d)_m = d_m + z,     H_mm z = H_mc d_c,

so ``dE/dt = -(1/tau) (H d)_m . H_mm^-1 (H d)_m <= 0`` (``H_mm`` is positive definite once a unit of the
coupled group is clamped). With no unit clamped, or a diagonal ``H`` (an additive Lagrangian), ``z = 0``: the
usual dynamics. The fixed points are the minima of the energy over the free units, ``(H d)_m = 0``.
:class:`~assocmem.network.Network.evaluate` adds ``z`` to the free units' input ``u``, so every integrator, the
stop rule and the implicit gradient see this flow. ``z`` in closed form, per coupled group (a sample, or a slice
along ``dim``):

- spherical, ``H = (1 - g g^T) / |x|``: ``z = -g_m (g_c . d_c) / |g_c|^2``;
- softmax, ``H = beta (diag p - p p^T)``: ``z = -(p_c . d_c) / (sum p_c)`` on every free unit;
- layer norm, ``H = (gamma / s) (1 - e e^T - n n^T)`` with ``e = 1/sqrt(D)``, ``n = (x - mean) / (s sqrt(D))``
  and ``s = sqrt(var + eps)``: ``z = -[e_m, n_m] K^-1 [e_c . d_c, n_c . d_c]`` with the 2x2 matrix
  ``K = 1 - V_m^T V_m``, written through the clamped units alone (``e . n = 0``, ``1 - |n|^2 = eps / s^2``).

Any other Lagrangian that is not additive has no known ``z``: clamping part of its layer is an error.
"""

from __future__ import annotations

import torch
from torch import Tensor

from assocmem.lagrangians import AdditiveLagrangian, Lagrangian, LayerNorm, LogSumExp, Spherical
from assocmem.lagrangians.base import as_feature_dim

#: The Lagrangians that couple their units and whose partial clamp has a closed form.
COUPLED = (Spherical, LogSumExp, LayerNorm)


def couples(lagrangian: Lagrangian) -> bool:
    """Whether the Lagrangian's Hessian couples units of a layer (it is not additive)."""
    return not isinstance(lagrangian, AdditiveLagrangian)


def check_partial(name: str, lagrangian: Lagrangian) -> None:
    """Raise a clear error if layer ``name`` may not be clamped in part (a coupled Lagrangian with no known ``z``)."""
    if couples(lagrangian) and not isinstance(lagrangian, COUPLED):
        raise ValueError(
            f"clamp[{name!r}] holds part of layer {name!r}, whose Lagrangian {lagrangian!r} couples its units: "
            f"holding some of them would let the energy rise, and assocmem knows the descending motion of the "
            f"others only for {', '.join(c.__name__ for c in COUPLED)} and additive Lagrangians. Clamp the whole "
            f"layer, or give the clamped units a layer of their own (an additive Lagrangian such as Identity(), "
            f"or an input current)"
        )


def _groups(x: Tensor, dim: int | None, who: str) -> tuple[Tensor, int]:
    """``x`` shaped so that one coupled group lies along the returned dimension."""
    if dim is None:
        return x.flatten(1), 1
    return x, as_feature_dim(dim, x, who)


def _spherical(g: Tensor, d: Tensor, held: Tensor) -> Tensor:
    gc = g * held
    a = (gc * d).sum(1, keepdim=True)
    norm2 = (gc * gc).sum(1, keepdim=True)
    return -g * torch.where(norm2 > 0, a / torch.where(norm2 > 0, norm2, 1.0), 0.0)


def _softmax(lagrangian: LogSumExp, x: Tensor, d: Tensor, mask: Tensor, axis: int) -> Tensor:
    any_held = mask.any(axis, keepdim=True)
    y = lagrangian.beta * x
    # the clamped units' softmax weights p_c / sum p_c, stable when sum p_c underflows; a group with no clamped
    # unit gets finite weights that the mask then zeroes
    w = torch.softmax(torch.where(mask | ~any_held, y, -torch.inf), dim=axis)
    return -(w * d * mask).sum(axis, keepdim=True).expand_as(x)


def _layernorm(lagrangian: LayerNorm, x: Tensor, d: Tensor, held: Tensor, axis: int) -> Tensor:
    size = x.shape[axis]
    centred = x - x.mean(axis, keepdim=True)
    s2 = centred.pow(2).mean(axis, keepdim=True) + lagrangian.eps
    n = centred * torch.rsqrt(s2 * size)
    e = size**-0.5
    count = held.sum(axis, keepdim=True)
    nc = n * held
    a1 = (held * d).sum(axis, keepdim=True) * e
    a2 = (nc * d).sum(axis, keepdim=True)
    k11 = count / size
    k12 = nc.sum(axis, keepdim=True) * e
    k22 = lagrangian.eps / s2 + (nc * n).sum(axis, keepdim=True)
    det = k11 * k22 - k12 * k12
    det = torch.where(count > 0, det, 1.0)
    c1 = (k22 * a1 - k12 * a2) / det
    c2 = (k11 * a2 - k12 * a1) / det
    return -(c1 * e + c2 * n)


def correction(lagrangian: Lagrangian, x: Tensor, g: Tensor, d: Tensor, mask: Tensor) -> Tensor:
    """``z`` with ``H_mm z = H_mc d_c`` for a layer of state ``x`` (activation ``g``, ``d = u - x``) clamped where
    ``mask`` is True; meaningful on the free units (the caller holds the clamped ones). Zero for an additive
    Lagrangian."""
    if not couples(lagrangian):
        return torch.zeros_like(x)
    mask = mask.expand_as(x)
    if isinstance(lagrangian, Spherical):
        z = _spherical(g.flatten(1), d.flatten(1), mask.flatten(1).to(x.dtype))
    elif isinstance(lagrangian, LogSumExp):
        xs, axis = _groups(x, lagrangian.dim, "LogSumExp")
        z = _softmax(
            lagrangian, xs, _groups(d, lagrangian.dim, "")[0], _groups(mask, lagrangian.dim, "")[0], axis
        )
    elif isinstance(lagrangian, LayerNorm):
        xs, axis = _groups(x, lagrangian.dim, "LayerNorm")
        held = _groups(mask, lagrangian.dim, "")[0].to(x.dtype)
        z = _layernorm(lagrangian, xs, _groups(d, lagrangian.dim, "")[0], held, axis)
    else:  # pragma: no cover - refused by check_partial when the plan is made
        raise TypeError(f"no closed form for a partial clamp of {lagrangian!r}")
    return z.reshape(x.shape)
