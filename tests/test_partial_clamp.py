"""A clamp mask that cuts through a layer whose Lagrangian couples its units (softmax, spherical, layer norm): the
free units descend the energy (network/partial.py, docs/dynamics.md), checked against the general formulation
in float64: the Hessian from autograd, dE/dt from the energy's gradient, the fixed point a minimum over the free
units."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import assocmem as am
from assocmem import lagrangians as L
from assocmem.lagrangians.base import Lagrangian
from assocmem.network.partial import correction
from tests.conftest import SHARED_DATA, needs_data
from tests.lagrangian_cases import all_lagrangians

F64 = torch.float64
SHAPE = (3, 4)
#: every convex Lagrangian with a twice differentiable L (Abs's activation jumps: dE/dt = -x.Hx needs H)
KINDS = [(label, lag) for label, lag in all_lagrangians(SHAPE) if lag.convex and label != "Abs"]
COUPLED = [(label, lag) for label, lag in KINDS if not isinstance(lag, L.AdditiveLagrangian)]
#: Lagrangians whose activation grows faster than linearly: small weights keep their trajectories finite
FAST = ("RePU3", "RePU2.5", "Polynomial3", "Polynomial4", "Exp")


def network(label: str, lagrangian: Lagrangian, seed: int) -> am.Network:
    """Layer ``v`` (the Lagrangian under test, shape (3, 4)), a softmax memory layer ``h`` and a sigmoid layer
    ``s`` on it; ``v`` is the layer clamped in part."""
    gen = torch.Generator().manual_seed(seed)
    scale = 0.2 if label in FAST else 1.0
    return am.Network(
        {"v": am.Layer(SHAPE, lagrangian), "h": am.Layer(5, L.LogSumExp(2.0)), "s": am.Layer(3, L.Sigmoid())},
        [
            am.DenseSynapse("v", "h", scale * torch.randn(5, 12, generator=gen, dtype=F64)),
            am.DenseSynapse("v", "s", scale * torch.randn(3, 12, generator=gen, dtype=F64)),
        ],
    )


def problem(seed: int, batch: int = 4):
    gen = torch.Generator().manual_seed(seed)
    state = {
        "v": torch.randn(batch, *SHAPE, generator=gen, dtype=F64),
        "h": torch.randn(batch, 5, generator=gen, dtype=F64),
        "s": torch.randn(batch, 3, generator=gen, dtype=F64),
    }
    mask = torch.rand(batch, *SHAPE, generator=gen) < 0.5
    mask[0] = False  # a sample with nothing clamped
    mask[1, 0] = True  # a group (the first row) clamped whole
    mask[1, 1] = False  # and one with nothing clamped
    inputs = {"v": torch.randn(batch, *SHAPE, generator=gen, dtype=F64)}
    return state, mask, inputs


def energy_rate(net, state, inputs, clamp):
    """dE/dt = dE/dx . dx/dt at ``state``: the energy's gradient by autograd, the velocity relax integrates."""
    x = {n: t.detach().requires_grad_(True) for n, t in state.items()}
    grads = torch.autograd.grad(net.energy(x, inputs).sum(), list(x.values()))
    velocity = net.velocity(state, inputs, clamp)
    return sum((g * velocity[n]).flatten(1).sum(1) for g, n in zip(grads, x, strict=True))


@pytest.mark.parametrize(("label", "lagrangian"), COUPLED, ids=[c[0] for c in COUPLED])
def test_the_free_units_solve_the_hessian_system(label, lagrangian):
    """The closed forms against H from autograd, one sample at a time: H_mm z = H_mc d_c on the free units."""
    state, mask, _ = problem(seed=1)
    x = state["v"]
    d = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    z = correction(lagrangian, x, lagrangian.activation(x), d, mask)
    for b in range(x.shape[0]):
        hess = torch.autograd.functional.hessian(
            lambda t: lagrangian(t.reshape(1, *SHAPE)).sum(), x[b].flatten()
        )
        held = mask[b].flatten()
        free = ~held
        lhs = hess[free][:, free] @ z[b].flatten()[free]
        rhs = hess[free][:, held] @ d[b].flatten()[held]
        torch.testing.assert_close(lhs, rhs, rtol=1e-10, atol=1e-12)
        if not held.any():
            assert z[b].abs().max() == 0


@settings(max_examples=40)
@given(kind=st.sampled_from(range(len(KINDS))), seed=st.integers(0, 10_000))
def test_the_energy_never_increases_under_any_partial_clamp(kind, seed):
    """dE/dt <= 0 at every state, exactly (no integrator): dE/dt = -(1/tau) (H d)_m . H_mm^-1 (H d)_m on the
    clamped layer, -(1/tau) d . H d on the others. Tolerance: rounding of sums of order 1-100 in float64."""
    label, lagrangian = KINDS[kind]
    net = network(label, lagrangian, seed)
    state, mask, inputs = problem(seed)
    rate = energy_rate(net, state, inputs, {"v": mask})
    assert float(rate.max()) <= 1e-12, f"{label}: dE/dt = {rate.tolist()}"


def test_holding_some_softmax_units_without_the_correction_would_raise_the_energy():
    """Why the correction exists. A softmax layer with an input current alone: ``d = I - x``; with ``x = 0`` and
    ``I`` = -1/2 on the free units, -1 on the clamped ones, moving the free units by their own ``d_m`` gives
    ``dE/dt = beta s_m s_c / 4 > 0`` (``s`` the softmax mass of each part; the cross term -d_m . H_mc d_c
    wins). The corrected motion lowers the energy."""
    net = am.Network({"v": am.Layer(6, L.LogSumExp(2.0))})
    state = {"v": torch.zeros(1, 6, dtype=F64)}
    mask = torch.tensor([True, True, False, False, False, False])
    inputs = {"v": torch.where(mask, -1.0, -0.5).to(F64).unsqueeze(0)}
    x = state["v"].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net.energy({"v": x}, inputs).sum(), x)
    plain = torch.where(mask, 0.0, inputs["v"] - state["v"])
    s_c, s_m = 2 / 6, 4 / 6
    torch.testing.assert_close(float((grad * plain).sum()), 2.0 * s_m * s_c / 4)
    assert float(energy_rate(net, state, inputs, {"v": mask})) < 0


@settings(max_examples=12)
@given(kind=st.sampled_from(range(len(KINDS))), seed=st.integers(0, 10_000))
def test_relaxations_under_random_partial_clamps_never_raise_the_energy(kind, seed):
    """dopri5 at rtol 1e-10 (float64): the recorded energy never rises by more than the integration error
    (1e-10 relative; the uncorrected motion raised it by up to 1e-2 on these networks), the clamped units hold,
    and at the end the energy's gradient over the free units vanishes (the fixed point of the descending flow)."""
    label, lagrangian = KINDS[kind]
    net = network(label, lagrangian, seed)
    state, mask, inputs = problem(seed, batch=3)
    clamp = {"v": mask[:3]}
    traj = am.relax(net, state, inputs=inputs, clamp=clamp, t_max=3.0, tol=0, rtol=1e-10, atol=1e-12)
    e = traj.energies
    rise = float((e[1:] - e[:-1]).max())
    assert rise <= 1e-10 * (1 + float(e.abs().max())), f"{label}: the energy rose by {rise:.3g}"
    held = mask[:3].expand_as(state["v"])
    assert torch.equal(traj.states["v"][held], state["v"][held])


@pytest.mark.parametrize(("label", "lagrangian"), COUPLED, ids=[c[0] for c in COUPLED])
def test_the_fixed_point_is_a_minimum_of_the_energy_over_the_free_units(label, lagrangian):
    """Clamped values the network agrees with (those of a fixed point of the unclamped network), the free units
    moved away from it: the relaxation settles where the energy's gradient over every free unit vanishes
    (exponential Euler: its fixed points are exactly x = u(x), here (H d)_m = 0)."""
    net = network(label, lagrangian, seed=3)
    state, mask, _ = problem(seed=3)
    settled = am.relax(net, state, method="exp_euler", dt=0.5, tol=1e-10, t_max=500.0, gradient=None).states
    free = ~mask.expand_as(state["v"])
    start = dict(settled)
    start["v"] = settled["v"] + 0.3 * free * torch.randn(settled["v"].shape, dtype=F64)
    traj = am.relax(net, start, clamp={"v": mask}, method="exp_euler", dt=0.5, tol=1e-10, t_max=500.0)
    assert traj.converged.all()
    assert torch.equal(traj.states["v"][~free], start["v"][~free])
    x = {n: t.detach().requires_grad_(True) for n, t in traj.states.items()}
    grads = torch.autograd.grad(net.energy(x).sum(), list(x.values()))
    assert float(grads[0][free].abs().max()) <= 1e-8
    assert max(float(g.abs().max()) for g in grads[1:]) <= 1e-8


def test_clamped_values_the_energy_would_dilute_are_a_divergence_error_that_says_so():
    """The energy is bounded below, but over the free units of a spherical layer its infimum can lie at infinity:
    the free units grow until the clamped units' share of g vanishes. No fixed point: strict relax says why."""
    net = network("Spherical", L.Spherical(), seed=3)
    state, mask, inputs = problem(seed=3)
    with pytest.raises(am.dynamics.DivergenceError, match=r"clamped in part.*has no minimum"):
        am.relax(
            net,
            state,
            inputs=inputs,
            clamp={"v": mask},
            method="exp_euler",
            dt=0.5,
            t_max=30.0,
            tol=1e-6,
            strict=True,
        )


class Coupled(Lagrangian):
    """A coupled Lagrangian the library has no partial-clamp rule for: L = log(1 + |x|^2) per sample."""

    convex = False

    def forward(self, x):
        return torch.log1p(x.flatten(1).pow(2).sum(1))

    def activation(self, x):
        return 2 * x / (1 + x.flatten(1).pow(2).sum(1)).reshape(-1, *[1] * (x.dim() - 1))


def test_a_partial_clamp_of_an_unknown_coupled_lagrangian_is_refused_with_the_alternatives():
    net = am.Network({"v": am.Layer(4, Coupled())}, [am.DenseSynapse("v", "v", torch.eye(4, dtype=F64))])
    state = {"v": torch.randn(2, 4, dtype=F64)}
    mask = torch.tensor([True, False, False, False])
    with pytest.raises(ValueError, match=r"clamp\['v'\].*couples its units.*Clamp the whole layer.*Identity"):
        net.velocity(state, clamp={"v": mask})
    net.velocity(state, clamp={"v": True})  # whole, or not at all, is fine
    net.velocity(state, clamp={"v": torch.zeros(4, dtype=torch.bool)})


@needs_data("mnist")
def test_masked_mnist_digits_complete_on_the_reconstruction_network_with_the_energy_never_rising():
    """The reconstruction recipe's network (spherical pixels, unit-norm log-sum-exp memories at beta = 10), its
    memories 300 training digits, completes 8 test digits whose lower half is hidden (float64, dopri5 at
    rtol 1e-9): every one settles, the clamped upper half holds, the energy never rises by more than rounding
    (1e-12; the uncorrected motion let it rise, docs/dynamics.md), and the hidden half ends pointing along the
    digit's (cosine 0.68 measured; the blank it started from has 0)."""
    from assocmem.data import load
    from assocmem.ham import reconstruction as rec

    ds = load("mnist", data_dir=SHARED_DATA / "mnist", download=False)
    train = rec.unit_images(ds.train.images[:300]).to(F64)
    test = rec.unit_images(ds.test.images[:8]).to(F64)
    net = rec.reconstruction_network(300, 784, 10.0, dtype=F64)
    with torch.no_grad():
        net.synapses[0].parametrizations.xi.original.copy_(train)
    mask = torch.zeros(8, 784, dtype=torch.bool)
    mask[:, :392] = True
    masked = torch.where(mask, test, 0.0)
    traj = rec.settle(net, masked, clamp=mask, tol=1e-4, rtol=1e-9)
    assert bool(traj.converged.all())
    e = traj.energies
    assert float((e[1:] - e[:-1]).max()) <= 1e-12
    final = traj.states[rec.IMAGE]
    assert torch.equal(final[:, :392], test[:, :392])
    completed = net.layers[rec.IMAGE].activation(final)
    hidden = ~mask
    cosine = torch.nn.functional.cosine_similarity(completed * hidden, test * hidden)
    assert float(cosine.mean()) > 0.5
