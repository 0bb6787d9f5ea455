"""The functional core of the Hopfield layers: Model B's update in a learned space, one head at a time.

Every head ``h`` holds state patterns ``R`` (``(B, H, L, d_k)``: the queries), stored patterns ``Y``
(``(B, H, S, d_k)``: the keys) and pattern projections ``V`` (``(B, H, S, d_v)``: the values). The association
matrix and the update (docs/reference.md §2, Ramsauer et al. 2020 eq. 10) are

    A = softmax(beta_h R Y^T + M),      R <- A Y        (repeated while the head is active)
    Z = dropout(A) V

The energy of a state pattern is Model B's ``E(r) = 1/2 |r|^2 - beta^-1 log sum_s exp(beta r . y_s + M_s)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from assocmem.engines.retrieval import model_b_energy

#: Cap on the number of updates when a head iterates until convergence (``update_steps_max=None``).
UNTIL_CONVERGED_CAP = 10_000


@dataclass
class Association:
    """The result of :func:`hopfield_update`: ``output (B, H, L, d_v)``, the final association matrix ``A``
    ``(B, H, L, S)``, the final state patterns ``(B, H, L, d_k)``, per-step energies ``(T, B, H, L)`` (only when
    asked for) and the number of updates each head did ``(H,)``."""

    output: Tensor
    association: Tensor
    states: Tensor
    energies: Tensor | None
    steps: Tensor


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
    """A float or a ``(H,)`` tensor as a ``(1, H, 1, 1)`` tensor."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.dim() == 0:
        t = t.expand(heads)
    if t.shape != (heads,):
        raise ValueError(
            f"{name} must be a number or a tensor of shape (num_heads,) = ({heads},), got {tuple(t.shape)}"
        )
    return t.view(1, heads, 1, 1)


def hopfield_update(
    states: Tensor,
    stored: Tensor,
    projections: Tensor,
    beta: float | Tensor,
    *,
    mask: Tensor | None = None,
    steps_max: int | Tensor | None = 0,
    eps: float | Tensor = 1e-4,
    stop_on: str = "association",
    dropout: float = 0.0,
    training: bool = False,
    return_energies: bool = False,
) -> Association:
    """Iterate ``A = softmax(beta R Y^T + M)``, ``R <- A Y`` per head, then return ``Z = dropout(A) V``.

    ``steps_max`` counts the updates after the first association (0: plain attention; an int, a ``(H,)`` tensor
    per head, or ``None``: until converged). A head stops once the change of its association matrix
    (``stop_on="association"``: the largest over the batch of ``||A_t - A_{t-1}||_2``) or of its state patterns
    (``stop_on="state"``: ``||R_t - R_{t-1}||_2``) is at most ``eps`` (a float or ``(H,)``).
    """
    if stop_on not in ("association", "state"):
        raise ValueError(f"update_steps_stop_on must be 'association' or 'state', got {stop_on!r}")
    heads = states.shape[1]
    b = _per_head(beta, heads, states, "scaling") if isinstance(beta, Tensor) else beta
    tol = _per_head(eps, heads, states, "update_steps_eps").view(heads)
    if steps_max is None:
        limit = torch.full((heads,), UNTIL_CONVERGED_CAP, device=states.device)
    else:
        limit = torch.as_tensor(steps_max, device=states.device).expand(heads)
    if steps_max is None:
        n_max = UNTIL_CONVERGED_CAP
    else:  # a plain int needs no look at a tensor (no graph break under torch.compile)
        n_max = int(steps_max.max()) if isinstance(steps_max, Tensor) else int(steps_max)
    compiling = torch.compiler.is_compiling()
    keys_t = stored.transpose(-1, -2)

    def associate(r: Tensor) -> tuple[Tensor, Tensor]:
        scores = (r * b) @ keys_t
        if mask is not None:
            scores = scores + mask
        return scores, torch.softmax(scores, dim=-1)

    scores, a = associate(states)
    energies = []

    def record(r: Tensor, s: Tensor, w: Tensor) -> None:
        if return_energies:
            lse = s.amax(-1) - torch.log(w.amax(-1))
            energies.append(model_b_energy(r, lse, b))

    record(states, scores, a)
    r = states
    done = torch.zeros(heads, dtype=torch.long, device=states.device)
    active = limit > 0
    for _ in range(n_max):
        if not compiling and not bool(active.any()):
            break
        r_new = a @ stored
        scores_new, a_new = associate(r_new)
        if stop_on == "association":
            change = torch.linalg.vector_norm(a_new - a, dim=(-2, -1)).amax(0)
        else:
            change = torch.linalg.vector_norm(r_new - r, dim=(-2, -1)).amax(0)
        on = active.view(1, heads, 1, 1)
        r = torch.where(on, r_new, r)
        a = torch.where(on, a_new, a)
        if return_energies:
            scores = torch.where(on, scores_new, scores)
            record(r, scores, a)
        done = done + active.long()
        active = active & (done < limit) & (change > tol)
    weights = F.dropout(a, p=dropout, training=training) if dropout > 0 else a
    return Association(weights @ projections, a, r, torch.stack(energies) if return_energies else None, done)
