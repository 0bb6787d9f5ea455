"""A custom energy term in one line: ``EnergyTerm.of(fn, *layers)``, forces by autograd (docs/reference.md §1)."""

import pytest
import torch

import assocmem as am
from assocmem.models import model_b

D = torch.float64


def quartic():
    """``E = -1/4 sum g_v^4``: rewards saturated feature units (bounded below with Tanh units)."""
    return am.EnergyTerm.of(lambda g: -0.25 * (g["v"] ** 4).sum(1), "v", name="quartic")


def two_layer(term, n=5, k=3, tau_h=1.0):
    xi = torch.randn(k, n, dtype=D)
    layers = {"v": am.Layer(n, am.Tanh()), "h": am.Layer(k, am.LogSumExp(2.0), tau=tau_h)}
    return am.Network(layers, [am.DenseSynapse("v", "h", xi, name="xi"), term])


def finite_difference_forces(term, g, eps=1e-6):
    """``-dE/dg`` by central differences, one unit at a time."""
    forces = {}
    for name in term.layers:
        f = torch.zeros_like(g[name])
        for i in range(g[name].shape[1]):
            step = torch.zeros_like(g[name])
            step[:, i] = eps
            up = term.energy({**g, name: g[name] + step})
            down = term.energy({**g, name: g[name] - step})
            f[:, i] = -(up - down) / (2 * eps)
        forces[name] = f
    return forces


def test_one_line_term_is_exported_and_listed_among_the_energy_terms():
    term = quartic()
    assert isinstance(term, am.FunctionTerm) and isinstance(term, am.network.FunctionTerm)
    assert term.layers == ("v",) and term.kind == "custom"
    net = two_layer(term)
    x = {"v": torch.randn(4, 5, dtype=D), "h": torch.randn(4, 3, dtype=D)}
    terms = net.energy_terms(x)
    g = torch.tanh(x["v"])
    torch.testing.assert_close(terms["custom:quartic"], -0.25 * (g**4).sum(1))
    torch.testing.assert_close(net.energy(x), torch.stack(list(terms.values())).sum(0))


def test_forces_equal_finite_differences_of_the_callable():
    term = am.EnergyTerm.of(
        lambda g: (g["v"].sum(1) - 2 * g["h"].sum(1)) ** 2 + (g["v"] ** 3).sum(1), "v", "h"
    )
    assert term.name == "custom_v_h"
    g = {"v": torch.randn(3, 4, dtype=D), "h": torch.randn(3, 2, dtype=D)}
    energy, forces = term.energy_and_forces(g)
    torch.testing.assert_close(energy, term.energy(g))
    expected = finite_difference_forces(term, g)
    assert forces.keys() == expected.keys()
    for name in forces:
        torch.testing.assert_close(forces[name], expected[name], rtol=1e-6, atol=1e-6)
    closed = {"v": -(2 * (g["v"].sum(1) - 2 * g["h"].sum(1))[:, None] + 3 * g["v"] ** 2)}
    torch.testing.assert_close(forces["v"], closed["v"])


def test_velocity_with_a_custom_term_is_the_autograd_gradient_of_the_energy():
    net = two_layer(quartic())
    x = {"v": torch.randn(2, 5, dtype=D), "h": torch.randn(2, 3, dtype=D)}
    g = {n: layer.activation(x[n]).detach().requires_grad_(True) for n, layer in net.layers.items()}
    xi = net.synapses[0].weight
    energy = (
        sum(layer.legendre(x[n], g[n]) for n, layer in net.layers.items())
        - torch.einsum("bk,kn,bn->b", g["h"], xi, g["v"])
        - 0.25 * (g["v"] ** 4).sum(1)
    )
    grads = torch.autograd.grad(energy.sum(), list(g.values()))
    velocity = net.velocity(x)
    for name, grad in zip(g, grads, strict=True):
        torch.testing.assert_close(velocity[name], -grad / net.layers[name].tau)


def test_gradcheck_energy_and_forces_through_a_custom_term():
    """float64 gradcheck of the energy in states and the term's own weight, and of the forces (second order)."""
    weight = torch.nn.Parameter(torch.randn(4, 4, dtype=D))

    class Bilinear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = weight

        def forward(self, g):
            return torch.einsum("bi,ij,bj->b", g["v"], self.weight, g["v"]) ** 2 / 8

    term = am.EnergyTerm.of(Bilinear(), "v")
    assert term.name == "Bilinear" or term.name.startswith("custom_")
    net = am.Network({"v": am.Layer(4, am.Tanh())}, [term])
    assert any(p is weight for p in net.parameters())
    x = torch.randn(2, 4, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: net.energy({"v": x}), (x, weight))
    assert torch.autograd.gradcheck(lambda x, w: net.velocity({"v": x})["v"], (x, weight))


def test_relax_descends_the_energy_with_a_custom_term():
    net = two_layer(quartic())
    x = {"v": 0.5 * torch.randn(3, 5, dtype=D), "h": torch.zeros(3, 3, dtype=D)}
    traj = am.relax(net, x, method="rk4", dt=0.2, t_max=100.0, tol=1e-4)
    assert bool(traj.converged.all())
    assert bool((traj.energies.diff(dim=0) <= 1e-10).all())
    assert bool((traj.energy < traj.energies[0] - 1e-3).all())
    torch.testing.assert_close(
        traj.states["v"], net.velocity(traj.states)["v"] + traj.states["v"], atol=1e-4, rtol=0
    )


def test_forces_keep_a_graph_only_when_states_or_the_terms_weights_need_one():
    """Relaxing a cue that needs no gradient builds no graph across the steps; a trainable term's weight gets one."""
    net = two_layer(quartic())
    x = {"v": torch.randn(2, 5, dtype=D), "h": torch.zeros(2, 3, dtype=D)}
    traj = am.relax(net, x, method="euler", dt=0.1, t_max=1.0, tol=0)
    assert not traj.states["v"].requires_grad
    scale = torch.nn.Parameter(torch.tensor(0.5, dtype=D))

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = scale

        def forward(self, g):
            return -self.scale * (g["v"] ** 4).sum(1)

    net = two_layer(am.EnergyTerm.of(Scaled(), "v"))
    traj = am.relax(net, x, method="euler", dt=0.1, t_max=1.0, tol=0)
    (grad,) = torch.autograd.grad(traj.states["v"].sum(), scale)
    eps = 1e-6
    with torch.no_grad():
        scale += eps
        up = am.relax(net, x, method="euler", dt=0.1, t_max=1.0, tol=0).states["v"].sum()
        scale -= 2 * eps
        down = am.relax(net, x, method="euler", dt=0.1, t_max=1.0, tol=0).states["v"].sum()
    torch.testing.assert_close(grad, (up - down) / (2 * eps), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("holder", ["captured", "buffer"])
def test_gradients_reach_a_trainable_tensor_a_term_captures_or_keeps_as_a_buffer(holder):
    """A tensor that requires grad reaches the forces' graph however the term holds it: no silent zero gradient."""
    scale = torch.tensor(0.5, dtype=D, requires_grad=True)
    if holder == "captured":
        term = am.EnergyTerm.of(lambda g: -scale * (g["v"] ** 4).sum(1), "v")
    else:

        class Buffered(am.EnergyTerm):
            layers, name = ("v",), "buffered"

            def __init__(self):
                super().__init__()
                self.register_buffer("scale", scale)

            def energy(self, g, inputs=None):
                return -self.scale * (g["v"] ** 4).sum(1)

        term = Buffered()
    net = two_layer(term)
    x = {"v": torch.randn(2, 5, dtype=D), "h": torch.zeros(2, 3, dtype=D)}

    def final(s):
        return am.relax(net, x, method="euler", dt=0.1, t_max=1.0, tol=0).states["v"].sum()

    (grad,) = torch.autograd.grad(final(scale), scale)
    eps = 1e-6
    with torch.no_grad():
        scale += eps
        up = final(scale)
        scale -= 2 * eps
        down = final(scale)
    torch.testing.assert_close(grad, (up - down) / (2 * eps), rtol=1e-5, atol=1e-7)
    assert float(grad.abs()) > 1e-6


def test_custom_term_beside_an_integrated_out_layer():
    """Integrating out ``h`` keeps the custom term on ``v``: reduced energy = model B's reduced energy + term."""
    xi = torch.randn(4, 6, dtype=D)
    term = am.EnergyTerm.of(lambda g: 0.1 * (g["v"] ** 2).sum(1) ** 2, "v", name="confine")
    net = am.Network(
        {"v": am.Layer(6, am.Identity()), "h": am.Layer(4, am.LogSumExp(1.5))},
        [am.DenseSynapse("v", "h", xi, name="xi"), term],
    ).integrate_out("h")
    plain = model_b(xi, beta=1.5, reduced=True)
    v = torch.randn(3, 6, dtype=D)
    torch.testing.assert_close(net.energy({"v": v}), plain.energy({"v": v}) + 0.1 * (v**2).sum(1) ** 2)
    torch.testing.assert_close(
        net.velocity({"v": v})["v"], plain.velocity({"v": v})["v"] - 0.4 * (v**2).sum(1, keepdim=True) * v
    )
    traj = am.relax(net, {"v": v}, tol=1e-4)
    assert bool(traj.converged.all()) and bool((traj.energy < traj.energies[0]).all())
    with pytest.raises(ValueError, match="not linear in its activation"):
        am.Network(
            {"v": am.Layer(6, am.Identity()), "h": am.Layer(4, am.LogSumExp(1.5))},
            [am.DenseSynapse("v", "h", xi), am.EnergyTerm.of(lambda g: g["h"].sum(1) ** 2, "h")],
        ).integrate_out("h")


def test_clamped_units_stay_put_under_a_custom_term():
    net = two_layer(quartic())
    x = {"v": torch.randn(2, 5, dtype=D), "h": torch.zeros(2, 3, dtype=D)}
    mask = torch.tensor([True, True, False, False, False])
    traj = am.relax(net, x, clamp={"v": mask}, method="rk4", dt=0.2, t_max=20.0, tol=1e-6)
    assert torch.equal(traj.states["v"][:, :2], x["v"][:, :2])
    assert not torch.allclose(traj.states["v"][:, 2:], x["v"][:, 2:])
    assert bool((traj.energies.diff(dim=0) <= 1e-10).all())


def test_a_named_layer_the_callable_ignores_gets_zero_force():
    term = am.EnergyTerm.of(lambda g: (g["v"] ** 2).sum(1), "v", "h")
    g = {"v": torch.randn(2, 3, dtype=D), "h": torch.randn(2, 4, dtype=D)}
    forces = term.forces(g)
    assert torch.equal(forces["h"], torch.zeros(2, 4, dtype=D))
    torch.testing.assert_close(forces["v"], -2 * g["v"])
    constant = am.EnergyTerm.of(lambda g: torch.zeros(g["v"].shape[0], dtype=D), "v")
    assert torch.equal(constant.forces(g)["v"], torch.zeros(2, 3, dtype=D))


@pytest.mark.parametrize(
    ("fn", "error", "match"),
    [
        (lambda g: g["v"] ** 2, ValueError, r"shape \(batch,\) = \(2,\), got \(2, 3\)"),
        (lambda g: (g["v"] ** 2).sum(), ValueError, r"shape \(batch,\) = \(2,\), got \(\)"),
        (lambda g: 1.0, TypeError, "must return a tensor of shape"),
        (lambda g: g["h"].sum(1), KeyError, "reads layer 'h' but names only"),
    ],
    ids=["per-unit", "summed-over-batch", "not-a-tensor", "undeclared-layer"],
)
def test_a_callable_with_the_wrong_output_is_a_clear_error(fn, error, match):
    term = am.EnergyTerm.of(fn, "v")
    with pytest.raises(error, match=match):
        term.energy({"v": torch.randn(2, 3), "h": torch.randn(2, 4)})


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: am.EnergyTerm.of("v", "v"), TypeError, "fn must be a callable"),
        (lambda: am.EnergyTerm.of(lambda g: g["v"].sum(1)), ValueError, "at least one layer"),
        (lambda: am.EnergyTerm.of(lambda g: g["v"].sum(1), "v", "v"), ValueError, "distinct"),
        (lambda: am.EnergyTerm.of(lambda g: g["v"].sum(1), "a.b"), ValueError, "every layer must be"),
        (
            lambda: am.Network({"v": am.Layer(2, am.Tanh())}, [quartic(), quartic()]),
            ValueError,
            "two synapses",
        ),
        (lambda: am.Network({"x": am.Layer(2, am.Tanh())}, [quartic()]), KeyError, "unknown layer 'v'"),
    ],
)
def test_construction_errors_name_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()
