"""The modern Hopfield retrieval engine: Model B's update ``x <- V^T softmax(beta K x)`` (docs/reference.md §2).

The reduced Model B network has the energy ``E(x) = 1/2 |x|^2 - beta^-1 log sum_mu exp(beta xi_mu . x)``; an Euler
step with ``dt = tau_f`` is the attention update ``x <- xi^T softmax(beta xi x)`` (Ramsauer et al. 2020), and the
energy never increases along those steps. This module computes that update fast for very large memories:

- one memory matrix ``(K, d)`` is shared by the whole batch: the queries are the rows of one matrix product, so
  nothing is copied per batch item or per step;
- per-item memories ``(B, K, d)`` use batched products (no expansion of anything);
- when the score matrix ``queries x K`` would be large, the memories are streamed in chunks with a running
  (online) logsumexp, so the peak memory stays near the size of the memory matrix itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from assocmem.checks import is_count

#: Score matrices up to this many bytes are computed in one piece; larger ones are streamed in chunks.
SCORE_BUDGET_BYTES = 1 << 27

#: Device types on which a plain association goes through ``F.scaled_dot_product_attention`` (fused kernels).
#: Not "cpu": there the plain products measured faster (docs/benchmarks.md).
SDPA_DEVICES = {"cuda"}


@dataclass
class Retrieval:
    """What :func:`retrieve` returns when asked for more than the states.

    ``states``: the retrieved states ``(..., d_v)``. ``weights``: the association weights
    ``softmax(beta K x + mask)`` that produced them, ``(..., K)`` (``None`` unless asked for). ``energies``:
    ``E(x_t)`` of Model B for every state visited in the memory space, shape ``(T, ...)``; with ``values=None``
    the last entry is the energy of the returned states (``None`` unless asked for). ``steps``: updates done.
    """

    states: Tensor
    weights: Tensor | None
    energies: Tensor | None
    steps: int


def _compiling() -> bool:
    return torch.compiler.is_compiling()


def _check(
    memories: object, queries: object, values: object, beta: object, steps: object, chunk: object
) -> None:
    for name, t in (("memories", memories), ("queries", queries)):
        if not isinstance(t, Tensor):
            raise TypeError(f"retrieve: {name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"retrieve: {name} must be floating point, got {t.dtype}")
    if memories.dim() not in (2, 3) or memories.shape[-2] == 0 or memories.shape[-1] == 0:
        raise ValueError(
            f"retrieve: memories must have shape (K, d) or (batch, K, d) with K, d > 0, got {tuple(memories.shape)}"
        )
    if queries.dim() == 0 or queries.shape[-1] != memories.shape[-1]:
        raise ValueError(
            f"retrieve: queries must have shape (..., d) with d = {memories.shape[-1]} (the memories' width), "
            f"got {tuple(queries.shape)}"
        )
    if memories.dim() == 3 and (queries.dim() not in (2, 3) or queries.shape[0] != memories.shape[0]):
        raise ValueError(
            f"retrieve: with per-item memories {tuple(memories.shape)}, queries must be (batch, d) or "
            f"(batch, L, d) with batch = {memories.shape[0]}, got {tuple(queries.shape)}"
        )
    if queries.dtype != memories.dtype:
        raise TypeError(
            f"retrieve: queries ({queries.dtype}) and memories ({memories.dtype}) must share a dtype"
        )
    if values is not None:
        if not isinstance(values, Tensor) or values.shape[:-1] != memories.shape[:-1]:
            raise ValueError(
                f"retrieve: values must be a tensor of shape {(*memories.shape[:-1], 'd_v')} (one row per "
                f"memory), got {tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__}"
            )
    if isinstance(beta, Tensor):
        if not _compiling() and not bool((beta > 0).all()):
            raise ValueError("retrieve: beta must be positive")
    elif not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
        raise ValueError(f"retrieve: beta must be a positive finite number or tensor, got {beta!r}")
    if steps is not None and not is_count(steps):
        raise ValueError(f"retrieve: steps must be an int >= 1 or None (until converged), got {steps!r}")
    if chunk is not None and not is_count(chunk):
        raise ValueError(f"retrieve: chunk_size must be a positive int or None, got {chunk!r}")
    if not _compiling() and bool(torch.isnan(queries).any()):
        raise ValueError("retrieve: queries contain NaN")


def associate(
    queries: Tensor,
    memories: Tensor,
    values: Tensor,
    beta: float | Tensor,
    mask: Tensor | None = None,
    *,
    chunk_size: int | None = None,
    need_lse: bool = False,
    need_weights: bool = False,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """One association ``softmax(beta x K^T + mask) V`` with its log-partition ``lse = log sum exp(...)``.

    ``queries (..., L, d)``, ``memories (..., K, d)``, ``values (..., K, d_v)`` broadcast like ``torch.matmul``
    (a 2-D memory is shared by every query); ``mask`` is additive, broadcastable to ``(..., L, K)``. Returns
    ``(out, lse, weights)`` (``lse (..., L)`` and ``weights (..., L, K)`` only when asked for). With ``chunk_size``
    (or when the score matrix would pass :data:`SCORE_BUDGET_BYTES`) the memories are streamed in chunks with an
    online logsumexp; weights are not available then.
    """
    k = memories.shape[-2]
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
        return _sdpa(queries, memories, values, float(beta), mask), None, None
    scaled = queries * beta
    if whole:
        scores = scaled @ memories.transpose(-1, -2)
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
        s = scaled @ memories[..., start:stop, :].transpose(-1, -2)
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


def _sdpa(queries: Tensor, memories: Tensor, values: Tensor, beta: float, mask: Tensor | None) -> Tensor:
    """The same association through the fused kernel; a shared 2-D memory takes the queries as one sequence."""
    if memories.dim() == 2:
        lead = queries.shape[:-1]
        q = queries.reshape(1, -1, queries.shape[-1])
        m = None if mask is None else mask.expand(*lead, memories.shape[0]).reshape(1, -1, memories.shape[0])
        out = F.scaled_dot_product_attention(q, memories[None], values[None], attn_mask=m, scale=beta)
        return out.reshape(*lead, values.shape[-1])
    m = None if mask is None else mask.expand(*queries.shape[:-1], memories.shape[-2])
    return F.scaled_dot_product_attention(queries, memories, values, attn_mask=m, scale=beta)


def model_b_energy(states: Tensor, lse: Tensor, beta: float | Tensor) -> Tensor:
    """Model B's energy ``E(x) = 1/2 |x|^2 - beta^-1 lse(beta K x)`` from a precomputed log-partition ``lse``."""
    b = beta.squeeze(-1) if isinstance(beta, Tensor) and beta.dim() > 0 else beta
    return 0.5 * (states * states).sum(-1) - lse / b


def energy(
    memories: Tensor, states: Tensor, beta: float | Tensor = 1.0, *, chunk_size: int | None = None
) -> Tensor:
    """Model B's energy ``E(x) = 1/2 |x|^2 - beta^-1 log sum_mu exp(beta xi_mu . x)`` (docs/reference.md §2).

    The reduced network ``models.model_b(memories, beta, reduced=True)`` has the same energy; this is the fast,
    chunked form for large memories. ``states`` has shape ``(..., d)``; returns ``(...)``.
    """
    _check(memories, states, None, beta, 1, chunk_size)
    q = states.unsqueeze(-2) if memories.dim() == 3 and states.dim() == 2 else states
    _, lse, _ = associate(q, memories, memories[..., :1], beta, chunk_size=chunk_size, need_lse=True)
    e = model_b_energy(q, lse, beta)
    return e.squeeze(-1) if q is not states else e


def retrieve(
    memories: Tensor,
    queries: Tensor,
    beta: float | Tensor = 1.0,
    *,
    values: Tensor | None = None,
    steps: int | None = 1,
    tol: float | None = None,
    max_steps: int = 1000,
    chunk_size: int | None = None,
    mask: Tensor | None = None,
    return_weights: bool = False,
    return_energy: bool = False,
) -> Tensor | Retrieval:
    """Retrieve from a modern Hopfield memory: ``x <- xi^T softmax(beta xi x)`` (docs/reference.md §2, model B).

    ``memories`` (the stored patterns ``xi``): ``(K, d)`` shared by every query, or ``(B, K, d)`` one memory per
    batch item. ``queries`` (the initial states ``x_0``): ``(..., d)`` with a shared memory, ``(B, d)`` or
    ``(B, L, d)`` with per-item memories. ``beta``: the inverse temperature (a float, or a tensor broadcastable
    to ``(..., L, 1)``). ``mask``: additive, broadcastable to the scores ``(..., K)`` (``-inf`` hides a memory).

    ``steps`` updates are done on the state in memory space, ``x_{t+1} = xi^T softmax(beta xi x_t)``; the output
    is ``V^T softmax(beta xi x_{steps-1})`` with ``V = values`` (``(..., K, d_v)``, default ``xi``, in which case
    the output is ``x_steps``). ``steps=None`` iterates until ``max |x_{t+1} - x_t| <= tol`` (default ``1e-6``) for
    every query, at most ``max_steps`` times; with an int ``steps`` and a ``tol``, it stops early once converged.
    ``chunk_size`` streams the memories in chunks of that many rows (automatic for score matrices larger than
    :data:`SCORE_BUDGET_BYTES`), with an online logsumexp.

    Returns the states ``(..., d_v)``, or a :class:`Retrieval` when ``return_weights`` (the final association
    weights; not with chunking) or ``return_energy`` (Model B's energy of every state visited) is set.

    Example: ``retrieve(xi, xi[:3] + 0.1 * torch.randn(3, xi.shape[1]), beta=8.0)`` returns (close to) ``xi[:3]``.
    """
    _check(memories, queries, values, beta, steps, chunk_size)
    if return_weights and chunk_size is not None:
        raise ValueError("retrieve: return_weights needs the whole score matrix; leave chunk_size=None")
    squeeze = memories.dim() == 3 and queries.dim() == 2
    x = queries.unsqueeze(-2) if squeeze else queries
    if squeeze and mask is not None and mask.dim() == 2:
        mask = mask.unsqueeze(-2)
    if isinstance(beta, Tensor) and squeeze and beta.dim() == 2:
        beta = beta.unsqueeze(-1)
    if steps is None and tol is None:
        tol = 1e-6
    limit = max_steps if steps is None else steps
    check = tol is not None and not _compiling()
    energies: list[Tensor] = []
    done = 0
    while done < limit - 1:  # the state updates before the last association
        new, lse, _ = associate(
            x, memories, memories, beta, mask, chunk_size=chunk_size, need_lse=return_energy
        )
        if return_energy:
            energies.append(model_b_energy(x, lse, beta))
        delta = (new - x).abs().amax(-1) if check else None
        x = new
        done += 1
        if delta is not None and bool((delta <= tol).all()):
            break
    last = memories if values is None else values
    out, lse, weights = associate(
        x,
        memories,
        last,
        beta,
        mask,
        chunk_size=chunk_size,
        need_lse=return_energy,
        need_weights=return_weights,
    )
    done += 1
    if return_energy:
        energies.append(model_b_energy(x, lse, beta))
        if values is None:
            _, lse_out, _ = associate(
                out, memories, memories[..., :1], beta, mask, chunk_size=chunk_size, need_lse=True
            )
            energies.append(model_b_energy(out, lse_out, beta))
    if squeeze:
        out = out.squeeze(-2)
        weights = None if weights is None else weights.squeeze(-2)
        energies = [e.squeeze(-1) for e in energies]
    if not (return_weights or return_energy):
        return out
    return Retrieval(out, weights, torch.stack(energies) if energies else None, done)
