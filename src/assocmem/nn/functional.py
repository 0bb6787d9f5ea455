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

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from assocmem.checks import guard, is_count, nonfinite_error, require_like, require_tensor
from assocmem.dynamics.fixed_point import FixedPoint
from assocmem.engines.association import additive_mask, hidden_row_error, hidden_rows
from assocmem.engines.retrieval import iterate

__all__ = ["UNTIL_CONVERGED_CAP", "Association", "hopfield_update"]

#: Cap on the number of updates when a head iterates until convergence (``max_steps=None``).
UNTIL_CONVERGED_CAP = 10_000


@dataclass(frozen=True)
class Association(FixedPoint):
    """The result of :func:`hopfield_update` (a :class:`~assocmem.dynamics.fixed_point.FixedPoint`).

    ``states``: the final state patterns ``(B, H, L, d_k)``; ``energies``: Model B's energy of the state
    patterns at every update ``(steps + 1, B, H, L)`` (only when recorded); ``steps``: the updates each head did
    (``(B, H, L)``, equal along ``B`` and ``L``); ``converged``: the head's last update changed it by at most
    ``tol``. ``output``: ``Z = dropout(A) V``, ``(B, H, L, d_v)`` (a layer's :meth:`~assocmem.nn.Hopfield.retrieve`
    puts the layer's output here instead); ``association``: the final association matrix ``A``, ``(B, H, L, S)``
    (``None`` inside a layer's forward, which does not compute it).
    """

    output: Tensor
    association: Tensor | None


def merge_masks(
    padding: Tensor | None,
    association: Tensor | None,
    batch: int,
    heads: int,
    length: int,
    source: int,
    like: Tensor,
) -> Tensor | None:
    """One additive mask ``(B|1, H|1, L, S)`` from a stored-pattern padding mask ``(B, S)`` and an association
    mask ``(L, S)`` or ``(B*H, L, S)``, in ``like``'s dtype.

    These are the layers' masks, in hflayers' (and ``torch.nn.MultiheadAttention``'s) convention: a boolean
    ``True`` (or a nonzero ``uint8``) HIDES a pair, a float is added to the scores. (The functional
    :func:`hopfield_update` and :func:`assocmem.retrieve` take PyTorch's attention convention instead:
    ``True`` takes part.) Built once per forward, out of the update loop.
    """

    def additive(m: object, name: str) -> Tensor:
        if not isinstance(m, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor or None, got {type(m).__name__}")
        if m.is_meta or m.device != like.device:
            raise ValueError(f"{name} is on {m.device} but the layer computes on {like.device}")
        if m.dtype in (torch.bool, torch.uint8):
            return torch.zeros(m.shape, dtype=like.dtype, device=m.device).masked_fill(
                m.bool(), float("-inf")
            )
        if not m.is_floating_point():
            raise TypeError(f"{name} must be boolean (True hides), uint8 or floating point, got {m.dtype}")
        return m.to(like.dtype)

    out = None
    if association is not None:
        if isinstance(association, Tensor) and association.shape == (length, source):
            out = additive(association, "association_mask")[None, None]
        elif isinstance(association, Tensor) and association.shape == (batch * heads, length, source):
            out = additive(association, "association_mask").view(batch, heads, length, source)
        elif isinstance(association, Tensor):
            raise ValueError(
                f"association_mask must have shape (L, S) = {(length, source)} or (B*num_heads, L, S) = "
                f"{(batch * heads, length, source)}, got {tuple(association.shape)}"
            )
        else:
            additive(association, "association_mask")
    if padding is not None:
        if isinstance(padding, Tensor) and padding.shape != (batch, source):
            raise ValueError(
                f"stored_pattern_padding_mask must have shape (B, S) = {(batch, source)}, got {tuple(padding.shape)}"
            )
        pad = additive(padding, "stored_pattern_padding_mask")[:, None, None, :]
        out = pad if out is None else out + pad
    return out


def _per_head(value: object, heads: int, like: Tensor, name: str) -> Tensor:
    """A float or a ``(H,)`` tensor as a ``(H,)`` tensor on ``like``'s device and dtype."""
    if isinstance(value, Tensor) and (value.is_meta or value.device != like.device):
        raise ValueError(f"{name} is on {value.device} but the states are on {like.device}")
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.dim() == 0:
        t = t.expand(heads)
    if t.shape != (heads,):
        raise ValueError(
            f"{name} must be a number or a tensor of shape (num_heads,) = ({heads},), got {tuple(t.shape)}"
        )
    return t


def _check(states: object, patterns: object, values: object) -> tuple[int, int, int, int]:
    """The three tensors of :func:`hopfield_update`: 4-D, floating, one dtype and device, matching shapes;
    returns ``(B, H, L, S)``."""
    who = "hopfield_update"
    states = require_tensor(states, "states", who)
    patterns = require_tensor(patterns, "patterns", who)
    values = require_tensor(values, "values", who)
    for name, t, what in (
        ("states", states, "L, d_k"),
        ("patterns", patterns, "S, d_k"),
        ("values", values, "S, d_v"),
    ):
        if t.dim() != 4:
            raise ValueError(f"{who}: {name} must have shape (B, H, {what}), got {tuple(t.shape)}")
    b, h, length, d = states.shape
    s = patterns.shape[2]
    if patterns.shape != (b, h, s, d) or s == 0 or d == 0:
        raise ValueError(
            f"{who}: patterns must have shape (B, H, S, d_k) = ({b}, {h}, S, {d}) with S, d_k >= 1 (states "
            f"{tuple(states.shape)}), got {tuple(patterns.shape)}"
        )
    if values.shape[:3] != (b, h, s) or values.shape[3] == 0:
        raise ValueError(
            f"{who}: values must have shape (B, H, S, d_v) = ({b}, {h}, {s}, d_v) with d_v >= 1, got "
            f"{tuple(values.shape)}"
        )
    require_like(patterns, "patterns", states, "states", who)
    require_like(values, "values", states, "states", who)
    return b, h, length, s


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
    ``beta`` a positive float or ``(H,)`` tensor; ``mask`` broadcastable to ``(B, H, L, S)``: boolean as in
    ``torch.nn.functional.scaled_dot_product_attention`` (``True``: the pair takes part), or float, added to the
    scores (``-inf`` hides); a mask hiding every stored pattern from a state pattern is an error. ``max_steps``
    counts the updates after the first association (0: plain attention; an int, a ``(H,)`` tensor per head, or
    ``None``: until converged). A head stops once the change of its association matrix
    (``stop_on="association"``: the largest over the batch of ``||A_t - A_{t-1}||_2``) or of its state patterns
    (``stop_on="state"``: ``||R_t - R_{t-1}||_2``) is at most ``tol`` (a float >= 0 or ``(H,)``). ``record``
    keeps every update's energy. The Hopfield layers map hflayers' ``update_steps_max`` / ``update_steps_eps`` /
    ``update_steps_stop_on`` onto ``max_steps`` / ``tol`` / ``stop_on`` (their masks keep hflayers' convention,
    ``True`` hides: :func:`merge_masks`).

    Bad input (docs/bad-input.md): errors name the argument; NaN or Inf in the output is an error naming the
    argument that holds them.
    """
    who = "hopfield_update"
    batch, heads, length, source = _check(states, patterns, values)
    if stop_on not in ("association", "state"):
        raise ValueError(f"{who}: stop_on must be 'association' or 'state', got {stop_on!r}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float, Tensor)):
        raise TypeError(f"{who}: beta must be a positive number or a (H,) tensor, got {beta!r}")
    if not isinstance(beta, Tensor) and not (math.isfinite(beta) and beta > 0):
        raise ValueError(f"{who}: beta must be a positive finite number, got {beta!r}")
    if isinstance(beta, Tensor):
        _per_head(beta, heads, states, f"{who}: beta")
    if isinstance(max_steps, Tensor):
        if max_steps.dtype.is_floating_point or max_steps.dtype == torch.bool:
            raise TypeError(f"{who}: a tensor max_steps must hold integers, got {max_steps.dtype}")
        _per_head(max_steps, heads, states, f"{who}: max_steps")
    elif max_steps is not None and not is_count(max_steps, least=0):
        raise ValueError(f"{who}: max_steps must be an int >= 0, a (H,) tensor or None, got {max_steps!r}")
    if isinstance(tol, Tensor):
        _per_head(tol, heads, states, f"{who}: tol")
    elif isinstance(tol, bool) or not (isinstance(tol, (int, float)) and tol >= 0):
        raise ValueError(f"{who}: tol must be a number >= 0 or a (H,) tensor, got {tol!r}")
    if isinstance(dropout, bool) or not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise ValueError(f"{who}: dropout must be a number in [0, 1), got {dropout!r}")
    additive = additive_mask(mask, (batch, heads, length, source), states, who)
    with guard() as g:
        if g is not None:
            for name, t in (("beta", beta), ("max_steps", max_steps), ("tol", tol)):
                if isinstance(t, Tensor):
                    bad = ~((t > 0) & torch.isfinite(t)) if name == "beta" else ~(t >= 0)
                    g.defer(
                        bad, lambda name=name: ValueError(f"{who}: {name} must be >= 0 (beta > 0) and finite")
                    )
            if additive is not None:
                g.defer(hidden_rows(additive), lambda: hidden_row_error(who, "mask", additive))
        res = update(
            states, patterns, values, beta, mask=additive, max_steps=max_steps, tol=tol, stop_on=stop_on,
            dropout=dropout, training=training, record=record,
        )  # fmt: skip
        if g is not None:
            suspects = [
                ("states", states),
                ("beta", beta),
                ("mask", mask),
                ("patterns", patterns),
                ("values", values),
            ]
            overflow = (
                f"the output is not finite although every input is: the scores overflowed {states.dtype}"
            )
            g.result(res.output, lambda: nonfinite_error(who, suspects, overflow))
    return res


def update(
    states: Tensor,
    patterns: Tensor,
    values: Tensor,
    beta: float | Tensor,
    *,
    mask: Tensor | None,
    max_steps: int | Tensor | None,
    tol: float | Tensor,
    stop_on: str,
    dropout: float,
    training: bool,
    record: bool,
    full: bool = True,
) -> Association:
    """:func:`hopfield_update` on checked arguments (``mask`` additive): the layers call this after checking
    their own inputs, so an update costs no second round of checks. ``patterns`` and ``values`` may be shared
    along the batch or the heads (size 1 there): they are read in place. ``full=False`` (a layer's forward):
    only ``output`` and ``states`` are filled in (no association matrix, which lets a large memory be read in
    cache-sized chunks, and no step counts)."""
    heads = states.shape[1]
    b = _per_head(beta, heads, states, "scaling").view(1, heads, 1, 1) if isinstance(beta, Tensor) else beta
    limit = UNTIL_CONVERGED_CAP if max_steps is None else max_steps
    if isinstance(limit, Tensor):
        limit = _per_head(limit, heads, states, "update_steps_max").long()
    tol_ = _per_head(tol, heads, states, "update_steps_eps") if isinstance(tol, Tensor) else tol
    out, res = iterate(
        patterns, states, values, b, max_steps=limit, tol=tol_, stop=stop_on, per="head", mask=mask,
        record=record, need_weights=full, dropout=dropout if training else 0.0, report=full,
    )  # fmt: skip
    return Association(res.states, res.energies, res.steps, res.converged, out, res.weights)  # type: ignore[arg-type]
