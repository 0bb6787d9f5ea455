"""The general network: energy, closed-form forces against autograd, descent identity, gradients, errors."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import assocmem as am
from assocmem.lagrangians import hessian_vector
from assocmem.lagrangians.base import sum_features
from assocmem.models import microscopic
from tests.networks import build, random_state, specs


def definitional_energy(net, x, g, inputs=None):
    """E from the definition, with x and g independent: sum_A [x.g - L(x)] + sum_t E_t(g) - sum_A I.g.

    Its gradient with respect to g (x held fixed) is dE/dg of docs/reference.md §1: the Legendre term contributes x.
    """
    inputs = inputs or {}
    e = sum(sum_features(x[n] * g[n]) - layer.lagrangian(x[n]) for n, layer in net.layers.items())
    e = e + sum(term.energy(g, inputs) for term in net.synapses)
    return e - sum(sum_features(current * g[n]) for n, current in inputs.items() if n in net.layers)


def autograd_velocity(net, x, inputs=None):
    g = {n: layer.activation(x[n]).detach().requires_grad_(True) for n, layer in net.layers.items()}
    grads = torch.autograd.grad(definitional_energy(net, x, g, inputs).sum(), list(g.values()))
    return {n: -grad / net.layers[n].tau for n, grad in zip(g, grads, strict=True)}


@given(spec=specs(), seed=st.integers(0, 1000))
def test_velocity_is_minus_energy_gradient_over_tau(spec, seed):
    net = build(spec)
    x = random_state(net, batch=3, seed=seed)
    inputs = {
        next(iter(net.layers)): 0.3
        * torch.ones(net.layers[next(iter(net.layers))].shape, dtype=torch.float64)
    }
    closed = net.velocity(x, inputs)
    auto = autograd_velocity(net, x, inputs)
    for n in net.layers:
        torch.testing.assert_close(closed[n], auto[n], rtol=1e-9, atol=1e-10)


@given(spec=specs(), seed=st.integers(0, 1000))
def test_energy_descent_identity(spec, seed):
    """dE/dt = grad_x E . xdot = -sum_A tau_A xdot_A^T Hess(L_A) xdot_A <= 0 at any state (docs/reference.md §1)."""
    net = build(spec)
    x = {n: t.requires_grad_(True) for n, t in random_state(net, batch=2, seed=seed).items()}
    (grads) = torch.autograd.grad(net.energy(x).sum(), list(x.values()))
    v = net.velocity({n: t.detach() for n, t in x.items()})
    dEdt = sum(sum_features(gr * v[n]) for gr, n in zip(grads, x, strict=True))
    dissipation = sum(
        layer.tau * sum_features(v[n] * hessian_vector(layer.lagrangian, x[n], v[n]))
        for n, layer in net.layers.items()
    )
    torch.testing.assert_close(dEdt, -dissipation, rtol=1e-8, atol=1e-9)
    assert (dEdt <= 1e-10).all()


def test_energy_terms_sum_and_microscopic_formula():
    """E = [(v - I).g - L_v] + [h.f - L_h] - f^T xi g (docs/reference.md §1)."""
    xi = torch.randn(5, 8, dtype=torch.float64)
    lv, lh = am.Tanh(1.3), am.LogSumExp(2.0)
    net = microscopic(xi, lv, lh)
    v, h = torch.randn(4, 8, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    current = torch.randn(8, dtype=torch.float64)
    g, f = lv.activation(v), lh.activation(h)
    expected = (((v - current) * g).sum(1) - lv(v)) + ((h * f).sum(1) - lh(h)) - ((f @ xi) * g).sum(1)
    terms = net.energy_terms({"v": v, "h": h}, {"v": current})
    assert set(terms) == {"layer:v", "layer:h", "input:v", "synapse:xi"}
    torch.testing.assert_close(net.energy({"v": v, "h": h}, {"v": current}), expected)
    torch.testing.assert_close(sum(terms.values()), expected)
    torch.testing.assert_close(net({"v": v, "h": h}, {"v": current}), expected)


def test_integrate_out_is_the_adiabatic_limit():
    """At h = xi g(v) + I_h the two-layer energy and feature velocity equal the reduced ones (docs/reference.md §1)."""
    xi = torch.randn(6, 9, dtype=torch.float64)
    for lh in (am.RePU(3), am.LogSumExp(1.5), am.Identity(), am.Exp(0.3)):
        net = microscopic(xi, am.Tanh(0.9), lh, tau_h=0.5)
        reduced = net.integrate_out("h")
        assert reduced.layer_names == ("v",)
        v = torch.randn(3, 9, dtype=torch.float64)
        ih = torch.randn(6, dtype=torch.float64)
        h = am.Tanh(0.9).activation(v) @ xi.T + ih
        full = {"v": v, "h": h}
        torch.testing.assert_close(net.energy(full, {"h": ih}), reduced.energy({"v": v}, {"h": ih}))
        torch.testing.assert_close(
            net.velocity(full, {"h": ih})["v"], reduced.velocity({"v": v}, {"h": ih})["v"]
        )
        torch.testing.assert_close(
            net.velocity(full, {"h": ih})["h"], torch.zeros_like(h), atol=1e-12, rtol=0
        )
        # ... and h = u is the minimum of the two-layer energy over h for a convex L_h.
        bumped = {"v": v, "h": h + 0.1 * torch.randn_like(h)}
        assert (net.energy(bumped, {"h": ih}) >= net.energy(full, {"h": ih}) - 1e-12).all()
        terms = reduced.energy_terms({"v": v})
        assert set(terms) == {"layer:v", "manybody:h"}


def test_integrate_out_shares_weights_and_takes_several_synapses():
    """A hidden layer fed by two layers collapses to -L_h(W1 g1 + W2 g2); gradients reach the shared weights."""
    w1 = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
    w2 = torch.nn.Parameter(torch.randn(4, 5, dtype=torch.float64))
    lh = am.LogSumExp()
    net = am.Network(
        {"a": am.Layer(3, am.Identity()), "b": am.Layer(5, am.Tanh()), "h": am.Layer(4, lh)},
        [am.DenseSynapse("a", "h", w1), am.DenseSynapse("b", "h", w2)],
    )
    reduced = net.integrate_out("h")
    x = {"a": torch.randn(2, 3, dtype=torch.float64), "b": torch.randn(2, 5, dtype=torch.float64)}
    u = x["a"] @ w1.T + torch.tanh(x["b"]) @ w2.T
    expected = (
        0.5 * (x["a"] ** 2).sum(1) + sum_features(x["b"] * torch.tanh(x["b"])) - am.Tanh()(x["b"]) - lh(u)
    )
    torch.testing.assert_close(reduced.energy(x), expected)
    reduced.energy(x).sum().backward()
    assert w1.grad is not None and w2.grad is not None
    assert dict(reduced.named_parameters()).keys() == {
        "synapses.0.synapses.0.weight",
        "synapses.0.synapses.1.weight",
    }


def test_conv_synapse_drives_are_adjoint_and_match_autograd():
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    # (8, 8) with stride 2 drops a remainder that the transposed convolution must restore (output_padding).
    for size, stride, padding in [(7, 1, 0), (7, 2, 1), (8, 2, 0), (8, 3, 1)]:
        syn = am.ConvSynapse("img", "feat", w, stride=stride, padding=padding)
        post_shape = syn.output_shape((2, size, size))
        net = am.Network(
            {"img": am.Layer((2, size, size), am.Identity()), "feat": am.Layer(post_shape, am.ReLU())}, [syn]
        )
        g_pre = torch.randn(2, 2, size, size, dtype=torch.float64, requires_grad=True)
        g_post = torch.randn(2, *post_shape, dtype=torch.float64, requires_grad=True)
        energy = syn.energy({"img": g_pre, "feat": g_post})
        d_pre, d_post = torch.autograd.grad(energy.sum(), [g_pre, g_post])
        torch.testing.assert_close(syn.drive("img", g_post), -d_pre)
        torch.testing.assert_close(syn.drive("feat", g_pre), -d_post)
        assert net.velocity(net.zero_state(2, dtype=torch.float64))["img"].shape == (2, 2, size, size)


def test_gradcheck_energy_in_states_and_weights():
    """torch.autograd.gradcheck in float64 on a network with dense, conv and recurrent synapses."""
    gen = torch.Generator().manual_seed(3)
    wd = torch.randn(6, 2 * 4 * 4, dtype=torch.float64, generator=gen) * 0.2
    wc = torch.randn(2, 1, 3, 3, dtype=torch.float64, generator=gen) * 0.3
    wr = torch.randn(6, 6, dtype=torch.float64, generator=gen)
    wr = 0.1 * (wr + wr.T)

    def energy(x0, x1, x2, wd, wc):
        net = am.Network(
            {
                "img": am.Layer((1, 4, 4), am.Tanh()),
                "feat": am.Layer((2, 4, 4), am.LayerNorm(1.1, 0.2)),
                "mem": am.Layer(6, am.LogSumExp(2.0)),
            },
            [
                am.ConvSynapse("img", "feat", wc, padding=1),
                am.DenseSynapse("feat", "mem", wd),
                am.DenseSynapse("mem", "mem", wr),
            ],
        )
        return net.energy({"img": x0, "feat": x1, "mem": x2})

    args = (
        torch.randn(2, 1, 4, 4, dtype=torch.float64, requires_grad=True),
        torch.randn(2, 2, 4, 4, dtype=torch.float64, requires_grad=True),
        torch.randn(2, 6, dtype=torch.float64, requires_grad=True),
        wd.requires_grad_(True),
        wc.requires_grad_(True),
    )
    assert torch.autograd.gradcheck(energy, args)
    # The reduced (many-body) energy too.
    xi = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)

    def reduced_energy(v, xi):
        return microscopic(xi, am.Spherical(), am.RePU(3), reduced=True).energy({"v": v})

    assert torch.autograd.gradcheck(
        reduced_energy, (torch.randn(3, 5, dtype=torch.float64, requires_grad=True), xi)
    )


def test_custom_energy_term_gets_autograd_forces():
    class Quartic(am.EnergyTerm):
        """E = 1/4 sum g^4 on one layer: a custom term with no closed-form force."""

        def __init__(self):
            super().__init__()
            self.layers, self.name = ("v",), "quartic"

        def energy(self, g, inputs=None):
            return 0.25 * g["v"].pow(4).sum(1)

    net = am.Network({"v": am.Layer(4, am.Tanh())}, [Quartic()])
    x = {"v": torch.randn(3, 4, dtype=torch.float64)}
    g = torch.tanh(x["v"])
    torch.testing.assert_close(net.velocity(x)["v"], -g.pow(3) - x["v"])
    torch.testing.assert_close(net.velocity(x)["v"], autograd_velocity(net, x)["v"])
    with pytest.raises(ValueError, match="not linear in its activation"):
        am.Network(
            {"v": am.Layer(4, am.Tanh()), "h": am.Layer(2, am.Identity())},
            [Quartic(), am.DenseSynapse("v", "h", torch.randn(2, 4))],
        ).integrate_out("v")


def test_clamped_units_do_not_move():
    net = microscopic(torch.randn(3, 6), am.Tanh(), am.LogSumExp())
    x = {"v": torch.randn(2, 6), "h": torch.randn(2, 3)}
    mask = torch.zeros(6, dtype=torch.bool)
    mask[:2] = True
    v = net.velocity(x, clamp={"v": mask, "h": True})
    assert (v["v"][:, :2] == 0).all() and (v["v"][:, 2:] != 0).all()
    assert (v["h"] == 0).all()


def test_network_follows_dtype_and_module_conversions():
    net = microscopic(torch.randn(3, 6), am.Tanh(), am.LogSumExp())
    assert net.zero_state(2)["v"].dtype == torch.float32
    net64 = net.to(torch.float64)
    state = net64.zero_state(2)
    assert state["v"].dtype == torch.float64 and net64.energy(state).dtype == torch.float64
    with pytest.raises(TypeError, match=r"network's weights are torch.float64"):
        net64.energy({"v": torch.zeros(2, 6), "h": torch.zeros(2, 3)})


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: am.Layer(5, am.Tanh(), tau=0.0), ValueError, "tau must be a positive"),
        (lambda: am.Layer(5, am.Tanh(), tau=-1.0), ValueError, "tau must be a positive"),
        (lambda: am.Layer((3, 0), am.Tanh()), ValueError, "shape must be a positive int"),
        (lambda: am.Layer(5, torch.tanh), TypeError, "lagrangian must be an assocmem Lagrangian"),
        (
            lambda: am.Network({"v": am.Layer(5, am.Tanh())}, [am.DenseSynapse("v", "h", torch.randn(3, 5))]),
            KeyError,
            "refers to unknown layer 'h'",
        ),
        (
            lambda: am.Network(
                {"v": am.Layer(5, am.Tanh()), "h": am.Layer(3, am.Tanh())},
                [am.DenseSynapse("v", "h", torch.randn(5, 3))],
            ),
            ValueError,
            r"expected shape \(3, 5\)",
        ),
        (
            lambda: am.Network(
                {"a": am.Layer((1, 6, 6), am.Tanh()), "b": am.Layer((2, 5, 5), am.Tanh())},
                [am.ConvSynapse("a", "b", torch.randn(2, 1, 3, 3))],
            ),
            ValueError,
            r"produces \(2, 4, 4\)",
        ),
        (
            lambda: am.DenseSynapse("v", "v", torch.randn(4, 4) + torch.triu(torch.ones(4, 4))),
            ValueError,
            "symmetric",
        ),
        (lambda: am.DenseSynapse("v", "h", torch.full((2, 3), float("nan"))), ValueError, "NaN"),
        (lambda: am.ConvSynapse("a", "b", torch.randn(2, 1, 3, 3), stride=0), ValueError, "stride"),
        (
            lambda: am.Network(
                {"v": am.Layer(2, am.Tanh()), "h": am.Layer(2, am.Tanh())},
                [am.DenseSynapse("v", "h", torch.eye(2)), am.DenseSynapse("h", "v", torch.eye(2))],
            ).integrate_out("x"),
            KeyError,
            "unknown layer 'x'",
        ),
        (
            lambda: am.Network(
                {"v": am.Layer(2, am.Tanh()), "h": am.Layer(2, am.Tanh())},
                [am.DenseSynapse("v", "h", torch.eye(2)), am.DenseSynapse("h", "h", torch.eye(2))],
            ).integrate_out("h"),
            ValueError,
            "synapse to itself",
        ),
    ],
)
def test_construction_errors_name_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_state_errors_name_the_layer():
    net = microscopic(torch.randn(3, 6), am.Tanh(), am.LogSumExp())
    good = {"v": torch.zeros(2, 6), "h": torch.zeros(2, 3)}
    with pytest.raises(KeyError, match="missing layer 'h'"):
        net.energy({"v": good["v"]})
    with pytest.raises(KeyError, match="unknown layer 'w'"):
        net.energy({**good, "w": good["v"]})
    with pytest.raises(ValueError, match=r"state\['v'\] has shape \(2, 5\); expected \(batch, 6\)"):
        net.energy({**good, "v": torch.zeros(2, 5)})
    with pytest.raises(ValueError, match=r"state\['h'\] has batch size 3"):
        net.energy({**good, "h": torch.zeros(3, 3)})
    with pytest.raises(ValueError, match=r"state\['v'\] contains NaN"):
        net.energy({**good, "v": torch.full((2, 6), float("nan"))})
    with pytest.raises(ValueError, match=r"inputs\['v'\] has shape \(4,\)"):
        net.velocity(good, inputs={"v": torch.zeros(4)})
    with pytest.raises(KeyError, match="inputs has unknown layer 'q'"):
        net.velocity(good, inputs={"q": torch.zeros(4)})
    with pytest.raises(TypeError, match=r"clamp\['v'\] must be True/False or a bool tensor"):
        net.velocity(good, clamp={"v": torch.zeros(6)})
