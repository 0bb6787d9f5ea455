"""The key-value memory as the general network: the read-out is one step of a three-layer network.

docs/reference.md §10 and §1. Take three layers -- the input ``"x"`` (``d`` units, ``L_x = 1/2 |x|^2``), the hidden
layer ``"h"`` (``N`` units, ``L_h`` the read-out's Lagrangian of :mod:`~assocmem.keyvalue.readout`) and the output
``"y"`` (``m`` units, ``L_y = 1/2 |y|^2``) -- joined by two dense synapses: the keys ``K`` (x -> h) and the values
``V`` (h -> y). The energy is

    E = [x.g_x - L_x] + [h.f - L_h] + [y.g_y - L_y] - f . K x - y . V f,       f = dL_h/dh.

Integrating the hidden layer out (``tau_h -> 0``, :meth:`assocmem.Network.integrate_out`) leaves the many-body
term ``-L_h(K x + V^T y)``. Clamp the input to the query ``x~``, start the output at ``y = 0`` and take one Euler
step of ``dt = tau_y``: the output lands on

    y~ = V f(K x~),

the memory's read-out. With ``V = K^T`` (an autoassociative memory whose values are its keys) the output and input
layers can be merged into one, and the update becomes model B's ``x <- xi^T f(xi x)`` (§2; the modern Hopfield
network, for the softmax). Later steps add the output's feedback ``V^T y`` to the hidden units' input, which the
paper's feed-forward memory does not have: the equality holds for the first step from ``y = 0``.
"""

from __future__ import annotations

from torch import Tensor

from assocmem.checks import positive_float, require_like, require_tensor, where_not_finite
from assocmem.lagrangians import Identity, Lagrangian
from assocmem.network import DenseSynapse, Layer, Network

#: Names of the layers and synapses of the preset.
INPUT, HIDDEN, OUTPUT, KEYS, VALUES = "x", "h", "y", "K", "V"


def key_value_network(
    keys: Tensor, values: Tensor, lagrangian: Lagrangian, *, tau_hidden: float = 1.0, tau_output: float = 1.0
) -> Network:
    """The three-layer network of one key-value memory: ``keys`` (N, d), ``values`` (m, N), ``lagrangian`` ``L_h``.

    Layers ``"x"``, ``"h"``, ``"y"``; synapses ``"K"`` (x -> h) and ``"V"`` (h -> y), sharing the given tensors.
    ``network.integrate_out("h")`` is the reduced network whose one Euler step from ``y = 0`` with ``x`` clamped
    is the read-out (module docstring).
    """
    who = "key_value_network"
    keys = require_tensor(keys, "keys", who)
    values = require_tensor(values, "values", who)
    if keys.dim() != 2 or keys.numel() == 0:
        raise ValueError(f"{who}: keys must have shape (N, d) with N, d > 0, got {tuple(keys.shape)}")
    n, d = keys.shape
    if values.dim() != 2 or values.shape[1] != n or values.shape[0] == 0:
        raise ValueError(
            f"{who}: values must have shape (m, N) with m > 0 and N = {n} (the keys' rows), got {tuple(values.shape)}"
        )
    require_like(values, "values", keys, "keys", who)
    if not isinstance(lagrangian, Lagrangian):
        raise TypeError(
            f"{who}: lagrangian must be a Lagrangian (the hidden layer's), got {type(lagrangian).__name__}"
        )
    for name, t in (("keys", keys), ("values", values)):  # the network's weights: scanned once, here
        found = where_not_finite(t.detach())
        if found is not None:
            raise ValueError(f"{who}: {name} holds NaN or Inf ({found}); every value must be finite")
    m = values.shape[0]
    tau_hidden = positive_float(tau_hidden, "tau_hidden", who)
    tau_output = positive_float(tau_output, "tau_output", who)
    layers = {
        INPUT: Layer(d, Identity()),
        HIDDEN: Layer(n, lagrangian, tau=tau_hidden),
        OUTPUT: Layer(m, Identity(), tau=tau_output),
    }
    return Network(
        layers,
        [DenseSynapse(INPUT, HIDDEN, keys, name=KEYS), DenseSynapse(HIDDEN, OUTPUT, values, name=VALUES)],
    )
