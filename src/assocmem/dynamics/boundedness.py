"""Is the energy bounded below? The condition for a network to have fixed points, and a constraint that keeps it.

A relaxation reaches a fixed point only if the energy it descends is bounded below (docs/reference.md §1 and §4).
Training changes the weights, and nothing in a loss keeps that true: a network of ReLU layers can learn couplings
under which its energy falls without bound, and its "relaxation" becomes a feed-forward pass that never settles.
The rule, per free layer ``A`` (clamped layers are constants) and its activation ``g_A``:

- a **bounded** activation (``Tanh``, ``Sigmoid``, ``LogSumExp``/softmax, ``Spherical``, ``LayerNorm``, ``Abs``):
  every term of such layers alone is bounded, and its coupling to any other layer is linear in that layer's ``g``;
- a **linear** activation (``Identity``, ``ReLU``; ``RePU(2)`` with gain 2): the Legendre term is
  ``|g|^2 / (2 gain)``, so two-body synapses among such layers, with the block operator ``W`` (``W g`` is their
  forces), keep the energy bounded below when ``|sqrt(gain) W sqrt(gain)| < 1`` (the quadratic part
  ``1/2 g.(1/gain - W) g`` is then positive definite and every other part is at most linear in these ``g``);
- any other activation (growing faster than linearly, or unknown) is bounded only through linear couplings: two-body
  synapses to bounded or clamped layers.

A many-body term (an integrated-out layer) whose Lagrangian has a bounded activation grows at most linearly and is
harmless; any other term touching a free layer with an unbounded activation cannot be certified here.
:func:`bounded_below` applies the rule; :class:`CouplingBound` enforces the coupling condition after every
optimizer step by rescaling the trainable synapses among linear layers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from assocmem import lagrangians as L
from assocmem.checks import is_count
from assocmem.network import ManyBodyTerm, Network, Synapse
from assocmem.network.state import Clamp, check_clamp
from assocmem.network.term import EnergyTerm

_BOUNDED = (L.Tanh, L.Sigmoid, L.LogSumExp, L.Sparsemax, L.Entmax15, L.Spherical, L.LayerNorm, L.Abs)


def growth(lagrangian: L.Lagrangian) -> tuple[str, float]:
    """How a layer's activation grows: ``("bounded", 0)``, ``("linear", gain)`` or ``("other", 0)``."""
    if isinstance(lagrangian, _BOUNDED):
        return "bounded", 0.0
    if isinstance(lagrangian, (L.Identity, L.ReLU)):
        return "linear", 1.0
    if isinstance(lagrangian, L.RePU) and lagrangian.n in (1, 2):
        return ("bounded", 0.0) if lagrangian.n == 1 else ("linear", 2.0)
    return "other", 0.0


@dataclass(frozen=True)
class Boundedness:
    """What :func:`bounded_below` found. ``bounded`` is the certificate (a sufficient condition);
    ``coupling`` the norm ``|sqrt(gain) W sqrt(gain)|`` among the free linear layers ``linear`` (0 when there
    are none); ``reasons`` says what stands in the way, empty when ``bounded``."""

    bounded: bool
    coupling: float
    linear: tuple[str, ...]
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        if self.bounded:
            return (
                f"the energy is bounded below (coupling among the linear layers {list(self.linear)}: "
                f"{self.coupling:.3g} < 1)"
                if self.linear
                else "the energy is bounded below (no two free layers with unbounded activations are coupled)"
            )
        return "the energy is not certified bounded below: " + "; ".join(self.reasons)


def _classes(network: Network, clamp: Clamp) -> dict[str, tuple[str, float]]:
    """Growth of every free layer (a layer clamped whole is a constant and left out)."""
    return {n: growth(layer.lagrangian) for n, layer in network.layers.items() if not _whole(clamp.get(n))}


def _checked(network: object, clamp: object, iterations: object, who: str) -> Clamp:
    """The arguments shared by :func:`bounded_below` and :class:`CouplingBound`, checked (relax's clamp rule; the
    batch is the masks' own, one sample when none has a batch dimension); the clamp normalised."""
    if not isinstance(network, Network):
        raise TypeError(f"{who}: network must be an assocmem Network, got {type(network).__name__}")
    if not is_count(iterations):
        raise ValueError(f"{who}: iterations must be a positive int, got {iterations!r}")
    if clamp is None:
        return {}
    if not isinstance(clamp, Mapping):
        raise TypeError(f"{who}: clamp must be a dict of layer name -> bool mask, got {type(clamp).__name__}")
    batch = max(
        (
            m.shape[0]
            for n, m in clamp.items()
            if isinstance(m, Tensor) and n in network.layers and m.dim() == len(network.layers[n].shape) + 1
        ),
        default=1,
    )
    like = next(iter(network.zero_state(0).values()))
    try:
        return check_clamp(network.layers, clamp, batch, like)
    except KeyError as err:  # an unknown layer: a wrong value, not a missing key
        raise ValueError(f"{who}: {err.args[0]}") from None
    except (TypeError, ValueError) as err:
        raise type(err)(f"{who}: {err}") from None


def _whole(mask: object) -> bool:
    """Whether a clamp entry holds the whole layer: ``True`` or an all-True mask."""
    return mask is True or (isinstance(mask, Tensor) and mask.dtype == torch.bool and bool(mask.all()))


def _couplings(network: Network, kinds: Mapping[str, tuple[str, float]]) -> tuple[list[Synapse], list[str]]:
    """The synapses among free linear layers, and the reasons (terms) that defeat the certificate."""
    unbounded = {n for n, (kind, _) in kinds.items() if kind != "bounded"}
    couplings, reasons = [], []
    for term in network.synapses:
        touched = [n for n in term.layers if n in unbounded]
        if not touched:
            continue
        if isinstance(term, Synapse):
            if len(touched) == 1 and not term.recurrent:
                continue  # linear in the one unbounded layer
            if all(kinds[n][0] == "linear" for n in touched):
                couplings.append(term)
            else:
                others = [n for n in touched if kinds[n][0] != "linear"]
                reasons.append(
                    f"synapse {term.name!r} couples layer {others[0]!r} (activation growing faster than linearly, "
                    f"{network.layers[others[0]].lagrangian!r}) to a free layer with an unbounded activation"
                )
        elif isinstance(term, ManyBodyTerm) and growth(term.lagrangian)[0] == "bounded":
            continue  # -L_h of a Lipschitz L_h grows at most linearly
        else:
            reasons.append(
                f"{_describe(term)} touches free layer(s) {touched} with unbounded activations; give them bounded "
                f"Lagrangians (Tanh, Sigmoid, LogSumExp, Sparsemax, Entmax15, Spherical, LayerNorm) to certify it"
            )
    return couplings, reasons


def _describe(term: EnergyTerm) -> str:
    return f"energy term {term.name!r} ({type(term).__name__})"


Vector = dict[str, Tensor]
Operator = Callable[[Vector], Vector]


def _coupling_operator(synapses: list[Synapse], gains: Mapping[str, float]) -> Operator:
    """``v -> sqrt(gain) W sqrt(gain) v`` for the two-body synapses ``synapses``."""

    def apply(v: dict[str, Tensor]) -> dict[str, Tensor]:
        scaled = {n: t * gains[n] ** 0.5 for n, t in v.items()}
        out = {n: torch.zeros_like(t) for n, t in v.items()}
        for s in synapses:
            _, forces = s.energy_and_forces(scaled, None, need_energy=False)
            for n, f in forces.items():
                out[n] = out[n] + f * gains[n] ** 0.5
        return out

    return apply


def _power(apply: Operator, v: Vector, iterations: int) -> tuple[float, Vector]:
    """Power iteration: ``|A v|`` after ``iterations`` steps (a lower estimate of ``|A|`` for symmetric ``A``)."""
    norm = 0.0
    for _ in range(iterations):
        w = apply(v)
        size = float(torch.sqrt(sum((t * t).sum() for t in w.values())))
        norm = size
        if size == 0:
            return 0.0, v
        v = {n: t / size for n, t in w.items()}
    return norm, v


def _start(network: Network, names: list[str], seed: int = 0) -> dict[str, Tensor]:
    """A fixed random unit vector on the layers ``names`` (one sample; the weights' dtype and device)."""
    zeros = network.zero_state(1)
    gen = torch.Generator().manual_seed(seed)
    v = {n: torch.randn(zeros[n].shape, generator=gen, dtype=zeros[n].dtype) for n in names}
    size = torch.sqrt(sum((t * t).sum() for t in v.values()))
    return {n: (t / size).to(zeros[n].device) for n, t in v.items()}


def bounded_below(
    network: Network, clamp: Mapping[str, object] | None = None, *, iterations: int = 200
) -> Boundedness:
    """Whether the energy of ``network`` is bounded below when the layers in ``clamp`` are held (a sufficient
    condition: the rule of :mod:`assocmem.dynamics.boundedness`). ``clamp`` is relax's argument (a layer given
    ``True`` or an all-True mask is a constant; a partly clamped layer counts as free). The coupling norm comes
    from ``iterations`` steps of power iteration.

    Example: ``bounded_below(net, clamp={"image": True})`` -> ``Boundedness(bounded=True, coupling=0.8, ...)``.
    """
    kinds = _classes(network, _checked(network, clamp, iterations, "bounded_below"))
    couplings, reasons = _couplings(network, kinds)
    linear = sorted({n for s in couplings for n in s.layers})
    norm = 0.0
    if couplings:
        gains = {n: kinds[n][1] for n in linear}
        with torch.no_grad():
            norm, _ = _power(_coupling_operator(couplings, gains), _start(network, linear), iterations)
        if norm >= 1:
            names = ", ".join(repr(s.name) for s in couplings)
            reasons.append(
                f"the synapses {names} among the free layers {linear} with linear activations have coupling "
                f"norm {norm:.3g} >= 1 (the energy falls without bound along its top singular vector); keep it "
                f"below 1 with assocmem.dynamics.CouplingBound after every optimizer step, or give these layers "
                f"bounded Lagrangians"
            )
    return Boundedness(not reasons, norm, tuple(linear), tuple(reasons))


class CouplingBound:
    """Keeps the coupling norm among the free linear layers of ``network`` at most ``bound`` (< 1).

    Call it after every optimizer step: it estimates the norm by ``iterations`` steps of power iteration, warm
    started from the previous call's vector (100 steps at construction), and when the norm exceeds ``bound`` it
    rescales the trainable weights of those synapses (a projection onto the set ``norm <= bound`` along the
    current weights). A fixed synapse (a
    buffer, or a term without a ``weight``) is kept; the trainable ones are then scaled to
    ``(bound - |fixed|) / |trainable|`` (the triangle inequality). Power iteration approaches the norm from below,
    so ``bound`` keeps a margin (0.9 by default); :func:`bounded_below` checks with more iterations. Returns the
    factor applied (1.0 when none).

    Example::

        bound = CouplingBound(net, clamp={"image": True})
        for batch in data:
            loss(...).backward(); opt.step(); opt.zero_grad(); bound()
    """

    def __init__(
        self,
        network: Network,
        bound: float = 0.9,
        clamp: Mapping[str, object] | None = None,
        iterations: int = 10,
    ) -> None:
        clamp = _checked(network, clamp, iterations, "CouplingBound")
        if isinstance(bound, bool) or not (isinstance(bound, (int, float)) and 0 < bound < 1):
            raise ValueError(f"CouplingBound: bound must be a number in (0, 1), got {bound!r}")
        kinds = _classes(network, clamp)
        couplings, reasons = _couplings(network, kinds)
        if reasons:
            raise ValueError("CouplingBound: " + "; ".join(reasons))
        self.network, self.bound, self.iterations = network, float(bound), iterations
        linear = sorted({n for s in couplings for n in s.layers})
        gains = {n: kinds[n][1] for n in linear}
        trainable = [s for s in couplings if isinstance(getattr(s, "weight", None), torch.nn.Parameter)]
        fixed = [s for s in couplings if s not in trainable]
        self.trainable = trainable
        self._all = _coupling_operator(couplings, gains)
        self._trainable = _coupling_operator(trainable, gains)
        self._v = _start(network, linear) if couplings else {}
        self._w = dict(self._v)
        with torch.no_grad():  # the fixed part once, and a warm start for the rest
            self.fixed = _power(_coupling_operator(fixed, gains), dict(self._v), 200)[0] if fixed else 0.0
            if couplings:
                self._v = _power(self._all, self._v, 100)[1]
                self._w = _power(self._trainable, self._w, 100)[1] if fixed and trainable else self._w
        if fixed and self.fixed >= bound:
            raise ValueError(
                f"CouplingBound: the fixed synapses {[s.name for s in fixed]} alone have coupling norm "
                f"{self.fixed:.3g} >= bound={bound:g}; nothing trainable can bring it below"
            )

    def __call__(self) -> float:
        if not self.trainable:
            return 1.0
        with torch.no_grad():
            norm, self._v = _power(self._all, self._v, self.iterations)
            if norm <= self.bound:
                return 1.0
            if self.fixed:
                part, self._w = _power(self._trainable, self._w, self.iterations)
                factor = (self.bound - self.fixed) / part
            else:
                factor = self.bound / norm
            for s in self.trainable:
                s.weight.mul_(factor)
        return factor
