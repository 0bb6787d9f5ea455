"""What a relaxation can compute once: the plan for fully clamped layers (docs/reference.md §1).

A layer clamped whole (``clamp={"image": True}``) never moves, so within one relaxation

- its activation, Legendre term and input term are constants;
- no force into it is needed (its velocity is zero whatever the force);
- the drive a two-body synapse sends out of it, ``D(g_image)``, is a constant current into the other end; the
  synapse's energy ``-g_other . D(g_image)`` is then that current's input term;
- a many-body term's drives from it add a constant to the integrated layer's potential;
- any other term is differentiated only with respect to the layers that move; a term all of whose layers are
  clamped is a constant energy.

:meth:`Network.prepare` works these out once; :meth:`Network.evaluate` then does per step only what the step
needs. A plan is a mapping of the input currents, so it goes wherever ``inputs`` goes.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Iterator, Mapping, Sequence

import torch
from torch import Tensor

from assocmem.lagrangians.base import sum_features
from assocmem.network.conv import ConvSynapse
from assocmem.network.layer import Layer
from assocmem.network.manybody import ManyBodyTerm
from assocmem.network.partial import check_partial, couples
from assocmem.network.pooling import AvgPoolSynapse
from assocmem.network.state import Clamp
from assocmem.network.synapse import DenseSynapse, Synapse
from assocmem.network.term import EnergyTerm


def fully_clamped(mask: Tensor | bool | None) -> bool:
    """Whether a clamp mask holds every unit of its layer (``True``, or a bool tensor that is all True)."""
    if mask is None or mask is False:
        return False
    return mask is True or bool(mask.all())


_ACCEPTS_TARGETS: dict[type, bool] = {}


def accepts_targets(term: EnergyTerm) -> bool:
    """Whether the term's ``energy_and_forces`` takes ``targets`` (a custom override may not)."""
    cls = type(term)
    if cls not in _ACCEPTS_TARGETS:
        _ACCEPTS_TARGETS[cls] = "targets" in inspect.signature(cls.energy_and_forces).parameters
    return _ACCEPTS_TARGETS[cls]


def _bilinear(term: EnergyTerm) -> bool:
    """A two-body synapse whose energy is the base class's ``-g_post . drive(post, g_pre)``."""
    cls = type(term)
    return (
        isinstance(term, Synapse)
        and cls.energy is Synapse.energy
        and cls.energy_and_forces is Synapse.energy_and_forces
    )


def check_cuts(name: str, layer: Layer, mask: Tensor | bool | None) -> None:
    """Refuse a clamp mask that holds some but not all units of a group the layer's Lagrangian couples
    (network/partial.py); whole groups, additive layers and whole-layer masks pass."""
    if not isinstance(mask, Tensor) or not couples(layer.lagrangian) or not bool(mask.any()):
        return
    if fully_clamped(mask):
        return
    full = torch.broadcast_shapes(mask.shape, (1, *layer.shape))
    check_partial(name, layer.lagrangian, mask.expand(full))


#: Drives that return a new tensor nobody else holds (a product, a convolution, a pooling or its adjoint).
_FRESH_DRIVES = frozenset((DenseSynapse.drive, ConvSynapse.drive, AvgPoolSynapse.drive))


def fresh_forces(term: EnergyTerm) -> bool:
    """Whether the forces the term returns are new tensors nobody else holds, so that :meth:`Network.evaluate`
    may add the other inputs into them in place (with autograd off): a built-in synapse whose drive and energy
    are the library's own."""
    return _bilinear(term) and type(term).drive in _FRESH_DRIVES


class Step:
    """One term to evaluate at every step: in full (``targets`` None), or with forces only into ``targets``; a
    many-body term with clamped neighbours gets its moving ``synapses`` and the constant ``base`` potential.
    ``fresh``: its forces are new tensors (:func:`fresh_forces`)."""

    __slots__ = ("base", "fresh", "synapses", "targets", "term")

    def __init__(
        self,
        term: EnergyTerm,
        targets: Collection[str] | None = None,
        synapses: tuple[Synapse, ...] | None = None,
        base: Tensor | None = None,
    ) -> None:
        self.term, self.targets, self.synapses, self.base = term, targets, synapses, base
        self.fresh = fresh_forces(term)

    def run(
        self, g: Mapping[str, Tensor], inputs: Mapping[str, Tensor], need_energy: bool
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        term, targets = self.term, self.targets
        if targets is None:
            return term.energy_and_forces(g, inputs, need_energy)
        if isinstance(term, ManyBodyTerm):
            u = term.potential(g, synapses=self.synapses, base=self.base)
            return term.respond(u, need_energy, targets)
        if accepts_targets(term):
            return term.energy_and_forces(g, inputs, need_energy, targets=targets)
        energy, forces = term.energy_and_forces(g, inputs, need_energy)
        return energy, {n: f for n, f in forces.items() if n in targets}


class Plan(Mapping[str, Tensor]):
    """The input currents of a relaxation, with what its fully clamped layers contribute computed once.

    Read it as the ``inputs`` mapping it was made from. Its other fields are for :meth:`Network.evaluate`:
    ``fixed`` (names of the fully clamped layers; a mask that cuts through a group of units the layer's
    Lagrangian couples is refused here, network/partial.py), ``x`` and ``g`` (the fully clamped
    layers' states and activations), ``still`` (zeros of their shapes: their ``u - x``), ``currents``
    (per moving layer: its input current plus the constant drives out of clamped layers), ``steps`` (the terms to
    evaluate at every step, each with the layers it must send forces into) and ``grad`` (whether autograd was on
    when it was made: the constants then carry their graph to the weights). The plan assumes the clamped layers
    keep the values they had when it was made, as they do under the dynamics.
    """

    def __init__(
        self,
        layers: Mapping[str, Layer],
        terms: Sequence[EnergyTerm],
        state: Mapping[str, Tensor],
        inputs: Mapping[str, Tensor],
        clamp: Clamp,
    ) -> None:
        self.inputs = dict(inputs)
        self.clamp = clamp
        self.grad = torch.is_grad_enabled()
        self._layers = layers
        self.fixed = frozenset(n for n in layers if fully_clamped(clamp.get(n)))
        for n in layers:
            check_cuts(n, layers[n], clamp.get(n))
        self.x = {n: state[n] for n in layers if n in self.fixed}
        self.g = {n: layers[n].activation(state[n]) for n in layers if n in self.fixed}
        self.still = {n: torch.zeros_like(x) for n, x in self.x.items()}
        self.moving = tuple(n for n in layers if n not in self.fixed)
        self.currents: dict[str, Tensor] = {n: c for n, c in self.inputs.items() if n in layers}
        self.steps: list[Step] = []
        self._constant_terms: list[EnergyTerm] = []
        self._constant: Tensor | float | None = None
        for term in terms:
            self._place(term)

    def _add_current(self, name: str, current: Tensor) -> None:
        self.currents[name] = current if name not in self.currents else self.currents[name] + current

    def _place(self, term: EnergyTerm) -> None:
        held = [n for n in term.layers if n in self.fixed]
        if not held:
            self.steps.append(Step(term))
        elif len(held) == len(term.layers):
            self._constant_terms.append(term)
        elif _bilinear(term):
            assert isinstance(term, Synapse)
            other = term.other(held[0])
            self._add_current(other, term.drive(other, self.g[held[0]]))
        elif isinstance(term, ManyBodyTerm):
            moving = tuple(s for s in term.synapses if s.other(term.hidden) not in self.fixed)
            base = term.potential(
                self.g,
                self.inputs,
                synapses=[s for s in term.synapses if s.other(term.hidden) in self.fixed],
            )
            targets = frozenset(n for n in term.layers if n not in self.fixed)
            self.steps.append(Step(term, targets, moving, base))
        else:
            self.steps.append(Step(term, frozenset(n for n in term.layers if n not in self.fixed)))

    def constant_energy(self) -> Tensor | float:
        """The energy that does not change while the clamped layers hold still (computed on first use): their
        Legendre and input terms, and every term among clamped layers only. Per sample, or 0.0."""
        if self._constant is None:
            total: Tensor | float = 0.0
            for n in self.x:
                total = total + self._layers[n].legendre(self.x[n], self.g[n])
                current = self.inputs.get(n)
                if current is not None:
                    total = total - sum_features(current * self.g[n])
            for term in self._constant_terms:
                total = total + term.energy(self.g, self.inputs)
            self._constant = total
        return self._constant

    # ------------------------------------------------------------ the inputs mapping
    def __getitem__(self, key: str) -> Tensor:
        return self.inputs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.inputs)

    def __len__(self) -> int:
        return len(self.inputs)

    def __repr__(self) -> str:
        return (
            f"Plan(fixed={sorted(self.fixed)}, steps={[step.term.name for step in self.steps]}, "
            f"constant currents into {sorted(self.currents)})"
        )
