"""gradcheck (float64) of the energies and closed-form forces of dense, convolutional, pooling, attention and
token-memory terms with respect to states and weights; energy descent along relaxations of random networks that
use them (docs/reference.md §1, §4, §6)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import assocmem as am
from assocmem.lagrangians import hessian_vector
from assocmem.lagrangians.base import sum_features

DT = torch.float64


def leaf(*shape, gen, scale=1.0):
    return (scale * torch.randn(*shape, dtype=DT, generator=gen)).requires_grad_(True)


def two_layer(term_of, pre_shape, post_shape):
    """A function of (g_pre, g_post, *weights) -> (energy, forces) for gradcheck: the term is rebuilt from the
    weights so that gradients reach them."""

    def run(g_pre, g_post, *ws):
        term = term_of(*ws)
        am.Network(
            {"a": am.Layer(pre_shape, am.Identity()), "b": am.Layer(post_shape, am.Identity())}, [term]
        )
        g = {"a": g_pre, "b": g_post}
        energy, forces = term.energy_and_forces(g)
        return energy, forces["a"], forces["b"], term.energy(g)

    return run


def one_layer(term_of, shape):
    def run(g, *ws):
        term = term_of(*ws)
        am.Network({"t": am.Layer(shape, am.LayerNorm(dim=-1))}, [term])
        energy, forces = term.energy_and_forces({"t": g})
        return energy, forces["t"], term.energy({"t": g})

    return run


def test_gradcheck_dense_conv_and_pooling_synapses():
    gen = torch.Generator().manual_seed(0)
    dense = two_layer(lambda w: am.DenseSynapse("a", "b", w), (2, 3), (4,))
    assert torch.autograd.gradcheck(dense, (leaf(2, 2, 3, gen=gen), leaf(2, 4, gen=gen), leaf(4, 6, gen=gen)))
    conv = two_layer(lambda w: am.ConvSynapse("a", "b", w, stride=2, padding=1), (1, 5, 5), (2, 3, 3))
    assert torch.autograd.gradcheck(
        conv, (leaf(2, 1, 5, 5, gen=gen), leaf(2, 2, 3, 3, gen=gen), leaf(2, 1, 3, 3, gen=gen))
    )
    for kernel, stride, padding, post in [(2, None, 0, (2, 2, 2)), (3, 2, 1, (2, 3, 3))]:
        pool = two_layer(
            lambda k=kernel, s=stride, p=padding: am.AvgPoolSynapse("a", "b", k, s, p), (2, 5, 5), post
        )
        assert torch.autograd.gradcheck(pool, (leaf(2, 2, 5, 5, gen=gen), leaf(2, *post, gen=gen)))


@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck_attention(masked):
    gen = torch.Generator().manual_seed(1)
    mask = torch.tensor([[True, True, False, True], [True, False, True, True]]) if masked else None
    run = one_layer(lambda wk, wq, beta: am.AttentionTerm("t", wk, wq, beta=beta, mask=mask), (4, 3))
    args = (leaf(2, 4, 3, gen=gen), leaf(2, 2, 3, gen=gen, scale=0.5), leaf(2, 2, 3, gen=gen, scale=0.5))
    beta = torch.tensor([0.7, 1.3], dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(run, (*args, beta))


@pytest.mark.parametrize("lagrangian", [am.ReLU(), am.LogSumExp(beta=1.7)], ids=["relu", "logsumexp"])
def test_gradcheck_token_hopfield(lagrangian):
    gen = torch.Generator().manual_seed(2)
    run = one_layer(lambda xi: am.HopfieldTerm("t", xi, lagrangian), (3, 4))
    assert torch.autograd.gradcheck(run, (leaf(2, 3, 4, gen=gen), leaf(5, 4, gen=gen)))


@st.composite
def token_networks(draw):
    """A grid layer pooled into a smaller one, dense into tokens with attention and a token memory; random
    sizes, Lagrangians from the bounded ones, a random clamp."""
    return {
        "channels": draw(st.integers(1, 2)),
        "kernel": draw(st.sampled_from([(2, None, 0), (3, 1, 1), (3, 2, 1)])),
        "tokens": draw(st.integers(1, 4)),
        "width": draw(st.integers(2, 4)),
        "heads": draw(st.integers(1, 2)),
        "memory": draw(st.sampled_from(["relu", "logsumexp"])),
        "clamp": draw(st.sampled_from(["none", "grid", "half-tokens"])),
        "seed": draw(st.integers(0, 2**16)),
    }


@given(spec=token_networks())
def test_energy_never_increases_along_relaxations_with_the_new_terms(spec):
    gen = torch.Generator().manual_seed(spec["seed"])
    c, (k, s, p), t, d, h = spec["channels"], spec["kernel"], spec["tokens"], spec["width"], spec["heads"]
    pool = am.AvgPoolSynapse("grid", "pooled", k, s, p)
    pooled = pool.output_shape((c, 4, 4))
    n_pooled = int(torch.Size(pooled).numel())
    memory = am.ReLU() if spec["memory"] == "relu" else am.LogSumExp(beta=2.0)
    net = am.Network(
        {
            "grid": am.Layer((c, 4, 4), am.Tanh()),
            "pooled": am.Layer(pooled, am.Sigmoid(beta=1.5), tau=0.5),
            "tokens": am.Layer((t, d), am.LayerNorm(gamma=1.0, dim=-1), tau=0.8),
        },
        [
            pool,
            am.DenseSynapse("pooled", "tokens", 0.5 * torch.randn(t * d, n_pooled, dtype=DT, generator=gen)),
            am.AttentionTerm("tokens", *torch.randn(2, h, 2, d, dtype=DT, generator=gen), beta=1.2),
            am.HopfieldTerm("tokens", torch.randn(5, d, dtype=DT, generator=gen), memory),
        ],
    )
    state = {n: torch.randn(2, *layer.shape, dtype=DT, generator=gen) for n, layer in net.layers.items()}
    clamp = {
        "none": {},
        "grid": {"grid": True},
        "half-tokens": {"tokens": (torch.arange(t) < (t + 1) // 2).reshape(t, 1).expand(t, d)},
    }[spec["clamp"]]
    # The descent identity at the start: dE/dt = grad_x E . xdot = -sum_A tau_A xdot_A^T Hess(L_A) xdot_A <= 0.
    x = {n: v.clone().requires_grad_(True) for n, v in state.items()}
    grads = torch.autograd.grad(net.energy(x).sum(), list(x.values()))
    v = net.velocity(state, clamp=clamp)
    rate = sum(sum_features(gr * v[n]) for gr, n in zip(grads, x, strict=True))
    dissipation = sum(
        layer.tau * sum_features(v[n] * hessian_vector(layer.lagrangian, state[n], v[n]))
        for n, layer in net.layers.items()
    )
    torch.testing.assert_close(rate, -dissipation, rtol=1e-8, atol=1e-10)
    traj = am.relax(net, state, clamp=clamp, method="rk4", dt=0.05, t_max=2.0, tol=0)
    e = traj.energies
    assert torch.isfinite(e).all()
    assert (e[1:] <= e[:-1] + 1e-10 * (1 + e[:-1].abs())).all()
