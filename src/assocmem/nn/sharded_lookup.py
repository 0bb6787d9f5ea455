"""A :class:`~assocmem.nn.HopfieldLayer` whose stored patterns are spread over the ranks of a process group
(docs/bank-sharded.md, "A sharded HopfieldLayer").

Each rank holds its block of the ``quantity`` lookup rows (:func:`~assocmem.engines.bank.shard_bounds`) and its
own batch (DistributedDataParallel). One forward: every rank's inputs are gathered
(:meth:`~assocmem.engines.bank.ShardedBackend.gather`, so that the layers before this one get the gradient of
the mean loss), projected to queries on every rank alike, and each head associates over every rank's projected
rows through the exact merge (:meth:`ShardedBackend.associate`, docs/reference.md §8); the output projection
runs on the merged answer and each rank keeps its own rows of it.

Gradients: the lookup rows get the gradient of the mean loss over ranks on their own rank (keep them out of
DistributedDataParallel: :func:`ignore_in_ddp`). A replicated parameter that acts on the rows (the key and value
projections) sees only this rank's rows, and DistributedDataParallel averages over ranks, so the gradient of the
projected rows is multiplied by the number of ranks (and that of the lookup rows divided by it again): the mean
then is the sum over every rank's rows. One association (``update_steps_max=0``), no dropout, no bias pattern,
no zero pattern, no masks: other options are refused.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor
from torch.autograd.function import FunctionCtx

from assocmem.engines.bank import ShardedBackend, shard_bounds


class _Scaled(torch.autograd.Function):
    """The identity whose backward multiplies the gradient by ``factor``."""

    @staticmethod
    def forward(ctx: FunctionCtx, t: Tensor, factor: float) -> Tensor:
        ctx.factor = factor
        return t.view_as(t)

    @staticmethod
    def backward(ctx: FunctionCtx, g: Tensor) -> tuple[Tensor, None]:
        return g * ctx.factor, None


def check_options(layer: object, group: object) -> tuple[int, int]:
    """This rank's rows ``[lo, hi)`` of the layer's lookup weights; a clear error for an option not supported."""
    who = "HopfieldLayer"
    if not isinstance(group, dist.ProcessGroup):
        raise TypeError(f"{who}: group must be a torch.distributed.ProcessGroup or None, got {group!r}")
    h, core = layer.hopfield, layer.hopfield.association_core
    refused = [
        ("update_steps_max must be 0", h.update_steps_max != 0),
        ("dropout must be 0", core.dropout != 0),
        ("add_bias_kv must be False", core.bias_k is not None),
        ("add_zero_attn must be False", core.add_zero_attn),
    ]
    bad = [what for what, wrong in refused if wrong]
    if bad:
        raise ValueError(f"{who}: a sharded lookup (group=...) does one plain association: {', '.join(bad)}")
    return shard_bounds(layer.quantity, dist.get_world_size(group), dist.get_rank(group))


def ignore_in_ddp(layer: object) -> None:
    """Keep a sharded layer's lookup rows (and targets) out of DistributedDataParallel's averaging (each rank
    holds its own rows: they are not replicated). Call it before wrapping the model."""
    from torch.nn.parallel import DistributedDataParallel

    if not isinstance(layer, torch.nn.Module):
        raise TypeError(f"ignore_in_ddp: layer must be a torch.nn.Module, got {type(layer).__name__}")
    names = [
        n for n, _ in layer.named_parameters() if n.split(".")[-1] in ("lookup_weights", "target_weights")
    ]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(layer, names)


def sharded_forward(layer: object, input: Tensor) -> Tensor:
    """The layer's output for this rank's ``input`` (its layout), over every rank's lookup rows."""
    h, core, group = layer.hopfield, layer.hopfield.association_core, layer.group
    world = dist.get_world_size(group)
    x = input if h.batch_first else input.transpose(0, 1)  # (B, L, in)
    B, L = x.shape[:2]
    rows = layer.lookup_weights.reshape(-1, layer.lookup_weights.shape[-1])  # (S_r, width)
    ids = torch.arange(*layer.rows)
    # a one-row bank of the inputs' width carries the gathering (its rows are never read)
    # the banks of a forward are built with the constructor, not from_rows: their rows are the layer's own
    # projections, so from_rows' checks (distinct ids, a finite pass over the rows) would only repeat work on every
    # forward and head; a non-finite result is still caught by associate's check of its output
    carrier = ShardedBackend(ids[:1], x.new_zeros(1, L * x.shape[-1]), None, group, None)
    every, own = carrier.gather(x.reshape(B, -1))  # every rank's batch, flattened per item
    every = every.view(-1, L, x.shape[-1])
    stored = _Scaled.apply(rows, 1.0 / world).unsqueeze(0)
    targets = (
        stored
        if layer.target_weights is None
        else _Scaled.apply(layer.target_weights.reshape(1, -1, layer.target_weights.shape[-1]), 1.0 / world)
    )
    # Hopfield's input norms (replicated; those of the rows inside the scaled part)
    stored, every, targets = h._normalised(stored, every, targets)
    q, k, v = core.project(every, stored, targets)
    k, v = _Scaled.apply(k, float(world)), _Scaled.apply(v, float(world))
    heads = q.shape[1]
    outs = []
    for i in range(heads):
        ki, vi = k[0, min(i, k.shape[1] - 1)], v[0, min(i, v.shape[1] - 1)]
        beta = h.scaling[i] if isinstance(h.scaling, Tensor) else h.scaling
        bank = ShardedBackend(ids, ki, vi, group, None)
        qi = q[:, i].reshape(-1, q.shape[-1])
        outs.append(bank.associate(qi, beta)[0])
    out = torch.stack(outs, 1).view(q.shape[0], L, heads, -1).reshape(q.shape[0], L, -1)
    if core.out_proj is not None:
        out = core.out_proj(out)
    if h.association_activation is not None:
        out = h.association_activation(out)
    out = out[own]
    return out if h.batch_first else out.transpose(0, 1)
