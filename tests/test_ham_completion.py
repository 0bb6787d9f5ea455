"""Completing a masked image of spherical neurons (ham/completion.py, docs/ham.md "Completing a masked image"),
checked against the reconstruction network's own energy in float64: the completion network's energy is that
energy at the whole unit-norm image, it never rises, and the fixed point is a stationary point of the energy on
the states the task allows (visible activations held, the whole image of unit length). And the reason for it:
holding the visible pixels' states let the hidden part move as ``dx_m/dt = u_m - lam x_m``, which runs away
when ``lam = c . u_c / |c|^2`` is negative; such a clamp is now refused."""

import pytest
import torch

from assocmem import ConvergenceError
from assocmem.ham import reconstruction as rec
from assocmem.ham.completion import HIDDEN, SphereOfRadius, complete, completion_network

BETA = 10.0


def small_case(seed: int = 0, images: int = 5, pixels: int = 16, memories: int = 7):
    gen = torch.Generator().manual_seed(seed)
    net = rec.reconstruction_network(
        memories, pixels, BETA, init_shift=0.0, generator=gen, dtype=torch.float64
    )
    clean = rec.unit_images((torch.rand(images, pixels, generator=gen) ** 2).double())
    hidden = torch.zeros(pixels, dtype=torch.bool)
    hidden[pixels // 2 :] = True
    return net, rec.memories(net), clean, hidden


def lse_energy(xi: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``-(1/beta) lse(beta xi g)``, the reconstruction network's energy at a unit-norm image ``g``."""
    return -torch.logsumexp(BETA * g @ xi.T, dim=1) / BETA


def test_the_completion_energy_is_the_networks_energy_and_never_rises():
    net, xi, clean, hidden = small_case()
    whole, traj = complete(xi, BETA, clean, hidden, tol=1e-8, t_max=500.0, rtol=1e-9)
    assert bool(traj.converged.all())
    torch.testing.assert_close(whole[:, ~hidden], clean[:, ~hidden], rtol=0, atol=0)
    torch.testing.assert_close(whole.norm(dim=1), torch.ones(len(clean), dtype=torch.float64))
    # the energy the relaxation recorded is the network's energy at the whole image (and -lse of it)
    torch.testing.assert_close(traj.energies[-1], net.energy({rec.IMAGE: whole}), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(traj.energies[-1], lse_energy(xi, whole), rtol=1e-12, atol=1e-12)
    e = traj.energies
    assert float((e[1:] - e[:-1]).max()) <= 1e-12
    # and at an arbitrary state of the hidden pixels too
    network, current = completion_network(xi, BETA, hidden, clean)
    x = torch.randn(
        len(clean), int(hidden.sum()), dtype=torch.float64, generator=torch.Generator().manual_seed(3)
    )
    g = network.layers[HIDDEN].activation(x)
    image = clean.clone()
    image[:, hidden] = g
    energy = network.energy({HIDDEN: x}, {"memories": current})
    torch.testing.assert_close(energy, lse_energy(xi, image), rtol=1e-12, atol=1e-12)


def test_the_fixed_point_is_a_stationary_point_on_the_allowed_states():
    """Visible activations held and ``|g| = 1``: the free directions are those of ``g_m`` tangent to the sphere
    ``|g_m| = rho``. The energy's gradient along them vanishes at the fixed point (and not at the start), and no
    small move along them lowers the energy (a minimum, not a saddle)."""
    _, xi, clean, hidden = small_case(seed=1)

    def tangential(image):
        g = image.clone().requires_grad_(True)
        lse_energy(xi, g).sum().backward()
        grad, gm = g.grad[:, hidden], image[:, hidden]
        return grad - gm * (gm * grad).sum(1, keepdim=True) / (gm * gm).sum(1, keepdim=True)

    whole, _ = complete(xi, BETA, clean, hidden, tol=1e-9, t_max=500.0, rtol=1e-10)
    start = clean.clone()
    start[:, hidden] = (1 - clean[:, ~hidden].pow(2).sum(1, keepdim=True)).sqrt() / hidden.sum() ** 0.5
    assert float(tangential(start).norm(dim=1).min()) > 1e-3
    assert float(tangential(whole).norm(dim=1).max()) < 1e-7
    gen = torch.Generator().manual_seed(4)
    rho = whole[:, hidden].norm(dim=1, keepdim=True)
    for _ in range(20):
        moved = whole.clone()
        gm = whole[:, hidden] + 1e-3 * torch.randn(
            len(whole), int(hidden.sum()), generator=gen, dtype=torch.float64
        )
        moved[:, hidden] = gm * rho / gm.norm(dim=1, keepdim=True)
        assert bool((lse_energy(xi, moved) >= lse_energy(xi, whole) - 1e-14).all())


def test_a_state_clamp_of_some_pixels_is_refused_and_points_here():
    """Holding the visible pixels' *states* cuts through the spherical layer: an error naming the completion."""
    net, _, clean, hidden = small_case(seed=2)
    with pytest.raises(ValueError, match=r"clamp\['image'\].*assocmem\.ham\.completion\.complete"):
        net.velocity({rec.IMAGE: clean}, clamp={rec.IMAGE: (~hidden).expand_as(clean)})


def test_visible_pixels_the_memories_oppose_would_run_away_as_held_states_and_settle_as_held_activations():
    """Every memory's visible half points against the visible pixels, so ``lam = c . u_c / |c|^2 < 0``: the
    motion a state clamp gave the hidden pixels, ``dx_m/dt = u_m - lam x_m`` (docs/ham.md), grows without end
    (integrated here by Euler steps); with the activations held the same image settles."""
    xi = torch.tensor(
        [[-0.6, 0.0, 0.8, 0.0], [-0.3, -0.3, 0.0, 0.9], [-0.5, 0.1, 0.5, 0.7]], dtype=torch.float64
    )
    xi = xi / xi.norm(dim=1, keepdim=True)
    clean = torch.tensor([[0.6, 0.3, 0.5, 0.5477225575051661]], dtype=torch.float64)
    hidden = torch.tensor([False, False, True, True])
    x = clean.masked_fill(hidden, 0.0)
    c = x[:, ~hidden]
    for _ in range(2000):
        u = torch.softmax(BETA * (x / x.norm(dim=1, keepdim=True)) @ xi.T, dim=1) @ xi
        lam = (c * u[:, ~hidden]).sum(1, keepdim=True) / (c * c).sum(1, keepdim=True)
        assert float(lam.max()) < 0
        x[:, hidden] += 0.05 * (u[:, hidden] - lam * x[:, hidden])
    assert float(x[:, hidden].norm()) > 1e3
    whole, traj = complete(xi, BETA, clean, hidden, tol=1e-8, rtol=1e-9)
    assert bool(traj.converged.all())
    assert float(whole[:, hidden].norm()) == pytest.approx(0.55**0.5, rel=1e-12)
    e = traj.energies
    assert float((e[1:] - e[:-1]).max()) <= 1e-12 and float(traj.clock[-1]) < 1000.0
    torch.testing.assert_close(whole.norm(dim=1), torch.ones(1, dtype=torch.float64))


def test_bad_completions_are_named():
    _, xi, clean, hidden = small_case()
    with pytest.raises(ValueError, match="hidden must be a bool mask of the 16 pixels"):
        completion_network(xi, BETA, hidden[:8], clean)
    with pytest.raises(ValueError, match="hide some pixels and leave some visible"):
        completion_network(xi, BETA, torch.ones(16, dtype=torch.bool), clean)
    with pytest.raises(ValueError, match="length below 1"):
        completion_network(xi, BETA, hidden, 2 * clean)
    with pytest.raises(ValueError, match="length below 1"):
        completion_network(xi, BETA, hidden, clean.masked_fill(~hidden, float("nan")))
    with pytest.raises(ValueError, match="positive lengths"):
        SphereOfRadius(torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="a batch of 3 states for 2 radii"):
        SphereOfRadius(torch.tensor([1.0, 0.5])).activation(torch.ones(3, 4))
    with pytest.raises(ConvergenceError):
        complete(xi, BETA, clean, hidden, tol=1e-12, t_max=0.5)
