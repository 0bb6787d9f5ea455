"""The reconstruction recipe: hamux's one-step formula, learning, and relaxation to a fixed point."""

from __future__ import annotations

import pytest
import torch

from assocmem.ham import reconstruction as rec


def hamux_one_step(w: torch.Tensor, start: torch.Tensor, beta: float, alpha: float) -> torch.Tensor:
    """hamux's lossf by hand: W (D, K) with unit columns, E = [x.g - |x|] - lse(beta g nW) / beta, one step
    x <- x - alpha dE/dg (x held fixed in dE/dg), output g = x / |x|."""
    nw = w / w.norm(dim=0, keepdim=True)
    x = start
    g = (x / x.norm(dim=1, keepdim=True)).requires_grad_(True)
    energy = (x * g).sum(1) - x.norm(dim=1) - torch.logsumexp(beta * g @ nw, dim=1) / beta
    (dedg,) = torch.autograd.grad(energy.sum(), g)
    x = x - alpha * dedg
    return x / x.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_one_step_is_hamux_formula(alpha: float) -> None:
    gen = torch.Generator().manual_seed(0)
    net = rec.reconstruction_network(7, 12, 10.0, generator=gen, dtype=torch.float64).double()
    raw = net.synapses[0].parametrizations.xi.original  # (K, D): hamux's W transposed
    start = torch.randn(5, 12, generator=gen, dtype=torch.float64).abs() + 0.3 * torch.randn(
        5, 12, generator=gen, dtype=torch.float64
    )
    ours = rec.descend(net, start, steps=1, alpha=alpha)
    theirs = hamux_one_step(raw.detach().T, start, 10.0, alpha)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    # the memories are unit vectors and the Legendre term of the spherical layer vanishes
    torch.testing.assert_close(rec.memories(net).norm(dim=1), torch.ones(7, dtype=torch.float64))
    terms = net.energy_terms({rec.IMAGE: start})
    assert float(terms["layer:image"].abs().max()) < 1e-12


def test_loss_gradient_reaches_raw_weights_and_training_learns() -> None:
    gen = torch.Generator().manual_seed(1)
    prototypes = rec.unit_images(torch.rand(4, 16, generator=gen) ** 3)
    data = rec.unit_images(prototypes.repeat(25, 1) + 0.05 * torch.rand(100, 16, generator=gen))
    net = rec.reconstruction_network(6, 16, 10.0, init_shift=0.0, generator=gen)
    opt = torch.optim.Adam(net.parameters(), lr=4e-2)
    losses = []
    for _ in range(40):
        loss = rec.denoising_loss(net, data, 0.1, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_settle_descends_converges_and_keeps_clamped_pixels() -> None:
    gen = torch.Generator().manual_seed(2)
    net = rec.reconstruction_network(10, 20, 10.0, init_shift=0.0, generator=gen)
    clean = rec.unit_images(torch.rand(6, 20, generator=gen))
    start = clean + 0.3 * torch.randn(clean.shape, generator=gen)
    traj = rec.settle(net, start, tol=1e-5)
    assert bool(traj.converged.all())
    e = traj.energies
    assert float((e[1:] - e[:-1]).max()) <= 1e-6
    # the energy is bounded below by -(1 + log(K) / beta): |xi_mu . g| <= 1
    assert float(e[-1].min()) >= -(1 + torch.log(torch.tensor(10.0)) / 10.0) - 1e-6
    # a mask may hold whole images (a mask over some pixels is refused: tests/test_partial_clamp.py)
    mask = torch.zeros(6, 1, dtype=torch.bool)
    mask[::2] = True
    held = rec.settle(net, start, clamp=mask, tol=1e-5)
    assert bool(held.converged.all())
    assert torch.equal(held.states[rec.IMAGE][::2], start[::2])
    torch.testing.assert_close(
        held.states[rec.IMAGE][1::2], traj.states[rec.IMAGE][1::2], rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_unit_images_follow_the_dtype_asked_for_or_the_inputs(dtype) -> None:
    """uint8 pixels become ``dtype`` (default: torch's default); floats keep their own dtype unless asked; the
    rows have unit length to the precision of that dtype (float64 ones are not float32's rounded up)."""
    pixels = torch.randint(0, 256, (5, 3, 4), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    asked = rec.unit_images(pixels, dtype)
    floats = rec.unit_images(pixels.to(dtype) / 255.0)
    assert asked.dtype == floats.dtype == dtype and asked.shape == (5, 12)
    assert rec.unit_images(pixels).dtype == torch.get_default_dtype()
    assert rec.unit_images(pixels.double(), torch.float32).dtype == torch.float32
    eps = torch.finfo(dtype).eps
    assert float((asked.norm(dim=1) - 1).abs().max()) <= 4 * eps
    torch.testing.assert_close(asked, floats, rtol=4 * eps, atol=0)
    with pytest.raises(ValueError, match=r"dtype must be a floating torch\.dtype"):
        rec.unit_images(pixels, torch.int64)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="memories"):
        rec.reconstruction_network(0, 4)
    with pytest.raises(ValueError, match="all zeros"):
        rec.unit_images(torch.zeros(2, 4))
    net = rec.reconstruction_network(3, 4)
    with pytest.raises(ValueError, match="steps"):
        rec.descend(net, torch.ones(2, 4), steps=0)
