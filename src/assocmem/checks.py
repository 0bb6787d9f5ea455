"""Argument checks shared by every package: the tests behind the library's clear error messages
(the policy: docs/bad-input.md).

For numbers each caller writes its own message (naming the argument, the function or the command-line option);
these are the conditions, written once. ``bool`` is not a count or a fraction even though Python treats it as an
``int``. For tensors: :func:`require_tensor` and :func:`require_like` (type, dtype, device; free), and the value
checks (NaN and Inf, masks that hide a whole row), which read the values: they follow one switch
(:func:`set_value_checks`, :func:`value_checks`) and each call resolves them with one wait (:func:`guard`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor, nn


def is_count(value: object, least: int = 1) -> bool:
    """True when ``value`` is a Python ``int`` (not a ``bool``) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def is_fraction(value: object) -> bool:
    """True when ``value`` is a real number (not a ``bool``, not NaN) in ``[0, 1]``."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def positive_float(value: object, name: str, who: str) -> float:
    """A strictly positive, finite scalar hyper-parameter as a float; otherwise an error naming ``who`` and ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor on the meta device has no value
        raise TypeError(f"{who}: {name} must be a positive number, got {value!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{who}: {name} must be a positive finite number, got {value!r}")
    return v


# ---------------------------------------------------------------------------------------------------------------
# Tensor arguments (docs/bad-input.md). Metadata checks (type, dtype, shape, device) are free and always run. Value
# checks read the tensors' values (NaN and Inf, masks that hide a whole row); on a GPU each one waits for the device,
# so they follow one switch, are skipped inside torch.compile, and an entry point resolves all of its value checks
# with one wait at the end of the call (a :class:`Guard`).

_value_checks = True
_override: ContextVar[bool | None] = ContextVar("assocmem_value_checks", default=None)


def known_settings(cls: type, values: object, source: str, *, also: Iterable[str] = ()) -> None:
    """Refuse a recipe that is not a table of settings, or that names a setting the dataclass ``cls`` does not
    have (``also``: names the caller takes away first, listed as known), naming ``source`` and every known name."""
    if not isinstance(values, dict):
        raise ValueError(f"{source}: a recipe must be a table of settings, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)} | set(also)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"{source}: unknown setting(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
        )


def set_value_checks(enabled: bool) -> None:
    """Turn the value checks (NaN and Inf, fully masked rows) on or off for the whole process (default on)."""
    global _value_checks
    if not isinstance(enabled, bool):
        raise TypeError(f"set_value_checks: enabled must be True or False, got {enabled!r}")
    _value_checks = enabled


@contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """Within the ``with`` block (this thread or task only), turn the value checks on or off.

    Example: ``with assocmem.checks.value_checks(False): out = layer(x)`` in a loop already known to be finite.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"value_checks: enabled must be True or False, got {enabled!r}")
    token = _override.set(enabled)
    try:
        yield
    finally:
        _override.reset(token)


def value_checks_enabled() -> bool:
    """Whether a call made now runs its value checks: the switch, and not inside ``torch.compile``."""
    if torch.compiler.is_compiling():  # first: dynamo does not trace ContextVar
        return False
    override = _override.get()
    enabled = _value_checks if override is None else override
    return enabled and not torch.compiler.is_compiling()


def broadcasts_to(shape: tuple[int, ...] | torch.Size, target: tuple[int, ...]) -> bool:
    """True when a tensor of ``shape`` broadcasts to exactly ``target`` (without enlarging it)."""
    try:
        return torch.broadcast_shapes(shape, target) == torch.Size(target)
    except RuntimeError:
        return False


def require_tensor(value: object, name: str, who: str, *, floating: bool = True) -> Tensor:
    """``value`` as a tensor with values to compute on: a ``torch.Tensor``, floating point when ``floating``,
    not on the meta device; otherwise an error naming ``who`` and ``name``."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{who}: {name} must be a torch.Tensor, got {type(value).__name__}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{who}: {name} must be a floating point tensor, got dtype {value.dtype}")
    if value.is_meta:
        raise ValueError(
            f"{who}: {name} is on the meta device (a shape without values); materialise it on a real device first"
        )
    return value


def require_like(
    value: Tensor, name: str, like: Tensor, like_name: str, who: str, *, dtype: bool = True
) -> None:
    """``value`` on ``like``'s device (and of its dtype when ``dtype``); otherwise an error naming both."""
    if value.device != like.device:
        raise ValueError(
            f"{who}: {name} is on {value.device} but {like_name} is on {like.device}; move one with .to(device)"
        )
    if dtype and value.dtype != like.dtype:
        raise TypeError(
            f"{who}: {name} ({value.dtype}) and {like_name} ({like.dtype}) must share a dtype; convert one with .to()"
        )


def where_not_finite(t: Tensor, *, allow_neg_inf: bool = False) -> str | None:
    """``None`` when ``t`` holds no NaN or Inf (``-inf`` allowed with ``allow_neg_inf``), else the first bad entry
    and its index, in words. Reads the values: call it on an error path or behind :func:`value_checks_enabled`."""
    if not t.is_floating_point() and not t.is_complex():
        return None
    bad = torch.isnan(t) | (torch.isposinf(t) if allow_neg_inf else torch.isinf(t))
    if not bool(bad.any()):
        return None
    index = tuple(int(i) for i in bad.nonzero()[0])
    return f"{t[index].item()} at index {index}"


def nonfinite_error(who: str, suspects: Iterable[tuple[str, object]], otherwise: str) -> ValueError:
    """The error for a call whose result is not finite: it names the first suspect holding NaN or Inf.

    ``suspects`` are ``(name, value)`` in the order to blame them: a tensor (an additive mask, whose name ends in
    ``mask``, may hold ``-inf``), a number, or a module (its parameters and buffers, each named). When none holds
    NaN or Inf, the message is ``otherwise`` (an overflow in the computation itself).
    """
    for name, value in suspects:
        if isinstance(value, Tensor):
            found = where_not_finite(value.detach(), allow_neg_inf=name.endswith("mask"))
            if found is not None:
                return ValueError(f"{who}: {name} holds NaN or Inf ({found}); every value must be finite")
        elif isinstance(value, nn.Module):
            for sub, t in [*value.named_parameters(), *value.named_buffers()]:
                found = where_not_finite(t.detach())
                if found is not None:
                    return ValueError(
                        f"{who}: the {name} {sub} holds NaN or Inf ({found}), so the result is not finite "
                        f"(a training run that diverged?)"
                    )
        elif isinstance(value, float) and not math.isfinite(value):
            return ValueError(f"{who}: {name} must be finite, got {value!r}")
    return ValueError(f"{who}: {otherwise}")


class Guard:
    """The value checks of one call, resolved with one wait for the device at the end.

    An entry point opens one with :func:`guard`; it queues conditions found on the device (:meth:`defer`: a 0-d
    bool tensor that is True when something is wrong, and the error to raise then) and checks its result
    (:meth:`result`), which reads every queued flag and the result's finiteness at once. Entry points called
    inside another one (a layer inside a transformer layer) queue their conditions on the outer guard and leave
    the result to it, so a call waits once, and its error names the outer call's arguments.
    """

    def __init__(self) -> None:
        self._flags: list[tuple[Tensor, Callable[[], Exception]]] = []

    def defer(self, bad: Tensor, error: Callable[[], Exception]) -> None:
        """Queue a condition: ``bad`` (a bool tensor, any shape: wrong where True) raises ``error()``."""
        self._flags.append((bad.any(), error))

    def result(self, outputs: Tensor | Iterable[Tensor], error: Callable[[], Exception]) -> None:
        """Raise the first queued condition that holds, else ``error()`` when an output holds NaN or Inf."""
        # a finite sum proves every value finite (NaN and Inf propagate through it): one pass, much cheaper than
        # isfinite(...).all() on large results; a sum that overflowed is settled by the exact check at the end
        outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
        if not self._flags and len(outs) == 1:  # the usual call: one reduction, one wait
            o = outs[0].detach() if outs[0].requires_grad else outs[0]
            if math.isfinite(o.sum().item()):  # (torch.isfinite of the sum: three more operations, 5-10 us)
                return
        else:
            flags = [f for f, _ in self._flags] + [~torch.isfinite(o.detach().sum()) for o in outs]
            if not flags or not bool(torch.stack([f.to(flags[0].device) for f in flags]).any()):
                return
        for flag, make in self._flags:
            if bool(flag):
                raise make()
        if all(bool(torch.isfinite(o.detach()).all()) for o in outs):
            return
        raise error()

    def check(self) -> None:
        """Raise the first queued condition that holds (one wait), for a call without a tensor result."""
        self.result((), lambda: AssertionError("a queued condition held but none raised"))


class _Nested(Guard):
    """A guard inside another call's: conditions go to the outer guard, the result is the outer call's to check."""

    def __init__(self, outer: Guard) -> None:
        self._outer = outer

    def defer(self, bad: Tensor, error: Callable[[], Exception]) -> None:
        self._outer.defer(bad, error)

    def result(self, outputs: Tensor | Iterable[Tensor], error: Callable[[], Exception]) -> None:
        return None

    def check(self) -> None:
        return None


_guard: ContextVar[Guard | None] = ContextVar("assocmem_guard", default=None)


class _Scope:
    """The ``with`` block of :func:`guard` (a plain context manager: ``contextlib``'s generator costs a few
    microseconds per call, which a small retrieval notices)."""

    __slots__ = ("_token",)

    def __enter__(self) -> Guard | None:
        self._token = None
        if torch.compiler.is_compiling():
            return None
        outer = _guard.get()
        if outer is not None:
            return _Nested(outer)
        if not value_checks_enabled():
            return None
        mine = Guard()
        self._token = _guard.set(mine)
        return mine

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _guard.reset(self._token)


def guard() -> _Scope:
    """The :class:`Guard` of a call, or ``None`` when the value checks are off (see :func:`value_checks`):
    ``with guard() as g: ...``."""
    return _Scope()
