"""The state of a batch of key-value memories, and the checks of the arguments that write and read it.

docs/reference.md §10 and docs/bad-input.md. :class:`MemoryState` holds the synapses; the functions below are the
checks :class:`~assocmem.keyvalue.KeyValueMemory` runs on the data given per call (items, queries, gates) and on
its rule: type, dtype, shape and device when the call starts (free), NaN and Inf queued on the call's
:func:`~assocmem.checks.guard` (one wait per call, behind the value-checks switch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from assocmem.checks import Guard, nonfinite_error, require_like, require_tensor


@dataclass(frozen=True)
class MemoryState:
    """The synapses of a batch of independent memories.

    ``keys`` (B, N, d): ``K``; ``values`` (B, m, N): ``V``; ``steps`` (B,) int64: the time steps each memory has
    seen (the sequential third factor's turn is ``steps mod N``). Floating point ``keys`` and ``values`` of one dtype,
    all three on one device; shapes are checked here, values (NaN, Inf) when the state is read (docs/bad-input.md).
    """

    keys: Tensor
    values: Tensor
    steps: Tensor

    def __post_init__(self) -> None:
        who = "MemoryState"
        keys = require_tensor(self.keys, "keys", who)
        values = require_tensor(self.values, "values", who)
        steps = require_tensor(self.steps, "steps", who, floating=False)
        if keys.dim() != 3 or keys.shape[1] == 0 or keys.shape[2] == 0:
            raise ValueError(f"{who}: keys must have shape (B, N, d) with N, d > 0, got {tuple(keys.shape)}")
        b, n, _ = keys.shape
        if values.dim() != 3 or values.shape[0] != b or values.shape[2] != n or values.shape[1] == 0:
            raise ValueError(
                f"{who}: values must have shape (B, m, N) = ({b}, m, {n}) with m > 0 (the keys' B and N), "
                f"got {tuple(values.shape)}"
            )
        require_like(values, "values", keys, "keys", who)
        if steps.dtype != torch.int64:
            raise TypeError(
                f"{who}: steps must be an int64 tensor (time steps seen), got dtype {steps.dtype}"
            )
        if tuple(steps.shape) != (b,):
            raise ValueError(
                f"{who}: steps must have shape ({b},) (one count per memory), got {tuple(steps.shape)}"
            )
        require_like(steps, "steps", keys, "keys", who, dtype=False)

    @property
    def batch(self) -> int:
        return self.keys.shape[0]


def defer_finite(g: Guard | None, who: str, name: str, t: Tensor) -> None:
    """Queue the check that ``t`` (data given per call) holds no NaN or Inf, naming ``name``."""
    if g is not None:
        g.defer(
            ~torch.isfinite(t.detach()), lambda: nonfinite_error(who, [(name, t)], f"{name} is not finite")
        )


def check_state(state: object, slots: int, key_size: int, value_size: int, who: str) -> MemoryState:
    """``state`` as a :class:`MemoryState` of a memory with these sizes; otherwise an error naming it."""
    if not isinstance(state, MemoryState):
        raise TypeError(f"{who}: state must be a MemoryState (from init_state), got {type(state).__name__}")
    b = state.keys.shape[0]
    want = {"keys": (b, slots, key_size), "values": (b, value_size, slots)}
    for name, shape in want.items():
        got = tuple(getattr(state, name).shape)
        if got != shape:
            raise ValueError(f"{who}: state.{name} has shape {got}, expected {shape} for this memory")
    return state


def check_items(state: MemoryState, tensor: object, name: str, width: int, who: str, seq: bool) -> Tensor:
    """Items or queries ``(B, width)`` (``(B, T, width)`` with ``seq``) of the state's batch, dtype and device."""
    x = require_tensor(tensor, name, who)
    b = state.batch
    shape = (b, "T", width) if seq else (b, width)
    if x.dim() != len(shape) or x.shape[0] != b or x.shape[-1] != width:
        raise ValueError(f"{who}: {name} must have shape {shape}, got {tuple(x.shape)}")
    require_like(x, name, state.keys, "the memory state", who)
    return x


def check_rule(rule: nn.Module, who: str) -> None:
    """The rule's parameters have values (not meta). Their values are not scanned per call (like a layer's
    parameters, docs/bad-input.md): a NaN in the rule shows in the state, which is refused when read, and in the
    result of an episode (:meth:`~assocmem.keyvalue.KeyValueMemory.forward`), which names the rule."""
    if any(p.is_meta for p in rule.parameters()):
        raise ValueError(
            f"{who}: the rule's parameters are on the meta device (shapes without values); materialise the "
            f"memory (to_empty) and set them first"
        )


def check_gate(gate: object, state: MemoryState, lead: tuple[int, ...], who: str, g: Guard | None) -> Tensor:
    """The global third factor ``q >= 0`` of shape ``lead`` (a number, or a tensor with one entry per memory and
    item, 1 for a shared entry); a tensor's values are checked on ``g``."""
    like = state.keys
    if gate is None:
        return torch.ones(lead, dtype=like.dtype, device=like.device)
    name = "gate" if len(lead) == 1 else "gates"
    if isinstance(gate, Tensor):
        if gate.is_meta:
            raise ValueError(f"{who}: {name} is on the meta device (a shape without values)")
        require_like(gate, name, like, "the memory state", who, dtype=False)
        if gate.is_complex():
            raise TypeError(f"{who}: {name} must be real, got dtype {gate.dtype}")
        q = gate.to(like.dtype)
    elif isinstance(gate, bool) or not isinstance(gate, int | float):
        raise TypeError(f"{who}: {name} must be a number or a tensor, got {type(gate).__name__}")
    elif not (math.isfinite(gate) and gate >= 0):
        raise ValueError(f"{who}: {name} (the global third factor q) must be finite and >= 0, got {gate!r}")
    else:
        q = torch.tensor(float(gate), dtype=like.dtype, device=like.device)
    # a tensor has one entry per memory (and per item): no trailing-dimension broadcasting, which would
    # silently read a (B,) tensor as (T,) when B == T
    if q.dim() not in (0, len(lead)) or any(s not in (1, n) for s, n in zip(q.shape, lead, strict=False)):
        raise ValueError(
            f"{who}: {name} must be a number or a tensor of shape {lead} (or with 1 for a shared entry), "
            f"got shape {tuple(q.shape)}"
        )
    if isinstance(gate, Tensor) and g is not None:
        g.defer(
            ~(torch.isfinite(q) & (q >= 0)),
            lambda: ValueError(f"{who}: {name} (the global third factor q) must be finite and >= 0"),
        )
    return q.expand(lead)
