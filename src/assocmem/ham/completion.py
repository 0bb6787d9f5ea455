"""Completing an image of spherical neurons whose visible pixels are known (docs/ham.md, "Completing a masked
image").

The reconstruction network's energy depends on the image only through its activation ``g = x / |x|``:
``E = F(g) = -(1/beta) lse(beta xi g)``. The visible pixels are known as activations: the clean unit-norm image's
pixels ``c``. Holding their *states* ``x_c = c`` (``relax(..., clamp=mask)``) does not hold their activations:
``g_c = c / |x|`` shrinks when the hidden part grows, and with the descending motion of network/partial.py the
hidden part moves exactly as

    dx_m/dt = u_m - lam x_m,        lam = (c . u_c) / |c|^2,        u = xi^T softmax(beta xi g),

so where the memories the state selects barely overlap the visible pixels (``lam`` near 0) the relaxation time
``1 / lam`` diverges and the fixed point ``x_m = u_m / lam`` lies far out, and where ``lam <= 0`` there is none:
``|x_m|`` grows without bound while the energy falls towards its value with the visible pixels scaled away.

Here the visible activations are held, ``g_c = c``, and the hidden ones move on the rest of the unit sphere,
``|g_m| = rho = sqrt(1 - |c|^2)``: a compact set, on which the energy has a minimum. On the hidden pixels alone
the energy is that of a spherical layer of radius ``rho`` (Lagrangian ``rho |x_m|``, ``g_m = rho x_m / |x_m|``,
Legendre term zero) coupled to the memories, whose potential gets the visible pixels' constant share
``xi_c c`` as an input current:

    E(x_m) = -(1/beta) lse(beta (xi_m g_m + xi_c c)) = F(g_m, c),

the library's network with the memory layer integrated out. Its dynamics ``dx_m/dt = u_m - x_m`` are those of an
unclamped spherical layer: the energy never increases, ``|x_m|`` stays below 1, and a fixed point ``x_m = u_m`` is
a stationary point of ``F`` on the constraint set (``u_m = -dF/dg_m`` parallel to ``g_m``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from assocmem.dynamics import Trajectory, relax
from assocmem.lagrangians import Lagrangian, LogSumExp
from assocmem.lagrangians.base import check_batched
from assocmem.network import DenseSynapse, Layer, Network

#: the layer names of the completion network
HIDDEN, MEMORIES = "hidden", "memories"


class SphereOfRadius(Lagrangian):
    """``L = rho_b |x_b|`` per sample ``b``, ``g = rho_b x / |x|``: spherical neurons whose activations have the
    length ``rho_b`` of their own sample (a tensor ``(batch,)``, fixed for one relaxation)."""

    convex = True

    def __init__(self, radius: Tensor) -> None:
        super().__init__()
        if not isinstance(radius, Tensor) or radius.dim() != 1 or not bool((radius > 0).all()):
            raise ValueError(
                f"SphereOfRadius: radius must be a 1-d tensor of positive lengths, got {radius!r}"
            )
        self.register_buffer("radius", radius)

    def _rows(self, x: Tensor) -> Tensor:
        if x.shape[0] != self.radius.shape[0]:
            raise ValueError(
                f"SphereOfRadius: a batch of {x.shape[0]} states for {self.radius.shape[0]} radii (one per sample)"
            )
        return self.radius.to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        check_batched(x, "SphereOfRadius")
        return self._rows(x) * torch.linalg.vector_norm(x.flatten(1), dim=1)

    def activation(self, x: Tensor) -> Tensor:
        check_batched(x, "SphereOfRadius")
        norm = torch.linalg.vector_norm(x.flatten(1), dim=1)
        scale = torch.where(norm > 0, self._rows(x) / norm.clamp_min(torch.finfo(x.dtype).tiny), 0.0)
        return x * scale.reshape((-1,) + (1,) * (x.dim() - 1))


def completion_network(xi: Tensor, beta: float, hidden: Tensor, visible: Tensor) -> tuple[Network, Tensor]:
    """The network on the hidden pixels of images whose visible activations are ``visible`` (``(N, D)``; only
    the pixels where ``hidden`` (bool ``(D,)``) is False are read), for unit memories ``xi`` ``(K, D)`` at
    inverse temperature ``beta``; returns it and the memories' input current ``xi_c c`` ``(N, K)``.

    The visible part's length must be below 1 (the hidden pixels get the rest of the unit sphere)."""
    if hidden.dtype != torch.bool or hidden.shape != (xi.shape[1],):
        raise ValueError(f"completion_network: hidden must be a bool mask of the {xi.shape[1]} pixels")
    if not bool(hidden.any()) or bool(hidden.all()):
        raise ValueError("completion_network: hidden must hide some pixels and leave some visible")
    seen = visible[:, ~hidden]
    rest = 1.0 - seen.pow(2).sum(1)
    if not bool(torch.isfinite(seen).all()) or not bool((rest > 0).all()):
        raise ValueError(
            "completion_network: the visible pixels must be finite with length below 1 (the pixels of a "
            "unit-norm image, some of them hidden)"
        )
    xi = xi.detach()
    layers = {
        HIDDEN: Layer(int(hidden.sum()), SphereOfRadius(rest.sqrt())),
        MEMORIES: Layer(xi.shape[0], LogSumExp(beta)),
    }
    network = Network(layers, [DenseSynapse(HIDDEN, MEMORIES, xi[:, hidden])]).integrate_out(MEMORIES)
    return network.to(visible.dtype), seen @ xi[:, ~hidden].T.to(visible.dtype)


@torch.no_grad()
def complete(
    xi: Tensor,
    beta: float,
    clean: Tensor,
    hidden: Tensor,
    *,
    tol: float = 1e-4,
    t_max: float = 1000.0,
    rtol: float = 1e-5,
    strict: bool = True,
) -> tuple[Tensor, Trajectory]:
    """Relax the ``hidden`` pixels of unit-norm images ``clean`` (``(N, D)``) with the visible ones held at
    their activations (dopri5 until ``max |dx/dt| <= tol``; with ``strict`` a relaxation that does not settle by
    ``t_max`` is an error). The hidden pixels start equal (a flat grey of the right length). Returns the whole
    images' activations at the fixed point ``(N, D)`` (unit length, the visible pixels those of ``clean``) and
    the trajectory of the hidden pixels' relaxation (its energies are ``F`` of the whole images)."""
    network, current = completion_network(xi, beta, hidden, clean)
    start = torch.ones(clean.shape[0], int(hidden.sum()), dtype=clean.dtype)
    traj = relax(
        network,
        {HIDDEN: start},
        method="dopri5",
        tol=tol,
        t_max=t_max,
        inputs={MEMORIES: current},
        gradient=None,
        strict=strict,
        rtol=rtol,
        atol=rtol / 10,
    )
    g = network.layers[HIDDEN].activation(traj.states[HIDDEN])
    whole = clean.clone()
    whole[:, hidden] = g
    return whole, traj
