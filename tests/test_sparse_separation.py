"""The sparse separations (docs/reference.md §7): sparsemax and 1.5-entmax against their variational definition
(an independent bisection for the threshold, the objective at other points of the simplex, finite differences of
the Lagrangian), their exact gradients, their limits, and the attention pooling of a bag with them, chunked."""

from __future__ import annotations

import pytest
import torch

from assocmem.lagrangians import Entmax15, LogSumExp, Sparsemax
from assocmem.repertoire import Repertoire, encode
from assocmem.repertoire.config import SEPARATIONS as NAMES
from assocmem.repertoire.config import RepertoireConfig
from assocmem.repertoire.model import RepertoireClassifier
from assocmem.repertoire.pooling import SPARSE, AttentionPooling

#: (Lagrangian, exponent 1 / (alpha - 1) of [ (alpha - 1) z - tau ]_+, margin of the one-hot region)
SEPARATIONS = [(Sparsemax, 1.0, 1.0, 1.0), (Entmax15, 2.0, 0.5, 2.0)]
IDS = ["sparsemax", "entmax15"]


def bisection(z: torch.Tensor, power: float, slope: float, steps: int = 200) -> torch.Tensor:
    """The definition's threshold found by bisection: ``sum_j [slope z_j - tau]_+^power = 1``, row by row."""
    lo = (slope * z).max(1, keepdim=True).values - 1.0  # the sum is >= 1 here
    hi = (slope * z).max(1, keepdim=True).values  # and 0 here
    for _ in range(steps):
        mid = (lo + hi) / 2
        total = (slope * z - mid).clamp(min=0).pow(power).sum(1, keepdim=True)
        lo, hi = torch.where(total >= 1, mid, lo), torch.where(total >= 1, hi, mid)
    return ((slope * z - (lo + hi) / 2).clamp(min=0)).pow(power)


def objective(lag, p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``p . z - Omega(p)`` per row: the function the activation maximises over the simplex."""
    return (p * z).sum(1) - lag._regulariser(p)


@pytest.mark.parametrize(("make", "power", "slope", "margin"), SEPARATIONS, ids=IDS)
def test_the_activation_is_the_maximiser_over_the_simplex(make, power, slope, margin):
    torch.manual_seed(0)
    lag = make(beta=1.0)
    z = 3 * torch.randn(6, 40, dtype=torch.float64)
    p = lag.activation(z)
    torch.testing.assert_close(p, bisection(z, power, slope), rtol=0, atol=1e-12)
    assert bool((p >= 0).all()) and torch.allclose(p.sum(1), torch.ones(6, dtype=torch.float64))
    assert 1 <= int((p[0] > 0).sum()) < 40  # sparse: some weights exactly zero
    best = objective(lag, p, z)
    others = torch.distributions.Dirichlet(torch.full((40,), 0.3, dtype=torch.float64)).sample((500,))
    for row in range(6):
        assert float(objective(lag, others, z[row].expand(500, -1)).max()) < float(best[row])
        nearby = (p[row] + 1e-3 * torch.randn(200, 40, dtype=torch.float64)).clamp(min=0)
        nearby = nearby / nearby.sum(1, keepdim=True)
        assert float(objective(lag, nearby, z[row].expand(200, -1)).max()) <= float(best[row]) + 1e-12
    softmax = torch.softmax(z, 1)
    assert bool((objective(lag, softmax, z) < best).all())


@pytest.mark.parametrize(("make", "power", "slope", "margin"), SEPARATIONS, ids=IDS)
def test_the_lagrangian_value_is_the_maximum_and_its_finite_differences_are_the_activation(
    make, power, slope, margin
):
    torch.manual_seed(1)
    lag = make(beta=1.7)
    x = torch.randn(3, 12, dtype=torch.float64)
    z = lag.beta * x
    torch.testing.assert_close(
        lag(x), objective(lag, lag.activation(x), z) / lag.beta, rtol=1e-12, atol=1e-12
    )
    eps = 1e-6
    fd = torch.zeros_like(x)
    for j in range(12):
        e = torch.zeros_like(x)
        e[:, j] = eps
        fd[:, j] = (lag(x + e) - lag(x - e)) / (2 * eps)
    torch.testing.assert_close(fd, lag.activation(x), rtol=0, atol=1e-8)


@pytest.mark.parametrize(("make", "power", "slope", "margin"), SEPARATIONS, ids=IDS)
def test_the_gradient_of_the_activation_against_finite_differences_and_its_closed_form(
    make, power, slope, margin
):
    torch.manual_seed(2)
    lag = make(beta=0.8)
    x = (2 * torch.randn(4, 9, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lag.activation, (x,))
    assert torch.autograd.gradgradcheck(lag, (x,))
    p = lag.activation(x)
    v = torch.randn_like(p)
    (got,) = torch.autograd.grad((p * v).sum(), x)
    # the Jacobian is beta (diag(s) - s s^T / sum s): s the support's indicator (sparsemax) or sqrt(p) (entmax)
    s = p.detach().sqrt() if power > 1 else (p.detach() > 0).to(p.dtype)
    closed = lag.beta * (s * v - s * (s * v).sum(1, keepdim=True) / s.sum(1, keepdim=True))
    torch.testing.assert_close(got, closed, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("make", "power", "slope", "margin"), SEPARATIONS, ids=IDS)
def test_one_hot_exactly_from_the_margin_on_and_uniform_at_small_beta_as_the_softmax(
    make, power, slope, margin
):
    z = torch.tensor([[0.0, 0.3, -1.2, 0.1]], dtype=torch.float64)
    lead = torch.tensor([[margin, 0.0, -0.5, -2.0]], dtype=torch.float64)  # leads the runner-up by the margin
    torch.testing.assert_close(make().activation(lead), torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64))
    assert float(make().activation(lead * 0.99)[0, 1]) > 0  # inside the margin the runner-up has weight
    # beta -> infinity: the argmax, exactly (the softmax only approaches it)
    big = make(beta=30.0).activation(z)
    torch.testing.assert_close(big, torch.tensor([[0.0, 1.0, 0, 0]], dtype=torch.float64))
    assert float(LogSumExp(beta=30.0).activation(z)[0, 1]) < 0.999
    # beta -> 0: the uniform vector, the softmax's limit too
    for beta in (1e-3, 1e-6):
        tiny = make(beta=beta).activation(z)
        torch.testing.assert_close(tiny, LogSumExp(beta=beta).activation(z), rtol=0, atol=10 * beta)
    if make is Sparsemax:  # every unit in the support: 1/n + beta (z - mean z), exactly
        torch.testing.assert_close(
            Sparsemax(beta=0.01).activation(z), 0.25 + 0.01 * (z - z.mean()), rtol=0, atol=1e-15
        )


def test_bad_beta_is_named():
    for make in (Sparsemax, Entmax15):
        with pytest.raises(ValueError, match="beta"):
            make(beta=0.0)


def bag(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    letters = "ACDEFGHIKLMNPQRSTVWY"
    seqs = [
        "".join(letters[int(i)] for i in torch.randint(0, 20, (int(m),), generator=g))
        for m in torch.randint(3, 16, (n,), generator=g)
    ]
    return encode(seqs)


@pytest.mark.parametrize("separation", ["sparsemax", "entmax15"])
@pytest.mark.parametrize("chunk", [1, 7, 500])
def test_the_sparse_pooling_in_chunks_equals_one_separation_over_the_bag(separation, chunk):
    torch.manual_seed(3)
    n, d = 120, 5
    h = (2 * torch.randn(n, d, dtype=torch.float64)).requires_grad_()
    pool = AttentionPooling(d, heads=3, beta=0.7, chunk=chunk, separation=separation).double()
    out, w = pool(h)
    lag = Sparsemax(0.7) if separation == "sparsemax" else Entmax15(0.7)
    ref_w = lag.activation(pool.queries @ h.T)
    torch.testing.assert_close(w, ref_w, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(out, ref_w @ h, rtol=1e-12, atol=1e-12)
    assert bool((w == 0).any())
    probe = torch.randn(3, d, dtype=torch.float64)
    grads = torch.autograd.grad((out * probe).sum(), (h, pool.queries))
    ref = torch.autograd.grad(((ref_w @ h) * probe).sum(), (h, pool.queries))
    for a, b in zip(grads, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_every_separation_a_recipe_may_name_is_one_the_pooling_builds():
    # the names are listed once (config.SEPARATIONS); the pooling holds the Lagrangian of each sparse one
    assert set(SPARSE) == set(NAMES) - {"softmax"}
    for name in NAMES:
        pooling = AttentionPooling(4, 2, beta=1.0, separation=name)
        assert (pooling.sparse is None) == (name == "softmax")


def test_the_sparse_pooling_refuses_parts_groups_and_abundance():
    pool = AttentionPooling(4, separation="sparsemax")
    h = torch.randn(10, 4)
    with pytest.raises(ValueError, match="part"):
        pool.part(h)
    with pytest.raises(ValueError, match="weights"):
        pool.weights(h, None, torch.zeros(1))
    with pytest.raises(ValueError, match="abundance"):
        AttentionPooling(4, separation="entmax15", abundance=True)
    with pytest.raises(ValueError, match="separation must be one of"):
        AttentionPooling(4, separation="argmax")


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"separation": "hardmax"}, "separation"),
        ({"separation": "sparsemax", "pooling": "mean"}, "separation"),
        ({"separation": "entmax15", "abundance": True}, "abundance"),
    ],
)
def test_bad_separation_recipes_are_refused_by_name(settings, names):
    with pytest.raises(ValueError, match=names):
        RepertoireConfig.from_dict(settings, "recipe.json")


@pytest.mark.parametrize("separation", ["sparsemax", "entmax15"])
def test_the_classifier_with_a_sparse_separation_chunked_equals_whole_and_learns(separation):
    codes, lengths = bag(40, seed=4)
    config = RepertoireConfig(
        dim=6, kernel=3, heads=2, hidden=4, chunk=7, separation=separation, dtype="float64"
    )
    model = RepertoireClassifier(config, torch.Generator().manual_seed(0))
    whole = RepertoireClassifier(RepertoireConfig(**{**config.to_dict(), "chunk": 1000}))
    whole.load_state_dict(model.state_dict())
    one = Repertoire("b", codes, lengths, torch.ones(40, dtype=torch.int64), 1)
    a, b = model(one), whole(one)
    torch.testing.assert_close(a.logit, b.logit, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a.weights.sum(1), torch.ones(2, dtype=torch.float64))
    a.logit.backward()
    assert model.pool.queries.grad is not None and bool(model.pool.queries.grad.abs().sum() > 0)
