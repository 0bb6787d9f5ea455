"""The many-body energy term left when a layer is integrated out (docs/reference.md §1, adiabatic limit).

When the time constant of a layer ``h`` goes to zero, its state follows its input at every instant:
``x_h = u_h = sum_s D_s(g_s) + I_h`` (the drives of the synapses that touch it, plus its input current). Putting
that back into the energy, the layer's Legendre term, its synapses and its input term collapse into one term

    E_h = -L_h(u_h)

of the activations of its neighbours: a two-body network becomes a many-body one. With ``u_h = xi g(v)`` this is
``E_eff(v) = [(v - I) . g - L_v] - L_h(xi g(v))``, and with particular Lagrangians it gives models A, B and C.
The force on a neighbour ``A`` is ``D_s^T f(u_h)`` with ``f = dL_h/du``: the hidden layer's activation sent back
through the same synapse.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from torch import Tensor, nn

from assocmem.lagrangians import Lagrangian
from assocmem.network.synapse import Synapse
from assocmem.network.term import EnergyTerm


class ManyBodyTerm(EnergyTerm):
    """``E = -L_h(sum_s D_s(g_s) + I_h)``: the trace of a layer ``hidden`` that was integrated out.

    Built by :meth:`assocmem.Network.integrate_out`; it keeps the original synapses (so the weights are shared
    with the network it came from) and accepts the integrated layer's input current under its old name.
    """

    kind = "manybody"

    def __init__(
        self, hidden: str, shape: tuple[int, ...], lagrangian: Lagrangian, synapses: Sequence[Synapse]
    ) -> None:
        super().__init__()
        if not synapses:
            raise ValueError(
                f"integrate_out: layer {hidden!r} has no synapses; integrating it out leaves a constant"
            )
        for s in synapses:
            if not isinstance(s, Synapse) or hidden not in (s.pre, s.post):
                raise ValueError(
                    f"ManyBodyTerm: every synapse must be a two-body Synapse touching {hidden!r}"
                )
            if s.recurrent:
                raise ValueError(
                    f"integrate_out: layer {hidden!r} has a synapse to itself ({s.name!r}); its adiabatic state "
                    f"would solve an implicit equation, so it cannot be integrated out in closed form"
                )
        self.hidden = hidden
        self.name = hidden
        self.shape = tuple(shape)
        self.lagrangian = lagrangian
        self.synapses = nn.ModuleList(synapses)
        self.layers = tuple(dict.fromkeys(s.other(hidden) for s in synapses))

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """The integrated layer's input current still adds to its potential ``u_h``."""
        return {self.hidden: self.shape}

    def bind(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        full = {**shapes, self.hidden: self.shape}
        for s in self.synapses:
            s.bind(full)

    def potential(
        self,
        g: Mapping[str, Tensor],
        inputs: Mapping[str, Tensor] | None = None,
        synapses: Iterable[Synapse] | None = None,
        base: Tensor | None = None,
    ) -> Tensor:
        """``u_h = sum_s D_s(g_s) + I_h``: the state the integrated layer would hold, shape ``(batch, *shape)``.

        ``synapses`` (default: all) and ``base`` (default: the current ``I_h`` from ``inputs``) let a caller
        that holds some neighbours fixed add their drives once: ``base`` then carries them and the current.
        """
        u = None
        for s in self.synapses if synapses is None else synapses:
            d = s.drive(self.hidden, g[s.other(self.hidden)])
            u = d if u is None else u + d
        if base is None and inputs is not None:
            base = inputs.get(self.hidden)
        if base is None:
            assert u is not None, "a many-body term's potential needs a synapse or a base"
            return u
        return base if u is None else u + base

    def energy(self, g: Mapping[str, Tensor], inputs: Mapping[str, Tensor] | None = None) -> Tensor:
        return -self.lagrangian(self.potential(g, inputs))

    def respond(
        self, u: Tensor, need_energy: bool = True, targets: Collection[str] | None = None
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        """Energy ``-L_h(u)`` and the forces ``D_s^T f(u)`` into the neighbours (those in ``targets``, or all)."""
        f = self.lagrangian.activation(u)
        forces: dict[str, Tensor] = {}
        for s in self.synapses:
            other = s.other(self.hidden)
            if targets is not None and other not in targets:
                continue
            d = s.drive(other, f)
            forces[other] = d if other not in forces else forces[other] + d
        return (-self.lagrangian(u) if need_energy else None), forces

    def energy_and_forces(
        self,
        g: Mapping[str, Tensor],
        inputs: Mapping[str, Tensor] | None = None,
        need_energy: bool = True,
        targets: Collection[str] | None = None,
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        return self.respond(self.potential(g, inputs), need_energy, targets)

    def extra_repr(self) -> str:
        return f"hidden={self.hidden!r}, shape={self.shape}, lagrangian={self.lagrangian!r}"
