"""The microscopic two-body network of Krotov & Hopfield 2021 (docs/reference.md §1).

Feature neurons ``v`` (N of them) and hidden memory neurons ``h`` (K of them) joined by one symmetric synapse
matrix ``xi`` (the stored patterns, shape ``(K, N)``):

    tau_f dv/dt = xi^T f(h) - v + I,     tau_h dh/dt = xi g(v) - h
    E = [(v - I).g - L_v] + [h.f - L_h] - f^T xi g
"""

from __future__ import annotations

from torch import Tensor

from assocmem.checks import where_not_finite
from assocmem.lagrangians import Lagrangian
from assocmem.network import DenseSynapse, Layer, Network

#: Names of the two layers and of the synapse in every preset.
FEATURE, HIDDEN, SYNAPSE = "v", "h", "xi"


def check_patterns(patterns: object, who: str) -> Tensor:
    """Patterns are a floating ``(K, N)`` tensor with at least one memory; anything else is a clear error."""
    if not isinstance(patterns, Tensor):
        raise TypeError(
            f"{who}: patterns must be a torch.Tensor of shape (K, N), got {type(patterns).__name__}"
        )
    if patterns.dim() != 2:
        raise ValueError(
            f"{who}: patterns must have shape (K memories, N features), got {tuple(patterns.shape)}"
        )
    if patterns.shape[0] == 0 or patterns.shape[1] == 0:
        raise ValueError(
            f"{who}: patterns is empty (shape {tuple(patterns.shape)}); store at least one memory"
        )
    if not patterns.is_floating_point():
        raise TypeError(f"{who}: patterns must be floating point, got {patterns.dtype}; use patterns.float()")
    if patterns.is_meta:
        raise ValueError(f"{who}: patterns is on the meta device (a shape without values)")
    found = where_not_finite(patterns.detach())
    if found is not None:
        raise ValueError(f"{who}: patterns holds NaN or Inf (found {found}); every value must be finite")
    return patterns


def microscopic(
    patterns: Tensor,
    feature: Lagrangian,
    hidden: Lagrangian,
    *,
    tau_f: float = 1.0,
    tau_h: float = 1.0,
    reduced: bool = False,
) -> Network:
    """The two-layer network ``v`` (feature, Lagrangian ``feature``) -- ``xi`` -- ``h`` (memories, ``hidden``).

    ``patterns`` (``(K, N)``; an ``nn.Parameter`` makes the memories trainable) is the synapse matrix.
    ``reduced=True`` returns the effective one-layer network with ``h`` integrated out (``tau_h -> 0``):
    ``E_eff(v) = [(v - I).g - L_v] - L_h(xi g(v))``.

    Example: ``microscopic(xi, Identity(), LogSumExp(beta=8.0), tau_h=0.01)`` is model B with explicit memory neurons.
    """
    patterns = check_patterns(patterns, "microscopic")
    k, n = patterns.shape
    net = Network(
        {FEATURE: Layer(n, feature, tau=tau_f), HIDDEN: Layer(k, hidden, tau=tau_h)},
        [DenseSynapse(FEATURE, HIDDEN, patterns, name=SYNAPSE)],
    )
    return net.integrate_out(HIDDEN) if reduced else net
