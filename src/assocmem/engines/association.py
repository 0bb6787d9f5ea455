"""One association of Model B, ``softmax(beta x xi^T + M) V``, with its log-partition, and Model B's energy from it
(docs/reference.md §2): the product the retrieval loop (:mod:`assocmem.engines.retrieval`) repeats.

Masks: :func:`additive_mask` turns a mask into the additive form every path adds to the scores: a boolean mask
follows PyTorch's ``scaled_dot_product_attention`` (``True``: the pattern takes part), a float one is added as
it is (``-inf`` hides). A row of scores hidden entirely has no association (``softmax`` of nothing):
:func:`hidden_rows` finds those rows so that the caller can refuse them (docs/bad-input.md).

A shared ``(K, d)`` pattern matrix is one matrix product for every query; per-item patterns use batched
products; the patterns are streamed in cache-sized chunks with an online softmax
(:mod:`assocmem.engines.online_softmax`); on the device types in :data:`SDPA_DEVICES` a plain association goes
through the fused attention kernel.

The preset it equals: one Euler step ``dt = tau_f`` of the reduced ``model_b`` (tests/test_engines.py).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from assocmem.checks import broadcasts_to
from assocmem.engines.online_softmax import stream

#: Device types on which a plain association goes through ``F.scaled_dot_product_attention`` (fused kernels).
#: Not "cpu": there the plain products measured faster (docs/benchmarks.md).
SDPA_DEVICES = {"cuda"}


def additive_mask(
    mask: object, scores: tuple[int, ...], like: Tensor, who: str, name: str = "mask"
) -> Tensor | None:
    """``mask`` checked against the scores' shape ``scores`` and returned additive, in ``like``'s dtype.

    Boolean: ``True`` keeps a (query, pattern) pair, ``False`` hides it (PyTorch's convention in
    ``scaled_dot_product_attention``); floating point (``like``'s dtype): added to the scores. The mask must
    broadcast to ``scores`` without enlarging it, and live on ``like``'s device. Made once per call, outside the
    update loop.
    """
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise TypeError(f"{who}: {name} must be a torch.Tensor or None, got {type(mask).__name__}")
    if mask.is_meta:
        raise ValueError(f"{who}: {name} is on the meta device (a shape without values)")
    if mask.device != like.device:
        raise ValueError(f"{who}: {name} is on {mask.device} but the queries are on {like.device}")
    if not broadcasts_to(mask.shape, scores):
        raise ValueError(
            f"{who}: {name} must broadcast to the scores' shape (..., queries, patterns) = {tuple(scores)}, "
            f"got {tuple(mask.shape)}"
        )
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=like.dtype, device=mask.device).masked_fill_(
            ~mask, float("-inf")
        )
    if not mask.is_floating_point():
        raise TypeError(
            f"{who}: {name} must be boolean (True: the pattern takes part, as in scaled_dot_product_attention) or "
            f"floating point (added to the scores), got {mask.dtype}"
        )
    if mask.dtype != like.dtype:
        raise TypeError(f"{who}: a float {name} must have the queries' dtype {like.dtype}, got {mask.dtype}")
    return mask


def hidden_rows(mask: Tensor) -> Tensor:
    """Where an additive mask hides every pattern of a row of scores (``-inf`` everywhere), ``mask.shape[:-1]``."""
    return torch.isneginf(mask).all(-1)


def hidden_row_error(who: str, name: str, mask: Tensor) -> ValueError:
    """The error for a mask that hides a whole row (found by :func:`hidden_rows`; this reads the values)."""
    row = tuple(int(i) for i in hidden_rows(mask).nonzero()[0])
    return ValueError(
        f"{who}: {name} hides every pattern from the row {row} of the scores (mask shape {tuple(mask.shape)}); each "
        f"query needs at least one pattern to take part (True in a boolean mask, > -inf in a float one)"
    )


def associate(
    queries: Tensor,
    patterns: Tensor,
    values: Tensor,
    beta: float | Tensor,
    mask: Tensor | None = None,
    *,
    chunk_size: int | None = None,
    need_lse: bool = False,
    need_weights: bool = False,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """One association ``softmax(beta x K^T + mask) V`` with its log-partition ``lse = log sum exp(...)``.

    ``queries (..., L, d)``, ``patterns (..., K, d)``, ``values (..., K, d_v)`` broadcast like ``torch.matmul``
    (a 2-D pattern matrix is shared by every query; patterns with a leading dimension of size 1 are shared along
    it, never expanded); ``mask`` is additive (:func:`additive_mask`), broadcastable to ``(..., L, K)``. Returns
    ``(out, lse, weights)`` (``lse (..., L)`` and ``weights (..., L, K)`` only when asked for). The patterns are
    streamed in cache-sized chunks (``chunk_size`` of them, default
    :func:`~assocmem.engines.online_softmax.chunk_rows`) with an online softmax
    (:mod:`assocmem.engines.online_softmax`); ``need_weights`` takes them in one chunk. A row that ``mask`` hides
    entirely has ``out = 0``, ``lse = -inf`` and weights 0, with zero gradients (an empty part of a merge,
    docs/reference.md §8; PyTorch's fused attention also returns 0 there); the public functions refuse such rows.
    """
    if (
        not (need_lse or need_weights or chunk_size)
        and queries.device.type in SDPA_DEVICES
        and not isinstance(beta, Tensor)
    ):
        return _sdpa(queries, patterns, values, float(beta), mask), None, None
    return stream(
        queries, patterns, values, beta, mask, chunk_size, need_lse=need_lse, need_weights=need_weights
    )


def _sdpa(queries: Tensor, patterns: Tensor, values: Tensor, beta: float, mask: Tensor | None) -> Tensor:
    """The same association through the fused kernel; a shared 2-D memory takes the queries as one sequence."""
    if patterns.dim() == 2:
        lead = queries.shape[:-1]
        q = queries.reshape(1, -1, queries.shape[-1])
        m = None if mask is None else mask.expand(*lead, patterns.shape[0]).reshape(1, -1, patterns.shape[0])
        out = F.scaled_dot_product_attention(q, patterns[None], values[None], attn_mask=m, scale=beta)
        return out.reshape(*lead, values.shape[-1])
    m = None if mask is None else mask.expand(*queries.shape[:-1], patterns.shape[-2])
    return F.scaled_dot_product_attention(queries, patterns, values, attn_mask=m, scale=beta)


def model_b_energy(states: Tensor, lse: Tensor, beta: float | Tensor) -> Tensor:
    """Model B's energy ``E(x) = 1/2 |x|^2 - beta^-1 lse(beta K x)`` from a precomputed log-partition ``lse``."""
    b = beta.squeeze(-1) if isinstance(beta, Tensor) and beta.dim() > 0 else beta
    return 0.5 * (states * states).sum(-1) - lse / b
