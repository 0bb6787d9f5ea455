"""One step of each integration method for ``tau dx/dt = u(x) - x`` (docs/reference.md §1).

Fixed step: ``euler``, ``exp_euler`` (integrating factor: the decay is exact, stable at any dt), ``rk4``.
Adaptive, error-controlled: ``dopri5`` (Dormand-Prince 5(4), first-same-as-last) and ``stiff``, a second-order
exponential trapezoidal rule that treats every layer's decay ``-x/tau`` exactly, so a fast layer
(tau_h << tau_f) neither limits the step nor destabilises it: at ``dt >> tau_h`` it sits on its adiabatic value
``x_h = u_h``, which is the reduced network of :meth:`Network.integrate_out`.

Every stepper takes the evaluation at the current state (its first stage, already computed; ``ev.state`` is
the state) and returns the evaluation at the next state, so each state is evaluated once and the energy comes with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from assocmem.dynamics.system import System
from assocmem.network import Evaluation, State


@dataclass
class Step:
    ev: Evaluation  #: the evaluation at the new state (``ev.state``), reused by the next step
    error: float | None = None  #: error ratio (<= 1 accepts) for adaptive methods


def _combine(x: State, h: float, ks: list[tuple[float, State]]) -> State:
    """``x + h * sum_i c_i k_i`` per layer (terms with c_i = 0 skipped)."""
    out = {}
    for n, xn in x.items():
        acc = xn
        for c, k in ks:
            if c:
                acc = torch.add(acc, k[n], alpha=h * c)
        out[n] = acc
    return out


class Stepper:
    name = ""
    adaptive = False
    #: whether a step needs an evaluation's inputs ``u`` only through ``u - x``, once (then, with autograd off,
    #: relax lets it reuse their memory: :meth:`Evaluation.spend`)
    spends = False
    #: exponent q of the step-size controller, ``h_new = h * ratio^(-1/q)``
    error_order = 1

    def default_dt(self, tau: dict[str, float]) -> float:
        return 0.1 * min(tau.values())

    def step(
        self, sys: System, ev: Evaluation, h: float, need_energy: bool, rtol: float, atol: float
    ) -> Step:  # pragma: no cover - abstract
        raise NotImplementedError


class Euler(Stepper):
    """``x <- x + (dt / tau) (u - x)``; ``u - x`` is shared with the convergence check."""

    name = "euler"
    spends = True

    def weight(self, h: float, tau: float) -> float:
        return h / tau

    def step(
        self, sys: System, ev: Evaluation, h: float, need_energy: bool, rtol: float, atol: float
    ) -> Step:
        x = ev.state
        # A fully clamped layer keeps its tensor, with no pass over it (detached when autograd is off, as the
        # addition's result would be: the implicit gradient must not reach a clamped value through the state).
        # The others move by x + w (u - x), written into the memory of u - x where the evaluation owns it
        # (Evaluation.spend: autograd off, the old evaluation is not used again).
        keep = (lambda t: t) if torch.is_grad_enabled() else Tensor.detach
        new = {
            n: keep(x[n]) if n in ev.still else ev.euler(n, self.weight(h, tau)) for n, tau in sys.tau.items()
        }
        return Step(sys(new, need_energy))


class ExpEuler(Euler):
    """``x <- e x + (1 - e) u`` with ``e = exp(-dt/tau)``: exact decay, stable at any dt (integrating factor)."""

    name = "exp_euler"

    def default_dt(self, tau: dict[str, float]) -> float:
        return 0.1 * max(tau.values())

    def weight(self, h: float, tau: float) -> float:
        return -math.expm1(-h / tau)


class RK4(Stepper):
    """Classical fourth-order Runge-Kutta."""

    name = "rk4"

    def step(
        self, sys: System, ev: Evaluation, h: float, need_energy: bool, rtol: float, atol: float
    ) -> Step:
        x = ev.state
        k1 = sys.velocity(ev)
        x2 = _combine(x, h, [(0.5, k1)])
        k2 = sys.velocity(sys(x2))
        x3 = _combine(x, h, [(0.5, k2)])
        k3 = sys.velocity(sys(x3))
        x4 = _combine(x, h, [(1.0, k3)])
        k4 = sys.velocity(sys(x4))
        new = _combine(x, h, [(1 / 6, k1), (1 / 3, k2), (1 / 3, k3), (1 / 6, k4)])
        return Step(sys(new, need_energy))


# Dormand & Prince (1980) RK5(4)7FM: stage coefficients, 5th-order weights, and error weights (5th - 4th).
_DP_A = [
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
]
_DP_B = [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]
_DP_E = [71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40]


class Dopri5(Stepper):
    """Dormand-Prince 5(4) with first-same-as-last: six new evaluations per step, local extrapolation."""

    name = "dopri5"
    adaptive = True
    error_order = 5

    def step(
        self, sys: System, ev: Evaluation, h: float, need_energy: bool, rtol: float, atol: float
    ) -> Step:
        x = ev.state
        ks = [sys.velocity(ev)]
        for row in _DP_A:
            xi = _combine(x, h, list(zip(row, ks, strict=True)))
            ks.append(sys.velocity(sys(xi)))
        new = _combine(x, h, list(zip(_DP_B, ks, strict=True)))
        ev_new = sys(new, need_energy)
        ks.append(sys.velocity(ev_new))
        err = _combine({n: torch.zeros_like(t) for n, t in x.items()}, h, list(zip(_DP_E, ks, strict=True)))
        return Step(ev_new, sys.error_ratio(err, x, new, rtol, atol))


class Stiff(Stepper):
    """Adaptive exponential trapezoidal rule: exact for every layer's linear decay, stable at any step.

    With ``r = dt/tau``, ``e = exp(-r)`` and ``phi = (e - 1 + r) / r`` per layer, the step solves

        x_new = a + phi (u(x_new) - u(x)),     a = e x + (1 - e) u(x)

    (the input ``u`` varies linearly over the step) by two fixed-point sweeps started at the exponential-Euler
    predictor ``a``. One sweep is the ETD2RK method of Cox & Matthews (2002), which drops to first order when a
    fast layer (``tau_h << dt``) feeds a slow one: the fast layer's predictor still answers the old slow state.
    The second sweep passes the slow layer's move through the fast layer (the contraction per two sweeps is
    O(dt), independent of ``tau_h``), restoring second order. The error estimate is the last sweep's correction,
    divided per layer by ``1 + r`` as in Radau5's filtered estimate, so a fast layer's error, which it forgets
    within ``tau_h``, does not shrink the step. Three evaluations per step; at ``dt >> tau_h`` a fast layer sits
    on its adiabatic value ``x_h = u_h``, the reduced network of :meth:`Network.integrate_out`.
    """

    name = "stiff"
    adaptive = True
    error_order = 3

    def default_dt(self, tau: dict[str, float]) -> float:
        return 0.1 * max(tau.values())

    def step(
        self, sys: System, ev: Evaluation, h: float, need_energy: bool, rtol: float, atol: float
    ) -> Step:
        x = ev.state
        w, phi, damp = {}, {}, {}
        for n, tau in sys.tau.items():
            r = h / tau
            em1 = math.expm1(-r)  # e - 1
            w[n] = -em1
            phi[n] = (em1 + r) / r if r > 1e-6 else 0.5 * r
            damp[n] = 1.0 / (1.0 + r)
        u0, d0 = ev.u, ev.delta()
        a = {n: torch.add(x[n], d0[n], alpha=w[n]) for n in x}
        ua = sys(a).u
        first = {n: torch.add(a[n], ua[n] - u0[n], alpha=phi[n]) for n in x}
        u1 = sys(first).u
        new = {
            n: torch.add(a[n], u1[n] - u0[n], alpha=phi[n]) for n in x
        }  # the state's order, as every stepper
        err = {n: (new[n] - first[n]) * damp[n] for n in x}
        return Step(sys(new, need_energy), sys.error_ratio(err, x, new, rtol, atol))


METHODS: dict[str, Stepper] = {s.name: s for s in (Euler(), ExpEuler(), RK4(), Dopri5(), Stiff())}
