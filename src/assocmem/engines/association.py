"""One association of Model B, ``softmax(beta x xi^T + M) V``, with its log-partition, and Model B's energy from it
(docs/reference.md §2): the product the retrieval loop (:mod:`assocmem.engines.retrieval`) repeats.

A shared ``(K, d)`` pattern matrix is one matrix product for every query; per-item patterns use batched
products; large score matrices are streamed in chunks of patterns with a running (online) logsumexp; on the
device types in :data:`SDPA_DEVICES` a plain association goes through the fused attention kernel.

The preset it equals: one Euler step ``dt = tau_f`` of the reduced ``model_b`` (tests/test_engines.py).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

#: Score matrices up to this many bytes are computed in one piece; larger ones are streamed in chunks.
SCORE_BUDGET_BYTES = 1 << 27

#: Device types on which a plain association goes through ``F.scaled_dot_product_attention`` (fused kernels).
#: Not "cpu": there the plain products measured faster (docs/benchmarks.md).
SDPA_DEVICES = {"cuda"}


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
    (a 2-D pattern matrix is shared by every query); ``mask`` is additive, broadcastable to ``(..., L, K)``. Returns
    ``(out, lse, weights)`` (``lse (..., L)`` and ``weights (..., L, K)`` only when asked for). With ``chunk_size``
    (or when the score matrix would pass :data:`SCORE_BUDGET_BYTES`) the patterns are streamed in chunks with an
    online logsumexp; weights are not available then.
    """
    k = patterns.shape[-2]
    rows = queries.numel() // queries.shape[-1]
    if chunk_size is None and rows * k * queries.element_size() > SCORE_BUDGET_BYTES and not need_weights:
        chunk_size = max(1, SCORE_BUDGET_BYTES // (rows * queries.element_size()))
    whole = chunk_size is None or chunk_size >= k or need_weights
    if (
        whole
        and not (need_lse or need_weights)
        and queries.device.type in SDPA_DEVICES
        and not isinstance(beta, Tensor)
    ):
        return _sdpa(queries, patterns, values, float(beta), mask), None, None
    scaled = queries * beta
    if whole:
        scores = scaled @ patterns.transpose(-1, -2)
        if mask is not None:
            scores = scores + mask
        weights = torch.softmax(scores, dim=-1)
        lse = None
        if need_lse:  # lse = s_max - log w_max: two reductions instead of a second pass of exponentials
            lse = scores.amax(dim=-1) - torch.log(weights.amax(dim=-1))
        return weights @ values, lse, (weights if need_weights else None)
    run_max = run_sum = acc = None
    for start in range(0, k, chunk_size):
        stop = min(start + chunk_size, k)
        s = scaled @ patterns[..., start:stop, :].transpose(-1, -2)
        if mask is not None:
            s = s + (mask[..., start:stop] if mask.shape[-1] != 1 else mask)
        m = s.amax(dim=-1, keepdim=True)
        if run_max is None:
            run_max = m
            p = torch.exp(s - m)
            run_sum = p.sum(-1, keepdim=True)
            acc = p @ values[..., start:stop, :]
        else:
            new_max = torch.maximum(run_max, m)
            scale = torch.exp(run_max - new_max)
            p = torch.exp(s - new_max)
            run_sum = run_sum * scale + p.sum(-1, keepdim=True)
            acc = acc * scale + p @ values[..., start:stop, :]
            run_max = new_max
    out = acc / run_sum
    lse = (run_max + torch.log(run_sum)).squeeze(-1) if need_lse else None
    return out, lse, None


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
