"""The Hopfield layers' arguments: the constructor's options and the tensors of a call, each checked once with an
error that names it (docs/bad-input.md), and the value check of a call's result (one wait for the device).

The layers' masks keep hflayers' convention (``True`` hides a pair, as in ``torch.nn.MultiheadAttention``);
:func:`assocmem.nn.functional.merge_masks` turns them into one additive mask.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from assocmem.checks import guard, is_count, nonfinite_error, positive_float, require_like, require_tensor
from assocmem.engines.association import hidden_rows

T = TypeVar("T")

#: The error when a layer's output is not finite although its inputs and parameters are.
OVERFLOW = "the output holds NaN or Inf although the inputs and parameters are finite: the scores overflowed"

_SIZES = (
    "input_size",
    "hidden_size",
    "output_size",
    "pattern_size",
    "stored_pattern_size",
    "pattern_projection_size",
)


def _per_head_option(value: Tensor, name: str, heads: int, *, integer: bool = False) -> None:
    """A per-head option: a ``(num_heads,)`` tensor of finite values, positive (integers >= 0 with ``integer``)."""
    if value.shape != (heads,):
        raise ValueError(
            f"Hopfield: a tensor {name} must have shape (num_heads,) = ({heads},), got {tuple(value.shape)}"
        )
    if integer and (value.is_floating_point() or value.dtype == torch.bool):
        raise TypeError(f"Hopfield: a tensor {name} must hold integers, got {value.dtype}")
    if not integer and not value.is_floating_point():
        raise TypeError(f"Hopfield: a tensor {name} must be floating point, got {value.dtype}")
    ok = (value >= 0) if integer else (torch.isfinite(value) & (value > 0))
    if value.is_meta or not bool(ok.all()):
        raise ValueError(
            f"Hopfield: {name} must be {'>= 0' if integer else 'positive and finite'}, got {value}"
        )


def check_options(options: dict[str, Any]) -> None:
    """The constructor's options, each named in its error (docs/bad-input.md: out-of-range options)."""
    for name in _SIZES:
        value = options[name]
        if value is not None and not is_count(value):
            raise ValueError(f"Hopfield: {name} must be a positive int or None, got {value!r}")
    heads = options["num_heads"]
    if not is_count(heads):
        raise ValueError(f"Hopfield: num_heads must be a positive int, got {heads!r}")
    for name, value in options.items():
        if name.startswith(
            ("normalize_", "input_bias", "concat_", "add_zero", "disable_", "batch_first")
        ) or (name.endswith("_as_static") or name.endswith("_as_connected")):
            if name.endswith("_eps"):
                positive_float(value, name, "Hopfield")
            elif not isinstance(value, bool):
                raise TypeError(f"Hopfield: {name} must be True or False, got {value!r}")
    dropout = options["dropout"]
    if isinstance(dropout, bool) or not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
        raise ValueError(f"Hopfield: dropout must be a number in [0, 1), got {dropout!r}")
    stop = options["update_steps_stop_on"]
    if stop not in ("association", "state"):
        raise ValueError(f"Hopfield: update_steps_stop_on must be 'association' or 'state', got {stop!r}")
    scaling = options["scaling"]
    if isinstance(scaling, Tensor):
        _per_head_option(scaling, "scaling", heads)
    elif isinstance(scaling, bool):
        raise TypeError(
            f"Hopfield: scaling (beta) must be a positive number or a per-head tensor, got {scaling!r}"
        )
    elif scaling is not None:
        positive_float(scaling, "scaling (beta)", "Hopfield")
    steps = options["update_steps_max"]
    if isinstance(steps, Tensor):
        _per_head_option(steps, "update_steps_max", heads, integer=True)
    elif steps is not None and not is_count(steps, least=0):
        raise ValueError(
            f"Hopfield: update_steps_max must be an int >= 0, a per-head tensor or None, got {steps!r}"
        )
    eps = options["update_steps_eps"]
    if isinstance(eps, Tensor):
        _per_head_option(eps, "update_steps_eps", heads)
    elif isinstance(eps, bool) or not isinstance(eps, float) or not (eps > 0 and math.isfinite(eps)):
        raise ValueError(
            f"Hopfield: update_steps_eps must be a positive float or per-head tensor, got {eps!r}"
        )
    activation = options["association_activation"]
    if activation is not None and not isinstance(activation, str):
        raise TypeError(
            f"Hopfield: association_activation must be the name of a torch function, got {activation!r}"
        )


def first_tensor(module: nn.Module) -> Tensor | None:
    """The module's first parameter or buffer: its dtype and device are the layer's (``None`` without any)."""
    for t in (*module.parameters(), *module.buffers()):
        return t
    return None


def check_sequence(
    value: object, name: str, who: str, width: int | None, like: Tensor | None, length_dim: int | None = None
) -> Tensor:
    """A sequence input ``(batch, length, width)`` (or length first): a floating tensor with values, 3-D, of the
    layer's width (when it has one), on the device and of the dtype of ``like`` (the layer's parameters); with
    ``length_dim``, at least one element along it (stored patterns: an empty memory has nothing to retrieve)."""
    t = require_tensor(value, name, who)
    if t.dim() != 3:
        raise ValueError(
            f"{who}: {name} must be 3-D (batch, length, size) or (length, batch, size), got {tuple(t.shape)}"
        )
    if width is not None and t.shape[-1] != width:
        raise ValueError(
            f"{who}: {name} must have {width} features in its last dimension, got shape {tuple(t.shape)}"
        )
    if like is not None:
        require_like(t, name, like, "the layer's parameters", who)
    if length_dim is not None and t.shape[length_dim] == 0:
        raise ValueError(
            f"{who}: {name} holds no pattern (shape {tuple(t.shape)}): there is nothing to associate with"
        )
    return t


def hidden_row_error(mask: Tensor) -> ValueError:
    """A layer's masks hide every stored pattern from a state pattern (reads the values: the error path only)."""
    b, h, row = (int(i) for i in hidden_rows(mask).nonzero()[0][:3])
    return ValueError(
        f"the masks (stored_pattern_padding_mask and association_mask; in the transformer layers "
        f"*_key_padding_mask and *_mask) hide every stored pattern from state pattern {row} of batch item {b} "
        f"(head {h}); True hides a pair in these masks (hflayers' convention), so a row needs a False"
    )


def run_checked(
    who: str, suspects: list[tuple[str, object]], call: Callable[[], T], result: Callable[[T], Tensor]
) -> T:
    """``call()`` under a :func:`~assocmem.checks.guard`: its queued value checks and the finiteness of
    ``result(out)`` are read at once; a non-finite result names the first suspect holding NaN or Inf."""
    with guard() as g:
        out = call()
        if g is not None:
            g.result(result(out), lambda: nonfinite_error(who, suspects, OVERFLOW))
    return out
