"""Image reconstruction with spherical image neurons and unit-norm log-sum-exp memories (docs/ham.md).

The recipe of hamux's MNIST example, built on the library's :class:`~assocmem.network.Network`: one layer of
``D`` image neurons with the spherical Lagrangian (``g = x / |x|``, docs/reference.md §2) and ``K`` memories
``xi_mu`` (rows of a ``(K, D)`` matrix, each kept at unit length) in a :class:`~assocmem.network.HopfieldTerm`
with the log-sum-exp Lagrangian:

    E(x) = [x . g - |x|] - (1/beta) log sum_mu exp(beta xi_mu . g),     g = x / |x|

The Legendre bracket is zero for the spherical Lagrangian, so the energy is ``-(1/beta) lse(beta xi g)``, bounded
below by ``-1 - log(K)/beta`` (``|xi_mu . g| <= 1``). The dynamics ``dx/dt = xi^T softmax(beta xi g) - x``
converge: their fixed points are the states equal to the softmax-weighted mixture of memories they select.

Training (hamux's ``lossf``): start from a noisy image ``x0 = x + noise``, take ``steps`` Euler steps of size
``alpha`` (hamux: one step with ``alpha = 1``, so ``x1 = xi^T softmax(beta xi g(x0))``) and score the per-pixel
squared error of the activations ``g`` against the clean unit-norm image.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from assocmem.checks import is_count, positive_float
from assocmem.dynamics import Trajectory, relax
from assocmem.ham.completion import complete
from assocmem.ham.evaluation import energy_rises
from assocmem.lagrangians import LogSumExp, Spherical
from assocmem.network import HopfieldTerm, Layer, Network

#: the image layer's name in the networks this module builds
IMAGE = "image"


class UnitRows(nn.Module):
    """A parametrization that scales every row of a matrix to unit Euclidean length (the memories ``xi_mu``;
    hamux normalises the columns of its ``(D, K)`` matrix, the same vectors)."""

    def forward(self, w: Tensor) -> Tensor:
        return w / torch.linalg.vector_norm(w, dim=1, keepdim=True)


def reconstruction_network(
    memories: int = 900,
    pixels: int = 784,
    beta: float = 10.0,
    *,
    init_shift: float = 0.2,
    init_scale: float = 0.02,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> Network:
    """The network of the recipe: ``pixels`` spherical image neurons and ``memories`` unit-norm memories at
    inverse temperature ``beta``; the raw memory weights start at ``init_scale * N(0, 1) + init_shift`` (hamux's
    older notebook: 0.02 and 0.2; its current one: 0.02 and 0) and are trainable, normalised on every use.

    Example: ``net = reconstruction_network(900, 784, 10.0)``; ``net.synapses[0].xi`` has unit rows.
    """
    if not is_count(memories) or not is_count(pixels):
        raise ValueError(
            f"reconstruction_network: memories and pixels must be positive ints, got {memories!r}, {pixels!r}"
        )
    beta = positive_float(beta, "beta", "reconstruction_network")
    raw = torch.randn(memories, pixels, generator=generator, dtype=dtype) * init_scale + init_shift
    term = HopfieldTerm(IMAGE, nn.Parameter(raw), LogSumExp(beta), name="memories")
    parametrize.register_parametrization(term, "xi", UnitRows())
    return Network({IMAGE: Layer(pixels, Spherical())}, [term])


def memories(network: Network) -> Tensor:
    """The unit-norm memories ``(K, D)`` of a reconstruction network (detached)."""
    return network.synapses[0].xi.detach()


def unit_images(images: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """Images ``(N, ...)`` (uint8 or float) flattened to ``(N, D)``, scaled to ``[0, 1]`` and then to unit length,
    computed in ``dtype``: by default a floating input's own dtype, else torch's default dtype (so float64 images
    have unit length to float64 precision, not float32's)."""
    if dtype is None:
        dtype = images.dtype if images.is_floating_point() else torch.get_default_dtype()
    elif not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"unit_images: dtype must be a floating torch.dtype, got {dtype!r}")
    x = images.reshape(images.shape[0], -1).to(dtype)
    if images.dtype == torch.uint8:
        x = x / 255.0
    norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    if bool((norm == 0).any()):
        raise ValueError("unit_images: an image is all zeros and has no direction")
    return x / norm


def descend(
    network: Network, start: Tensor, steps: int = 1, alpha: float = 1.0, gradient: str | None = "unrolled"
) -> Tensor:
    """``steps`` Euler steps ``x <- x - alpha dE/dg`` from ``start`` (``(N, D)``); returns the activations ``g``.

    With ``tau = 1`` this is relax's Euler integrator with ``dt = alpha`` run to ``t = steps * alpha``: ``dE/dg``
    of the Legendre term is ``x``, so the step is ``x + alpha (u - x)`` with ``u`` the memories' force.
    """
    if not is_count(steps):
        raise ValueError(f"descend: steps must be a positive int, got {steps!r}")
    alpha = positive_float(alpha, "alpha", "descend")
    traj = relax(
        network,
        {IMAGE: start},
        method="euler",
        dt=alpha,
        t_max=steps * alpha,
        tol=0.0,
        record=False,
        gradient=gradient,
    )
    return network.layers[IMAGE].activation(traj.states[IMAGE])


def denoising_loss(
    network: Network,
    clean: Tensor,
    noise: float = 0.3,
    *,
    steps: int = 1,
    alpha: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """hamux's training loss: mean over images and pixels of ``(g - clean)^2`` after ``steps`` descent steps from
    ``clean + noise * N(0, 1)``. ``clean`` holds unit-norm images ``(N, D)``."""
    start = clean + noise * torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
    return (descend(network, start, steps, alpha) - clean).pow(2).mean()


def settle(
    network: Network,
    start: Tensor,
    *,
    clamp: Tensor | None = None,
    tol: float = 1e-4,
    t_max: float = 200.0,
    strict: bool = True,
    rtol: float = 1e-5,
) -> Trajectory:
    """Relax from ``start`` (``(N, D)``) until every image's velocity is below ``tol`` (dopri5, no gradient;
    with ``strict`` a run that does not settle by ``t_max`` is an error, else ``converged`` says which did).
    ``clamp`` is an optional bool mask (``(N, 1)`` or ``(N, D)``) that holds whole images at their start; one
    that holds some pixels of an image is refused (their states would not hold their activations: to complete
    an image from known pixels use :func:`~assocmem.ham.completion.complete`). ``rtol`` (and
    ``atol = rtol / 10``) the integrator's error control."""
    with torch.no_grad():
        return relax(
            network,
            {IMAGE: start},
            method="dopri5",
            tol=tol,
            t_max=t_max,
            clamp=None if clamp is None else {IMAGE: clamp},
            gradient=None,
            strict=strict,
            rtol=rtol,
            atol=rtol / 10,
        )


#: the seed of the noise an evaluation adds to the test images (the same draw at every epoch and in ``ham eval``)
EVAL_SEED = 12345


def lower_half(pixels: int = 784) -> Tensor:
    """The bool mask ``(pixels,)`` of the lower half of a square image: the pixels hidden in the masked task."""
    side = int(pixels**0.5)
    hidden = torch.zeros(side, side, dtype=torch.bool)
    hidden[side // 2 :] = True
    return hidden.flatten()


@torch.no_grad()
def evaluate_reconstruction(
    network: Network,
    test: Tensor,
    *,
    noise: float,
    minibatch: int,
    fixed_point_size: int,
    tol: float,
    t_max: float,
    rtol: float,
    batch_size: int = 1000,
) -> dict:
    """The recipe's measures on unit-norm test images ``(N, D)`` (docs/ham.md, "Reconstruction").

    ``one_step_mse``: hamux's measure (one descent step of ``alpha = 1`` from ``clean + noise N(0, 1)``) averaged
    over every test image, with the mean, spread and range of its ``minibatch``-image averages (hamux records one
    training minibatch). On the first ``fixed_point_size`` images, relaxed until settled (strict: a relaxation
    that does not settle is an error): ``fixed_point_mse`` from the noisy image, and, with the lower half hidden
    and the upper half's activations held at the clean pixels (:func:`~assocmem.ham.completion.complete`),
    ``masked_mse`` on the hidden pixels at the fixed point against ``masked_one_step_mse`` after one step from
    the image with its lower half zero; the energy checks of both relaxations.
    """
    gen = torch.Generator().manual_seed(EVAL_SEED)
    per_image = []
    for i in range(0, test.shape[0], batch_size):
        clean = test[i : i + batch_size]
        noisy = clean + noise * torch.randn(clean.shape, generator=gen, dtype=clean.dtype)
        per_image.append((descend(network, noisy, gradient=None) - clean).pow(2).mean(1))
    errors = torch.cat(per_image).double()
    batches = errors[: len(errors) // minibatch * minibatch].reshape(-1, minibatch).mean(1)
    result = {
        "samples": test.shape[0],
        "one_step_mse": float(errors.mean()),
        "one_step_minibatch": {
            "size": minibatch,
            "mean": float(batches.mean()) if len(batches) else None,
            "std": float(batches.std()) if len(batches) > 1 else None,
            "min": float(batches.min()) if len(batches) else None,
            "max": float(batches.max()) if len(batches) else None,
        },
    }
    n = min(fixed_point_size, test.shape[0])
    if n == 0:
        return result
    beta = network.synapses[0].lagrangian.beta
    hidden = lower_half(test.shape[1])
    gen = torch.Generator().manual_seed(EVAL_SEED)
    sums = {"fixed_point_mse": 0.0, "masked_mse": 0.0, "masked_one_step_mse": 0.0}
    checks = {"noisy": [0, 0.0, 0.0, 0], "masked": [0, 0.0, 0.0, 0]}  # monotone, rise, relative rise, steps
    for i in range(0, n, batch_size):
        clean = test[i : min(i + batch_size, n)]
        noisy = clean + noise * torch.randn(clean.shape, generator=gen, dtype=clean.dtype)
        start = clean.masked_fill(hidden, 0.0)
        noisy_traj = settle(network, noisy, tol=tol, t_max=t_max, rtol=rtol)
        whole, masked_traj = complete(
            memories(network), beta, clean, hidden, tol=tol, t_max=t_max, rtol=rtol, strict=True
        )
        for key, traj in (("noisy", noisy_traj), ("masked", masked_traj)):
            count, rise, rel = energy_rises(traj.energies, clean.dtype)
            c = checks[key]
            c[0], c[1], c[2], c[3] = (
                c[0] + count,
                max(c[1], rise),
                max(c[2], rel),
                max(c[3], int(traj.steps.max())),
            )
            if key == "noisy":
                g = network.layers[IMAGE].activation(traj.states[IMAGE])
                sums["fixed_point_mse"] += float((g - clean).pow(2).mean(1).sum())
            else:
                sums["masked_mse"] += float((whole - clean)[:, hidden].pow(2).mean(1).sum())
        one = descend(network, start, gradient=None)
        sums["masked_one_step_mse"] += float((one - clean)[:, hidden].pow(2).mean(1).sum())
    result |= {k: v / n for k, v in sums.items()} | {"relaxed": n, "converged": 1.0}
    for key, (count, rise, rel, steps) in checks.items():
        result[f"{key}_relaxation"] = {
            "energy_non_increasing": count / n,
            "max_energy_increase": rise,
            "max_relative_energy_increase": rel,
            "max_steps": steps,
        }
    return result
