"""The modern Hopfield retrieval engine: Model B's update ``x <- V^T softmax(beta K x)`` (docs/reference.md §2).

The reduced Model B network has the energy ``E(x) = 1/2 |x|^2 - beta^-1 log sum_mu exp(beta xi_mu . x)``; an Euler
step with ``dt = tau_f`` is the attention update ``x <- xi^T softmax(beta xi x)`` (Ramsauer et al. 2020), and the
energy never increases along those steps. This module computes that update fast for very large memories:

- one memory matrix ``(K, d)`` is shared by the whole batch: the queries are the rows of one matrix product, so
  nothing is copied per batch item or per step;
- per-item memories ``(B, K, d)`` use batched products (no expansion of anything);
- the memories are streamed in cache-sized chunks with a running (online) softmax
  (:mod:`assocmem.engines.online_softmax`), so the peak memory stays near the size of the memory matrix itself
  and the time near that of the two matrix products;
- the loop is the one implementation of Model B's update: :func:`retrieve` is its face for memory banks, the
  Hopfield layers' :func:`assocmem.nn.functional.hopfield_update` its face for heads (per-head ``beta``, step
  limits and tolerances, additive masks, and the layers' stop rules), both through :func:`iterate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor
from torch.nn import functional as F

from assocmem.checks import (
    Guard,
    broadcasts_to,
    guard,
    is_count,
    nonfinite_error,
    require_like,
    require_tensor,
)
from assocmem.dynamics.fixed_point import FixedPoint
from assocmem.engines.association import (
    additive_mask,
    associate,
    hidden_row_error,
    hidden_rows,
    model_b_energy,
)

#: The tolerance of the until-converged mode when none is given, and the one ``converged`` is judged by.
DEFAULT_TOL = 1e-6

STOP_RULES = ("state", "association")
UNITS = ("query", "head")


@dataclass(frozen=True)
class Retrieval(FixedPoint):
    """What :func:`retrieve` returns when asked for more than the states (a
    :class:`~assocmem.dynamics.fixed_point.FixedPoint`).

    ``states``: the retrieved states ``(..., d_v)`` (the read-out of the values when ``values`` is given).
    ``energies``: Model B's energy ``E(x_t)`` of every state visited in the patterns' space, ``(steps + 1, ...)``
    (``None`` unless ``record``). ``steps``: the state updates each query took (with ``values`` the last
    association reads the values out and is no state update). ``converged``: the last update moved the query
    by at most ``tol``. ``weights``: the association weights ``softmax(beta xi x + mask)`` that produced the
    states, ``(..., K)`` (``None`` unless ``return_weights``).
    """

    weights: Tensor | None = None


def _compiling() -> bool:
    return torch.compiler.is_compiling()


def _check(
    who: str, patterns: object, queries: object, values: object, beta: object, chunk: object, mask: object
) -> tuple[Tensor | None, float | Tensor]:
    """The metadata checks of :func:`retrieve` and :func:`energy` (free: no values read); returns the mask in
    additive form and ``beta`` (a tensor in the queries' dtype)."""
    patterns = require_tensor(patterns, "patterns", who)
    queries = require_tensor(queries, "queries", who)
    ps, qs = patterns.shape, queries.shape  # read once: each .shape is a new torch.Size
    if len(ps) < 2 or ps[-2] == 0 or ps[-1] == 0:
        raise ValueError(
            f"{who}: patterns must have shape (K, d) or (*batch, K, d) with K, d > 0, got {tuple(ps)}"
        )
    if not qs or qs[-1] != ps[-1]:
        raise ValueError(
            f"{who}: queries must have shape (..., d) with d = {ps[-1]} (the patterns' width), got {tuple(qs)}"
        )
    lead = ps[:-2]
    if lead and (len(qs) not in (len(lead) + 1, len(lead) + 2) or qs[: len(lead)] != lead):
        raise ValueError(
            f"{who}: with per-item patterns {tuple(ps)}, queries must be {(*lead, 'd')} or "
            f"{(*lead, 'L', 'd')}, got {tuple(qs)}"
        )
    require_like(queries, "queries", patterns, "patterns", who)
    if values is not None:
        values = require_tensor(values, "values", who)
        if values.shape[:-1] != ps[:-1] or values.shape[-1] == 0:
            raise ValueError(
                f"{who}: values must be of shape {(*ps[:-1], 'd_v')} with d_v > 0 (one row per pattern), "
                f"got {tuple(values.shape)}"
            )
        require_like(values, "values", patterns, "patterns", who)
    scores = (*qs[:-1], ps[-2])
    if isinstance(beta, Tensor):
        require_tensor(beta, "beta", who)
        require_like(beta, "beta", queries, "queries", who, dtype=False)
        per_query = (*scores[:-1], 1)
        if not broadcasts_to(beta.shape, per_query):
            raise ValueError(
                f"{who}: a tensor beta must broadcast to (*queries.shape[:-1], 1) = {per_query}, got "
                f"{tuple(beta.shape)}"
            )
        beta = beta.to(queries.dtype)
    elif isinstance(beta, bool) or not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
        raise ValueError(f"{who}: beta must be a positive finite number or tensor, got {beta!r}")
    if chunk is not None and not is_count(chunk):
        raise ValueError(f"{who}: chunk_size must be a positive int or None, got {chunk!r}")
    return additive_mask(mask, scores, queries, who), beta


def _defer_checks(g: Guard, who: str, beta: float | Tensor, mask: Tensor | None) -> None:
    """Queue the value checks of the options: a tensor beta positive and finite, no row of scores fully masked."""
    if isinstance(beta, Tensor):
        g.defer(
            ~((beta > 0) & torch.isfinite(beta)),
            lambda: ValueError(f"{who}: beta must be positive and finite"),
        )
    if mask is not None:
        g.defer(hidden_rows(mask), lambda: hidden_row_error(who, "mask", mask))


def _not_finite(
    who: str, queries: Tensor, beta: object, mask: object, patterns: Tensor, values: object
) -> ValueError:
    suspects = [
        ("queries", queries),
        ("beta", beta),
        ("mask", mask),
        ("patterns", patterns),
        ("values", values),
    ]
    return nonfinite_error(
        who, suspects, f"the result holds NaN or Inf although every input is finite: the scores beta * xi . x "
        f"overflowed {queries.dtype}; lower beta or compute in float64",
    )  # fmt: skip


def energy(
    patterns: Tensor,
    states: Tensor,
    beta: float | Tensor = 1.0,
    *,
    mask: Tensor | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """Model B's energy ``E(x) = 1/2 |x|^2 - beta^-1 log sum_mu exp(beta xi_mu . x + M_mu)`` (docs/reference.md §2).

    The reduced network ``models.model_b(patterns, beta, reduced=True)`` has the same energy (without a mask);
    this is the fast, chunked form for large memories. ``states`` has shape ``(..., d)`` and ``patterns``
    ``(K, d)`` or per item ``(*batch, K, d)`` as in :func:`retrieve`; ``mask`` as in :func:`retrieve`.
    Returns ``(...)``.
    """
    given = mask
    mask, beta = _check("energy", patterns, states, None, beta, chunk_size, mask)
    with guard() as g:
        if g is not None:
            _defer_checks(g, "energy", beta, mask)
        x, m, b, squeeze = _shaped(patterns, states, mask, beta)
        _, lse, _ = associate(x, patterns, patterns[..., :1], b, m, chunk_size=chunk_size, need_lse=True)
        e = model_b_energy(x, lse, b)
        e = e.squeeze(-1) if squeeze else e
        if g is not None:
            g.result(e, lambda: _not_finite("energy", states, beta, given, patterns, None))
    return e


def _shaped(
    patterns: Tensor, queries: Tensor, mask: Tensor | None, beta: float | Tensor
) -> tuple[Tensor, Tensor | None, float | Tensor, bool]:
    """Per-item patterns with one query per item: the query becomes a sequence of one (mask and beta follow)."""
    squeeze = patterns.dim() > 2 and queries.dim() == patterns.dim() - 1
    if not squeeze:
        return queries, mask, beta, False
    if mask is not None and mask.dim() == queries.dim():
        mask = mask.unsqueeze(-2)
    if isinstance(beta, Tensor) and beta.dim() == queries.dim():
        beta = beta.unsqueeze(-1)
    return queries.unsqueeze(-2), mask, beta, True


def _change(diff: Tensor, per: str) -> Tensor:
    """How far a step moved each unit: the L2 norm over the last axis for each query (``per="query"``); for
    each head (``per="head"``, ``(B, H, L, .)``) the L2 norm over ``(L, .)``, largest over the batch, ``(1, H, 1)``."""
    if per == "query":
        return torch.linalg.vector_norm(diff, dim=-1)
    return torch.linalg.vector_norm(diff, dim=(-2, -1)).amax(0, keepdim=True).unsqueeze(-1)


def _per_unit(value: float | Tensor, per: str, x: Tensor, name: str) -> float | Tensor:
    """A float, or with ``per="head"`` a ``(H,)`` tensor, as something that broadcasts against the units."""
    if not isinstance(value, Tensor):
        return value
    heads = x.shape[1] if x.dim() == 4 else -1
    if per != "head" or value.shape != (heads,):
        raise ValueError(
            f"retrieve: a tensor {name} must have shape (H,) = ({heads},) (one per head, per='head' and queries "
            f"(B, H, L, d)), got {tuple(value.shape)} with per={per!r}"
        )
    return value.to(x.device).view(1, heads, 1)


def iterate(
    patterns: Tensor,
    x: Tensor,
    values: Tensor | None,
    beta: float | Tensor,
    *,
    max_steps: int | Tensor,
    tol: float | Tensor | None,
    stop: str = "state",
    per: str = "query",
    mask: Tensor | None = None,
    chunk_size: int | None = None,
    record: bool = False,
    need_weights: bool = False,
    dropout: float = 0.0,
    report: bool = True,
) -> tuple[Tensor, Retrieval]:
    """Model B's update loop on states ``x (..., L, d)`` (already shaped for ``patterns``): the engine itself.

    Up to ``max_steps`` state updates ``x <- softmax(beta x xi^T + M) xi`` (an int, or a ``(H,)`` tensor with
    ``per="head"``); with ``tol``, a unit (a query, or a head with ``per="head"``) stops once its step moved it
    (``stop="state"``) or its association (``stop="association"``) by at most ``tol``, and keeps its state while
    the others go on. ``values`` are read out by the final association (with ``dropout`` on its weights); with
    ``values=None`` the output is the final state. Returns ``(output, result)``: ``result.states`` are the final
    states in the patterns' space, ``result.weights`` the association of the final states (values given) or
    the one that produced them (``values=None``; only when ``need_weights``). ``report=False``: the caller reads
    only the output and the states (``result.steps`` and ``result.converged`` are then ``None``, and a loop
    without a tolerance keeps no count).
    """
    watch = tol is not None
    limit = _per_unit(max_steps, per, x, "max_steps")
    tol_ = _per_unit(tol if watch else DEFAULT_TOL, per, x, "tol")
    bound = int(limit.max()) if isinstance(limit, Tensor) else limit
    freeze = watch or isinstance(limit, Tensor)
    count = freeze or report  # whether to keep each unit's steps and last change
    by_association = stop == "association"
    unit = x.shape[:-1] if per == "query" else (1, x.shape[1], 1)
    done = active = moved = None
    if count:
        done = torch.zeros(unit, dtype=torch.int64, device=x.device)
        active = torch.ones(unit, dtype=torch.bool, device=x.device)
        if isinstance(limit, Tensor):
            active = active & (limit > 0)
        moved = torch.full(
            unit, math.inf, dtype=x.dtype, device=x.device
        )  # the change of each unit's last step
    compiling = _compiling()
    energies: list[Tensor] = []
    weights = w_prev = lse = None
    current = False  # whether (weights, lse) belong to the present x
    stepped = active  # the units the last pass updated
    for _ in range(bound):
        if freeze and not compiling and not bool(active.any()):
            break
        new, lse, weights = associate(
            x, patterns, patterns, beta, mask, chunk_size=chunk_size, need_lse=record,
            need_weights=(by_association and count) or need_weights,
        )  # fmt: skip
        current = True
        if by_association and count and w_prev is not None:
            moved = torch.where(stepped, _change(weights - w_prev, per), moved)
            if watch:
                active = active & (moved > tol_)
                if not compiling and not bool(active.any()):
                    break
        if record:
            energies.append(model_b_energy(x, lse, beta))
        if count and not by_association:
            moved = torch.where(active, _change(new - x, per), moved) if freeze else _change(new - x, per)
        x = torch.where(active.unsqueeze(-1), new, x) if freeze else new
        if count:
            done = done + active
            stepped = active
            if watch and not by_association:
                active = active & (moved > tol_)
            if isinstance(limit, Tensor):
                active = active & (done < limit)
        w_prev = weights
        current = values is None  # with values=None the weights that produced x are the ones to return
    compare = by_association and count and w_prev is not None  # the final association closes the last change
    if values is None:
        out = x
        if record or compare:
            _, lse, w_last = associate(
                x, patterns, patterns[..., :1], beta, mask, chunk_size=chunk_size, need_lse=True,
                need_weights=compare,
            )  # fmt: skip
            if compare:
                moved = torch.where(stepped, _change(w_last - w_prev, per), moved)
    else:
        if not current or (dropout > 0 and weights is None):
            out, lse, weights = associate(
                x, patterns, values, beta, mask, chunk_size=chunk_size, need_lse=record,
                need_weights=need_weights or compare or dropout > 0,
            )  # fmt: skip
            if compare:
                moved = torch.where(stepped, _change(weights - w_prev, per), moved)
        if dropout > 0:
            out = F.dropout(weights, p=dropout) @ values
        elif current:  # the loop stopped on the association of the present x: read the values out with it
            out = weights @ values
    if record:
        energies.append(model_b_energy(x, lse, beta))
    if not count:
        return out, Retrieval(x, torch.stack(energies) if record else None, None, None, weights)  # type: ignore[arg-type]
    shape = x.shape[:-1]
    result = Retrieval(
        states=x,
        energies=torch.stack(energies) if record else None,
        steps=done.expand(shape),
        converged=((done > 0) & (moved <= tol_)).expand(shape),
        weights=weights if need_weights else None,
    )
    return out, result


def check_loop(who: str, steps: object, max_steps: object, tol: object) -> None:
    """The loop's options of :func:`retrieve` (and of a memory bank's retrieval): ``steps`` an int >= 1 or None,
    ``max_steps`` an int >= 1 when ``steps`` is None, ``tol`` a number >= 0 or None."""
    if steps is not None and not is_count(steps):
        raise ValueError(f"{who}: steps must be an int >= 1 or None (until converged), got {steps!r}")
    if steps is None and not is_count(max_steps):
        raise ValueError(f"{who}: max_steps must be an int >= 1, got {max_steps!r}")
    if tol is not None and (isinstance(tol, bool) or not (isinstance(tol, (int, float)) and tol >= 0)):
        raise ValueError(f"{who}: tol must be a number >= 0 or None, got {tol!r}")


def retrieve(
    patterns: Tensor,
    queries: Tensor,
    beta: float | Tensor = 1.0,
    *,
    values: Tensor | None = None,
    steps: int | None = 1,
    max_steps: int = 1000,
    tol: float | None = None,
    record: bool = False,
    return_weights: bool = False,
    chunk_size: int | None = None,
    mask: Tensor | None = None,
) -> Tensor | Retrieval:
    """Retrieve from a modern Hopfield memory: ``x <- xi^T softmax(beta xi x)`` (docs/reference.md §2, model B).

    ``patterns`` (the stored patterns ``xi``): ``(K, d)`` shared by every query, or ``(*batch, K, d)`` one
    memory per batch item. ``queries`` (the initial states ``x_0``): ``(..., d)`` with a shared memory,
    ``(*batch, d)`` or ``(*batch, L, d)`` with per-item patterns. ``beta``: the inverse temperature (a float, or
    a tensor broadcastable to ``(*queries.shape[:-1], 1)``). ``mask``: broadcastable to the scores
    ``(*queries.shape[:-1], K)``; boolean as in ``torch.nn.functional.scaled_dot_product_attention`` (``True``:
    the pattern takes part, ``False``: it is hidden), or float, added to the scores (``-inf`` hides). A mask that
    hides every pattern from a query is an error (docs/bad-input.md).

    How many updates (the loop's arguments, shared with every fixed-point loop: ``max_steps``, ``tol``,
    ``record``):

    - ``steps=n`` (default 1): exactly ``n`` associations, ``x_{t+1} = xi^T softmax(beta xi x_t)``; the output
      is ``V^T softmax(beta xi x_{n-1})`` with ``V = values`` (``(..., K, d_v)``, default ``xi``, in which case
      the output is ``x_n``). With a ``tol`` as well, a query whose update moved it by at most ``tol`` (L2)
      stops early and keeps its state.
    - ``steps=None``: until converged: each query is updated until a step moves it by at most ``tol``
      (default ``1e-6``), at most ``max_steps`` state updates (``max_steps`` is ignored when ``steps`` is given).

    The patterns are streamed in cache-sized chunks with an online softmax (:mod:`assocmem.engines.online_softmax`:
    the score matrix is never held whole, and the answer equals the unchunked one to rounding); ``chunk_size``
    sets the patterns per chunk.

    Returns the states ``(..., d_v)``, or a :class:`Retrieval` when ``record`` (Model B's energy of every state
    visited) or ``return_weights`` (the final association weights; not with chunking) is set.

    Bad input (docs/bad-input.md): a wrong shape, dtype or device is an error naming the argument. NaN or Inf in
    the result is an error naming the argument that holds them (queries, beta, mask, patterns, values) or, when
    none does, the overflow; the result is checked rather than the memory, so a call costs no extra pass over
    ``patterns`` (``assocmem.checks.value_checks(False)`` skips the check).

    Example: ``retrieve(xi, xi[:3] + 0.1 * torch.randn(3, xi.shape[1]), beta=8.0)`` returns (close to) ``xi[:3]``.
    """
    given = mask
    mask, beta = _check("retrieve", patterns, queries, values, beta, chunk_size, mask)
    check_loop("retrieve", steps, max_steps, tol)
    if return_weights and chunk_size is not None:
        raise ValueError("retrieve: return_weights needs the whole score matrix; leave chunk_size=None")
    if steps is None and tol is None:
        tol = DEFAULT_TOL
    updates = max_steps if steps is None else steps - (values is not None)
    with guard() as g:
        if g is not None:
            _defer_checks(g, "retrieve", beta, mask)
        x, m, b, squeeze = _shaped(patterns, queries, mask, beta)
        if updates + (values is not None) == 1 and not (record or return_weights):  # one association: no loop
            out = associate(x, patterns, patterns if values is None else values, b, m, chunk_size=chunk_size)[
                0
            ]
        else:
            out, res = iterate(
                patterns, x, values, b, max_steps=updates, tol=tol, mask=m, chunk_size=chunk_size,
                record=record, need_weights=return_weights, report=record or return_weights,
            )  # fmt: skip
        if g is not None:
            g.result(out, lambda: _not_finite("retrieve", queries, beta, given, patterns, values))
    if not (return_weights or record):
        return out.squeeze(-2) if squeeze else out
    if squeeze:
        out = out.squeeze(-2)
        res = Retrieval(
            states=res.states.squeeze(-2),
            energies=None if res.energies is None else res.energies.squeeze(-1),
            steps=res.steps.squeeze(-1),
            converged=res.converged.squeeze(-1),
            weights=None if res.weights is None else res.weights.squeeze(-2),
        )
    return replace(res, states=out)
