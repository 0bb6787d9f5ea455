"""Relaxation: integrate ``tau_A dx_A/dt = -dE/dg_A`` until the state stops moving (docs/reference.md §1)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import replace

import torch
from torch import Tensor

from assocmem.checks import is_count
from assocmem.dynamics.divergence import ConvergenceError, DivergenceError, Watch
from assocmem.dynamics.implicit import Implicit, attach, gradient_mode
from assocmem.dynamics.steppers import METHODS, Stepper
from assocmem.dynamics.system import System
from assocmem.dynamics.trajectory import Trajectory
from assocmem.network import Evaluation, Network, State


def _number(value: object, arg: str, *, positive: bool = True, allow_zero: bool = False) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"relax: {arg} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(
            f"relax: {arg} must be a {'non-negative' if allow_zero else 'positive'} finite number, "
            f"got {value!r}"
        )
    return v


def relax(
    network: Network,
    state: Mapping[str, Tensor],
    *,
    method: str | None = None,
    dt: float | None = None,
    t_max: float = 100.0,
    tol: float = 1e-4,
    inputs: Mapping[str, Tensor] | None = None,
    clamp: Mapping[str, Tensor | bool] | None = None,
    record: bool = True,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    max_steps: int = 1_000_000,
    allow_nonconvex: bool = False,
    gradient: str | Implicit | None = "unrolled",
    strict: bool = False,
) -> Trajectory:
    """Integrate the network's dynamics from ``state`` until every sample has ``max |dx/dt| <= tol`` or ``t_max``.

    The default ``method=None`` (or ``"auto"``) picks ``"stiff"`` when the layers' time constants differ by more
    than a factor of two (``max tau > 2 min tau``, :data:`STIFF_RATIO`: from a ratio of 3 on, dopri5 was measured
    to end at ``t_max`` short of the stop rule where "stiff" settles every sample) and ``"dopri5"`` otherwise;
    ``Trajectory.method`` says which ran.
    Methods: ``"euler"``, ``"exp_euler"`` and ``"rk4"`` (fixed step ``dt``; default ``0.1 min tau``, or
    ``0.1 max tau`` for ``exp_euler``), ``"dopri5"`` (adaptive Dormand-Prince 5(4)) and ``"stiff"`` (adaptive
    exponential trapezoidal rule; use it when some ``tau`` are much smaller than others). Adaptive methods take
    ``dt`` as the first step and control the error with ``rtol``/``atol``. ``tol=0`` disables early stopping.

    ``clamp`` maps layer names to ``True`` (whole layer) or a bool mask of units that keep their value; ``inputs``
    maps layer names (or integrated-out layers) to constant currents. The energy never increases along the
    exact trajectory when every Lagrangian is convex; relax refuses a non-convex one unless
    ``allow_nonconvex=True``. Energies are recorded at every step (detached).

    ``gradient`` says how the final states carry gradients to the weights, the input currents and the clamped
    values (docs/dynamics.md, "Training through the dynamics"; docs/reference.md §4):

    - ``"unrolled"`` (default): autograd records every step and backpropagates through them (any method, a fixed
      number of steps with ``tol=0`` or until converged); memory grows with the steps;
    - ``"implicit"`` or ``Implicit(tol=..., max_steps=..., solver=...)``: the relaxation runs without a graph and
      the backward pass solves the adjoint linear system at the fixed point; memory does not depend on the steps.
      Every sample must converge (else :class:`ConvergenceError`); free initial states get no gradient (the fixed
      point does not depend on them);
    - ``None``: no graph at all (inference).

    Without a graph (``gradient`` ``None`` or ``"implicit"``, or autograd off), ``"euler"`` and ``"exp_euler"``
    reuse each evaluation's memory and take the stop rule's speed from the smallest layers while they already show
    a sample above ``tol``: the same steps to the same states; the returned speed is exact (docs/benchmarks.md, "One
    step of a hierarchical memory").

    A state that becomes non-finite raises :class:`DivergenceError`, saying whether the energy fell without bound
    (bound it: docs/dynamics.md) or the step was too large. With ``strict=True`` (it needs ``tol > 0``) a run that
    ends with a sample above ``tol`` is an error too: :class:`DivergenceError` when the state runs away (energy
    falling, speed growing), else :class:`ConvergenceError` (raise ``t_max``).

    Example: ``traj = relax(net, cue, method="stiff", t_max=50); traj.states["v"], traj.energies``.
    """
    if not isinstance(network, Network):
        raise TypeError(f"relax: network must be an assocmem Network, got {type(network).__name__}")
    if method is None or method == "auto":
        method = auto_method(network.tau)
    if method not in METHODS:
        raise ValueError(
            f"relax: unknown method {method!r}; choose one of {', '.join(map(repr, METHODS))}, or None for auto"
        )
    stepper = METHODS[method]
    t_max = _number(t_max, "t_max")
    tol = _number(tol, "tol", allow_zero=True)
    rtol = _number(rtol, "rtol")
    atol = _number(atol, "atol")
    if dt is not None:
        dt = _number(dt, "dt")
    if not is_count(max_steps):
        raise ValueError(f"relax: max_steps must be a positive int, got {max_steps!r}")
    mode, implicit = gradient_mode(gradient)
    if not isinstance(strict, bool):
        raise TypeError(f"relax: strict must be True or False, got {strict!r}")
    if (strict or mode == "implicit") and tol == 0:
        raise ValueError(
            "relax: strict=True and gradient='implicit' need a fixed point, so tol must be positive (tol=0 runs "
            "to t_max without a stop rule)"
        )
    if not allow_nonconvex:
        for name, layer in network.layers.items():
            if not layer.lagrangian.convex:
                raise ValueError(
                    f"relax: layer {name!r} has a non-convex Lagrangian {layer.lagrangian!r}, so the energy is not "
                    f"guaranteed to decrease and the dynamics may not settle; pass allow_nonconvex=True to "
                    f"integrate anyway"
                )
    inputs_, clamp_ = network.check(state, inputs, clamp)
    want_grad = torch.is_grad_enabled()
    with torch.set_grad_enabled(want_grad and mode == "unrolled"):
        # Without a graph, a fixed-step Euler relaxation reuses the memory of each evaluation's inputs (no new
        # tensor per layer and step) and decides its stop rule from the small layers where they suffice.
        spend = stepper.spends and not torch.is_grad_enabled()
        system = System(network, network.prepare(state, inputs_, clamp_), clamp_, spend)
        traj, watch, energy = _integrate(
            system,
            {n: state[n] for n in network.layers},
            stepper,
            dt,
            t_max,
            tol,
            record,
            rtol,
            atol,
            max_steps,
        )
    settled = bool(traj.converged.all())
    end = float(traj.clock[-1])
    steps = int(traj.steps.max()) if traj.steps.numel() else 0  # an empty batch takes no step
    if not settled and (strict or (mode == "implicit" and want_grad)):
        budget = f"max_steps={max_steps} reached" if steps >= max_steps else f"t_max={t_max:g}"
        error = watch.not_settled(
            network, clamp_, energy, traj.speed, traj.states, tol, end, budget, stepper.adaptive
        )
        if not isinstance(error, DivergenceError) and method == "dopri5" and rtol > 0.1 * tol:
            error = ConvergenceError(f"{error}. {_HOVERING.format(rtol=rtol, atol=atol, tol=tol)}")
        if mode == "implicit" and not strict and not isinstance(error, DivergenceError):
            error = ConvergenceError(
                f"{error} (gradient='implicit' needs a fixed point; or use gradient='unrolled')"
            )
        raise error
    if steps >= max_steps and end < t_max * (1 - 1e-12) and not (tol > 0 and settled):
        warnings.warn(
            f"relax: stopped after max_steps={max_steps} steps at t={end:.4g} < t_max", stacklevel=2
        )
    if mode == "implicit" and want_grad:
        assert implicit is not None
        traj = replace(traj, states=attach(system, state, traj.states, implicit))
    return traj


def _integrate(
    system: System,
    state: State,
    stepper: Stepper,
    dt: float | None,
    t_max: float,
    tol: float,
    record: bool,
    rtol: float,
    atol: float,
    max_steps: int,
) -> tuple[Trajectory, Watch, Tensor]:
    """The integration loop of :func:`relax` on checked arguments; also returns the watch and the final energy."""
    method = stepper.name
    ev = system(state, need_energy=True)
    assert ev.energy is not None
    speed = system.speed(ev)
    watch = Watch(system.network, ev.energy, speed, ev.state)
    # With a spending system the speed of a step is taken smallest layer first, and only until some sample is
    # above tol (System.speed): the stop rule's decision is the same, the watch sees the exact speeds only, and
    # the speed is made exact again before the loop ends.
    bound = tol if system.spend and tol > 0 else None
    times = [0.0]
    energies = [ev.energy.detach()]
    h = dt if dt is not None else stepper.default_dt(system.tau)
    if stepper.adaptive and dt is None:
        h = min(h, _initial_step(system, ev, rtol, atol))
    t = 0.0
    steps = rejected = 0
    while True:
        if tol > 0 and bool((speed <= tol).all()):
            break
        if t >= t_max * (1 - 1e-12) or steps >= max_steps:
            break
        h_try = min(h, t_max - t)
        result = stepper.step(system, ev, h_try, record, rtol, atol)
        if stepper.adaptive:
            assert result.error is not None
            factor = _step_factor(result.error, stepper.error_order)
            if result.error > 1.0:
                rejected += 1
                h = h_try * min(factor, 0.9)
                if h < 1e-12 * max(1.0, t):
                    raise watch.blew_up(
                        system.network,
                        system.clamp,
                        _energy(system, ev, record),
                        speed,
                        f"the step size underflowed at t={t:.6g} with method {method!r}, rtol={rtol:g}, atol={atol:g}",
                        ev.state,
                    )
                continue
            h = h_try * factor
        new_speed = system.speed(result.ev, bound)
        finite = torch.isfinite(new_speed).all()
        if record:  # the energy overflows first (it is quadratic in the state for linear layers)
            assert result.ev.energy is not None
            finite = finite & torch.isfinite(result.ev.energy).all()
        if not bool(finite):
            raise _non_finite(
                system,
                watch,
                ev,
                record,
                speed,
                f"the state (or its energy) became non-finite at t={t + h_try:.6g}",
                method,
                h_try,
            )
        t += h_try
        ev, speed = result.ev, new_speed
        steps += 1
        watch.update(
            None if bound is not None and system.partial(ev) else speed,
            ev.energy if record else None,
            ev.state,
        )
        if record:
            times.append(t)
            assert ev.energy is not None
            energies.append(ev.energy.detach())
    if bound is not None and system.partial(ev):  # the loop ran out of time or steps on a partial speed
        speed = system.speed(ev)
        if not bool(torch.isfinite(speed).all()):
            where = (
                f"the state became non-finite by t={t:.6g} (found by the stop rule's full check at the end)"
            )
            raise _non_finite(system, watch, ev, record, speed, where, method, h)
        watch.update(speed, None, ev.state)
    if not record and steps:
        final = system(ev.state, need_energy=True).energy
        assert final is not None
        times.append(t)
        energies.append(final.detach())
    last_energy = energies[-1]
    ref = energies[0]
    traj = Trajectory(
        states=ev.state,
        energies=torch.stack(energies),
        steps=torch.full(ref.shape, steps, dtype=torch.int64, device=ref.device),
        converged=speed.detach() <= tol,
        clock=torch.tensor(times, dtype=ref.dtype, device=ref.device),
        speed=speed.detach(),
        method=method,
        rejected=rejected,
        evaluations=system.evaluations,
    )
    return traj, watch, last_energy


#: Why dopri5 can end above ``tol`` without running away (docs/dynamics.md, "dopri5 hovering at the stop rule").
_HOVERING = (
    "Near a fixed point dopri5's step grows to the edge of its stability region (h times the fastest decay rate "
    "near -3.3), where its error control (rtol={rtol:g}, atol={atol:g}) no longer damps the fastest mode: the "
    "speed hovers at a level set by rtol and atol, here not far enough below tol={tol:g}. Pass rtol and atol at "
    "most tol / 10, or method='stiff'"
)


def _non_finite(
    system: System,
    watch: Watch,
    ev: Evaluation,
    record: bool,
    speed: Tensor,
    where: str,
    method: str,
    dt: float,
) -> DivergenceError:
    """The error for a state that became non-finite (``ev``, ``speed``: the last evaluation the loop accepted)."""
    return watch.blew_up(
        system.network,
        system.clamp,
        _energy(system, ev, record),
        speed,
        f"{where} with method {method!r} and dt={dt:.3g} (the smallest time constant is "
        f"{min(system.tau.values()):g})",
        ev.state,
    )


def _energy(system: System, ev: Evaluation, record: bool) -> Tensor:
    """The energy at the evaluated state ``ev`` (recomputed when the steps were not asked for it)."""
    if record and ev.energy is not None:
        return ev.energy.detach()
    energy = system(ev.state, need_energy=True).energy
    assert energy is not None
    return energy.detach()


#: ``relax``'s default integrator is ``"stiff"`` when ``max tau / min tau`` exceeds this ratio. Measured by
#: benchmarks/relax_default.py: up to a ratio of 2 dopri5 settles every sample with fewer evaluations on model B;
#: from 3 on it ends at ``t_max = 100`` with most samples short of the stop rule, while "stiff" settles them all
#: (in float32, the default dtype: its step grows to the edge of its stability region, where rounding hides the
#: error; in float64 dopri5 settles them, docs/dynamics.md).
STIFF_RATIO = 2.0


def auto_method(tau: Mapping[str, float]) -> str:
    """``relax``'s default integrator for layers with time constants ``tau``: ``"stiff"`` when the largest is
    more than :data:`STIFF_RATIO` times the smallest, else ``"dopri5"``."""
    return "stiff" if max(tau.values()) > STIFF_RATIO * min(tau.values()) else "dopri5"


def _step_factor(ratio: float, order: int) -> float:
    """Step-size factor from the error ratio (<= 1 accepts): ``0.9 ratio^(-1/order)``, kept within [0.2, 5]."""
    if ratio == 0:
        return 5.0
    if not ratio < math.inf:
        return 0.2
    return min(5.0, max(0.2, 0.9 * ratio ** (-1.0 / order)))


def _initial_step(system: System, ev: Evaluation, rtol: float, atol: float) -> float:
    """Hairer-Norsett-Wanner's first guess ``0.01 |x| / |dx/dt|`` in the error norm."""
    x = ev.state
    v = system.velocity(ev)
    zero = {n: torch.zeros_like(t) for n, t in x.items()}
    d0 = system.error_ratio(x, x, zero, rtol, atol)
    d1 = system.error_ratio(v, x, zero, rtol, atol)
    if d0 < 1e-5 or d1 < 1e-5 or not math.isfinite(d1):
        return 1e-6 * max(system.tau.values())
    return 0.01 * d0 / d1
