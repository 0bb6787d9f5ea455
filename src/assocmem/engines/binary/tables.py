"""Lookup tables of the binary Dense Associative Memory's update and energy (docs/reference.md §3).

With +-1 patterns every quantity of the binary DAM is a function of the overlaps ``m_mu = xi_mu . sigma``, which
are integers in ``[-N, N]`` of the parity of ``N``; we index them by ``k = (m + N) / 2``, the number of bits on
which ``sigma`` agrees with ``xi_mu``. The KH16 update of spin ``i`` is the sign of the energy difference

    h_i = sum_mu F(xi_mu,i + a_mu) - F(-xi_mu,i + a_mu) = sum_mu xi_mu,i D(a_mu),   a_mu = m_mu - xi_mu,i sigma_i,

with ``D(a) = F(a + 1) - F(a - 1)``. Writing ``P_mu = D(m_mu - 1)`` and ``Q_mu = D(m_mu + 1)`` (``a_mu`` is one or
the other as ``xi_mu,i sigma_i`` is +1 or -1) gives

    2 h_i = sum_mu xi_mu,i S_mu + sigma_i C,     S_mu = P_mu + Q_mu,   C = sum_mu (P_mu - Q_mu),

a dot product of the stored column ``xi_:,i`` with a vector that depends on the state only through the
overlaps: the tables ``SS[k] = P + Q`` and ``DD[k] = P - Q`` hold it for every ``k``. (At ``m = +-N`` the
unreachable one of ``P``, ``Q`` is set equal to the other, so ``F`` is only evaluated on ``[-N, N]``.)

Exact or scaled. When ``F`` is integer-valued on the integers (powers, rectified powers of integer degree, the
classical network) and every partial sum stays below ``2^53``, the tables hold the integers themselves and every
field is computed exactly in float64 (in any summation order), so ties ``h_i = 0`` are exact and keep the state.
Otherwise (``F = exp``; ``x^30`` at ``N = 784``; large ``K``) the tables are scaled by a power of two chosen per
state from the largest ``|m_mu|``: row ``r`` of a table holds the values divided by ``2^exponent[r]``, and
``rowmap[M]`` names the row for a state whose largest ``|m_mu|`` is ``M``; every entry a state can reach is then
at most 1 in magnitude (no overflow, even where ``F`` itself exceeds float64) and the largest ones stay far above
the underflow threshold. Integer values are divided exactly (one rounding); ``exp`` is built in the log domain.

The preset these tables compute: the reduced model A, ``model_a(xi, interaction(F), feature=Abs(), reduced=True)``
(its energy and energy differences; tests/test_engines.py).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from assocmem.lagrangians import AdditiveLagrangian, Exp, Polynomial, RePU

#: Sums of integers below this are exact in float64.
EXACT_LIMIT = 2**53
#: Largest spread (in powers of two) of the values one scaled row serves; float64 spans about 2^2098.
ROW_SPAN = 600
#: Table entries below this magnitude are 0 in the float32 copy (:attr:`ScaledTable.narrow`).
TINY = 2.0**-100


@dataclass(frozen=True)
class Values:
    """Values indexed by ``k = 0..N``: exact Python ints, finite float64, or ``(sign, natural log |v|)``."""

    ints: list[int] | None = None
    floats: np.ndarray | None = None
    logs: tuple[np.ndarray, np.ndarray] | None = None

    def log2abs(self) -> np.ndarray:
        if self.ints is not None:
            return np.array([math.log2(abs(v)) if v else -math.inf for v in self.ints])
        if self.floats is not None:
            with np.errstate(divide="ignore"):
                return np.log2(np.abs(self.floats))
        sign, log = self.logs
        return np.where(sign == 0, -math.inf, log / math.log(2.0))

    def signs(self) -> np.ndarray:
        if self.ints is not None:
            return np.array([(v > 0) - (v < 0) for v in self.ints], dtype=np.float64)
        if self.floats is not None:
            return np.sign(self.floats)
        return self.logs[0]

    def scaled(self, exponent: int) -> np.ndarray:
        """The values divided by ``2^exponent`` (exactly rounded for ints and floats)."""
        if self.ints is not None:
            if exponent >= 0:
                return np.array([v / (1 << exponent) for v in self.ints])
            return np.array([float(v << -exponent) for v in self.ints])
        if self.floats is not None:
            return np.ldexp(self.floats, -exponent)
        sign, log = self.logs
        # A row serves the states whose largest overlap is at most its own; entries past that (larger overlaps,
        # which no state using the row reaches) may exceed float64 and are stored as inf, never read.
        with np.errstate(over="ignore"):
            return sign * np.exp(log - exponent * math.log(2.0))


@dataclass(frozen=True)
class ScaledTable:
    """``values[r, c, k]``: value array ``c`` at ``k`` divided by ``2^exponent[r]``; ``rowmap[M]`` picks ``r``.

    ``exact``: a single row with ``exponent 0`` holding integers whose sums (over ``K`` memories) are exact.
    """

    values: Tensor  # (R, C, N + 1) float64
    exponent: Tensor  # (R,) float64 (powers of two, as ldexp exponents)
    rowmap: Tensor  # (N + 1,) int64
    exact: bool

    def to(self, device: torch.device) -> ScaledTable:
        return ScaledTable(
            self.values.to(device), self.exponent.to(device), self.rowmap.to(device), self.exact
        )

    @functools.cached_property
    def columns(self) -> tuple[np.ndarray, ...]:
        """Each value array as a contiguous ``(R, N + 1)`` float64 NumPy array (CPU tables; computed once)."""
        return tuple(np.ascontiguousarray(self.values[:, c].numpy()) for c in range(self.values.shape[1]))

    @functools.cached_property
    def narrow(self) -> np.ndarray:
        """Both value arrays of a two-column table in float32, as ``SS + i DD`` pairs ``(R, N + 1)`` complex64 (one
        8-byte read per agreement: the numba filter's copy). Entries below ``TINY`` in magnitude are 0, so every
        entry a state can reach (at most 1 in a scaled row) is 0 or a normal float32 within one rounding of the
        float64 value; entries beyond float32, which no state of their row reaches, are clipped."""
        ss, dd = (np.clip(c, -(2.0**127), 2.0**127) for c in self.columns)
        out = np.empty(ss.shape, dtype=np.complex64)
        out.real = np.where(np.abs(ss) < TINY, 0.0, ss)
        out.imag = np.where(np.abs(dd) < TINY, 0.0, dd)
        return out


def _ints_if_integral(floats: np.ndarray) -> Values:
    if np.all(np.abs(floats) < EXACT_LIMIT) and np.all(floats == np.round(floats)):
        return Values(ints=[int(v) for v in floats])
    return Values(floats=floats)


def scaled_table(columns: list[Values], n: int, count: int) -> ScaledTable:
    """Scaled rows for value arrays over ``k = 0..n`` whose sums run over ``count`` terms per array.

    Exact (one row, no scaling) when every array holds integers and ``count * sum_c max |column_c|`` is below
    ``2^53``. Otherwise rows group the largest overlaps ``M`` whose reachable values span at most ``2^ROW_SPAN``.
    """
    if all(c.ints is not None for c in columns):
        bound = count * sum(max(abs(v) for v in c.ints) for c in columns)
        if bound < EXACT_LIMIT:
            values = np.stack([c.scaled(0) for c in columns])[None]
            rowmap = torch.zeros(n + 1, dtype=torch.int64)
            return ScaledTable(torch.from_numpy(values), torch.zeros(1, dtype=torch.float64), rowmap, True)
    log2 = np.max(np.stack([c.log2abs() for c in columns]), axis=0)  # (n + 1,) over k
    # reach[M]: the largest value a state whose overlaps all satisfy |m| <= M can meet (|2k - n| <= M).
    dist = np.abs(2 * np.arange(n + 1) - n)
    reach = np.array(
        [np.max(log2[dist <= big]) if np.any(dist <= big) else -math.inf for big in range(n + 1)]
    )
    reach = np.maximum.accumulate(reach)
    rows, exponents, rowmap = [], [], np.zeros(n + 1, dtype=np.int64)
    top = n
    while top >= 0:
        exponent = math.ceil(reach[top]) if math.isfinite(reach[top]) else 0
        rows.append(np.stack([c.scaled(exponent) for c in columns]))
        exponents.append(float(exponent))
        low = top
        while low >= 0 and (not math.isfinite(reach[low]) or exponent - reach[low] <= ROW_SPAN):
            rowmap[low] = len(rows) - 1
            low -= 1
        top = low
    return ScaledTable(
        torch.from_numpy(np.stack(rows)),
        torch.tensor(exponents, dtype=torch.float64),
        torch.from_numpy(rowmap),
        False,
    )


def _log_2sinh(y: float) -> float:
    """``log(2 sinh y)`` for ``y > 0`` without overflow."""
    return y + math.log1p(-math.exp(-2.0 * y)) if y > 1e-3 else math.log(2.0 * math.sinh(y))


def function_values(lagrangian: AdditiveLagrangian, n: int) -> Values:
    """``F(m)`` for ``m = -n, -n + 2, ..., n`` (index ``k = (m + n) / 2``).

    Powers and rectified powers of integer degree are exact Python integers; ``Exp`` is in the log domain; any
    other ``F`` is evaluated in float64 and must be finite there (integer values are then kept exactly).
    """
    m = list(range(-n, n + 1, 2))
    degree = getattr(lagrangian, "n", None)
    if isinstance(lagrangian, Polynomial) or (isinstance(lagrangian, RePU) and float(degree).is_integer()):
        p = int(degree)
        return Values(ints=[(max(x, 0) if isinstance(lagrangian, RePU) else x) ** p for x in m])
    if isinstance(lagrangian, Exp):
        grid = np.array(m, dtype=np.float64)
        return Values(logs=(np.ones_like(grid), lagrangian.beta * grid - math.log(lagrangian.beta)))
    with torch.no_grad():
        f = lagrangian.F(torch.tensor(m, dtype=torch.float64)).numpy().astype(np.float64)
    if not np.all(np.isfinite(f)):
        bad = int(np.argmin(np.isfinite(f)))
        raise ValueError(
            f"BinaryDAM: F is not finite in float64 on the overlaps [-{n}, {n}] (F({m[bad]}) = {f[bad]}); use "
            f"F='power', 'rectified' or 'exp', which are tabulated exactly or in the log domain"
        )
    return _ints_if_integral(f)


def difference_values(lagrangian: AdditiveLagrangian, n: int) -> Values:
    """``D(a) = F(a + 1) - F(a - 1)`` for ``a = -(n - 1), ..., n - 1`` (step 2): the KH16 update's one-memory
    energy difference; ``Exp`` in the log domain, ``D(a) = 2 sinh(beta) e^(beta a) / beta``."""
    f = function_values(lagrangian, n)
    if f.ints is not None:
        return Values(ints=[b - a for a, b in zip(f.ints[:-1], f.ints[1:], strict=True)])
    if f.floats is not None:
        return _ints_if_integral(np.diff(f.floats))
    beta = lagrangian.beta
    a = np.arange(-(n - 1), n, 2, dtype=np.float64)
    return Values(logs=(np.ones_like(a), beta * a + _log_2sinh(beta) - math.log(beta)))


def interaction_values(lagrangian: AdditiveLagrangian, n: int) -> tuple[Values, Values, Values]:
    """``(F, SS, DD)`` over ``k = 0..n``: ``SS[k] = P + Q``, ``DD[k] = P - Q`` with ``P = D(m - 1)``,
    ``Q = D(m + 1)`` (the unreachable one at ``m = +-n`` copied from the other)."""
    f = function_values(lagrangian, n)
    if f.logs is not None:
        return _exp_values(lagrangian.beta, n)
    d = difference_values(lagrangian, n)
    if d.ints is not None:
        p, q = [d.ints[0], *d.ints], [*d.ints, d.ints[-1]]
        return (
            f,
            Values(ints=[a + b for a, b in zip(p, q, strict=True)]),
            Values(ints=[a - b for a, b in zip(p, q, strict=True)]),
        )
    vals = d.floats if d.floats is not None else np.array(d.ints, dtype=np.float64)
    p, q = np.concatenate([vals[:1], vals]), np.concatenate([vals, vals[-1:]])
    return f, _ints_if_integral(p + q), _ints_if_integral(p - q)


def _exp_values(beta: float, n: int) -> tuple[Values, Values, Values]:
    """``F(x) = beta^-1 exp(beta x)`` in the log domain: ``SS = 2 sinh(2 beta) e^(beta m) / beta`` and
    ``DD = -4 sinh(beta)^2 e^(beta m) / beta`` inside, ``SS = 2 D(m -+ 1)``, ``DD = 0`` at ``m = +-n``."""
    m = np.arange(-n, n + 1, 2, dtype=np.float64)
    lb = math.log(beta)
    logf = beta * m - lb
    logd = beta * m + _log_2sinh(beta) - lb  # log D(m) = log(F(m + 1) - F(m - 1))
    log_ss = beta * m + _log_2sinh(2.0 * beta) - lb
    log_dd = beta * m + 2.0 * _log_2sinh(beta) - lb
    sign_ss, sign_dd = np.ones_like(m), -np.ones_like(m)
    log_ss[-1], log_ss[0] = math.log(2.0) + logd[-1] - beta, math.log(2.0) + logd[0] + beta
    sign_dd[0] = sign_dd[-1] = 0.0
    log_dd[0] = log_dd[-1] = -math.inf
    one = np.ones_like(m)
    return Values(logs=(one, logf)), Values(logs=(sign_ss, log_ss)), Values(logs=(sign_dd, log_dd))
