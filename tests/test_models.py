"""Named models as presets of the general network: their energies and updates (docs/reference.md §2)."""

import math

import pytest
import torch

import assocmem as am
from assocmem.laboratory import overlap
from assocmem.models import continuous_hopfield, interaction, microscopic, model_a, model_b, model_c

F64 = torch.float64


def test_model_b_euler_step_is_the_attention_update():
    """One Euler step with dt = tau_f: v <- xi^T softmax(beta xi v) (Ramsauer et al. 2020)."""
    xi = torch.randn(7, 5, dtype=F64)
    v = torch.randn(3, 5, dtype=F64)
    for beta, tau_f in [(0.5, 1.0), (3.0, 2.5)]:
        net = model_b(xi, beta=beta, tau_f=tau_f, reduced=True)
        step = am.relax(net, {"v": v}, method="euler", dt=tau_f, t_max=tau_f, tol=0)
        torch.testing.assert_close(step.states["v"], torch.softmax(beta * v @ xi.T, dim=1) @ xi)


def test_model_b_energy_differs_from_ramsauer_by_a_constant():
    """E_R = -lse(beta, xi v) + 1/2 v.v + beta^-1 log K + 1/2 M^2 = E_KH + beta^-1 log K + 1/2 M^2, 0 <= E_R <= 2M^2."""
    gen = torch.Generator().manual_seed(2)
    xi = torch.randn(9, 6, dtype=F64, generator=gen)
    beta = 1.7
    weights = torch.softmax(torch.randn(20, 9, dtype=F64, generator=gen) * 3, dim=1)
    v = weights @ xi  # states in the convex hull of the patterns, where Ramsauer's bounds hold
    m = xi.norm(dim=1).max()
    ramsauer = (
        -torch.logsumexp(beta * v @ xi.T, dim=1) / beta
        + 0.5 * (v * v).sum(1)
        + math.log(9) / beta
        + 0.5 * m**2
    )
    ours = model_b(xi, beta=beta, reduced=True).energy({"v": v})
    torch.testing.assert_close(
        ramsauer - ours, torch.full_like(ours, math.log(9) / beta + 0.5 * float(m) ** 2)
    )
    assert (ramsauer >= 0).all() and (ramsauer <= 2 * m**2).all()


@pytest.mark.parametrize("hidden", [am.Polynomial(2), am.Polynomial(3), am.RePU(4), am.Exp(0.3)])
def test_model_a_with_binary_units_is_the_dense_associative_memory(hidden):
    """With L_v = sum |v| the Legendre term vanishes on +-1 states and E = -sum_mu F(xi_mu . sigma) (KH16)."""
    xi = torch.sign(torch.randn(6, 10, dtype=F64))
    sigma = torch.sign(torch.randn(8, 10, dtype=F64))
    energy = model_a(xi, hidden, feature=am.Abs(), reduced=True).energy({"v": sigma})
    torch.testing.assert_close(energy, -hidden.F(sigma @ xi.T).sum(1))
    if isinstance(hidden, am.Polynomial) and hidden.n == 2:  # the classical network, self-coupling included
        coupling = xi.T @ xi
        torch.testing.assert_close(energy, -((sigma @ coupling) * sigma).sum(1))


def test_model_c_energy_depends_on_direction_only():
    xi = torch.sign(torch.randn(5, 8, dtype=F64))
    v = torch.randn(4, 8, dtype=F64)
    net = model_c(xi, am.RePU(3), reduced=True)
    unit = v / v.norm(dim=1, keepdim=True)
    torch.testing.assert_close(net.energy({"v": v}), -torch.relu(unit @ xi.T).pow(3).sum(1))
    torch.testing.assert_close(net.energy({"v": 3.7 * v}), net.energy({"v": v}))


def test_continuous_hopfield_energy():
    """E = -1/2 g^T T g + sum (v g - int_0^v g), T = xi^T xi (Hopfield 1984)."""
    xi = torch.randn(4, 7, dtype=F64)
    v = torch.randn(3, 7, dtype=F64)
    g = torch.tanh(v)
    integral = torch.log(torch.cosh(v))
    expected = -0.5 * ((g @ xi.T) ** 2).sum(1) + (v * g - integral).sum(1)
    torch.testing.assert_close(continuous_hopfield(xi, am.Tanh(), reduced=True).energy({"v": v}), expected)


@pytest.mark.parametrize(
    "make",
    [
        lambda xi: model_a(xi, am.RePU(3), feature=am.Tanh(0.2), tau_h=0.05),
        lambda xi: model_b(xi, beta=0.2, tau_h=0.05),
        lambda xi: model_c(xi, am.RePU(3), tau_h=0.05),
        lambda xi: continuous_hopfield(xi, am.Tanh(0.5), tau_h=0.05),
    ],
)
def test_every_model_recalls_stored_patterns_from_corrupted_cues(make):
    gen = torch.Generator().manual_seed(11)
    xi = torch.sign(torch.randn(4, 64, generator=gen))
    cue = xi * torch.where(torch.rand(4, 64, generator=gen) < 0.15, -1.0, 1.0)
    net = make(xi)
    traj = am.relax(net, {"v": cue, "h": torch.zeros(4, 4)}, method="stiff", t_max=50.0)
    m = overlap(torch.sign(traj.states["v"]), xi).diagonal()
    assert (m == 1).all(), m
    assert (traj.energy < traj.energies[0]).all()


def test_presets_share_the_pattern_tensor_and_train_it():
    xi = torch.nn.Parameter(torch.randn(3, 5))
    net = model_b(xi, beta=1.0)
    assert net.synapses[0].weight is xi
    net.energy({"v": torch.randn(2, 5), "h": torch.randn(2, 3)}).sum().backward()
    assert xi.grad is not None
    assert [n for n, _ in model_b(xi, reduced=True).named_parameters()] == ["synapses.0.synapses.0.weight"]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: model_b(torch.randn(5)), ValueError, r"patterns must have shape \(K memories, N features\)"),
        (lambda: model_b(torch.zeros(0, 5)), ValueError, "patterns is empty"),
        (lambda: model_b(torch.ones(3, 5, dtype=torch.int64)), TypeError, "floating point"),
        (lambda: model_b([[1.0, -1.0]]), TypeError, "patterns must be a torch.Tensor"),
        (lambda: model_a(torch.randn(3, 5), am.LogSumExp()), TypeError, "additive Lagrangian"),
        (lambda: model_b(torch.randn(3, 5), beta=-1.0), ValueError, "beta must be a positive"),
        (
            lambda: microscopic(torch.randn(3, 5), am.Tanh(), am.Tanh(), tau_h=0),
            ValueError,
            "tau must be a positive",
        ),
        (lambda: overlap(torch.randn(2, 4), torch.randn(3, 5)), ValueError, "same N"),
    ],
)
def test_preset_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (("power", 3), lambda x: x**3),
        (("rectified", 2.5), lambda x: x.clamp(min=0) ** 2.5),
        (("exp", None, 0.5), lambda x: torch.exp(0.5 * x) / 0.5),
        ((lambda x: x.abs() ** 3,), lambda x: x.abs() ** 3),
    ],
)
def test_interaction_names_give_the_papers_F(spec, expected):
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)
    lagrangian = interaction(*spec)
    assert torch.allclose(lagrangian.F(x), expected(x))
    assert torch.allclose(lagrangian(x[None]), expected(x).sum()[None])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("power",), "needs its degree n"),
        (("power", 0), "n must be a number >= 1"),
        (("power", 2.5), "integer degree"),
        (("rectified", 3, 2.0), "beta only applies"),
        (("exp", 3), "takes beta, not a degree"),
        (("cubic", 3), "F must be one of"),
    ],
)
def test_interaction_rejects_bad_specs(args, match):
    with pytest.raises(ValueError, match=match):
        interaction(*args)
