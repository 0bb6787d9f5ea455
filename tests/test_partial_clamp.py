"""Clamp masks on layers whose Lagrangian couples their units (softmax, spherical, layer norm, a custom one): a
mask that cuts through a coupled group is refused by name (network/partial.py, docs/dynamics.md), since holding
the states of some units of a group does not hold their activations; a mask that holds groups whole keeps the
usual dynamics, under which the energy never increases (float64, the energy's gradient by autograd). Additive
layers may be clamped unit by unit."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import assocmem as am
from assocmem import lagrangians as L
from assocmem.lagrangians.base import Lagrangian
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
    ``s`` on it; ``v`` is the layer clamped."""
    gen = torch.Generator().manual_seed(seed)
    scale = 0.2 if label in FAST else 1.0
    return am.Network(
        {"v": am.Layer(SHAPE, lagrangian), "h": am.Layer(5, L.LogSumExp(2.0)), "s": am.Layer(3, L.Sigmoid())},
        [
            am.DenseSynapse("v", "h", scale * torch.randn(5, 12, generator=gen, dtype=F64)),
            am.DenseSynapse("v", "s", scale * torch.randn(3, 12, generator=gen, dtype=F64)),
        ],
    )


def allowed_mask(lagrangian: Lagrangian, batch: int, gen: torch.Generator) -> torch.Tensor:
    """A random clamp mask the layer takes: unit by unit for an additive Lagrangian, whole coupled groups (a
    sample, or a slice along ``dim``) for the others; sample 0 holds nothing."""
    shape = [batch, *SHAPE]
    if not isinstance(lagrangian, L.AdditiveLagrangian):
        dim = getattr(lagrangian, "dim", None)
        if dim is None:
            shape[1:] = [1] * len(SHAPE)
        else:
            shape[dim] = 1
    mask = torch.rand(shape, generator=gen) < 0.5
    mask[0] = False
    return mask


def problem(lagrangian: Lagrangian, seed: int, batch: int = 4):
    gen = torch.Generator().manual_seed(seed)
    state = {
        "v": torch.randn(batch, *SHAPE, generator=gen, dtype=F64),
        "h": torch.randn(batch, 5, generator=gen, dtype=F64),
        "s": torch.randn(batch, 3, generator=gen, dtype=F64),
    }
    inputs = {"v": torch.randn(batch, *SHAPE, generator=gen, dtype=F64)}
    return state, allowed_mask(lagrangian, batch, gen), inputs


def energy_rate(net, state, inputs, clamp):
    """dE/dt = dE/dx . dx/dt at ``state``: the energy's gradient by autograd, the velocity relax integrates."""
    x = {n: t.detach().requires_grad_(True) for n, t in state.items()}
    grads = torch.autograd.grad(net.energy(x, inputs).sum(), list(x.values()))
    velocity = net.velocity(state, inputs, clamp)
    return sum((g * velocity[n]).flatten(1).sum(1) for g, n in zip(grads, x, strict=True))


@pytest.mark.parametrize(("label", "lagrangian"), COUPLED, ids=[c[0] for c in COUPLED])
def test_a_mask_that_cuts_a_coupled_group_is_refused_by_name(label, lagrangian):
    """Holding one unit of every group and freeing the rest: refused wherever the mask reaches the network
    (velocity, relax), naming the layer and the group; for a spherical layer the error points to the completion
    that holds activations instead."""
    net = network(label, lagrangian, seed=0)
    state, _, inputs = problem(lagrangian, seed=0)
    cut = torch.zeros(SHAPE, dtype=torch.bool)
    cut[0, 0] = True  # the first unit of the first row: in the sample's group, in the group along dim 1 or -1
    cut[:, 0] = True
    cut[0, :] = True
    where = r"clamp\['v'\] holds some units of layer 'v'.*whole or not at all"
    if isinstance(lagrangian, L.Spherical):
        where += r".*assocmem\.ham\.completion\.complete"
    with pytest.raises(ValueError, match=where):
        net.velocity(state, inputs, clamp={"v": cut})
    with pytest.raises(ValueError, match=where):
        am.relax(net, state, inputs=inputs, clamp={"v": cut}, method="euler", dt=0.1, t_max=1.0)


@settings(max_examples=40)
@given(kind=st.sampled_from(range(len(KINDS))), seed=st.integers(0, 10_000))
def test_whole_group_clamps_keep_the_usual_dynamics_and_the_energy_never_increases(kind, seed):
    """The clamped units get zero velocity, the free ones their usual ``u - x`` (as without the clamp), and
    dE/dt <= 0 exactly (no integrator; tolerance: rounding of sums of order 1-100 in float64)."""
    label, lagrangian = KINDS[kind]
    net = network(label, lagrangian, seed)
    state, mask, inputs = problem(lagrangian, seed)
    velocity = net.velocity(state, inputs, {"v": mask})
    free = net.velocity(state, inputs)
    held = mask.expand_as(state["v"])
    assert bool((velocity["v"][held] == 0).all())
    torch.testing.assert_close(velocity["v"][~held], free["v"][~held], rtol=1e-13, atol=1e-13)
    rate = energy_rate(net, state, inputs, {"v": mask})
    assert float(rate.max()) <= 1e-12, f"{label}: dE/dt = {rate.tolist()}"


@settings(max_examples=12)
@given(kind=st.sampled_from(range(len(KINDS))), seed=st.integers(0, 10_000))
def test_relaxations_under_allowed_clamps_never_raise_the_energy(kind, seed):
    """dopri5 at rtol 1e-10 (float64): the recorded energy never rises by more than the integration error
    (1e-10 relative) and the clamped units hold."""
    label, lagrangian = KINDS[kind]
    net = network(label, lagrangian, seed)
    state, mask, inputs = problem(lagrangian, seed, batch=3)
    traj = am.relax(net, state, inputs=inputs, clamp={"v": mask}, t_max=3.0, tol=0, rtol=1e-10, atol=1e-12)
    e = traj.energies
    rise = float((e[1:] - e[:-1]).max())
    assert rise <= 1e-10 * (1 + float(e.abs().max())), f"{label}: the energy rose by {rise:.3g}"
    held = mask.expand_as(state["v"])
    assert torch.equal(traj.states["v"][held], state["v"][held])


def test_a_state_clamp_does_not_hold_a_spherical_layers_activations():
    """Why cuts are refused: scaling the free units' states changes the held units' activations."""
    x = torch.tensor([[0.6, 0.8, 0.1, 0.2]], dtype=F64)
    grown = x.clone()
    grown[:, 2:] *= 100.0
    g, g_grown = L.Spherical().activation(x), L.Spherical().activation(grown)
    assert float(g_grown[:, :2].norm()) < 0.05 * float(g[:, :2].norm())


class Coupled(Lagrangian):
    """A coupled Lagrangian the library has no partial-clamp rule for: L = log(1 + |x|^2) per sample."""

    convex = False

    def forward(self, x):
        return torch.log1p(x.flatten(1).pow(2).sum(1))

    def activation(self, x):
        return 2 * x / (1 + x.flatten(1).pow(2).sum(1)).reshape(-1, *[1] * (x.dim() - 1))


def test_a_cut_of_an_unknown_coupled_lagrangian_is_refused_and_whole_clamps_are_fine():
    net = am.Network({"v": am.Layer(4, Coupled())}, [am.DenseSynapse("v", "v", torch.eye(4, dtype=F64))])
    state = {"v": torch.randn(2, 4, dtype=F64)}
    mask = torch.tensor([True, False, False, False])
    with pytest.raises(ValueError, match=r"clamp\['v'\].*same sample.*whole or not at all.*Identity"):
        net.velocity(state, clamp={"v": mask})
    net.velocity(state, clamp={"v": True})  # whole, or not at all, is fine
    net.velocity(state, clamp={"v": torch.zeros(4, dtype=torch.bool)})
    net.velocity(state, clamp={"v": torch.tensor([[True], [False]])})  # one sample held whole


def test_settle_refuses_a_mask_over_some_pixels_and_points_to_the_completion():
    from assocmem.ham import reconstruction as rec

    net = rec.reconstruction_network(3, 16, 10.0, dtype=F64)
    images = rec.unit_images(torch.rand(2, 16, generator=torch.Generator().manual_seed(0)), dtype=F64)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :8] = True
    with pytest.raises(ValueError, match=r"clamp\['image'\].*assocmem\.ham\.completion\.complete"):
        rec.settle(net, images, clamp=mask)
