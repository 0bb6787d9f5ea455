"""Lagrangians: closed-form activations against autograd, per-sample independence,
convexity (docs/reference.md §1-2)."""

import math

import pytest
import torch

from assocmem import lagrangians as L
from assocmem.lagrangians import hessian_vector
from tests.lagrangian_cases import all_lagrangians

SHAPES = [(7,), (3, 4, 5)]  # a 1-D layer and a (C, H, W) layer
BATCHES = [1, 6]


def _cases():
    for shape in SHAPES:
        for label, lag in all_lagrangians(shape):
            yield pytest.param(shape, lag, id=f"{label}-{'x'.join(map(str, shape))}")


def _autograd_activation(lag, x):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(lag(x).sum(), x)
    return g


@pytest.mark.parametrize(("shape", "lag"), list(_cases()))
@pytest.mark.parametrize("batch", BATCHES)
def test_activation_is_gradient_of_lagrangian(shape, lag, batch):
    x = torch.randn(batch, *shape, dtype=torch.float64)
    if isinstance(lag, L.Abs | L.RePU | L.ReLU):
        x = x + 0.05 * torch.sign(x)  # stay off the kink at 0, where the gradient is one-sided
    value = lag(x)
    assert value.shape == (batch,)
    g = lag.activation(x)
    assert g.shape == x.shape
    torch.testing.assert_close(g, _autograd_activation(lag, x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("shape", "lag"), list(_cases()))
def test_each_sample_is_independent_of_the_batch(shape, lag):
    """Layer-norm and spherical statistics are per sample: never mixed across the batch."""
    x = torch.randn(5, *shape, dtype=torch.float64) * torch.arange(1, 6, dtype=torch.float64).reshape(
        (5,) + (1,) * len(shape)
    )
    full_L, full_g = lag(x), lag.activation(x)
    for b in range(5):
        torch.testing.assert_close(lag(x[b : b + 1])[0], full_L[b], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(lag.activation(x[b : b + 1])[0], full_g[b], rtol=1e-12, atol=1e-12)


def _min_hessian_eigenvalue(lag, x):
    """Smallest eigenvalue of the Hessian of L at one sample (dense, from Hessian-vector products)."""
    n = x[0].numel()
    basis = torch.eye(n, dtype=x.dtype).reshape(n, *x.shape[1:])
    columns = [hessian_vector(lag, x, e.unsqueeze(0)).reshape(-1) for e in basis]
    hessian = torch.stack(columns)
    torch.testing.assert_close(hessian, hessian.T, rtol=1e-8, atol=1e-8)
    return torch.linalg.eigvalsh(hessian).min().item(), hessian.abs().max().item()


@pytest.mark.parametrize(("shape", "lag"), list(_cases()))
def test_hessian_psd_when_declared_convex(shape, lag):
    gen = torch.Generator().manual_seed(7)
    worst = math.inf
    for _ in range(4):
        x = 2.0 * torch.randn(1, *shape, dtype=torch.float64, generator=gen)
        lowest, scale = _min_hessian_eigenvalue(lag, x)
        worst = min(worst, lowest / max(scale, 1.0))
    if lag.convex:
        assert worst >= -1e-9, f"{lag!r} is declared convex but its Hessian has eigenvalue {worst}"
    elif isinstance(lag, L.Polynomial | L.Additive):
        # The non-convex ones must really be non-convex somewhere (the declaration is not a default).
        assert worst < -1e-6


def test_known_values():
    x = torch.tensor([[0.0, 1.0, -2.0]], dtype=torch.float64)
    assert L.Identity()(x).item() == pytest.approx(2.5)
    assert L.RePU(3)(x).item() == pytest.approx(1.0)
    assert L.Polynomial(3)(x).item() == pytest.approx(-7.0)
    assert L.Abs()(x).item() == pytest.approx(3.0)
    assert L.LogSumExp(beta=2.0)(x).item() == pytest.approx(0.5 * math.log(1 + math.exp(2) + math.exp(-4)))
    assert L.Spherical()(x).item() == pytest.approx(math.sqrt(5))
    assert L.Tanh(2.0)(x).item() == pytest.approx(
        sum(math.log(math.cosh(2 * v)) / 2 for v in (0.0, 1.0, -2.0))
    )
    g = L.LayerNorm(gamma=1.0, eps=1e-14).activation(x)
    torch.testing.assert_close(g.mean(), torch.tensor(0.0, dtype=torch.float64))
    torch.testing.assert_close(g.pow(2).mean(), torch.tensor(1.0, dtype=torch.float64))


def test_tanh_lagrangian_is_finite_for_large_states():
    x = torch.tensor([[1e4, -1e4, 0.0]], dtype=torch.float32)
    value = L.Tanh(beta=3.0)(x)
    assert torch.isfinite(value).all()
    assert value.item() == pytest.approx(2e4 - 2 * math.log(2) / 3, rel=1e-5)


def test_softmax_alias_and_activation_sums_to_one():
    assert L.Softmax is L.LogSumExp
    g = L.LogSumExp(beta=3.0).activation(torch.randn(4, 2, 3))
    torch.testing.assert_close(g.reshape(4, -1).sum(1), torch.ones(4))
    g = L.LogSumExp(beta=3.0, dim=1).activation(torch.randn(4, 5, 3))
    torch.testing.assert_close(g.sum(1), torch.ones(4, 3))


def test_additive_activation_works_without_grad_and_is_differentiable():
    lag = L.Additive(lambda t: t.pow(4) / 4, convex=True)
    x = torch.randn(3, 5, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(lag.activation(x), x.pow(3))
    x.requires_grad_(True)
    (second,) = torch.autograd.grad(lag.activation(x).sum(), x)
    torch.testing.assert_close(second, 3 * x.detach().pow(2))


def test_layernorm_parameters_are_trainable():
    gamma = torch.nn.Parameter(torch.tensor(1.5))
    delta = torch.nn.Parameter(torch.zeros(6))
    lag = L.LayerNorm(gamma=gamma, delta=delta)
    assert {name for name, _ in lag.named_parameters()} == {"gamma", "delta"}
    lag.activation(torch.randn(2, 6)).pow(2).sum().backward()
    assert gamma.grad is not None and delta.grad is not None


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: L.Tanh(beta=0.0), "beta must be a positive"),
        (lambda: L.Exp(beta=float("nan")), "beta must be a positive"),
        (lambda: L.RePU(0.5), "n must be >= 1"),
        (lambda: L.Polynomial(2.5), "n must be an integer"),
        (lambda: L.LayerNorm(gamma=torch.ones(3)), "gamma must be a scalar"),
        (lambda: L.LogSumExp(dim=1.5), "dim must be an int"),
        (lambda: L.Additive("x^2"), "F must be a callable"),
    ],
)
def test_bad_hyper_parameters_are_named(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"shape \(batch, \*shape\)"):
        L.Tanh()(torch.randn(5))
    with pytest.raises(ValueError, match="dim=0 must name a feature dimension"):
        L.LogSumExp(dim=0)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="does not broadcast"):
        L.LayerNorm(delta=torch.zeros(4))(torch.randn(2, 3))
    with pytest.raises(ValueError, match="elementwise"):
        L.Additive(lambda t: t.sum())(torch.randn(2, 3))
