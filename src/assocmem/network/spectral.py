"""The spectral norm of a synapse: the certificate behind a bounded energy (docs/reference.md §4).

A layer whose Lagrangian is ``ReLU()`` or ``Identity()`` has the Legendre term ``x . g - L = 1/2 |g|^2``. A synapse
``-g_B . D(g_A)`` between two such layers is at least ``-||D|| |g_A| |g_B|``, so the energy of a network of them
is bounded below when the quadratic form of all the couplings is: for a chain of layers joined by synapses
``D_1, D_2, ...``, when the largest eigenvalue of the symmetric matrix of the norms ``||D_s||`` (placed where the
synapse joins its two layers) is below 1. A two-layer network needs ``||D|| < 1``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from assocmem.checks import is_count
from assocmem.network.synapse import DenseSynapse, Synapse


def spectral_norm(
    synapse: Synapse,
    *,
    iterations: int = 200,
    tol: float = 1e-7,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``||D||_2``, the largest singular value of a synapse's linear map ``D`` (``pre -> post``), as a 0-d tensor.

    A :class:`DenseSynapse` gets the exact value (``torch.linalg.matrix_norm(W, 2)``). Any other synapse
    (convolution, pooling) gets power iteration on ``D^T D`` through its own :meth:`~Synapse.drive` and its
    adjoint, on the layer shapes it was bound to, until the estimate changes by less than ``tol`` (relative) or
    after ``iterations``: it approaches the norm from below. The result is differentiable in the weights (the last
    iteration is taken with autograd, as ``torch.nn.utils.parametrizations.spectral_norm`` does), so it can serve
    as a penalty or a constraint in training.

    Example: ``spectral_norm(net.synapses[0])``; ``< 1`` certifies a ReLU-ReLU pair (see the module docstring).
    """
    if not isinstance(synapse, Synapse):
        raise TypeError(f"spectral_norm: synapse must be an assocmem Synapse, got {type(synapse).__name__}")
    if not is_count(iterations):
        raise ValueError(f"spectral_norm: iterations must be a positive int, got {iterations!r}")
    if isinstance(synapse, DenseSynapse):
        return torch.linalg.matrix_norm(synapse.weight, ord=2)
    if not synapse.shapes:
        raise ValueError(
            f"spectral_norm: synapse {synapse.name!r} has not joined a network, so its layer shapes are unknown"
        )
    ref = next(iter(synapse.parameters()), None)
    if ref is None:
        ref = next(iter(synapse.buffers()), None)
    dtype = ref.dtype if ref is not None else torch.get_default_dtype()
    device = ref.device if ref is not None else None
    start = generator.device if generator is not None else device
    v = torch.randn((1, *synapse.shapes[synapse.pre]), generator=generator, dtype=dtype, device=start).to(
        device
    )
    v = v / v.norm()
    sigma = 0.0
    with torch.no_grad():
        for _ in range(iterations):
            u = synapse.drive(synapse.post, v)
            new = float(u.norm())
            if new == 0.0:
                break
            v = synapse.drive(synapse.pre, u)
            v = v / v.norm()
            if abs(new - sigma) <= tol * new:
                sigma = new
                break
            sigma = new
    return synapse.drive(synapse.post, v).norm()
