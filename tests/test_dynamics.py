"""relax: energy descent, fixed points, convergence orders, stiffness, clamping, the adiabatic limit."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import assocmem as am
from assocmem.models import model_a, model_b, model_c
from tests.networks import build, random_state, specs

F64 = torch.float64


@settings(max_examples=20)
@given(spec=specs(), seed=st.integers(0, 1000), method=st.sampled_from(["dopri5", "stiff"]))
def test_energy_never_increases_along_trajectories(spec, seed, method):
    """docs/reference.md §1: dE/dt = -sum_A tau_A xdot^T Hess(L_A) xdot <= 0 for convex Lagrangians.

    Tolerance: the integrators keep each step's local error below rtol |x| + atol (rtol = 1e-9 here), so the
    recorded energy can rise by at most |dE/dx| times that error per step; with states and energy gradients
    of order 1-100 in these networks, 1e-6 (1 + |E|) bounds it with a wide margin, while a real violation
    (a wrong sign or a missing factor in a force) raises the energy by order 1e-2 or more within t = 2.
    """
    net = build(spec)
    state = random_state(net, batch=3, seed=seed)
    traj = am.relax(net, state, method=method, t_max=2.0, tol=0, rtol=1e-9, atol=1e-11)
    energies = traj.energies
    assert torch.isfinite(energies).all()
    rise = (energies[1:] - energies[:-1]).max()
    assert rise <= 1e-6 * (1 + energies.abs().max()), f"energy rose by {float(rise):.3g}"


@pytest.mark.parametrize(
    "make",
    [
        lambda xi: model_a(xi, am.RePU(3), feature=am.Tanh(0.5)),
        lambda xi: model_b(xi, beta=0.5),
        lambda xi: model_c(xi, am.Exp(0.5)),
        lambda xi: am.models.continuous_hopfield(xi, am.Tanh(0.2)),
        lambda xi: model_b(xi, beta=0.5, reduced=True),
        lambda xi: model_c(xi, am.RePU(2), reduced=True),
    ],
)
def test_fixed_points_are_stationary_points_of_the_energy(make):
    gen = torch.Generator().manual_seed(5)
    xi = torch.sign(torch.randn(5, 16, generator=gen, dtype=F64))
    net = make(xi)
    state = {
        n: 0.5 * torch.randn(4, *layer.shape, generator=gen, dtype=F64) for n, layer in net.layers.items()
    }
    traj = am.relax(net, state, method="dopri5", t_max=500.0, tol=1e-7, rtol=1e-10, atol=1e-12)
    assert traj.converged.all(), traj
    x = {n: t.detach().requires_grad_(True) for n, t in traj.states.items()}
    grads = torch.autograd.grad(net.energy(x).sum(), list(x.values()))
    scale = max(t.abs().max().item() for t in x.values())
    for grad in grads:
        assert grad.abs().max() <= 1e-6 * max(1.0, scale)


def linear_problem(tau_fast):
    """Two linear layers (Identity Lagrangians) with a constant input: dx/dt = M x + d, solved exactly."""
    gen = torch.Generator().manual_seed(0)
    w = 0.5 * torch.randn(3, 3, generator=gen, dtype=F64)
    b = torch.randn(3, dtype=F64, generator=gen)
    net = am.Network(
        {"a": am.Layer(3, am.Identity(), tau=1.0), "c": am.Layer(3, am.Identity(), tau=tau_fast)},
        [am.DenseSynapse("a", "c", w)],
    )
    taus = torch.tensor([1.0] * 3 + [tau_fast] * 3, dtype=F64)
    coupling = torch.zeros(6, 6, dtype=F64)
    coupling[3:, :3], coupling[:3, 3:] = w, w.T
    m = (coupling - torch.eye(6, dtype=F64)) / taus[:, None]
    d = torch.cat([b, torch.zeros(3, dtype=F64)]) / taus
    x0 = torch.randn(6, dtype=F64, generator=gen)

    def exact(t):
        e = torch.linalg.matrix_exp(m * t)
        return e @ x0 + torch.linalg.solve(m, (e - torch.eye(6, dtype=F64)) @ d)

    return net, {"a": x0[None, :3], "c": x0[None, 3:]}, {"a": b}, exact


def _error(traj, exact):
    return (torch.cat([traj.states["a"][0], traj.states["c"][0]]) - exact).abs().max().item()


@pytest.mark.parametrize(("method", "order"), [("euler", 1), ("exp_euler", 1), ("rk4", 4)])
def test_fixed_step_methods_converge_at_their_order(method, order):
    net, state, inputs, exact = linear_problem(tau_fast=0.5)
    errors = [
        _error(am.relax(net, state, method=method, dt=dt, t_max=1.0, tol=0, inputs=inputs), exact(1.0))
        for dt in (0.02, 0.01)
    ]
    assert math.log2(errors[0] / errors[1]) == pytest.approx(order, abs=0.15)


@pytest.mark.parametrize("method", ["dopri5", "stiff"])
@pytest.mark.parametrize("tau_fast", [1.0, 1e-3])
def test_adaptive_methods_meet_their_tolerance(method, tau_fast):
    net, state, inputs, exact = linear_problem(tau_fast)
    # A global error within a small multiple of the local tolerance (measured: at most 12x for "stiff").
    for rtol in (1e-4, 1e-6):
        traj = am.relax(
            net, state, method=method, t_max=1.0, tol=0, inputs=inputs, rtol=rtol, atol=rtol * 1e-2
        )
        assert float(traj.times[-1]) == pytest.approx(1.0)
        assert _error(traj, exact(1.0)) <= 30 * rtol


def test_stiff_method_cost_does_not_grow_with_stiffness():
    """Explicit steps need dt < tau_h; the stiff method's step is set by the slow layer alone."""
    evaluations = {}
    for tau_fast in (1e-2, 1e-5):
        net, state, inputs, exact = linear_problem(tau_fast)
        traj = am.relax(net, state, method="stiff", t_max=1.0, tol=0, inputs=inputs, rtol=1e-5, atol=1e-7)
        assert _error(traj, exact(1.0)) <= 20 * 1e-5
        evaluations[tau_fast] = traj.evaluations
    assert evaluations[1e-5] <= 2 * evaluations[1e-2]
    # dopri5 is limited to dt ~ tau_h: per unit of time it needs over 100x the evaluations (measured 264x).
    net, state, inputs, _ = linear_problem(1e-5)
    explicit = am.relax(net, state, method="dopri5", t_max=0.01, tol=0, inputs=inputs, rtol=1e-5, atol=1e-7)
    assert explicit.evaluations / 0.01 >= 100 * evaluations[1e-5] / 1.0


def test_explicit_step_beyond_stability_raises_a_helpful_error():
    xi = torch.sign(torch.randn(4, 10))
    net = model_b(xi, beta=1.0, tau_h=1e-4)
    with pytest.raises(FloatingPointError, match=r"smallest time constant is 0\.0001.*'stiff'"):
        am.relax(net, {"v": torch.randn(2, 10), "h": torch.zeros(2, 4)}, method="euler", dt=0.01, t_max=5)
    for method in ("exp_euler", "stiff"):
        traj = am.relax(net, {"v": torch.randn(2, 10), "h": torch.zeros(2, 4)}, method=method, t_max=5)
        assert torch.isfinite(traj.states["v"]).all() and traj.evaluations < 2000


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda xi, th, r: model_a(xi, am.RePU(2), feature=am.Tanh(0.3), tau_h=th, reduced=r), id="A"
        ),
        pytest.param(lambda xi, th, r: model_b(xi, beta=0.3, tau_h=th, reduced=r), id="B"),
        pytest.param(lambda xi, th, r: model_c(xi, am.RePU(2), tau_h=th, reduced=r), id="C"),
    ],
)
def test_microscopic_trajectory_approaches_the_reduced_one(make):
    """For tau_h / tau_f -> 0 the two-layer feature trajectory tends to the reduced one (docs/reference.md §1).

    Stated tolerance: the deviation is O(tau_h / tau_f); we require max |v_micro - v_red| <= 10 (tau_h/tau_f)
    max |v_red| at tau_h / tau_f = 1e-3 (measured: 0.5-6 times the ratio), and that it shrinks roughly tenfold
    from tau_h / tau_f = 1e-2 to 1e-3 (the signature of an O(tau_h) limit, not of a coincidence).
    """
    gen = torch.Generator().manual_seed(0)
    xi = torch.sign(torch.randn(6, 20, generator=gen, dtype=F64))
    v0 = 0.5 * xi[:3] + 0.6 * torch.randn(3, 20, generator=gen, dtype=F64)
    deviation = {}
    for ratio in (1e-2, 1e-3):
        reduced = am.relax(
            make(xi, 1.0, True), {"v": v0}, method="dopri5", t_max=1.0, tol=0, rtol=1e-10, atol=1e-12
        ).states["v"]
        micro = am.relax(
            make(xi, ratio, False),
            {"v": v0, "h": torch.zeros(3, 6, dtype=F64)},
            method="stiff",
            t_max=1.0,
            tol=0,
            rtol=1e-7,
            atol=1e-9,
        ).states["v"]
        deviation[ratio] = ((micro - reduced).abs().max() / reduced.abs().max()).item()
    assert deviation[1e-3] <= 10 * 1e-3
    assert 4 <= deviation[1e-2] / deviation[1e-3] <= 25


def test_clamped_units_keep_their_values_and_energy_still_descends():
    xi = torch.sign(torch.randn(4, 12, dtype=F64))
    net = model_b(xi, beta=0.5, reduced=True)
    v0 = torch.randn(3, 12, dtype=F64)
    mask = torch.zeros(12, dtype=torch.bool)
    mask[:5] = True
    for method in ("euler", "rk4", "dopri5", "stiff", "exp_euler"):
        traj = am.relax(net, {"v": v0}, method=method, t_max=5.0, clamp={"v": mask})
        assert torch.equal(traj.states["v"][:, :5], v0[:, :5])
        assert not torch.equal(traj.states["v"][:, 5:], v0[:, 5:])
        assert (traj.energies.diff(dim=0) <= 1e-9).all()
    whole = am.relax(
        model_b(xi, tau_h=0.1), {"v": v0, "h": torch.zeros(3, 4, dtype=F64)}, clamp={"v": True}, t_max=5.0
    )
    assert torch.equal(whole.states["v"], v0)


def test_trajectory_records_and_convergence_flags():
    xi = torch.sign(torch.randn(4, 12))
    net = model_b(xi, beta=0.5, reduced=True)
    traj = am.relax(net, {"v": xi[:2] + 0.1}, method="dopri5", t_max=100.0, tol=1e-4)
    assert traj.converged.all() and traj.times[-1] < 100.0
    assert traj.energies.shape == (len(traj.times), 2)
    assert (traj.times.diff() > 0).all()
    torch.testing.assert_close(traj.energy, net.energy(traj.states))
    quiet = am.relax(net, {"v": xi[:2] + 0.1}, method="dopri5", t_max=100.0, tol=1e-4, record=False)
    assert quiet.energies.shape == (2, 2)
    torch.testing.assert_close(quiet.states["v"], traj.states["v"])
    short = am.relax(net, {"v": torch.randn(2, 12)}, method="euler", dt=0.1, t_max=0.5, tol=1e-4)
    assert not short.converged.any() and short.steps.shape == (2,) and (short.steps == 5).all()
    assert "converged=0/2" in repr(short)


def test_gradients_flow_through_relax():
    xi = torch.randn(3, 5, dtype=F64, requires_grad=True)
    v0 = torch.randn(2, 5, dtype=F64)

    def final(xi):
        return am.relax(
            model_b(xi, beta=0.7, reduced=True), {"v": v0}, method="rk4", dt=0.1, t_max=1.0, tol=0
        ).states["v"]

    assert torch.autograd.gradcheck(final, (xi,))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "leapfrog"}, ValueError, "unknown method 'leapfrog'"),
        ({"t_max": 0}, ValueError, "t_max must be a positive"),
        ({"dt": -0.1, "method": "euler"}, ValueError, "dt must be a positive"),
        ({"tol": -1}, ValueError, "tol must be a non-negative"),
        ({"max_steps": 0}, ValueError, "max_steps must be a positive int"),
    ],
)
def test_relax_argument_errors(kwargs, error, match):
    net = model_b(torch.randn(3, 4), reduced=True)
    with pytest.raises(error, match=match):
        am.relax(net, {"v": torch.zeros(1, 4)}, **kwargs)


def test_relax_refuses_non_convex_lagrangians_unless_allowed():
    xi = torch.sign(torch.randn(3, 6))
    net = model_a(xi, am.Polynomial(3))
    state = {"v": 0.1 * torch.randn(2, 6), "h": torch.zeros(2, 3)}
    with pytest.raises(ValueError, match="layer 'h' has a non-convex Lagrangian Polynomial"):
        am.relax(net, state)
    traj = am.relax(net, state, allow_nonconvex=True, t_max=0.5, method="rk4", dt=0.05)
    assert torch.isfinite(traj.states["v"]).all()
    with pytest.raises(ValueError, match=r"state\['v'\] contains NaN"):
        am.relax(model_b(xi, reduced=True), {"v": torch.full((1, 6), float("nan"))})


def test_every_method_returns_the_states_in_the_networks_layer_order():
    """Before, Euler followed the network's order, RK4 and dopri5 the caller's, the stiff method the forces'."""
    net = model_b(torch.sign(torch.randn(3, 6, dtype=F64)), beta=0.5)
    state = {"h": torch.zeros(2, 3, dtype=F64), "v": torch.randn(2, 6, dtype=F64)}
    for method in am.dynamics.METHODS:
        traj = am.relax(net, state, method=method, t_max=1.0)
        assert list(traj.states) == list(net.layers) == ["v", "h"], method


def test_dopri5_hovering_above_the_stop_rule_is_explained():
    """docs/dynamics.md, "dopri5 hovering at the stop rule": with rtol = tol the step sits on the stability
    boundary and some samples never reach tol; the error says so, and rtol = tol / 10 settles them all."""
    gen = torch.Generator().manual_seed(0)
    xi = torch.sign(torch.randn(20, 64, generator=gen, dtype=F64))
    net = model_b(xi, beta=0.5, tau_h=1.0 / 3)
    state = {n: 0.5 * torch.randn(8, *lay.shape, generator=gen, dtype=F64) for n, lay in net.layers.items()}
    with pytest.raises(am.dynamics.ConvergenceError, match="edge of its stability region"):
        am.relax(net, state, method="dopri5", tol=1e-5, t_max=40.0, strict=True)
    traj = am.relax(net, state, method="dopri5", tol=1e-5, t_max=40.0, rtol=1e-6, atol=1e-7, strict=True)
    assert traj.converged.all()
