"""Implicit differentiation at a fixed point: the adjoint of ``x = u(x)`` on the free units (docs/reference.md §4).

At a fixed point every free unit satisfies ``x_A = u_A(g(x), theta)``; clamped units are constants given by the
caller. A loss ``l(x*)`` then has the gradient, for anything ``theta`` the inputs ``u`` depend on (weights, input
currents, clamped values),

    dl/dtheta = w . du/dtheta,     (1 - J^T) w = dl/dx   on the free units,   J = du/dx,

which needs one linear solve, whatever the number of steps the relaxation took: the forward pass runs without a
graph and the memory does not grow with the steps. The solve uses Jacobian-vector products of one evaluation of
the network at the fixed point, from autograd. Writing ``M`` for the Hessian of the layers' Lagrangians
(``dg/dx``, symmetric) and ``H`` for the Hessian of the energy terms in the activations, ``J = -H M``, so with
``w = b + M y`` the system becomes ``(M + M H M) y = -M H b``: the Hessian of the energy in the states,
symmetric and positive definite at a stable fixed point, solved by conjugate gradients. That substitution is
taken only where no clamp mask lies on a layer whose ``M`` couples its units (softmax, spherical, layer norm, whose
masks hold whole groups, network/partial.py); there, and for non-convex Lagrangians, restarted GMRES solves the
first form directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from assocmem.checks import is_count
from assocmem.dynamics.divergence import ConvergenceError
from assocmem.dynamics.krylov import Vector, cg, dot, gmres
from assocmem.dynamics.system import System
from assocmem.lagrangians import AdditiveLagrangian
from assocmem.network import Network, State
from assocmem.network.state import Clamp

SOLVERS = ("auto", "cg", "gmres")


@dataclass(frozen=True)
class Implicit:
    """Options of :func:`assocmem.relax`'s implicit gradient (``gradient=Implicit(...)``; ``"implicit"`` takes
    the defaults).

    - ``tol``: the adjoint solve stops when every sample's residual ``|(1 - J^T) w - dl/dx|`` is at most ``tol``
      times ``|dl/dx|``; the result is checked against the same bound;
    - ``max_steps``: the most Jacobian-vector products the solve may use (the Krylov iterations);
    - ``solver``: ``"cg"`` (conjugate gradients on the symmetric form), ``"gmres"`` (restarted GMRES on the
      plain form, for any network) or ``"auto"``: CG where the symmetric form holds, else GMRES; CG that meets a
      direction of non-positive curvature (a saddle, not a minimum) hands over to GMRES.

    A solve that misses ``tol`` within ``max_steps`` raises :class:`ConvergenceError`, naming these options.
    """

    tol: float = 1e-5
    max_steps: int = 200
    solver: str = "auto"

    def __post_init__(self) -> None:
        if not (isinstance(self.tol, (int, float)) and 0 < self.tol < 1 and math.isfinite(self.tol)):
            raise ValueError(f"Implicit: tol must be a number in (0, 1), got {self.tol!r}")
        if not is_count(self.max_steps):
            raise ValueError(f"Implicit: max_steps must be a positive int, got {self.max_steps!r}")
        if self.solver not in SOLVERS:
            raise ValueError(
                f"Implicit: solver must be one of {', '.join(map(repr, SOLVERS))}, got {self.solver!r}"
            )


#: The values of relax's ``gradient`` argument.
GRADIENTS = ("unrolled", "implicit", None)


def gradient_mode(value: object) -> tuple[str | None, Implicit | None]:
    """relax's ``gradient`` argument as (mode, implicit options)."""
    if isinstance(value, Implicit):
        return "implicit", value
    if value == "implicit":
        return "implicit", Implicit()
    if value is None or value == "unrolled":
        return value, None  # type: ignore[return-value]
    raise ValueError(
        f"relax: gradient must be 'unrolled' (backpropagate through the steps), 'implicit' or an Implicit(...) "
        f"(solve the adjoint at the fixed point) or None (no graph), got {value!r}"
    )


def attach(system: System, start: Mapping[str, Tensor], fixed: State, options: Implicit) -> State:
    """The fixed point ``fixed`` (found without a graph) with the implicit gradient attached.

    One evaluation ``u(x*)`` with a graph carries the gradient to the weights, the input currents and the clamped
    values (taken from ``start``, so their own graph is kept); its output passes through the adjoint solve on the
    way back. The values returned are exactly ``fixed``.
    """
    clamp = system.clamp
    x = {}
    for n, xn in fixed.items():
        mask = clamp.get(n)
        x[n] = start[n] if mask is True else xn if mask is None else torch.where(mask, start[n], xn)
    ev = system.network.evaluate(x, system.inputs, clamp)
    names = list(fixed)
    if not any(ev.u[n].requires_grad for n in names):
        return fixed
    constants = {n: t.detach() for n, t in system.inputs.items()}
    adjoint = Adjoint(system.network, {n: t.detach() for n, t in x.items()}, constants, clamp, options)
    z = _AdjointIdentity.apply(adjoint, *(ev.u[n] for n in names))
    return {n: fixed[n] + (zn - zn.detach()) for n, zn in zip(names, z, strict=True)}


class _AdjointIdentity(torch.autograd.Function):
    """The identity on the way forward; on the way back, the incoming ``dl/dx`` becomes the adjoint ``w``."""

    @staticmethod
    def forward(ctx: FunctionCtx, adjoint: Adjoint, *u: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        ctx.adjoint = adjoint  # type: ignore[attr-defined]
        return tuple(t.clone() for t in u)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, *grads: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        return (None, *ctx.adjoint.solve(list(grads)))  # type: ignore[attr-defined]


class Adjoint:
    """The adjoint system at a fixed point ``x`` (detached), solved for any right-hand side ``dl/dx``."""

    def __init__(
        self,
        network: Network,
        x: State,
        inputs: Mapping[str, Tensor],
        clamp: Clamp,
        options: Implicit,
    ) -> None:
        self.network, self.x, self.inputs, self.clamp, self.options = network, x, inputs, clamp, options
        self.names = list(x)
        self.free = [n for n in self.names if clamp.get(n) is not True]
        #: per free layer: None (every unit free) or the 0/1 multiplier of the free units
        self.keep = {}
        for n in self.free:
            mask = clamp.get(n)
            self.keep[n] = None if mask is None else (~mask).to(x[n].dtype).expand_as(x[n])
        solver = options.solver
        if solver == "auto":
            solver = "cg" if self.symmetric() else "gmres"
        self.solver = solver

    def symmetric(self) -> bool:
        """Whether ``M + M H M`` is the system: convex Lagrangians, and a mask only on layers with diagonal ``M``."""
        for n in self.free:
            lagrangian = self.network.layers[n].lagrangian
            if not lagrangian.convex:
                return False
            if self.keep[n] is not None and not isinstance(lagrangian, AdditiveLagrangian):
                return False
        return True

    def _free(self, v: Vector) -> Vector:
        return [t if self.keep[n] is None else t * self.keep[n] for n, t in zip(self.free, v, strict=True)]

    def solve(self, grads: list[Tensor | None]) -> list[Tensor | None]:
        """``w`` on the free units (the incoming gradient passes unchanged to the clamped ones)."""
        given = dict(zip(self.names, grads, strict=True))
        b = self._free([torch.zeros_like(self.x[n]) if given[n] is None else given[n] for n in self.free])
        norm_b = dot(b, b).sqrt() if b else None
        if norm_b is None or not bool((norm_b > 0).any()):
            return grads
        with torch.enable_grad():
            w = self._solve(b, norm_b)
        out = dict(given)
        for n, wn in zip(self.free, w, strict=True):
            keep, g = self.keep[n], given[n]
            out[n] = wn if keep is None or g is None else wn + g * (1 - keep)
        return [out[n] for n in self.names]

    def _solve(self, b: Vector, norm_b: Tensor) -> Vector:
        leaves = {n: t.detach().requires_grad_(n in self.keep) for n, t in self.x.items()}
        ev = self.network.evaluate(leaves, self.inputs, self.clamp)
        xs = [leaves[n] for n in self.free]

        def vjp(outputs: list[Tensor], v: Vector) -> Vector:
            pairs = [(o, t) for o, t in zip(outputs, v, strict=True) if o.requires_grad]
            if not pairs:
                return [torch.zeros_like(x) for x in xs]
            got = torch.autograd.grad(
                [o for o, _ in pairs], xs, [t for _, t in pairs], retain_graph=True, allow_unused=True
            )
            return self._free([torch.zeros_like(x) if g is None else g for x, g in zip(xs, got, strict=True)])

        us, gs = [ev.u[n] for n in self.free], [ev.g[n] for n in self.free]

        def plain(v: Vector) -> Vector:  # (1 - J^T) v on the free units
            return [s - t for s, t in zip(v, vjp(us, v), strict=True)]

        def hessian(v: Vector) -> Vector:  # M v
            return vjp(gs, v)

        tol, budget = self.options.tol, self.options.max_steps
        goal = tol * norm_b
        w = [torch.zeros_like(t) for t in b]
        residual, solver, used, breakdown, stalled = b, self.solver, 0, None, False
        worst = None
        while True:  # solve, then refine with the true residual until it meets the goal
            size = dot(residual, residual).sqrt()
            failing = size > goal
            if not bool(failing.any()) or used >= budget:
                break
            now = float((size / norm_b.clamp_min(torch.finfo(size.dtype).tiny))[failing].max())
            if worst is not None and now > 0.5 * worst:  # a round that does not halve it: rounding stops it
                stalled = True
                break
            worst = now
            if solver == "cg":  # the correction is r + M y with (M + M H M) y = J^T r, all on the free units
                rhs = [s - t for s, t in zip(residual, plain(residual), strict=True)]
                sol = cg(lambda y: plain(hessian(y)), rhs, goal, budget - used - 1)
                step = [s + t for s, t in zip(residual, hessian(sol.x), strict=True)]
                used += sol.products + 2
                if bool(sol.breakdown.any()):
                    breakdown = sol.breakdown
                    if self.options.solver != "auto":
                        break
                    solver, worst = "gmres", None  # GMRES gets a round of its own
            else:
                sol = gmres(plain, residual, goal, budget - used)
                step, used = sol.x, used + sol.products
            w = [s + t for s, t in zip(w, step, strict=True)]
            residual = [s - t for s, t in zip(b, plain(w), strict=True)]
            used += 1
        size = dot(residual, residual).sqrt()
        failed = size > goal
        if bool(failed.any()):
            worst = float((size / norm_b.clamp_min(torch.finfo(size.dtype).tiny)).max())
            saddle = (
                ""
                if breakdown is None
                else f"; conjugate gradients met non-positive curvature for {int(breakdown.sum())} sample(s) (the "
                f"fixed point is not a minimum of the energy there)"
            )
            if stalled:
                saddle += (
                    f"; it stalled: rounding in {size.dtype} stops it there (use float64 or a looser tol)"
                )
            raise ConvergenceError(
                f"implicit gradient: the adjoint solve did not reach tol={tol:g} for {int(failed.sum())} of "
                f"{failed.numel()} samples (relative residual up to {worst:.3g} after {used} Jacobian-vector "
                f"products, solver {self.solver!r}){saddle}. Allow more products with "
                f"gradient=Implicit(max_steps=...) (now {budget}), loosen Implicit(tol=...), try "
                f"Implicit(solver='gmres'), or use gradient='unrolled'"
            )
        return w
