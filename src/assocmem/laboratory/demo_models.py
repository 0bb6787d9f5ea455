"""The six memories of ``assocmem demo``, each with its energy, a short explanation and a uniform recall call.

Every model stores the same ``(K, N)`` +-1 patterns and is given the same +-1 cues, and returns its engine's own
result (a :class:`~assocmem.dynamics.fixed_point.FixedPoint`: final states, the energy of every cue along the
way, steps, convergence), so the demo can tabulate and plot them alike; :func:`readout` is the +-1 picture of
the final state. The gains scale with ``N`` so the models work at any image size:

| model | energy (docs/reference.md section) | dynamics |
|---|---|---|
| classical Hopfield | ``-1/2 sum_{i != j} T_ij s_i s_j``, ``T = xi^T xi`` (§2) | asynchronous sign-of-field sweeps |
| DAM n = 3, n = 10 | ``-sum_mu (xi_mu . s)^n`` (§3) | asynchronous energy-difference sweeps |
| exponential DAM | ``-sum_mu beta^-1 exp(beta xi_mu . s)``, ``beta = 64/N`` (§3) | the same |
| modern Hopfield | ``1/2 |v|^2 - beta^-1 lse(beta xi v)``, ``beta = 20/N`` (s2, B) | ``v <- xi^T softmax(beta xi v)`` |
| microscopic | model B's two-layer energy, ``tau_h = 0.05 tau_f`` (§1) | ``relax(method="stiff")`` |
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from assocmem.dynamics import FixedPoint, relax
from assocmem.engines import BinaryDAM, ClassicalHopfield, retrieve
from assocmem.models import model_b

#: The binary models stop after this many sweeps if they have not settled (they settle in a few).
MAX_SWEEPS = 50


def readout(run: FixedPoint) -> Tensor:
    """The +-1 picture of a recall's final state ``(B, N)``: the sign of the states (of the feature layer ``v``
    for the microscopic network), detached. The binary models' states are +-1 already."""
    states = run.states["v"] if isinstance(run.states, Mapping) else run.states
    return torch.sign(states).detach()


@dataclass(frozen=True)
class DemoModel:
    """A model of the demo: its names, its energy function, a paragraph about it and how it recalls.

    ``recall(patterns, cues, generator, record=True)`` stores ``patterns`` ``(K, N)`` and returns the engine's
    :class:`~assocmem.dynamics.fixed_point.FixedPoint` for the ``cues`` ``(B, N)``, with the energies along the
    way when ``record`` (their ``times`` in the model's own unit, :attr:`clock`).
    ``dense`` marks the models whose capacity exceeds the classical network's ``0.14 N``.
    """

    key: str
    name: str
    energy: str
    about: str
    clock: str
    dense: bool
    recall: Callable[..., FixedPoint]


def _binary(make: Callable[[Tensor], object]) -> Callable[..., FixedPoint]:
    def recall(patterns: Tensor, cues: Tensor, generator: torch.Generator, record: bool = True) -> FixedPoint:
        return make(patterns).recall(
            cues, mode="async", max_steps=MAX_SWEEPS, generator=generator, record=record
        )

    return recall


def _softmax(beta_n: float) -> Callable[..., FixedPoint]:
    def recall(patterns: Tensor, cues: Tensor, generator: torch.Generator, record: bool = True) -> FixedPoint:
        beta = beta_n / patterns.shape[1]
        # record=True even when not asked: retrieve answers a bare tensor unless it records (the energies are cheap)
        return retrieve(patterns, cues, beta=beta, steps=None, tol=1e-4, max_steps=100, record=True)

    return recall


def _microscopic(beta_n: float, tau_h: float) -> Callable[..., FixedPoint]:
    def recall(patterns: Tensor, cues: Tensor, generator: torch.Generator, record: bool = True) -> FixedPoint:
        net = model_b(patterns, beta=beta_n / patterns.shape[1], tau_h=tau_h)
        hidden = torch.zeros(cues.shape[0], patterns.shape[0], dtype=cues.dtype, device=cues.device)
        return relax(net, {"v": cues, "h": hidden}, method="stiff", t_max=30.0, tol=1e-2, record=record)

    return recall


def demo_models() -> list[DemoModel]:
    """The classical network, DAM n = 3 and n = 10, the exponential DAM, the softmax model and the microscopic
    network, in that order (docs/reference.md §1-3)."""
    return [
        DemoModel(
            "classical",
            "Classical Hopfield network",
            "E(σ) = −½ Σ_{i≠j} T_{ij} σ_i σ_j,   T_{ij} = Σ_μ ξ_{μi} ξ_{μj}",
            "Hopfield (1982): Hebbian couplings between pairs of neurons, and each neuron in turn takes the sign of "
            "its input field. It stores about 0.14 N random patterns; beyond that load the stored patterns stop "
            "being attractors: the energy still goes down, but into spurious minima that are no stored picture.",
            "sweeps",
            False,
            _binary(ClassicalHopfield),
        ),
        DemoModel(
            "dam3",
            "Dense Associative Memory, n = 3",
            "E(σ) = −Σ_μ (ξ_μ · σ)³",
            "Krotov & Hopfield (2016): an energy that grows faster than quadratically separates the memories; the "
            "capacity grows as N^{n−1}, i.e. N² here. A neuron flips when flipping lowers the energy (the "
            "energy-difference update).",
            "sweeps",
            True,
            _binary(lambda xi: BinaryDAM(xi, F="power", n=3)),
        ),
        DemoModel(
            "dam10",
            "Dense Associative Memory, n = 10",
            "E(σ) = −Σ_μ (ξ_μ · σ)¹⁰",
            "The same network with n = 10: capacity of order N⁹, and basins of attraction so deep that heavily "
            "corrupted cues still fall back into their memory. With an even n the inverted image −ξ is a memory too.",
            "sweeps",
            True,
            _binary(lambda xi: BinaryDAM(xi, F="power", n=10)),
        ),
        DemoModel(
            "exp",
            "Exponential DAM",
            "E(σ) = −Σ_μ β⁻¹ exp(β ξ_μ · σ),   β = 64/N",
            "Demircigil et al. (2017): an exponential interaction gives a capacity exponential in N, with large "
            "basins of attraction.",
            "sweeps",
            True,
            _binary(lambda xi: BinaryDAM(xi, F="exp", beta=64.0 / xi.shape[1])),
        ),
        DemoModel(
            "softmax",
            "Modern Hopfield network (softmax)",
            "E(v) = ½ |v|² − β⁻¹ log Σ_μ exp(β ξ_μ · v),   β = 20/N",
            "Model B of Krotov & Hopfield (2021), the modern Hopfield network of Ramsauer et al. (2020): continuous "
            "neurons, and one update v ← ξᵀ softmax(β ξ v) is the attention of a transformer. Read out as sign(v).",
            "updates",
            True,
            _softmax(20.0),
        ),
        DemoModel(
            "microscopic",
            "Microscopic two-layer network",
            "E(v, h) = [v·g − L_v] + [h·f − L_h] − fᵀ ξ g,   L_v = ½|v|²,  L_h = β⁻¹ log Σ_μ exp(β h_μ)",
            "The theory behind all of the above (Krotov & Hopfield 2021): feature neurons v and one memory neuron "
            "h_μ per pattern, joined only by two-body synapses ξ, with τ_h = 0.05 τ_f. Integrating out the fast "
            "memory neurons gives the softmax model. The memory neurons start at rest (h = 0), so the energy starts "
            'higher than the softmax model\'s; the differential equations are integrated with relax(method="stiff").',
            "time (τ_f)",
            True,
            _microscopic(20.0, 0.05),
        ),
    ]
