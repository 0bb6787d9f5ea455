"""Argument checks shared by every package: the tests behind the library's clear error messages.

Each caller writes its own message (naming the argument, the function or the command-line option); these are the
conditions, written once. ``bool`` is not a count or a fraction even though Python treats it as an ``int``.
"""

from __future__ import annotations

import math


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
    except (TypeError, ValueError):
        raise TypeError(f"{who}: {name} must be a positive number, got {value!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{who}: {name} must be a positive finite number, got {value!r}")
    return v
