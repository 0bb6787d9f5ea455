"""Integrated gradients from a bag's logit to the positions of its sequences (docs/repertoire.md, "Explanations").

For a function ``f`` of an input ``x`` and a baseline ``x'``, the integrated gradient of input ``j`` is

    IG_j = (x_j - x'_j) * integral_0^1 df/dx_j (x' + t (x - x')) dt,

and the attributions add up to ``f(x) - f(x')`` (completeness). The integral is a quadrature over ``steps``
intervals of the straight path: the trapezoid rule (nodes ``t = i / steps``, ``i = 0..steps``, end nodes weighted
1/2) or the midpoint Riemann sum (nodes ``(i + 1/2) / steps``); both err by ``O(1 / steps^2)`` on a smooth ``f``,
and :class:`Attribution` reports the completeness gap ``sum IG - (f(x) - f(x'))`` so a run can see its own error.

For a bag (:func:`attribute_bag`), ``x`` is the one-hot encoding ``(s, L, 20)`` of a few chosen sequences (the
top-ranked ones) and ``f`` the bag's logit with every other sequence of the bag held fixed: the pooling still sees
the whole bag, but only the chosen sequences are embedded again at each node of the path, so attributing ``s``
sequences costs ``steps + 1`` embeddings of ``s`` sequences and as many poolings of the bag's ``n`` embeddings,
never a gradient through all ``n`` sequences. The baseline is all zeros (no letter anywhere) or uniform (1/20 of
every letter at every position of the sequence); positions past a sequence's end are zero in both, so they get
no attribution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from assocmem.checks import is_count, require_tensor, where_not_finite
from assocmem.repertoire.alphabet import AMINO_ACIDS
from assocmem.repertoire.bag import Repertoire

RULES = ("trapezoid", "riemann")
BASELINES = ("zeros", "uniform")


@dataclass(frozen=True)
class Attribution:
    """Integrated gradients of one input.

    Attributes:
        attributions: the integrated gradient of every input entry (``x``'s shape).
        value: ``f(x)``.
        baseline_value: ``f(x')``.
        gap: ``attributions.sum() - (value - baseline_value)``, the quadrature's completeness error.
    """

    attributions: Tensor
    value: float
    baseline_value: float
    gap: float

    @property
    def positions(self) -> Tensor:
        """The attribution of every position: summed over the last axis (the letters of a one-hot input)."""
        return self.attributions.sum(-1)


def path_nodes(steps: int, rule: str, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """The quadrature nodes ``t`` in [0, 1] and their weights (summing to 1) of ``rule`` over ``steps`` intervals."""
    if rule == "trapezoid":
        t = torch.arange(steps + 1, dtype=dtype) / steps
        w = torch.full((steps + 1,), 1.0 / steps, dtype=dtype)
        w[0] = w[-1] = 0.5 / steps
        return t, w
    return (torch.arange(steps, dtype=dtype) + 0.5) / steps, torch.full((steps,), 1.0 / steps, dtype=dtype)


def integrated_gradients(
    f: Callable[[Tensor], Tensor],
    x: Tensor,
    baseline: Tensor,
    *,
    steps: int = 32,
    rule: str = "trapezoid",
    batch: int = 8,
) -> Attribution:
    """Integrated gradients of ``f`` at ``x`` from ``baseline`` (module docstring).

    ``f`` maps a batch of inputs ``(B, *x.shape)`` to their values ``(B,)``, each value a function of its own
    input alone; it is called on ``batch`` nodes of the path at a time. ``x`` and ``baseline`` share shape, dtype
    and device; the attributions come in ``x``'s dtype.
    """
    who = "integrated_gradients"
    if not callable(f):
        raise TypeError(f"{who}: f must be a callable from (B, *x.shape) inputs to (B,) values")
    x = require_tensor(x, "x", who)
    baseline = require_tensor(baseline, "baseline", who)
    if baseline.shape != x.shape or baseline.dtype != x.dtype or baseline.device != x.device:
        raise ValueError(
            f"{who}: baseline must match x (shape {tuple(x.shape)}, {x.dtype}, {x.device}), got "
            f"{tuple(baseline.shape)}, {baseline.dtype}, {baseline.device}"
        )
    if x.numel() == 0:
        raise ValueError(f"{who}: x is empty; there is nothing to attribute")
    for name, t in (("x", x), ("baseline", baseline)):
        if (where := where_not_finite(t)) is not None:
            raise ValueError(f"{who}: {name} holds {where}")
    if not is_count(steps):
        raise ValueError(f"{who}: steps must be an integer >= 1, got {steps!r}")
    if rule not in RULES:
        raise ValueError(f"{who}: rule must be one of {RULES}, got {rule!r}")
    if not is_count(batch):
        raise ValueError(f"{who}: batch must be an integer >= 1, got {batch!r}")
    t, w = path_nodes(steps, rule, x.dtype)
    t, w = t.to(x.device), w.to(x.device)
    delta = x - baseline
    grad = torch.zeros_like(x)
    values = []
    for lo in range(0, t.numel(), batch):
        tb = t[lo : lo + batch].reshape(-1, *([1] * x.dim()))
        points = (baseline + tb * delta).detach().requires_grad_(True)
        with torch.enable_grad():
            out = f(points)
            if out.shape != (points.shape[0],):
                raise ValueError(f"{who}: f must return ({points.shape[0]},) values, got {tuple(out.shape)}")
            (g,) = torch.autograd.grad(out.sum(), points)
        grad += (w[lo : lo + batch].reshape(tb.shape) * g).sum(0)
        values.append(out.detach())
    if rule == "trapezoid":
        value, base = float(values[-1][-1]), float(values[0][0])
    else:
        with torch.no_grad():
            ends = f(torch.stack([baseline, x]))
        base, value = float(ends[0]), float(ends[1])
    attributions = delta * grad
    return Attribution(attributions, value, base, float(attributions.sum()) - (value - base))


def onehot(codes: Tensor, dtype: torch.dtype) -> Tensor:
    """``(n, L, 20)`` one-hot amino acids of ``codes`` (uint8, ``PAD`` rows all zero)."""
    return torch.nn.functional.one_hot(codes.long(), len(AMINO_ACIDS) + 1)[..., : len(AMINO_ACIDS)].to(dtype)


def attribute_bag(
    model: torch.nn.Module,
    bag: Repertoire,
    sequences: Tensor,
    *,
    steps: int = 32,
    baseline: str = "zeros",
    rule: str = "trapezoid",
    batch: int = 8,
) -> Attribution:
    """Integrated gradients of ``model``'s logit for ``bag`` with respect to the one-hot letters of the sequences
    indexed by ``sequences`` (int64 ``(s,)``, e.g. the top-ranked ones), every other sequence held fixed.

    ``model`` follows the repertoire classifier's contract: ``embed(codes, lengths)`` and ``embed_onehot(onehot,
    lengths)`` give sequence embeddings ``(n, d)``, ``head(embeddings, counts)`` the bag's output (its ``logit``).
    The attributions are ``(s, L, 20)`` in the model's dtype; :attr:`Attribution.positions` gives ``(s, L)``.
    """
    who = "attribute_bag"
    if not isinstance(bag, Repertoire):
        raise TypeError(f"{who}: bag must be a Repertoire, got {type(bag).__name__}")
    for name in ("embed", "embed_onehot", "head"):
        if not callable(getattr(model, name, None)):
            raise TypeError(
                f"{who}: model must be a repertoire classifier with {name}(), got {type(model).__name__}"
            )
    sequences = require_tensor(sequences, "sequences", who, floating=False)
    if sequences.dtype != torch.int64 or sequences.dim() != 1 or sequences.numel() == 0:
        raise ValueError(
            f"{who}: sequences must be a non-empty int64 (s,) index into the bag, got {sequences.dtype} "
            f"{tuple(sequences.shape)}"
        )
    if int(sequences.min()) < 0 or int(sequences.max()) >= bag.size:
        raise ValueError(
            f"{who}: sequences must index the bag's {bag.size} sequences, got {sequences.tolist()}"
        )
    if sequences.unique().numel() != sequences.numel():
        raise ValueError(f"{who}: sequences holds an index twice")
    if baseline not in BASELINES:
        raise ValueError(f"{who}: baseline must be one of {BASELINES}, got {baseline!r}")
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    codes, lengths = bag.codes.to(device), bag.lengths.to(device)
    counts, index = bag.counts.to(device), sequences.to(device)
    with torch.no_grad():
        rest = model.embed(codes, lengths)
    picked = codes[index]
    chosen = lengths[index]
    x = onehot(picked, dtype)
    inside = (picked < len(AMINO_ACIDS))[..., None].expand_as(x).to(dtype)
    start = torch.zeros_like(x) if baseline == "zeros" else inside / x.shape[-1]

    def f(points: Tensor) -> Tensor:
        b, s = points.shape[:2]
        embedded = model.embed_onehot(points.reshape(b * s, *points.shape[2:]), chosen.repeat(b))
        embedded = embedded.reshape(b, s, -1)
        logits = [model.head(rest.index_put((index,), embedded[i]), counts).logit for i in range(b)]
        return torch.stack(logits)

    return integrated_gradients(f, x, start, steps=steps, rule=rule, batch=batch)
