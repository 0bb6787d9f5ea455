"""The network: layers, energy terms, energy, forces and dynamics (docs/reference.md §1 and §4).

    E = sum_A [ x_A . g_A - L_A(x_A) ] + sum_terms E_t(g) - sum_A I_A . g_A
    tau_A dx_A/dt = -dE/dg_A = u_A - x_A,   with   u_A = sum_terms F_t,A(g) + I_A

``u_A`` is the total input into layer ``A`` (the forces ``F = -dE_t/dg_A`` of the terms it takes part in, plus
its current); ``-dE/dg_A`` of the Legendre term is ``x_A``. Along every trajectory
``dE/dt = -sum_A tau_A xdot_A^T Hess(L_A) xdot_A <= 0`` when every Lagrangian is convex. Clamped units keep
their state; a clamp mask may not cut through a group of units that a layer's Lagrangian couples (softmax,
spherical, layer norm: holding their states would not hold their activations, network/partial.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from assocmem.checks import is_count
from assocmem.lagrangians.base import sum_features
from assocmem.network.layer import Layer
from assocmem.network.manybody import ManyBodyTerm
from assocmem.network.plan import Plan
from assocmem.network.state import Clamp, check_clamp, check_inputs, check_state
from assocmem.network.synapse import Synapse
from assocmem.network.term import EnergyTerm, check_layer_name

State = dict[str, Tensor]


@dataclass
class Evaluation:
    """Everything one pass over the network computes at a state ``x``."""

    state: State  #: the state ``x`` it was evaluated at
    g: State  #: activations
    #: total input per layer (equal to ``x`` on clamped units, so their velocity is zero)
    u: State
    energy: Tensor | None  #: per-sample energy, when asked for
    _delta: State | None = None
    #: zeros for the fully clamped layers (their ``u - x``), shared by every evaluation of a relaxation
    still: Mapping[str, Tensor] = field(default_factory=dict)
    #: layers whose ``u`` is a new tensor this evaluation made with autograd off, held by nobody else: a fixed-step
    #: relaxation may turn it into ``u - x`` and then into the next state in place (:meth:`spend`)
    owned: frozenset[str] = frozenset()
    #: ``u - x`` of the layers taken so far one at a time (:meth:`delta_of`)
    _parts: State = field(default_factory=dict)
    #: after :meth:`spend`: the inputs of the owned layers, to be turned into ``u - x`` in place
    _spare: State = field(default_factory=dict)
    #: the layers whose ``u - x`` was computed in place (the step may write the next state into it)
    _scratch: set[str] = field(default_factory=set)
    #: per layer taken so far: ``max |dx/dt|`` of each sample (the stop rule's, ``System.speed``)
    speeds: State = field(default_factory=dict)

    def delta(self) -> State:
        """``u - x = tau dx/dt`` per layer, computed once and shared by every user (update, stop rule)."""
        if self._delta is None:
            self._delta = {n: self.delta_of(n) for n in self.state}
        return self._delta

    def delta_of(self, name: str) -> Tensor:
        """``u - x`` of one layer, computed once (in place in ``u`` after :meth:`spend`)."""
        d = self._parts.get(name)
        if d is None:
            if name in self.still:
                d = self.still[name]
            elif name in self._spare:
                d = self._spare.pop(name).sub_(self.state[name])
                self._scratch.add(name)
            else:
                d = self.u[name] - self.state[name]
            self._parts[name] = d
        return d

    def spend(self) -> None:
        """Let the layers in :attr:`owned` compute ``u - x`` in place in ``u`` from now on, for a fixed-step
        relaxation that needs ``u`` only through ``u - x`` (no new tensor per layer and step; the step may then
        write the next state into ``u - x``). Their inputs leave :attr:`u`: reading them raises a KeyError."""
        spare = {n: self.u[n] for n in self.owned if n in self.u and n not in self._parts}
        if spare:
            self._spare.update(spare)
            self.u = {n: t for n, t in self.u.items() if n not in spare}

    def euler(self, name: str, weight: float) -> Tensor:
        """``x + weight (u - x)`` for one layer (an explicit or exponential Euler step). After :meth:`spend` it is
        written into the memory of ``u - x`` (or of ``u``, as ``torch.lerp``, when ``u - x`` was never asked for),
        which this evaluation then no longer holds."""
        x = self.state[name]
        if name in self._scratch:
            self._scratch.discard(name)
            self._delta = None
            d = self._parts.pop(name)
            return torch.add(x, d, alpha=weight, out=d)
        if name in self._spare:
            u = self._spare.pop(name)
            return torch.lerp(x, u, weight, out=u)
        return torch.add(x, self.delta_of(name), alpha=weight)

    def velocity(self, tau: Mapping[str, float]) -> State:
        """``dx/dt = (u - x) / tau`` per layer."""
        d = self.delta()
        return {n: d[n] if t == 1.0 else d[n] * (1.0 / t) for n, t in tau.items()}


class Network(nn.Module):
    """A network of neuron layers and energy terms (two-body synapses, many-body terms, custom terms).

    ``layers`` maps names to :class:`Layer`; ``synapses`` is a list of :class:`EnergyTerm` (typically
    :class:`DenseSynapse` and :class:`ConvSynapse`). A state is a dict ``name -> (batch, *shape)`` tensor.
    Calling the network returns its energy.

    Example::

        net = Network({"v": Layer(N, Tanh()), "h": Layer(K, LogSumExp(beta))},
                      [DenseSynapse("v", "h", patterns)])
        E = net.energy(state)            # (batch,)
        dx = net.velocity(state)         # {"v": ..., "h": ...}
        reduced = net.integrate_out("h") # one layer, energy -L_h(xi g(v)) + Legendre term
    """

    def __init__(self, layers: Mapping[str, Layer], synapses: Sequence[EnergyTerm] = ()) -> None:
        super().__init__()
        if not isinstance(layers, Mapping) or not layers:
            raise ValueError("Network: layers must be a non-empty dict of name -> Layer")
        for name, layer in layers.items():
            check_layer_name(name, "layer name", "Network")
            if not isinstance(layer, Layer):
                raise TypeError(f"Network: layers[{name!r}] must be a Layer, got {type(layer).__name__}")
        if isinstance(synapses, (EnergyTerm, Mapping)) or not isinstance(synapses, Sequence):
            raise TypeError("Network: synapses must be a list of EnergyTerm (e.g. DenseSynapse)")
        shapes = {name: layer.shape for name, layer in layers.items()}
        seen: set[str] = set()
        for term in synapses:
            if not isinstance(term, EnergyTerm):
                raise TypeError(f"Network: every synapse must be an EnergyTerm, got {type(term).__name__}")
            for name in term.layers:
                if name not in layers:
                    raise KeyError(
                        f"Network: synapse {term.name!r} refers to unknown layer {name!r}; the layers are "
                        f"{', '.join(map(repr, layers))}"
                    )
            if term.name in seen:
                raise ValueError(f"Network: two synapses are named {term.name!r}; give one of them name=...")
            clash = [n for n in term.input_shapes if n in layers]
            if clash:
                raise ValueError(
                    f"Network: term {term.name!r} takes inputs for {clash[0]!r}, which is also a layer"
                )
            seen.add(term.name)
            term.bind(shapes)
        self.layers = nn.ModuleDict(layers)
        self.synapses = nn.ModuleList(synapses)
        self._input_shapes = {n: shape for t in synapses for n, shape in t.input_shapes.items()}

    # ----------------------------------------------------------------- introspection
    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(self.layers.keys())

    def _reference(self) -> Tensor | None:
        for t in self.parameters():
            return t
        for t in self.buffers():
            return t
        return None

    def zero_state(
        self, batch_size: int, *, dtype: torch.dtype | None = None, device: object = None
    ) -> State:
        """A state of zeros for ``batch_size`` samples, with the dtype and device of the weights by default."""
        if not is_count(batch_size, least=0):
            raise ValueError(f"Network.zero_state: batch_size must be an int >= 0, got {batch_size!r}")
        ref = self._reference()
        dtype = dtype or (ref.dtype if ref is not None else torch.get_default_dtype())
        device = device or (ref.device if ref is not None else None)
        return {
            n: torch.zeros((batch_size, *layer.shape), dtype=dtype, device=device)
            for n, layer in self.layers.items()
        }

    def check(
        self, state: object, inputs: object = None, clamp: object = None, finite: bool = True
    ) -> tuple[dict[str, Tensor], Clamp]:
        """Validate a state and the inputs / clamp masks that go with it; return them normalised."""
        batch = check_state(self.layers, state, self._reference(), finite=finite)
        like = next(iter(state.values()))  # type: ignore[union-attr]
        return (
            check_inputs(self.layers, self._input_shapes, inputs, batch, like),
            check_clamp(self.layers, clamp, batch, like),
        )

    # ----------------------------------------------------------------- the energy
    def activations(self, state: Mapping[str, Tensor]) -> State:
        """``g_A = dL_A/dx_A`` for every layer."""
        check_state(self.layers, state, self._reference(), finite=False)
        return {n: layer.activation(state[n]) for n, layer in self.layers.items()}

    def energy_terms(
        self, state: Mapping[str, Tensor], inputs: Mapping[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """The energy split into its terms, each of shape ``(batch,)``.

        Keys: ``"layer:A"`` (Legendre term ``x.g - L``), ``"input:A"`` (``-I.g``), ``"synapse:NAME"`` and
        ``"manybody:NAME"`` (energy terms). They sum to :meth:`energy`.
        """
        inputs, _ = self.check(state, inputs)
        g = {n: layer.activation(state[n]) for n, layer in self.layers.items()}
        terms = {f"layer:{n}": layer.legendre(state[n], g[n]) for n, layer in self.layers.items()}
        for n, current in inputs.items():
            if n in self.layers:
                terms[f"input:{n}"] = -sum_features(current * g[n])
        for term in self.synapses:
            terms[f"{term.kind}:{term.name}"] = term.energy(g, inputs)
        return terms

    def energy(self, state: Mapping[str, Tensor], inputs: Mapping[str, Tensor] | None = None) -> Tensor:
        """Total energy per sample, shape ``(batch,)`` (docs/reference.md §1). Differentiable in states and weights."""
        return torch.stack(list(self.energy_terms(state, inputs).values())).sum(0)

    def forward(self, state: Mapping[str, Tensor], inputs: Mapping[str, Tensor] | None = None) -> Tensor:
        return self.energy(state, inputs)

    # ----------------------------------------------------------------- forces and dynamics
    def prepare(self, state: Mapping[str, Tensor], inputs: Mapping[str, Tensor], clamp: Clamp) -> Plan:
        """What a relaxation from ``state`` computes once (see :class:`~assocmem.network.plan.Plan`): the
        activations of the fully clamped layers, the drives out of them (constant currents) and the terms left
        to evaluate at every step. Arguments must be pre-checked (see :meth:`check`). The plan is a mapping of
        the input currents: pass it to :meth:`evaluate` as ``inputs``, at states whose clamped layers hold the
        values they have in ``state``.

        Example: ``inputs_, clamp_ = net.check(state, None, {"image": True})``;
        ``plan = net.prepare(state, inputs_, clamp_)``; ``net.evaluate(state, plan, clamp_)``.
        """
        if isinstance(inputs, Plan):
            inputs = inputs.inputs
        return Plan(self.layers, self.synapses, state, inputs, clamp)

    def evaluate(
        self,
        state: Mapping[str, Tensor],
        inputs: Mapping[str, Tensor],
        clamp: Clamp,
        need_energy: bool = False,
    ) -> Evaluation:
        """One pass: activations, total inputs ``u`` and (optionally) the energy. Arguments must be pre-checked
        (see :meth:`check`); this is the hot path that :func:`assocmem.relax` calls.

        ``inputs`` may be a :class:`~assocmem.network.plan.Plan` from :meth:`prepare` (what :func:`assocmem.relax`
        passes): then nothing is recomputed for the fully clamped layers. Plain inputs get a plan made on the
        spot, so no force into a fully clamped layer is ever computed. A plan made with autograd off is remade
        when autograd is on, so that the clamped layers' drives carry their graph to the weights.
        """
        plan = inputs if isinstance(inputs, Plan) else None
        if plan is None or (not plan.grad and torch.is_grad_enabled()):
            plan = self.prepare(state, inputs, clamp)
        elif clamp is not plan.clamp and any(n not in clamp for n in plan.fixed):
            raise ValueError(
                f"evaluate: the plan holds layers {sorted(plan.fixed)} clamped but clamp names {sorted(clamp)}; "
                f"prepare a plan with the same clamp"
            )
        g = {
            n: plan.g[n] if n in plan.fixed else layer.activation(state[n])
            for n, layer in self.layers.items()
        }
        u: State = {}
        energy = None
        if need_energy:
            energy = plan.constant_energy()
            for n in plan.moving:
                energy = energy + self.layers[n].legendre(state[n], g[n])
        # With autograd off, a sum the evaluation made itself (or a built-in synapse's fresh drive) takes the next
        # input in place: the same additions in the same order, without a new tensor per addition.
        owned: set[str] | None = None if torch.is_grad_enabled() else set()
        for step in plan.steps:
            e, forces = step.run(g, plan.inputs, need_energy)
            for n, f in forces.items():
                if n not in u:
                    u[n] = f
                    if owned is not None and step.fresh:
                        owned.add(n)
                elif owned is not None and n in owned and f.shape == u[n].shape:
                    u[n].add_(f)
                else:
                    u[n] = u[n] + f
                    if owned is not None:
                        owned.add(n)
            if need_energy:
                energy = energy + e
        for n, x in state.items():
            if n in plan.fixed:
                u[n] = x
                continue
            current = plan.currents.get(n)
            if current is not None:
                if n not in u:
                    u[n] = current.expand_as(x)
                elif owned is not None and n in owned and u[n].shape == x.shape:
                    u[n].add_(current)
                else:
                    u[n] = u[n] + current
                if need_energy:
                    energy = energy - sum_features(current * g[n])
            elif n not in u:
                u[n] = torch.zeros_like(x)
            mask = clamp.get(n)
            if mask is True:
                u[n] = x
            elif mask is not None:
                u[n] = torch.where(mask, x, u[n])
        if owned is not None:  # a sum or a fresh drive the evaluation made, not a state or a shared current
            owned = {
                n
                for n in owned
                if n not in plan.fixed and u[n] is not state[n] and u[n].shape == state[n].shape
            }
        return Evaluation(dict(state), g, u, energy, still=plan.still, owned=frozenset(owned or ()))

    @property
    def tau(self) -> dict[str, float]:
        """Time constant of every layer."""
        return {n: layer.tau for n, layer in self.layers.items()}

    def velocity(
        self,
        state: Mapping[str, Tensor],
        inputs: Mapping[str, Tensor] | None = None,
        clamp: Mapping[str, Tensor | bool] | None = None,
    ) -> State:
        """``dx_A/dt = -(dE/dg_A) / tau_A`` for every layer, in closed form (zero on clamped units)."""
        inputs_, clamp_ = self.check(state, inputs, clamp)
        return self.evaluate(state, inputs_, clamp_).velocity(self.tau)

    # ----------------------------------------------------------------- reduction
    def integrate_out(self, name: str) -> Network:
        """The effective network on the other layers, in the limit ``tau_name -> 0`` (docs/reference.md §1).

        Layer ``name`` and every synapse touching it are replaced by one :class:`ManyBodyTerm`
        ``-L_name(sum_s D_s g_s + I_name)``. The result shares layers and weights with this network, and accepts
        an input current for ``name`` (it adds to the integrated layer's potential). Every term touching ``name``
        must be a two-body :class:`Synapse` (linear in ``g_name``), and ``name`` must not connect to itself.
        """
        if name not in self.layers:
            raise KeyError(
                f"integrate_out: unknown layer {name!r}; the layers are {', '.join(map(repr, self.layers))}"
            )
        if len(self.layers) == 1:
            raise ValueError(f"integrate_out: {name!r} is the network's only layer")
        touching, others = [], []
        for term in self.synapses:
            if name not in term.layers:
                others.append(term)
            elif isinstance(term, Synapse):
                touching.append(term)
            else:
                raise ValueError(
                    f"integrate_out: layer {name!r} enters the energy term {term.name!r} ({type(term).__name__}), "
                    f"which is not linear in its activation; only layers joined by two-body synapses can be "
                    f"integrated out in closed form"
                )
        layer = self.layers[name]
        term = ManyBodyTerm(name, layer.shape, layer.lagrangian, touching)
        layers = {n: lay for n, lay in self.layers.items() if n != name}
        return Network(layers, [*others, term])

    def extra_repr(self) -> str:
        return f"layers={list(self.layers)}, synapses={[t.name for t in self.synapses]}"
