"""Training through the dynamics: unrolled and implicit gradients agree, match finite differences, and the
implicit one needs memory independent of the number of steps (docs/dynamics.md, docs/reference.md §4)."""

import pytest
import torch

import assocmem as am
from assocmem.dynamics import ConvergenceError, Implicit
from tests.trainable_networks import CASES, F64

pytestmark = pytest.mark.usefixtures("one_thread")

#: A fixed point to (nearly) machine precision: max |dx/dt| <= TOL. Exponential Euler with a large step reaches it
#: in the fewest evaluations (its fixed points are exactly the network's: x = u(x)).
TOL = 1e-11
CONVERGED = {"method": "exp_euler", "dt": 0.5, "tol": TOL, "t_max": 500.0}


def _params(case, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {k: t.requires_grad_(True) for k, t in case.params(gen).items()}


def _loss(states, seed=7):
    """A fixed random functional of every layer: linear plus a small quadratic part."""
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    for name in sorted(states):
        x = states[name]
        c = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        total = total + (c * x).sum() + 0.1 * (x * x).sum()
    return total


def _relax(case, p, gradient, **kwargs):
    prob = case.build(p)
    return am.relax(
        prob.network, prob.state, clamp=prob.clamp, inputs=prob.inputs, gradient=gradient, **kwargs
    )


def _gradient(case, gradient, **kwargs):
    p = _params(case)
    traj = _relax(case, p, gradient, **kwargs)
    assert traj.converged.all(), traj
    grads = torch.autograd.grad(_loss(traj.states), list(p.values()), allow_unused=True)
    return torch.cat(
        [
            torch.zeros_like(t).flatten() if g is None else g.flatten()
            for t, g in zip(p.values(), grads, strict=True)
        ]
    )


@pytest.mark.parametrize("name", list(CASES))
def test_implicit_and_unrolled_gradients_agree_at_the_fixed_point(name):
    """Both are the gradient of the fixed point. Tolerance: the run stops at max |dx/dt| <= TOL = 1e-11, so the
    state is within about TOL / lambda_min of the fixed point (lambda_min, the slowest decay rate of the
    linearised dynamics, is 0.1-1 here), and the unrolled gradient's transient part has decayed by the same
    factor; the adjoint solve is asked for a 1e-12 relative residual. Agreement to 1e-7 relative is 1e4 times
    TOL: room for the conditioning, while a wrong sign or a missing term (a clamped unit's adjoint, a force
    into a clamped layer, the Lagrangian's Hessian) shows at order 1e-2 or more. Measured: at most 7.2e-10 (conv)."""
    case = CASES[name]
    unrolled = _gradient(case, "unrolled", **CONVERGED)
    implicit = _gradient(case, Implicit(tol=1e-12), **CONVERGED)
    error = float((implicit - unrolled).norm() / unrolled.norm())
    assert error <= 1e-7, f"{name}: relative difference {error:.3g}"
    if name in ("dense", "conv"):  # the two solvers solve one system
        gmres = _gradient(case, Implicit(tol=1e-12, solver="gmres"), **CONVERGED)
        assert float((gmres - implicit).norm() / implicit.norm()) <= 1e-9


@pytest.mark.parametrize("method", list(am.dynamics.METHODS))
def test_backpropagating_through_every_integrator_reaches_the_implicit_gradient(method):
    """Unrolled until max |dx/dt| <= 1e-7 (the adaptive methods with rtol = 1e-7): within 1e-5 relative of the
    implicit gradient (measured 7e-8 to 3e-7: a few tol, the distance to the fixed point over the slowest
    decay rate)."""
    case = CASES["dense"]
    implicit = _gradient(case, Implicit(tol=1e-12), **CONVERGED)
    run = {"method": method, "tol": 1e-7, "t_max": 500.0, "rtol": 1e-7, "atol": 1e-9}
    if method in ("euler", "exp_euler", "rk4"):
        run["dt"] = 0.5
    unrolled = _gradient(case, "unrolled", **run)
    assert float((unrolled - implicit).norm() / implicit.norm()) <= 1e-5


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("mode", ["implicit", "unrolled"])
def test_gradients_match_finite_differences(name, mode):
    """torch.autograd.gradcheck (fast mode: a random direction through all inputs, central differences with
    eps = 1e-6). Unrolled: 25 fixed exponential-Euler steps, a smooth map of the inputs. Implicit: the fixed point
    to max |dx/dt| <= 1e-11, so the finite differences carry an error of about 1e-11 / eps = 1e-5 of the states'
    scale, below gradcheck's atol."""
    case = CASES[name]
    p = _params(case)
    keys = list(p)

    def final(*tensors):
        given = dict(zip(keys, tensors, strict=True))
        if mode == "implicit":
            traj = _relax(case, given, Implicit(tol=1e-12), **CONVERGED)
        else:
            traj = _relax(case, given, "unrolled", method="exp_euler", dt=0.2, t_max=5.0, tol=0)
        return tuple(traj.states.values())

    assert torch.autograd.gradcheck(final, tuple(p.values()), fast_mode=True, atol=2e-5)


def _saved_bytes(fn):
    """Bytes of the tensors autograd saves for the backward pass while ``fn`` runs."""
    total, seen = 0, set()

    def pack(t):  # every storage once: the weights are saved by every step
        nonlocal total
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return total, out


def test_implicit_memory_does_not_grow_with_the_steps():
    """The bytes autograd keeps for the backward pass: the unrolled graph grows with the steps, the implicit one
    is one evaluation at the fixed point however many steps found it (benchmarks/ham_gradients.py measures the
    peak memory of the whole backward pass)."""
    case = CASES["relu"]
    p = _params(case)

    def saved(gradient, dt):
        run = {"method": "exp_euler", "dt": dt, "tol": 1e-8, "t_max": 500.0}
        nbytes, traj = _saved_bytes(lambda: _relax(case, p, gradient, **run))
        return nbytes, int(traj.steps[0])

    (unrolled_few, few), (unrolled_many, many) = saved("unrolled", 0.4), saved("unrolled", 0.1)
    (implicit_few, _), (implicit_many, _) = saved("implicit", 0.4), saved("implicit", 0.1)
    assert many >= 3.5 * few
    assert unrolled_many >= 3 * unrolled_few
    assert implicit_few == implicit_many < unrolled_few / 5


def test_implicit_gradient_needs_a_fixed_point_and_a_converged_solve():
    case = CASES["dense"]
    p = _params(case)
    with pytest.raises(ConvergenceError, match=r"did not settle.*gradient='implicit' needs a fixed point"):
        _relax(case, p, "implicit", method="euler", dt=0.1, t_max=0.3)
    with torch.no_grad():  # no gradient wanted: a transient is a fine result
        assert not _relax(case, p, "implicit", method="euler", dt=0.1, t_max=0.3).converged.all()
    traj = _relax(case, p, Implicit(max_steps=1), **CONVERGED)
    with pytest.raises(
        ConvergenceError, match=r"adjoint solve did not reach tol.*Implicit\(max_steps=\.\.\.\)"
    ):
        _loss(traj.states).backward()


def test_gradient_modes_and_their_graphs():
    case = CASES["relu"]
    p = _params(case)
    none = _relax(case, p, None, **CONVERGED)
    assert not any(t.requires_grad for t in none.states.values())
    implicit = _relax(case, p, "implicit", **CONVERGED)
    for n, t in implicit.states.items():
        assert torch.equal(t.detach(), none.states[n])  # the fixed point itself, exactly
    # the clamped layer passes its gradient straight through; free initial states get none
    x0 = {n: t.clone().requires_grad_(True) for n, t in case.build(p).state.items()}
    prob = case.build(p)
    traj = am.relax(prob.network, x0, clamp=prob.clamp, gradient="implicit", **CONVERGED)
    gv, gh = torch.autograd.grad(
        traj.states["v"].sum() + traj.states["l"].sum(), [x0["v"], x0["h"]], allow_unused=True
    )
    assert gh is None and gv is not None
    with pytest.raises(ValueError, match="gradient must be 'unrolled'"):
        _relax(case, p, "adjoint")
    with pytest.raises(ValueError, match="tol must be positive"):
        _relax(case, p, "implicit", tol=0)
    with pytest.raises(ValueError, match="Implicit: solver must be one of"):
        Implicit(solver="bicgstab")
    assert implicit.states["h"].dtype == F64


def test_at_a_saddle_conjugate_gradients_hand_over_to_gmres():
    """A Tanh layer with self-coupling 2 (stronger than its decay) has an unstable fixed point at zero; started
    there, it stays. The energy's Hessian is indefinite, so CG meets negative curvature and GMRES takes over; the
    gradient is still the derivative of the fixed point, dx*/dv = (1 - W_hh)^-1 W_vh (tanh'(0) = 1)."""
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(3, 3, generator=gen, dtype=F64)
    w_hh = 2.0 * torch.eye(3, dtype=F64) + 0.1 * (a + a.T)
    w_vh = torch.randn(3, 4, generator=gen, dtype=F64)
    v = torch.zeros(1, 4, dtype=F64, requires_grad=True)
    net = am.Network(
        {"v": am.Layer(4, am.Identity()), "h": am.Layer(3, am.Tanh())},
        [am.DenseSynapse("v", "h", w_vh), am.DenseSynapse("h", "h", w_hh, name="self")],
    )
    c = torch.randn(3, generator=gen, dtype=F64)
    traj = am.relax(net, {"v": v, "h": torch.zeros(1, 3, dtype=F64)}, clamp={"v": True}, gradient="implicit")
    assert traj.converged.all() and torch.equal(traj.states["h"].detach(), torch.zeros(1, 3, dtype=F64))
    (grad,) = torch.autograd.grad((traj.states["h"] @ c).sum(), v)
    expected = w_vh.T @ torch.linalg.solve(torch.eye(3, dtype=F64) - w_hh, c)
    torch.testing.assert_close(grad[0], expected, rtol=1e-5, atol=1e-8)
    traj = am.relax(
        net, {"v": v, "h": torch.zeros(1, 3, dtype=F64)}, clamp={"v": True}, gradient=Implicit(solver="cg")
    )
    with pytest.raises(ConvergenceError, match="non-positive curvature"):
        torch.autograd.grad((traj.states["h"] @ c).sum(), v)
