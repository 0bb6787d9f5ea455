"""The ODE ``tau_A dx_A/dt = u_A(x) - x_A`` of a network with fixed input currents and clamps.

Every integrator sees the network only through this object: one call evaluates the total inputs ``u`` (and the
energy when asked), and the linear decay ``-x/tau`` stays explicit so that exponential integrators can treat it
exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from assocmem.network import Evaluation, Network, State
from assocmem.network.state import Clamp


class System:
    """A checked network, its inputs and clamps; counts evaluations."""

    def __init__(self, network: Network, inputs: Mapping[str, Tensor], clamp: Clamp) -> None:
        self.network = network
        self.inputs = inputs
        self.clamp = clamp
        self.tau = network.tau
        self.evaluations = 0

    def __call__(self, x: State, need_energy: bool = False) -> Evaluation:
        self.evaluations += 1
        return self.network.evaluate(x, self.inputs, self.clamp, need_energy)

    def velocity(self, ev: Evaluation) -> State:
        return ev.velocity(self.tau)

    def speed(self, ev: Evaluation) -> Tensor:
        """``max |dx/dt|`` over all units of each sample, shape ``(batch,)``."""
        d = ev.delta()
        out = None
        for n, tau in self.tau.items():
            if n in ev.still:  # a fully clamped layer: u - x is zero
                continue
            flat = d[n].flatten(1)
            # max |d| as max(max d, -min d): two vectorised reductions, no temporary (measured 5-15x faster on
            # CPU than vector_norm(ord=inf) or abs().amax(), and 250x faster than torch.aminmax in torch 2.x)
            s = torch.maximum(flat.amax(1), flat.amin(1).neg())
            if tau != 1.0:
                s = s * (1.0 / tau)
            out = s if out is None else torch.maximum(out, s)
        if out is None:  # every layer clamped
            any_layer = next(iter(d.values()))
            return any_layer.new_zeros(any_layer.shape[0])
        return out

    def error_ratio(self, err: State, x0: State, x1: State, rtol: float, atol: float) -> float:
        """Largest per-sample RMS of ``err / (atol + rtol max(|x0|, |x1|))`` (NaN maps to infinity)."""
        total = None
        units = 0
        for n in err:
            scale = torch.maximum(x0[n].detach().abs(), x1[n].detach().abs()).mul_(rtol).add_(atol)
            r = (err[n].detach() / scale).pow(2).flatten(1)
            units += r.shape[1]
            s = r.sum(1)
            total = s if total is None else total + s
        assert total is not None
        if total.numel() == 0:  # an empty batch: no error
            return 0.0
        value = float(torch.sqrt(total.max() / units))
        return value if value == value else float("inf")
