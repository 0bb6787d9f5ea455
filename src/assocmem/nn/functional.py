"""The functional core of the Hopfield layers: Model B's update in a learned space, one head at a time.

Every head ``h`` holds state patterns ``R`` (``(B, H, L, d_k)``: the queries), stored patterns ``Y``
(``(B, H, S, d_k)``: the keys) and pattern projections ``V`` (``(B, H, S, d_v)``: the values). The association
matrix and the update (docs/reference.md §2, Ramsauer et al. 2020 eq. 10) are

    A = softmax(beta_h R Y^T + M),      R <- A Y        (repeated while the head is active)
    Z = dropout(A) V

The energy of a state pattern is Model B's ``E(r) = 1/2 |r|^2 - beta^-1 log sum_s exp(beta r . y_s + M_s)``.
The loop itself is the retrieval engine's (:func:`assocmem.engines.retrieval.iterate`): one implementation of
Model B's update for memory banks and for the layers alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from assocmem.dynamics.fixed_point import FixedPoint
from assocmem.engines.retrieval import iterate

#: Cap on the number of updates when a head iterates until convergence (``max_steps=None``).
UNTIL_CONVERGED_CAP = 10_000


@dataclass(frozen=True)
class Association(FixedPoint):
    """The result of :func:`hopfield_update` (a :class:`~assocmem.dynamics.fixed_point.FixedPoint`).

    ``states``: the final state patterns ``(B, H, L, d_k)``; ``energies``: Model B's energy of the state
    patterns at every update ``(steps + 1, B, H, L)`` (only when recorded); ``steps``: the updates each head did
    (``(B, H, L)``, equal along ``B`` and ``L``); ``converged``: the head's last update changed it by at most
    ``tol``. ``output``: ``Z = dropout(A) V``, ``(B, H, L, d_v)`` (a layer's :meth:`~assocmem.nn.Hopfield.retrieve`
    puts the layer's output here instead); ``association``: the final association matrix ``A``, ``(B, H, L, S)``.
    """

    output: Tensor
    association: Tensor


def merge_masks(
    padding: Tensor | None,
    association: Tensor | None,
    batch: int,
    heads: int,
    length: int,
    source: int,
    dtype: torch.dtype,
) -> Tensor | None:
    """One additive mask ``(B|1, H|1, L, S)`` from a stored-pattern padding mask ``(B, S)`` and an association
    mask ``(L, S)`` or ``(B*H, L, S)``; a boolean ``True`` (or a nonzero byte) hides a pair, a float is added.

    Built once per forward, out of the update loop.
    """

    def additive(m: Tensor, name: str) -> Tensor:
        if m.dtype in (torch.bool, torch.uint8):
            return torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill(m.bool(), float("-inf"))
        if not m.is_floating_point():
            raise TypeError(f"{name} must be boolean or floating point, got {m.dtype}")
        return m.to(dtype)

    out = None
    if association is not None:
        if association.dim() == 2 and association.shape == (length, source):
            out = additive(association, "association_mask")[None, None]
        elif association.dim() == 3 and association.shape == (batch * heads, length, source):
            out = additive(association, "association_mask").view(batch, heads, length, source)
        else:
            raise ValueError(
                f"association_mask must have shape (L, S) = {(length, source)} or (B*num_heads, L, S) = "
                f"{(batch * heads, length, source)}, got {tuple(association.shape)}"
            )
    if padding is not None:
        if padding.shape != (batch, source):
            raise ValueError(
                f"stored_pattern_padding_mask must have shape (B, S) = {(batch, source)}, got {tuple(padding.shape)}"
            )
        pad = additive(padding, "stored_pattern_padding_mask")[:, None, None, :]
        out = pad if out is None else out + pad
    return out


def _per_head(value: object, heads: int, like: Tensor, name: str) -> Tensor:
    """A float or a ``(H,)`` tensor as a ``(H,)`` tensor on ``like``'s device and dtype."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.dim() == 0:
        t = t.expand(heads)
    if t.shape != (heads,):
        raise ValueError(
            f"{name} must be a number or a tensor of shape (num_heads,) = ({heads},), got {tuple(t.shape)}"
        )
    return t


def hopfield_update(
    states: Tensor,
    patterns: Tensor,
    values: Tensor,
    beta: float | Tensor,
    *,
    mask: Tensor | None = None,
    max_steps: int | Tensor | None = 0,
    tol: float | Tensor = 1e-4,
    stop_on: str = "association",
    dropout: float = 0.0,
    training: bool = False,
    record: bool = False,
) -> Association:
    """Iterate ``A = softmax(beta R Y^T + M)``, ``R <- A Y`` per head, then return ``Z = dropout(A) V``.

    ``states`` ``R (B, H, L, d_k)``, ``patterns`` ``Y (B, H, S, d_k)``, ``values`` ``V (B, H, S, d_v)``;
    ``beta`` a float or ``(H,)``; ``mask`` additive ``(B|1, H|1, L, S)``. ``max_steps`` counts the updates
    after the first association (0: plain attention; an int, a ``(H,)`` tensor per head, or ``None``: until
    converged). A head stops once the change of its association matrix (``stop_on="association"``: the
    largest over the batch of ``||A_t - A_{t-1}||_2``) or of its state patterns (``stop_on="state"``:
    ``||R_t - R_{t-1}||_2``) is at most ``tol`` (a float or ``(H,)``). ``record`` keeps every update's energy.
    The Hopfield layers map hflayers' ``update_steps_max`` / ``update_steps_eps`` / ``update_steps_stop_on``
    onto ``max_steps`` / ``tol`` / ``stop_on``.
    """
    if stop_on not in ("association", "state"):
        raise ValueError(f"update_steps_stop_on must be 'association' or 'state', got {stop_on!r}")
    heads = states.shape[1]
    b = _per_head(beta, heads, states, "scaling").view(1, heads, 1, 1) if isinstance(beta, Tensor) else beta
    limit = UNTIL_CONVERGED_CAP if max_steps is None else max_steps
    if isinstance(limit, Tensor):
        limit = _per_head(limit, heads, states, "update_steps_max").long()
    tol_ = _per_head(tol, heads, states, "update_steps_eps") if isinstance(tol, Tensor) else tol
    out, res = iterate(
        patterns, states, values, b, max_steps=limit, tol=tol_, stop=stop_on, per="head", mask=mask,
        record=record, need_weights=True, dropout=dropout if training else 0.0,
    )  # fmt: skip
    assert res.weights is not None
    return Association(res.states, res.energies, res.steps, res.converged, out, res.weights)
