"""The Energy-Transformer patch completer: patches, the descent step, energy during inference, learning."""

from __future__ import annotations

import pytest
import torch

from assocmem.ham import patches as pt


def tiny(steps: int = 4, dt: float = 0.1, seed: int = 0) -> pt.PatchCompleter:
    gen = torch.Generator().manual_seed(seed)
    return pt.PatchCompleter(8, 4, dim=8, heads=2, key_dim=4, memories=8, steps=steps, dt=dt, generator=gen)


def test_patchify_round_trip_and_mask() -> None:
    images = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(2, 8, 8)
    tokens = pt.patchify(images, 4)
    assert tokens.shape == (2, 4, 16)
    torch.testing.assert_close(tokens[0, 1], images[0, :4, 4:].reshape(-1))
    torch.testing.assert_close(pt.unpatchify(tokens, 4, 8, 8), images)
    mask = pt.random_mask(50, 16, 5, torch.Generator().manual_seed(0))
    assert bool((mask.sum(1) == 5).all())
    with pytest.raises(ValueError, match="patch=3"):
        pt.patchify(images, 3)
    with pytest.raises(ValueError, match="masked"):
        pt.random_mask(2, 4, 4)


def test_one_step_is_descent_on_the_hand_written_energy() -> None:
    model = tiny(steps=1, dt=0.3).double()
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(3, 8, 8, generator=gen, dtype=torch.float64)
    mask = pt.random_mask(3, 4, 2, gen)
    x = model.start(images, mask).detach()
    att, hop = model.network.synapses
    # hand-written: g = layer norm per token, E = attention (B != C) + ReLU-squared memories; dE/dg of the
    # Legendre term is x, so one Euler step is x - dt (x + dE_terms/dg)
    g = (
        (x - x.mean(-1, keepdim=True)) / (x.var(-1, unbiased=False, keepdim=True) + 1e-5).sqrt()
    ).requires_grad_()
    k = torch.einsum("hyd,btd->bhty", att.key_weight, g)
    q = torch.einsum("hyd,btd->bhty", att.query_weight, g)
    beta = 1.0 / 2.0
    scores = beta * q @ k.transpose(-1, -2)
    scores = scores.masked_fill(torch.eye(4, dtype=torch.bool), float("-inf"))
    e_att = -(torch.logsumexp(scores, -1) / beta).sum((1, 2))
    e_hop = -0.5 * torch.relu(g @ hop.xi.T).pow(2).sum((1, 2))
    (dedg,) = torch.autograd.grad((e_att + e_hop).sum(), g)
    expected = x - 0.3 * (x + dedg)
    _, traj = model(images, mask, gradient=None)
    torch.testing.assert_close(traj.states[pt.TOKENS], expected, rtol=1e-10, atol=1e-10)


def test_energy_never_increases_during_inference() -> None:
    model = tiny(steps=12, dt=0.1)
    gen = torch.Generator().manual_seed(2)
    images = torch.rand(16, 8, 8, generator=gen)
    _, traj = model(images, pt.random_mask(16, 4, 2, gen), gradient=None)
    e = traj.energies
    assert e.shape == (13, 16)
    assert float(((e[1:] - e[:-1]) / e[:-1].abs().clamp_min(1.0)).max()) <= 1e-6
    assert float((e[-1] - e[0]).max()) < 0


def test_training_lowers_the_masked_loss() -> None:
    gen = torch.Generator().manual_seed(3)
    model = tiny(steps=4, dt=0.2, seed=3)
    prototypes = torch.rand(3, 8, 8, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        images = prototypes[torch.randint(0, 3, (32,), generator=gen)]
        mask = pt.random_mask(32, 4, 1, gen)
        predicted, _ = model(images, mask, record=False)
        loss = pt.masked_mse(predicted, pt.patchify(images, 4), mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_the_evaluation_checks_the_fixed_point_relaxations_as_a_memory() -> None:
    """evaluate_patches: the energy checks over the trained steps on every image and, on the first
    ``fixed_point_size``, the relaxation to a fixed point: settled, and its energy never rising."""
    model = tiny(steps=6, dt=0.1, seed=4)
    images = torch.rand(12, 8, 8, generator=torch.Generator().manual_seed(5))
    mean_patch = pt.patchify(images, 4).mean(0)
    out = pt.evaluate_patches(
        model, images, mean_patch, masked=1, fixed_point_size=5, tol=1e-3, t_max=200.0, batch_size=4
    )
    assert out["samples"] == 12 and out["relaxed"] == 5
    assert out["energy_non_increasing"] == 1.0 and out["fixed_point_converged"] == 1.0
    assert out["fixed_point_energy_non_increasing"] == 1.0
    assert 0.0 <= out["fixed_point_max_relative_energy_increase"] <= 1e-5
    assert out["fixed_point_max_steps"] > 0
