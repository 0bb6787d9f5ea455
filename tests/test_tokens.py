"""Token layers: the Energy Transformer's attention energy, the Hopfield memory over tokens and layer-norm neurons
per token (docs/reference.md §6), each against its formula written out and its forces against autograd."""

import math

import pytest
import torch
from torch.nn import functional as TF

import assocmem as am

T, D, H, Y = 5, 6, 2, 3


def attention_by_hand(g, wk, wq, beta, mask=None):
    """E_ATT term by term: -sum_h beta_h^-1 sum_C log sum_{B != C} exp(beta_h K_hB . Q_hC), over taking part."""
    batch, tokens, _ = g.shape
    betas = [float(b) for b in torch.as_tensor(beta, dtype=torch.float64).reshape(-1).expand(wk.shape[0])]
    out = torch.zeros(batch, dtype=g.dtype)
    for b in range(batch):
        part = [True] * tokens if mask is None else mask.expand(batch, tokens)[b].tolist()
        for h in range(wk.shape[0]):
            for c in range(tokens):
                others = [i for i in range(tokens) if i != c and part[i]]
                if not part[c] or not others:
                    continue
                q = wq[h] @ g[b, c]
                s = sum(math.exp(betas[h] * float((wk[h] @ g[b, i]) @ q)) for i in others)
                out[b] -= math.log(s) / betas[h]
    return out


def autograd_force(term, g):
    leaf = g.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(term.energy({"t": leaf}).sum(), leaf)
    return -grad


def weights(seed):
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(H, Y, D, dtype=torch.float64, generator=gen),
        torch.randn(H, Y, D, dtype=torch.float64, generator=gen),
        torch.randn(3, T, D, dtype=torch.float64, generator=gen),
    )


@pytest.mark.parametrize(
    ("beta", "mask"),
    [
        (None, None),
        (0.7, torch.tensor([True, False, True, True, False])),
        (
            torch.tensor([0.3, 1.1], dtype=torch.float64),
            torch.rand(3, T, generator=torch.Generator().manual_seed(5)) < 0.6,
        ),
    ],
    ids=["default-beta", "token-mask", "per-head-beta-batch-mask"],
)
def test_attention_energy_is_the_formula_and_its_forces_are_minus_its_gradient(beta, mask):
    wk, wq, g = weights(0)
    term = am.AttentionTerm("t", wk, wq, beta=beta, mask=mask)
    am.Network({"t": am.Layer((T, D), am.LayerNorm(dim=-1))}, [term])
    b = 1 / math.sqrt(Y) if beta is None else beta
    energy, forces = term.energy_and_forces({"t": g})
    torch.testing.assert_close(energy, attention_by_hand(g, wk, wq, b, mask), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(term.energy({"t": g}), energy)
    torch.testing.assert_close(forces["t"], autograd_force(term, g), rtol=1e-10, atol=1e-12)
    if mask is not None:  # a token that takes no part feels no force
        out = ~mask.expand(3, T)
        assert (forces["t"][out] == 0).all()


def test_attention_force_is_the_sum_of_the_query_and_key_parts():
    """F_A = sum_h [W^Q_h^T sum_B A_hAB K_hB + W^K_h^T sum_C A_hCA Q_hC] (docs/reference.md §6), written out."""
    wk, wq, g = weights(1)
    beta = 0.8
    term = am.AttentionTerm("t", wk, wq, beta=beta)
    keys = torch.einsum("hyd,ntd->nhty", wk, g)
    queries = torch.einsum("hyd,ntd->nhty", wq, g)
    scores = beta * torch.einsum("nhcy,nhky->nhck", queries, keys)
    scores = scores.masked_fill(torch.eye(T, dtype=torch.bool), -math.inf)
    a = torch.softmax(scores, -1)  # a[n, h, C, B]: query C attends to key B
    as_query = torch.einsum("hyd,nhab,nhby->nad", wq, a, keys)
    as_key = torch.einsum("hyd,nhca,nhcy->nad", wk, a, queries)
    torch.testing.assert_close(term.forces({"t": g})["t"], as_query + as_key, rtol=1e-12, atol=1e-12)


def test_attention_with_a_lone_token_is_zero_and_finite():
    wk, wq, _ = weights(2)
    term = am.AttentionTerm("t", wk, wq)
    g = torch.randn(2, 1, D, dtype=torch.float64)
    energy, forces = term.energy_and_forces({"t": g})
    assert (energy == 0).all() and (forces["t"] == 0).all()
    masked = am.AttentionTerm("t", wk, wq, mask=torch.tensor([True, False, False, False, False]))
    g5 = torch.randn(2, T, D, dtype=torch.float64, requires_grad=True)
    masked.energy({"t": g5}).sum().backward()
    assert torch.isfinite(g5.grad).all() and (g5.grad == 0).all()


@pytest.mark.parametrize("form", ["relu", "logsumexp"])
def test_token_hopfield_energy_is_the_formula_and_its_forces_are_minus_its_gradient(form):
    gen = torch.Generator().manual_seed(3)
    xi = torch.randn(7, D, dtype=torch.float64, generator=gen)
    g = torch.randn(3, T, D, dtype=torch.float64, generator=gen)
    lagrangian = am.ReLU() if form == "relu" else am.LogSumExp(beta=2.5)
    term = am.HopfieldTerm("t", xi, lagrangian)
    am.Network({"t": am.Layer((T, D), am.LayerNorm(dim=-1))}, [term])
    overlaps = torch.einsum("kd,btd->btk", xi, g)
    if form == "relu":
        expected = -0.5 * torch.relu(overlaps).pow(2).sum((1, 2))
    else:
        expected = -(torch.logsumexp(2.5 * overlaps, -1) / 2.5).sum(1)
    energy, forces = term.energy_and_forces({"t": g})
    torch.testing.assert_close(energy, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(forces["t"], autograd_force(term, g), rtol=1e-10, atol=1e-12)


def test_layernorm_per_token_has_one_square_root_per_token():
    gen = torch.Generator().manual_seed(4)
    x = 3 * torch.randn(4, T, D, dtype=torch.float64, generator=gen)
    delta = torch.linspace(-0.2, 0.2, D, dtype=torch.float64)
    lag = am.LayerNorm(gamma=1.3, delta=delta, eps=1e-5, dim=-1)
    g = lag.activation(x)
    torch.testing.assert_close(g, TF.layer_norm(x, (D,), eps=1e-5) * 1.3 + delta)
    # L sums D gamma sqrt(var + eps) + delta . x over the tokens; each token alone gives its own share.
    per_token = torch.stack([am.LayerNorm(1.3, delta, 1e-5)(x[:, t]) for t in range(T)], 1).sum(1)
    torch.testing.assert_close(lag(x), per_token)
    # Not the same energy as one square root over all tokens (what the reference warns about).
    assert not torch.allclose(lag(x), am.LayerNorm(1.3, delta, 1e-5)(x))
    # Bounded activations: |g - delta| <= gamma sqrt(D) per token, so every token term's energy is bounded.
    assert ((g - delta).norm(dim=-1) <= 1.3 * math.sqrt(D) + 1e-9).all()
    # The Legendre term x.g - L per token is -gamma D eps / sqrt(var + eps): bounded, in [-gamma D sqrt(eps), 0).
    legendre = am.Layer((T, D), lag).legendre(x, g)
    var = x.var(-1, unbiased=False)
    torch.testing.assert_close(legendre, (-1.3 * D * 1e-5 / torch.sqrt(var + 1e-5)).sum(1))


def test_energy_transformer_block_descends_and_settles():
    """Layer-norm tokens with attention and a Hopfield memory: the energy falls and the tokens stop moving."""
    gen = torch.Generator().manual_seed(6)
    wk, wq = (0.3 * torch.randn(H, Y, D, dtype=torch.float64, generator=gen) for _ in range(2))
    xi = 0.5 * torch.randn(8, D, dtype=torch.float64, generator=gen)
    net = am.Network(
        {"t": am.Layer((T, D), am.LayerNorm(dim=-1))},
        [am.AttentionTerm("t", wk, wq, beta=1.0), am.HopfieldTerm("t", xi, am.LogSumExp(beta=2.0))],
    )
    x = {"t": torch.randn(2, T, D, dtype=torch.float64, generator=gen)}
    traj = am.relax(net, x, method="rk4", dt=0.25, t_max=100.0, tol=1e-4)
    assert (traj.energies[1:] <= traj.energies[:-1] + 1e-12).all()
    assert traj.converged.all()
    # Half the tokens clamped with a mask: the others still settle, the clamped ones hold.
    clamp = torch.zeros(2, T, D, dtype=torch.bool)
    clamp[:, :2] = True
    held = am.relax(net, x, clamp={"t": clamp}, method="rk4", dt=0.25, t_max=100.0, tol=1e-4)
    assert (held.energies[1:] <= held.energies[:-1] + 1e-12).all()
    torch.testing.assert_close(held.states["t"][:, :2], x["t"][:, :2], rtol=0, atol=0)
    assert held.converged.all()


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: am.AttentionTerm("t", torch.randn(2, 3, 6), torch.randn(2, 4, 6)), ValueError, "same shape"),
        (lambda: am.AttentionTerm("t", torch.randn(3, 6), torch.randn(3, 6)), ValueError, "3 dimensions"),
        (lambda: am.AttentionTerm("t", *weights(0)[:2], beta=-1.0), ValueError, "beta must be a positive"),
        (
            lambda: am.AttentionTerm("t", *weights(0)[:2], beta=torch.ones(3)),
            ValueError,
            r"shape \(\) or \(2,\)",
        ),
        (lambda: am.AttentionTerm("t", *weights(0)[:2], mask=torch.ones(5)), TypeError, "bool tensor"),
        (
            lambda: am.Network(
                {"t": am.Layer((T, 4), am.LayerNorm(dim=-1))}, [am.AttentionTerm("t", *weights(0)[:2])]
            ),
            ValueError,
            r"must have shape \(tokens, 6\)",
        ),
        (
            lambda: am.Network(
                {"t": am.Layer((T, D), am.LayerNorm(dim=-1))},
                [am.AttentionTerm("t", *weights(0)[:2], mask=torch.ones(4, dtype=torch.bool))],
            ),
            ValueError,
            "mask has 4 tokens",
        ),
        (
            lambda: am.HopfieldTerm("t", torch.randn(4, D), "relu"),
            TypeError,
            "must be an assocmem Lagrangian",
        ),
        (
            lambda: am.Network(
                {"t": am.Layer((T, 4), am.Identity())}, [am.HopfieldTerm("t", torch.randn(3, D))]
            ),
            ValueError,
            r"must have shape \(tokens, 6\)",
        ),
        (lambda: am.LayerNorm(dim=1.0), TypeError, "dim must be an int"),
    ],
)
def test_errors_name_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()
