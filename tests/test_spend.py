"""A fixed-step Euler relaxation without a graph reuses each evaluation's memory and takes the stop rule's speed
from the small layers where they decide it (Evaluation.spend, System.speed(bound)): the same steps, states and
speeds as the step-by-step general formulation (float64)."""

import math

import pytest
import torch

import assocmem as am
from assocmem.dynamics.system import System

F64 = torch.float64


def conv_net():
    gen = torch.Generator().manual_seed(0)
    layers = {
        "image": am.Layer((1, 10, 10), am.Identity()),
        "conv": am.Layer((3, 8, 8), am.ReLU()),
        "pool": am.Layer((3, 4, 4), am.ReLU()),
        "hidden": am.Layer(7, am.ReLU(), tau=2.0),
        "labels": am.Layer(4, am.LogSumExp()),
    }
    terms = [
        am.ConvSynapse("image", "conv", 0.3 * torch.randn(3, 1, 3, 3, generator=gen, dtype=F64)),
        am.AvgPoolSynapse("conv", "pool", 2),
        am.DenseSynapse("pool", "hidden", 0.05 * torch.randn(7, 48, generator=gen, dtype=F64)),
        am.DenseSynapse("hidden", "labels", 0.3 * torch.randn(4, 7, generator=gen, dtype=F64)),
    ]
    return am.Network(layers, terms)


def start(net, batch=5, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.randn(batch, *layer.shape, generator=gen, dtype=F64) for n, layer in net.layers.items()}


def reference(net, state, weight, tol, steps_max, inputs=None, clamp=None):
    """The general formulation step by step: ``x <- x + w (u - x)`` with ``u - x = tau dx/dt`` from
    ``Network.velocity``, until every sample's ``max |dx/dt| <= tol``; returns the states, steps and speeds."""
    x = dict(state)
    for step in range(steps_max + 1):
        v = net.velocity(x, inputs, clamp)
        speed = torch.stack([t.flatten(1).abs().amax(1) for t in v.values()]).amax(0)
        if bool((speed <= tol).all()) or step == steps_max:
            return x, step, speed
        x = {n: x[n] + weight(net.layers[n].tau) * net.layers[n].tau * v[n] for n in x}


@pytest.mark.parametrize("method", ["euler", "exp_euler"])
@pytest.mark.parametrize("case", ["clamped image", "inputs and a partial clamp", "out of time"])
def test_spending_relaxation_takes_the_general_formulations_steps(method, case):
    net = conv_net()
    state = start(net)
    before = {n: t.clone() for n, t in state.items()}
    dt, tol, t_max = 0.5, 1e-6, 200.0
    clamp = {"image": True}
    inputs = None
    if case == "inputs and a partial clamp":
        mask = torch.zeros(5, 7, dtype=torch.bool)
        mask[:, :3] = True
        clamp = {"image": True, "hidden": mask}
        inputs = {"labels": torch.linspace(-1, 1, 4, dtype=F64)}
    if case == "out of time":
        t_max = 6 * dt  # six steps, the stop rule far from met
    if method == "euler":
        weight = lambda tau: dt / tau  # noqa: E731
    else:
        weight = lambda tau: -math.expm1(-dt / tau)  # noqa: E731
    with torch.no_grad():
        traj = am.relax(
            net, state, method=method, dt=dt, tol=tol, t_max=t_max, inputs=inputs, clamp=clamp, record=False
        )
    x, steps, speed = reference(net, state, weight, tol, round(t_max / dt), inputs, clamp)
    assert int(traj.steps[0]) == steps
    assert steps > 5
    for n in x:
        torch.testing.assert_close(traj.states[n], x[n], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(traj.speed, speed, rtol=1e-8, atol=1e-14)
    assert torch.equal(traj.converged, speed <= tol)
    for n, t in state.items():  # the caller's state is never written
        assert torch.equal(t, before[n])
    # the graph-keeping path (no spending: every speed in full, new tensors) ends in the same place
    traj_graph = am.relax(
        net, state, method=method, dt=dt, tol=tol, t_max=t_max, inputs=inputs, clamp=clamp, record=False
    )
    assert torch.equal(traj_graph.steps, traj.steps)
    for n in x:
        torch.testing.assert_close(traj_graph.states[n], traj.states[n], rtol=1e-12, atol=1e-14)


def test_speed_with_a_bound_is_a_lower_bound_that_decides_the_stop_rule():
    net = conv_net()
    state = start(net)
    inputs_, clamp_ = net.check(state, None, {"image": True})
    with torch.no_grad():
        system = System(net, net.prepare(state, inputs_, clamp_), clamp_, spend=True)
        full = System(net, net.prepare(state, inputs_, clamp_), clamp_)(state).velocity(net.tau)
        exact = torch.stack([t.flatten(1).abs().amax(1) for t in full.values()]).amax(0)
        ev = system(state)
        assert system.order[:2] == ["labels", "hidden"]  # smallest first
        bound = float(exact.min()) / 2  # every sample above it: the smallest layer may decide alone
        low = system.speed(ev, bound)
        assert system.partial(ev)
        assert bool((low > bound).any()) and bool((low <= exact).all())
        assert "conv" not in ev.speeds  # the largest layer was left
        torch.testing.assert_close(system.speed(ev), exact)  # finishing it gives the exact speed
        assert not system.partial(ev)
        with pytest.raises(KeyError):  # spent: the owned inputs became u - x
            ev.u["conv"]


def test_a_layer_that_blows_up_unseen_by_the_stop_rule_is_still_an_error():
    """The small layer keeps the stop rule undecided at every step, so the large one's speed is never taken; its
    Euler step beyond stability overflows, and the full check at the end finds it."""
    net = am.Network(
        {"big": am.Layer(50, am.Identity(), tau=0.1), "small": am.Layer(1, am.Identity(), tau=100.0)},
        [am.DenseSynapse("small", "big", torch.zeros(50, 1, dtype=F64))],
    )
    state = {"big": torch.zeros(3, 50, dtype=F64), "small": torch.zeros(3, 1, dtype=F64)}
    inputs = {"big": torch.ones(50, dtype=F64), "small": 1e3 * torch.ones(1, dtype=F64)}
    with torch.no_grad(), pytest.raises(am.DivergenceError, match="non-finite"):
        am.relax(
            net, state, method="euler", dt=0.35, t_max=0.35 * 1000, tol=1e-3, inputs=inputs, record=False
        )
