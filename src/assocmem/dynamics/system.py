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

    def __init__(
        self, network: Network, inputs: Mapping[str, Tensor], clamp: Clamp, spend: bool = False
    ) -> None:
        self.network = network
        self.inputs = inputs
        self.clamp = clamp
        self.tau = network.tau
        self.evaluations = 0
        #: whether every evaluation is :meth:`~Evaluation.spend`-t (a fixed-step Euler relaxation, autograd off)
        self.spend = spend
        #: the layers, smallest first: the order in which :meth:`speed` takes them
        self.order = sorted(network.layers, key=lambda n: network.layers[n].size)

    def __call__(self, x: State, need_energy: bool = False) -> Evaluation:
        self.evaluations += 1
        ev = self.network.evaluate(x, self.inputs, self.clamp, need_energy)
        if self.spend:
            ev.spend()
        return ev

    def velocity(self, ev: Evaluation) -> State:
        return ev.velocity(self.tau)

    def speed(self, ev: Evaluation, bound: float | None = None) -> Tensor:
        """``max |dx/dt|`` over all units of each sample, shape ``(batch,)``.

        With ``bound``, the layers are taken smallest first and the rest are left as soon as some sample is above
        ``bound``: the result is then a lower bound of the speed (:meth:`partial` says so) that already decides
        the stop rule ``all(speed <= bound)`` (it fails), for the cost of the small layers. Called again without
        ``bound``, it finishes the layers left."""
        out = None
        for n in self.order:
            if n in ev.still:  # a fully clamped layer: u - x is zero
                continue
            s = ev.speeds.get(n)
            if s is None:
                flat = ev.delta_of(n).flatten(1)
                # max |d| as max(max d, -min d): two vectorised reductions, no temporary (measured 5-15x faster on
                # CPU than vector_norm(ord=inf) or abs().amax(), and 250x faster than torch.aminmax in torch 2.x)
                s = torch.maximum(flat.amax(1), flat.amin(1).neg())
                tau = self.tau[n]
                if tau != 1.0:
                    s = s * (1.0 / tau)
                ev.speeds[n] = s
            out = s if out is None else torch.maximum(out, s)
            if bound is not None and bool((out > bound).any()):
                break
        if out is None:  # every layer clamped
            any_layer = next(iter(ev.state.values()))
            return any_layer.new_zeros(any_layer.shape[0])
        return out

    def partial(self, ev: Evaluation) -> bool:
        """Whether :meth:`speed` left some layer of ``ev`` out (its result a lower bound)."""
        return any(n not in ev.speeds and n not in ev.still for n in self.order)

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
