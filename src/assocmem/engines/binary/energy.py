"""The energy of the binary networks, read out of the scaled domain without overflow (docs/reference.md §3).

The tables hold ``sum_mu F(m_mu)`` as a float64 mantissa times a power of two (:func:`sweeps.sum_table`), which
holds any energy: ``x^30`` at ``N = 784`` reaches ``784^30 ~ 7e86`` (past float32), ``exp(beta x)`` at ``beta = 100``
reaches ``e^78400`` (past float64). The energy ``E = -a sum_mu F(m_mu) + e0`` is read out

- as a float (:func:`as_float`): exact to float64 rounding where it fits the requested dtype, and a clear error
  naming the way out where it does not (never a silent ``-inf``);
- as ``(sign, log|E|)`` (:func:`slog`), like ``torch.linalg.slogdet``: finite for every state of every network.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from assocmem.engines.binary.tables import Values

LN2 = math.log(2.0)


def log2_bound(f: Values, count: int, factor: float, offset: float) -> float:
    """An upper bound of ``log2 |E|`` over every state: ``|E| <= |a| K max_m |F(m)| + |e0|``."""
    top = float(f.log2abs().max())
    return (
        max(top + math.log2(count) + math.log2(abs(factor)), math.log2(abs(offset)) if offset else -math.inf)
        + 1
    )


def as_float(mantissa: Tensor, exponent: Tensor, factor: float, offset: float) -> Tensor:
    """``E = -a mantissa 2^exponent + e0`` in float64 (``+-inf`` where ``|E|`` passes float64)."""
    return -factor * torch.ldexp(mantissa, exponent) + offset


def slog(mantissa: Tensor, exponent: Tensor, factor: float, offset: float) -> tuple[Tensor, Tensor]:
    """``(sign, log|E|)`` of ``E = -a mantissa 2^exponent + e0``, float64, ``log|E| = -inf`` where ``E = 0``.

    Where ``E`` fits float64 it is formed there (``e0`` included exactly); elsewhere ``|E| > 2^1000 >> |e0|``
    and ``log|E| = log|a| + log|mantissa| + exponent log 2`` (the offset is below float64's resolution there).
    """
    e = as_float(mantissa, exponent, factor, offset)
    fits = torch.isfinite(e)
    sign = torch.where(fits, torch.sign(e), -math.copysign(1.0, factor) * torch.sign(mantissa))
    big = math.log(abs(factor)) + torch.log(mantissa.abs()) + exponent * LN2
    return sign, torch.where(fits, torch.log(e.abs()), big)


def overflow_error(
    who: str, what: str, e: Tensor, sign: Tensor, logabs: Tensor, dtype: torch.dtype
) -> ValueError:
    """The error for energies outside ``dtype``'s range: the first one in ``10^x`` form, and the ways out."""
    bad = int((~torch.isfinite(e.to(dtype))).nonzero()[0, 0])
    size = f"{'-' if sign[bad] < 0 else ''}10^{float(logabs[bad]) / math.log(10):.1f}"
    way = "pass the states as float64 (the energies fit there), or " if bool(torch.isfinite(e).all()) else ""
    return ValueError(
        f"{who}: {what} {bad} is {size}, outside {dtype}'s range; {way}use slog_energy(sigma), which returns "
        f"(sign, log|E|) for any energy"
    )
