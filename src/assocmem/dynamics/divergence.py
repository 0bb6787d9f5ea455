"""A relaxation that does not settle: slow, or running away. The errors relax raises, and how it tells them apart.

The exact dynamics never raise the energy when every Lagrangian is convex (docs/reference.md §1), so a state can
fail to settle in two ways only: it is still approaching a fixed point (its speed ``max |dx/dt|`` falling), or the
energy has no lower bound along its path and the state runs away (the energy falling, the speed growing). A third
failure is numerical: an explicit step beyond its stability region makes the energy *rise* and the state blow up.
:class:`Watch` keeps the little relax needs to say which one happened (the energy and speed at the start, the
lowest speed since), and builds the error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from assocmem.dynamics.boundedness import bounded_below
from assocmem.network import Network
from assocmem.network.plan import cuts


class ConvergenceError(RuntimeError):
    """A relaxation (or the adjoint solve of an implicit gradient) did not reach its fixed point.

    Raised by :func:`assocmem.relax` with ``strict=True`` or ``gradient="implicit"`` when some sample is still
    moving at the end; the message says how far it is and which argument to change.
    """


class DivergenceError(ConvergenceError, FloatingPointError):
    """The state ran away instead of settling: it became non-finite, or (``strict=True``) its energy kept falling
    while its speed grew. The message says what diverged and how to bound the energy (docs/dynamics.md)."""


class Watch:
    """The start of a relaxation and its lowest speed so far, per sample (all detached)."""

    def __init__(self, energy: Tensor, speed: Tensor) -> None:
        self.energy0 = energy.detach()
        self.speed0 = speed.detach()
        self.least = self.speed0.clone()
        self.last = self.energy0  #: the last finite energy of every sample
        self.rose = torch.zeros_like(self.speed0, dtype=torch.bool)  #: whether a step raised the energy

    def update(self, speed: Tensor | None, energy: Tensor | None) -> None:
        """Record an accepted step: its speed (when known exactly), and its energy when the steps compute it."""
        if speed is not None:
            self.least = torch.minimum(self.least, speed.detach())
        if energy is not None:
            energy = energy.detach()
            self.rose |= energy - self.last > 1e-6 * (1 + self.last.abs())
            self.last = torch.where(torch.isfinite(energy), energy, self.last)

    def running_away(self, energy: Tensor, speed: Tensor) -> Tensor:
        """Per sample: the speed grew past its start and to more than twice its lowest value, while the energy
        fell or overflowed (a state approaching a fixed point slows down; one escaping along an unbounded direction
        speeds up)."""
        speed = speed.detach()
        return (speed > self.speed0) & (speed > 2 * self.least) & ~(energy.detach() >= self.energy0)

    def _runaway(self, energy: Tensor, speed: Tensor, b: int) -> str:
        """How sample ``b`` ran away: its energy's fall and its speed's growth."""
        e = float(energy[b])
        fell = f"{e:.4g}" if math.isfinite(e) else f"{float(self.last[b]):.4g} and then overflowed"
        return (
            f"for sample {b} the energy fell from {float(self.energy0[b]):.4g} to {fell} while max |dx/dt| grew "
            f"from {float(self.speed0[b]):.3g} to {float(speed[b]):.3g}"
        )

    def not_settled(
        self,
        network: Network,
        clamp: Mapping[str, object],
        energy: Tensor,
        speed: Tensor,
        state: Mapping[str, Tensor],
        tol: float,
        t: float,
        budget: str,
    ) -> ConvergenceError:
        """The error for a run that ended with samples above ``tol``: a DivergenceError if any runs away."""
        late = speed.detach() > tol
        away = self.running_away(energy, speed) & late
        count, total = int(late.sum()), late.numel()
        if bool(away.any()):
            b = int(torch.where(away, speed.detach(), -1.0).argmax())
            return DivergenceError(
                f"relax: the state ran away instead of settling ({int(away.sum())} of {total} samples at t={t:.4g}): "
                f"{self._runaway(energy, speed, b)} and max |x| reached {_size(state, b):.3g}. "
                f"{_bounding_advice(network, clamp)}"
            )
        b = int(torch.where(late, speed.detach(), -1.0).argmax())
        return ConvergenceError(
            f"relax: {count} of {total} samples did not settle by t={t:.4g} ({budget}): max |dx/dt| = "
            f"{float(speed[b]):.3g} > tol={tol:g} for sample {b} (it started at {float(self.speed0[b]):.3g} and "
            f"was as low as {float(self.least[b]):.3g}; the energy did not fall without bound): raise t_max or "
            f"max_steps, or loosen tol"
        )

    def blew_up(
        self, network: Network, clamp: Mapping[str, object], energy: Tensor, speed: Tensor, event: str
    ) -> DivergenceError:
        """The error for a state that became non-finite or a step size that underflowed (``event`` says which,
        where and with what); ``energy``/``speed`` are those of the last finite state.

        A rise of the energy (over any recorded step, or from the start) means the integrator, not the dynamics,
        failed (the exact flow never raises it); a fall with a growing speed means the energy has no lower bound
        there."""
        rise = self.rose | (energy.detach() - self.energy0 > 1e-6 * (1 + self.energy0.abs()))
        if bool(rise.any()):
            return DivergenceError(
                f"relax: {event} after the energy rose, which the exact dynamics never do: the step is beyond the "
                f"integrator's stability. Use a smaller dt, or method='stiff' or 'exp_euler' when time constants "
                f"differ a lot"
            )
        grew = speed.detach() > self.speed0
        if not bool(grew.any()):
            return DivergenceError(
                f"relax: {event}; the energy did not rise and the speed did not grow, so the tolerances may be too "
                f"tight for the dtype (loosen rtol/atol, or use float64)"
            )
        b = int(torch.where(grew, speed.detach(), -1.0).argmax())
        return DivergenceError(
            f"relax: {event}: {self._runaway(energy, speed, b)}. {_bounding_advice(network, clamp)}"
        )


def _size(state: Mapping[str, Tensor], b: int) -> float:
    return max(float(t[b].detach().abs().max()) for t in state.values())


def _bounding_advice(network: Network, clamp: Mapping[str, object]) -> str:
    cut = [n for n, mask in clamp.items() if isinstance(mask, Tensor) and cuts(n, network.layers[n], mask)]
    if cut:  # the energy is bounded below there, but its infimum over the free units may lie at infinity
        return (
            f"Layer {cut[0]!r} is clamped in part and its Lagrangian {network.layers[cut[0]].lagrangian!r} couples "
            f"its units, so its free units descend the energy over them alone (docs/dynamics.md, 'Clamping part of "
            f"a layer'); that energy has no minimum here: it keeps falling as the free units grow and the clamped "
            f"units' share of the activation vanishes (the clamped values disagree with what the network prefers). "
            f"Clamp values the network can complete, clamp the whole layer, or give the clamped units an additive "
            f"Lagrangian (Identity) or feed them as input currents"
        )
    report = bounded_below(network, clamp)
    why = str(report) if not report.bounded else "its rule is met, so check the many-body and custom terms"
    return (
        f"The energy is not bounded below along this path, so the network has no fixed point there and is not an "
        f"associative memory ({why}). Bound it: give the layers with unbounded activations (ReLU, Identity) "
        f"bounded Lagrangians (Tanh, Sigmoid, LogSumExp, Spherical, LayerNorm), or keep their coupling norm below 1 "
        f"(assocmem.dynamics.CouplingBound after every optimizer step); docs/dynamics.md, 'Training through the "
        f"dynamics'"
    )
