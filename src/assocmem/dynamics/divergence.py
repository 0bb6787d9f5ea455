"""A relaxation that does not settle: slow, or running away. The errors relax raises, and how it tells them apart.

The exact dynamics never raise the energy when every Lagrangian is convex (docs/reference.md §1), so a state can
fail to settle in two ways only: it is still approaching a fixed point (its speed ``max |dx/dt|`` falling), or the
energy has no lower bound along its path and the state runs away (the energy falling, the speed growing). A third
failure is numerical: an explicit step beyond its stability region makes the energy *rise* and the state blow up,
or cycle (a strong loop under exponential Euler at a large ``dt``: the state swings between two sides of a
minimum, its energy rising by no more than rounding). A falling energy with a growing speed is called a runaway
only where :func:`~assocmem.dynamics.boundedness.bounded_below` cannot certify the energy; where it can, the error
names the step instead.
:class:`Watch` keeps the little relax needs to say which one happened (the energy, speed and state size at the
start, the lowest speed and the largest energy rise since), and builds the error.

A rise counts as the integrator's only when it exceeds the rounding of the energy at the last finite state: the
energy is a sum of terms (the Legendre terms ``x . g`` and ``L(x)``) that grow with the state while the energy
itself may not (a spherical or layer-norm layer's energy does not see its state's scale), so at ``|x| = 1e23`` a
float64 energy of order 1 moves by ``1e7`` from rounding alone. Such a run is reported by the state's growth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from assocmem.dynamics.boundedness import bounded_below
from assocmem.network import Network


class ConvergenceError(RuntimeError):
    """A relaxation (or the adjoint solve of an implicit gradient) did not reach its fixed point.

    Raised by :func:`assocmem.relax` with ``strict=True`` or ``gradient="implicit"`` when some sample is still
    moving at the end; the message says how far it is and which argument to change.
    """


class DivergenceError(ConvergenceError, FloatingPointError):
    """The state ran away instead of settling: it became non-finite, or (``strict=True``) its energy kept falling
    while its speed grew. The message says what diverged and how to bound the energy (docs/dynamics.md)."""


class Watch:
    """The start of a relaxation, its lowest speed and largest energy rises so far, per sample (all detached)."""

    def __init__(self, network: Network, energy: Tensor, speed: Tensor, state: Mapping[str, Tensor]) -> None:
        self.network = network
        self.energy0 = energy.detach()
        self.speed0 = speed.detach()
        self.size0 = _sizes(state)  #: max |x| per layer and sample at the start
        self.least = self.speed0.clone()
        self.last = self.energy0  #: the last finite energy of every sample
        #: per sample, the largest rise of the energy over one recorded step (above 1e-6 relative): beyond the
        #: rounding of the energy at that step's state, and within it
        self.rise = torch.zeros_like(self.energy0)
        self.drift = torch.zeros_like(self.energy0)

    def update(self, speed: Tensor | None, energy: Tensor | None, state: Mapping[str, Tensor]) -> None:
        """Record an accepted step at ``state``: its speed (when known exactly), and its energy when the steps
        compute it."""
        if speed is not None:
            self.least = torch.minimum(self.least, speed.detach())
        if energy is not None:
            energy = energy.detach()
            step = _counted(energy - self.last, self.last)
            if bool((step > 0).any()):  # rare: is it more than rounding at this state?
                noise = _rounding(self.network, state, energy)
                self.rise = torch.maximum(self.rise, torch.where(step > noise, step, 0.0))
                self.drift = torch.maximum(self.drift, torch.where(step > noise, 0.0, step))
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
        adaptive: bool = False,
    ) -> ConvergenceError:
        """The error for a run that ended with samples above ``tol``: a DivergenceError only if a sample runs away
        and the energy is not certified bounded below. ``adaptive``: the steps were error-controlled (the advice
        is then rtol and atol, not dt)."""
        late = speed.detach() > tol
        away = self.running_away(energy, speed) & late
        count, total = int(late.sum()), late.numel()
        rose = late & (self.rise > 0)
        if bool(rose.any()):  # the integrator's failure, whatever the energy's bound: not the network's
            b = int(torch.where(rose, self.rise, -1.0).argmax())
            advice = (
                "Tighten rtol and atol, or use method='stiff'"
                if adaptive
                else "Use a smaller dt, or an adaptive method ('dopri5')"
            )
            return ConvergenceError(
                f"relax: {int(rose.sum())} of {total} samples did not settle by t={t:.4g} and their energy rose "
                f"between two steps (by up to {float(self.rise[b]):.3g}, sample {b}, beyond the rounding of its "
                f"terms), which the exact dynamics never do: the step is beyond the integrator's stability, so the "
                f"state cycles or wanders instead of settling; it says nothing of the network's energy. {advice}"
            )
        if bool(away.any()):
            b = int(torch.where(away, speed.detach(), -1.0).argmax())
            report = bounded_below(network, clamp)
            if report.bounded:  # a proof that it cannot run off: the integrator's step, or a long way to go
                return ConvergenceError(
                    f"relax: {count} of {total} samples did not settle by t={t:.4g} ({budget}): "
                    f"{self._runaway(energy, speed, b)}, but {report}, so the state is not running off: the step "
                    f"is beyond the integrator's stability and the state cycles (its energy rising by no more than "
                    f"rounding), or it is still crossing to a distant minimum. Use a smaller dt or an adaptive "
                    f"method ('dopri5'), or raise t_max"
                )
            return DivergenceError(
                f"relax: the state ran away instead of settling ({int(away.sum())} of {total} samples at t={t:.4g}): "
                f"{self._runaway(energy, speed, b)} and max |x| reached {_size(state, b):.3g}. "
                f"{_bounding_advice(network, clamp, True)}"
            )
        b = int(torch.where(late, speed.detach(), -1.0).argmax())
        return ConvergenceError(
            f"relax: {count} of {total} samples did not settle by t={t:.4g} ({budget}): max |dx/dt| = "
            f"{float(speed[b]):.3g} > tol={tol:g} for sample {b} (it started at {float(self.speed0[b]):.3g} and "
            f"was as low as {float(self.least[b]):.3g}; the energy did not fall without bound): raise t_max or "
            f"max_steps, or loosen tol"
        )

    def blew_up(
        self,
        network: Network,
        clamp: Mapping[str, object],
        energy: Tensor,
        speed: Tensor,
        event: str,
        state: Mapping[str, Tensor],
    ) -> DivergenceError:
        """The error for a state that became non-finite or a step size that underflowed (``event`` says which,
        where and with what); ``energy``/``speed``/``state`` are those of the last finite state.

        A rise of the energy (over any recorded step, or from the start) beyond its rounding at that state means
        the integrator, not the dynamics, failed (the exact flow never raises it); a fall with a growing speed
        means the energy has no lower bound there; a state that grew while the energy moved by no more than
        rounding ran off along a direction the energy does not see."""
        energy = energy.detach()
        start = _counted(energy - self.energy0, self.energy0)
        noise = _rounding(network, state, energy)
        drift = torch.maximum(self.drift, torch.where(start > noise, 0.0, start))
        if bool((self.rise > 0).any() or (start > noise).any()):
            return DivergenceError(
                f"relax: {event} after the energy rose, which the exact dynamics never do: the step is beyond the "
                f"integrator's stability. Use a smaller dt, or method='stiff' or 'exp_euler' when time constants "
                f"differ a lot"
            )
        grew = speed.detach() > self.speed0
        if bool((drift > 0).any()):  # every rise is rounding: say how far the state went
            b = int(drift.argmax())
            name, first, now = self._growth(state, b)
            fell = bool(energy[b] < self.energy0[b] - noise[b])
            return DivergenceError(
                f"relax: {event}: for sample {b} the state of layer {name!r} grew from max |x| = {first:.3g} to "
                f"{now:.3g} while max |dx/dt| went from {float(self.speed0[b]):.3g} to {float(speed[b]):.3g}; the "
                f"energy went from {float(self.energy0[b]):.4g} to {float(energy[b]):.4g}, and its largest rise "
                f"({float(drift[b]):.3g}) is within the rounding of the terms it sums at that size "
                f"({float(noise[b]):.3g} at the last finite state), not an unstable step. "
                f"{_bounding_advice(network, clamp, fell)}"
            )
        if not bool(grew.any()):
            return DivergenceError(
                f"relax: {event}; the energy did not rise and the speed did not grow, so the tolerances may be too "
                f"tight for the dtype (loosen rtol/atol, or use float64)"
            )
        b = int(torch.where(grew, speed.detach(), -1.0).argmax())
        return DivergenceError(
            f"relax: {event}: {self._runaway(energy, speed, b)}. {_bounding_advice(network, clamp, True)}"
        )

    def _growth(self, state: Mapping[str, Tensor], b: int) -> tuple[str, float, float]:
        """The layer whose max |x| grew the most for sample ``b``: its name, size at the start and now."""
        now = _sizes(state)
        ratio = {n: float(now[n][b]) / max(float(self.size0[n][b]), 1e-300) for n in now}
        name = max(ratio, key=lambda n: ratio[n])
        return name, float(self.size0[name][b]), float(now[name][b])


#: how many units of the dtype's rounding (relative to the size of the terms it sums) an energy may move by
#: without counting as a rise: summing n terms loses up to about log2(n) of them
ROUNDING = 64


def _counted(rise: Tensor, before: Tensor) -> Tensor:
    """A rise of the energy from ``before`` where it exceeds 1e-6 relative, else 0 (non-finite: 0)."""
    return torch.where(rise > 1e-6 * (1 + before.abs()), rise, 0.0).nan_to_num(nan=0.0)


def _sizes(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {n: t.detach().flatten(1).abs().amax(1) for n, t in state.items()}


def _rounding(network: Network, state: Mapping[str, Tensor], energy: Tensor) -> Tensor:
    """Per sample, how far rounding alone can move the energy at ``state``: ``ROUNDING * eps`` times the size of
    the terms it sums (every layer's ``|x . g|`` and ``|L(x)|``, and the energy itself)."""
    scale = energy.detach().abs()
    with torch.no_grad():
        for n, x in state.items():
            layer = network.layers[n]
            x = x.detach()
            terms = (x * layer.activation(x)).flatten(1).abs().sum(1) + layer.lagrangian(x).abs()
            scale = scale + torch.nan_to_num(terms, nan=torch.inf)
    return ROUNDING * torch.finfo(energy.dtype).eps * scale


def _size(state: Mapping[str, Tensor], b: int) -> float:
    return max(float(t[b].detach().abs().max()) for t in state.values())


def _bounding_advice(network: Network, clamp: Mapping[str, object], fell: bool) -> str:
    if not fell:  # bounded, yet the state ran off: along a direction the activations do not see
        return (
            "The state ran off along a direction the energy does not see (the scale of a spherical or layer-norm "
            "layer's state, the shift of a softmax's), so the network has no fixed point there: check what drives "
            "that layer's state outward (a custom term or Lagrangian)"
        )
    report = bounded_below(network, clamp)
    why = str(report) if not report.bounded else "its rule is met, so check the many-body and custom terms"
    return (
        f"The energy is not bounded below along this path, so the network has no fixed point there and is not an "
        f"associative memory ({why}). Bound it: give the layers with unbounded activations (ReLU, Identity) "
        f"bounded Lagrangians (Tanh, Sigmoid, LogSumExp, Sparsemax, Entmax15, Spherical, LayerNorm), or keep their "
        f"coupling norm below 1 (assocmem.dynamics.CouplingBound after every optimizer step); docs/dynamics.md, "
        f"'Training through the dynamics'"
    )
