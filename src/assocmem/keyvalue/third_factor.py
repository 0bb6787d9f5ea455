"""The local third factor: which hidden unit (memory slot) stores the item written at time ``t``.

Tyulmankov et al. 2021, section 2.2 (docs/reference.md §10). A local third factor ``[gamma_t]_i in {0, 1}`` (a
dendritic spike of hidden unit ``i``) gates the plasticity of every synapse of that unit; a global third factor
``q_t >= 0`` (a neuromodulator) gates whether anything is stored at all. The paper's two choices of ``gamma_t``:

- ``"sequential"``: ``[gamma_t]_i = 1`` if ``t = i mod N``: the units take turns, so the least recently used slot is
  overwritten. The turn passes on at every time step, whether or not ``q_t`` lets anything be stored then;
- ``"random"``: ``[gamma_t]_i ~ Bernoulli(p)`` independently for every unit and time step; an item is written into
  as many slots as spike (possibly none). The paper recommends ``p ~ 4/N`` (section 3.2).

Each factor costs ``O(N)`` per write, whatever the number of items already stored.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as TF

from assocmem.checks import is_count, is_fraction, require_tensor

#: The local third factors :class:`~assocmem.keyvalue.KeyValueMemory` accepts.
LOCAL_FACTORS = ("sequential", "random")


def sequential_factor(steps: Tensor, slots: int, like: Tensor) -> Tensor:
    """``gamma_t`` of the sequential rule: the one-hot vector of unit ``t mod N`` per memory, ``(batch, N)``.

    ``steps`` (batch,) int64 counts the time steps each memory has seen; ``like`` gives the dtype and device.
    """
    who = "sequential_factor"
    require_tensor(steps, "steps", who, floating=False)
    if steps.dim() != 1 or steps.is_floating_point() or steps.is_complex() or steps.dtype == torch.bool:
        raise ValueError(
            f"{who}: steps must be a (batch,) integer tensor, got {steps.dtype} {tuple(steps.shape)}"
        )
    _check(slots, like, who)
    return TF.one_hot(torch.remainder(steps, slots), slots).to(dtype=like.dtype, device=like.device)


def random_factor(
    batch: int, slots: int, p: float, like: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """``gamma_t`` of the random rule: independent ``Bernoulli(p)`` spikes, ``(batch, N)`` in ``like``'s dtype.

    The draws come from ``generator`` (on its own device, then moved to ``like``'s) or from the global generator of
    ``like``'s device.
    """
    who = "random_factor"
    if not is_count(batch, 0):
        raise ValueError(f"{who}: batch must be an int >= 0, got {batch!r}")
    if not is_fraction(p):
        raise ValueError(f"{who}: p must be a probability in [0, 1], got {p!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{who}: generator must be a torch.Generator or None, got {generator!r}")
    _check(slots, like, who)
    device = generator.device if generator is not None else like.device
    u = torch.rand((batch, slots), generator=generator, device=device)
    return (u < p).to(dtype=like.dtype, device=like.device)


def _check(slots: object, like: object, who: str) -> None:
    if not is_count(slots):
        raise ValueError(f"{who}: slots must be an int >= 1 (the hidden units N), got {slots!r}")
    require_tensor(like, "like", who)
