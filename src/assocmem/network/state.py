"""Validation of the tensors a network is given: states, input currents and clamp masks.

Every public entry point checks its arguments here once, so the hot loops run on trusted tensors and a mistake
surfaces as an error that names the argument, the layer and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from assocmem.checks import broadcasts_to, value_checks_enabled
from assocmem.network.layer import Layer

#: A clamp mask per layer: ``True`` clamps the whole layer, a bool tensor marks the clamped units.
Clamp = dict[str, "Tensor | bool"]


def _names(layers: Mapping[str, Layer]) -> str:
    return ", ".join(repr(n) for n in layers)


def _check_broadcast(t: Tensor, full: tuple[int, ...], where: str) -> None:
    """``t`` must broadcast to exactly ``full`` (it may omit the batch dimension or have size-1 dimensions)."""
    if not broadcasts_to(t.shape, full):
        raise ValueError(f"{where} has shape {tuple(t.shape)}, which does not broadcast to {full}")


def check_state(
    layers: Mapping[str, Layer],
    state: object,
    reference: Tensor | None,
    arg: str = "state",
    finite: bool = True,
) -> int:
    """Check a state dict (name -> ``(batch, *shape)`` tensor); return the batch size."""
    if not isinstance(state, Mapping):
        raise TypeError(f"{arg} must be a dict of layer name -> tensor, got {type(state).__name__}")
    unknown = [n for n in state if n not in layers]
    if unknown:
        raise KeyError(f"{arg} has unknown layer {unknown[0]!r}; the network's layers are {_names(layers)}")
    missing = [n for n in layers if n not in state]
    if missing:
        raise KeyError(f"{arg} is missing layer {missing[0]!r}; the network's layers are {_names(layers)}")
    batch = None
    first = None
    for name, layer in layers.items():
        x = state[name]
        where = f"{arg}[{name!r}]"
        if not isinstance(x, Tensor):
            raise TypeError(f"{where} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{where} must be a floating-point tensor, got dtype {x.dtype}")
        if x.is_meta:
            raise ValueError(f"{where} is on the meta device (a shape without values)")
        if tuple(x.shape[1:]) != layer.shape or x.dim() != len(layer.shape) + 1:
            raise ValueError(
                f"{where} has shape {tuple(x.shape)}; expected (batch, {', '.join(map(str, layer.shape))}) for "
                f"layer {name!r}"
            )
        if batch is None:
            batch, first = x.shape[0], x
        elif x.shape[0] != batch:
            raise ValueError(
                f"{where} has batch size {x.shape[0]} but {arg}[{next(iter(layers))!r}] has {batch}"
            )
        elif x.dtype != first.dtype or x.device != first.device:
            raise TypeError(
                f"{where} is {x.dtype} on {x.device} but the other layers are {first.dtype} on {first.device}"
            )
        if finite and value_checks_enabled() and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{where} contains NaN or infinite values")
    if (
        reference is not None
        and first is not None
        and (first.dtype != reference.dtype or first.device != reference.device)
    ):
        raise TypeError(
            f"{arg} is {first.dtype} on {first.device} but the network's weights are {reference.dtype} on "
            f"{reference.device}; convert one of them, e.g. network.to({first.dtype}) or tensor.to(...)"
        )
    return int(batch or 0)


def check_inputs(
    layers: Mapping[str, Layer],
    extra: Mapping[str, tuple[int, ...]],
    inputs: object,
    batch: int,
    like: Tensor,
) -> dict[str, Tensor]:
    """Check input currents: name -> tensor broadcastable to ``(batch, *shape)``; ``extra`` adds integrated layers."""
    if inputs is None:
        return {}
    if not isinstance(inputs, Mapping):
        raise TypeError(f"inputs must be a dict of layer name -> tensor, got {type(inputs).__name__}")
    shapes = {**{n: layer.shape for n, layer in layers.items()}, **extra}
    out = {}
    for name, current in inputs.items():
        if name not in shapes:
            raise KeyError(
                f"inputs has unknown layer {name!r}; inputs are accepted for {', '.join(map(repr, shapes))}"
            )
        where = f"inputs[{name!r}]"
        if not isinstance(current, Tensor):
            current = torch.as_tensor(current, dtype=like.dtype, device=like.device)
        if current.is_meta:
            raise ValueError(f"{where} is on the meta device (a shape without values)")
        if current.dtype != like.dtype or current.device != like.device:
            raise TypeError(
                f"{where} is {current.dtype} on {current.device}; the state is {like.dtype} on {like.device}"
            )
        _check_broadcast(current, (batch, *shapes[name]), where)
        if value_checks_enabled() and not bool(torch.isfinite(current).all()):
            raise ValueError(f"{where} contains NaN or infinite values")
        out[name] = current
    return out


def check_clamp(layers: Mapping[str, Layer], clamp: object, batch: int, like: Tensor) -> Clamp:
    """Check clamp masks: name -> True (whole layer) or a bool tensor broadcastable to ``(batch, *shape)``."""
    if clamp is None:
        return {}
    if not isinstance(clamp, Mapping):
        raise TypeError(f"clamp must be a dict of layer name -> bool mask, got {type(clamp).__name__}")
    out: Clamp = {}
    for name, mask in clamp.items():
        if name not in layers:
            raise KeyError(f"clamp has unknown layer {name!r}; the network's layers are {_names(layers)}")
        where = f"clamp[{name!r}]"
        if isinstance(mask, bool):
            if mask:
                out[name] = True
            continue
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            raise TypeError(
                f"{where} must be True/False or a bool tensor (True = clamped unit), got "
                f"{getattr(mask, 'dtype', type(mask).__name__)}"
            )
        _check_broadcast(mask, (batch, *layers[name].shape), where)
        if mask.is_meta or mask.device != like.device:
            raise ValueError(f"{where} is on {mask.device} but the state is on {like.device}")
        out[name] = mask
    return out
