"""Theory curves of the binary networks' capacity (docs/reference.md §3 and §5).

- Signal-to-noise estimate of the one-step bit error (Hopfield 1982; KH16 section 2 and appendix): the field of
  bit ``i`` of a cue of memory ``mu`` is a signal ``D(a_mu)`` from ``mu`` plus noise ``sum_{nu != mu}
  xi_nu,i D(a_nu)`` from the other ``K - 1`` memories, ``a_nu`` a sum of ``N - 1`` random +-1, so a Gaussian of
  variance ``(K - 1) E[D(a)^2]``. For ``F = x^n`` and ``N >> 1``: ``P_err = Phi(-sqrt(N^(n-1) / ((2n-3)!! K)))``,
  i.e. ``Phi(-sqrt(N/K))`` for the classical network, whose asymptotic tail is KH16's
  ``sqrt((2n-3)!!/(2 pi) K/N^(n-1)) exp(-N^(n-1)/(2K(2n-3)!!))``. :func:`one_step_error` uses the exact
  moments at finite ``N`` for any ``F``.
- The replica-symmetric retrieval state of the classical network at zero temperature (Amit, Gutfreund,
  Sompolinsky 1985/87): ``m = erf(y)`` with ``y (sqrt(2 alpha) + 2/sqrt(pi) exp(-y^2)) = erf(y)``; it exists
  up to the critical load ``alpha_c ~ 0.138`` (:func:`ags_overlap`, :func:`ags_critical_load`).
- Capacities: small-error ``K = N^(n-1) / ((2n-3)!! z^2)`` at a bit-error rate ``Phi(-z)``, and KH16's error-free
  ``K ~ N^(n-1) / (2 (2n-3)!! ln N)``.
"""

from __future__ import annotations

import math

import numpy as np

from assocmem.engines.binary.tables import difference_values
from assocmem.lagrangians import AdditiveLagrangian


def normal_cdf(x: float) -> float:
    """``Phi(x)``, the standard normal distribution function."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def normal_quantile(p: float) -> float:
    """``Phi^-1(p)`` for ``0 < p < 1`` (bisection on :func:`normal_cdf`; exact to float64 rounding)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"normal_quantile: p must be in (0, 1), got {p!r}")
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if normal_cdf(mid) < p else (lo, mid)
    return 0.5 * (lo + hi)


def double_factorial(k: int) -> int:
    """``k!! = k (k - 2) (k - 4) ...``, with ``(-1)!! = 1``."""
    return math.prod(range(k, 0, -2)) if k > 0 else 1


def classical_one_step_error(alpha: float) -> float:
    """The classical network's one-step bit-error rate at load ``alpha = K/N``: ``Phi(-1/sqrt(alpha))``."""
    return normal_cdf(-1.0 / math.sqrt(alpha))


def power_one_step_error(n: int, neurons: int, memories: int) -> float:
    """KH16's large-``N`` estimate for ``F = x^n`` from a stored pattern: ``Phi(-sqrt(N^(n-1)/((2n-3)!! K)))``."""
    return normal_cdf(-math.sqrt(neurons ** (n - 1) / (double_factorial(2 * n - 3) * memories)))


def small_error_capacity(n: int, bit_error: float) -> float:
    """``alpha_n`` in ``K = alpha_n N^(n-1)`` where the one-step bit error reaches ``bit_error``."""
    return 1.0 / (double_factorial(2 * n - 3) * normal_quantile(1.0 - bit_error) ** 2)


def error_free_capacity(n: int, neurons: int) -> float:
    """KH16's error-free capacity (``P_err < 1/N``): ``N^(n-1) / (2 (2n-3)!! ln N)``."""
    return neurons ** (n - 1) / (2 * double_factorial(2 * n - 3) * math.log(neurons))


def exp_capacity_exponent(flip: float = 0.0) -> float:
    """Demircigil et al. 2017: ``F = exp`` stores ``K = e^(c N)`` memories, each with a basin reaching a fraction
    ``flip`` of flipped bits, for ``c < I(1 - 2 flip)/2`` with ``I(x) = ((1+x) ln(1+x) + (1-x) ln(1-x))/2``;
    ``ln(2)/2`` at ``flip = 0``, i.e. ``K ~ 2^(N/2)``."""
    x = 1.0 - 2.0 * flip
    rate = 0.5 * ((1 + x) * math.log1p(x) + ((1 - x) * math.log1p(-x) if x < 1 else 0.0))
    return rate / 2.0


def exp_snr_exponent(beta: float = 1.0) -> float:
    """The one-step signal-to-noise estimate for ``F = exp(beta x)/beta`` from a stored pattern: the signal is
    ``D(N - 1) ~ e^(beta (N - 1))``, the noise variance ``(K - 1) E[D(a)^2] ~ K cosh(2 beta)^(N - 1)``, so a fixed
    bit-error rate is reached at ``K ~ e^(c N)`` with ``c = 2 beta - ln cosh(2 beta)`` (0.675 at ``beta = 1``)."""
    return 2.0 * beta - (2.0 * beta + math.log1p(math.exp(-4.0 * beta)) - math.log(2.0))


def _log_binomial_pmf(trials: int) -> np.ndarray:
    j = np.arange(trials + 1)
    lg = np.vectorize(math.lgamma)
    return lg(trials + 1) - lg(j + 1) - lg(trials - j + 1) - trials * math.log(2.0)


def one_step_error(lagrangian: AdditiveLagrangian, neurons: int, memories: int, flipped: int = 0) -> float:
    """Signal-to-noise estimate of the one-step bit error of the KH16 update with interaction ``lagrangian``.

    The cue is a stored pattern with ``flipped`` of its ``N`` bits flipped (overlap count ``m0 = N - 2 flipped``).
    A correct bit has signal ``D(m0 - 1)``, a flipped one ``D(m0 + 1)``; the noise is Gaussian with variance
    ``(K - 1) E[D(a)^2]``, ``a = 2 B - (N - 1)``, ``B ~ Binomial(N - 1, 1/2)``, computed exactly in the log
    domain. Returns the expected fraction of bits that are wrong after one synchronous step.
    """
    if memories < 2:
        return 0.0
    d = difference_values(lagrangian, neurons)  # D(a), a = -(N-1), ..., N-1 (step 2)
    sign, log2 = d.signs(), d.log2abs() * math.log(2.0)
    log_var = np.logaddexp.reduce(_log_binomial_pmf(neurons - 1) + 2 * log2) + math.log(memories - 1)
    sigma_log = 0.5 * log_var
    m0 = neurons - 2 * flipped
    total = 0.0
    for a, weight in ((m0 - 1, neurons - flipped), (m0 + 1, flipped)):
        if weight == 0:
            continue
        idx = min(max((a + neurons - 1) // 2, 0), neurons - 1)
        snr = sign[idx] * math.exp(log2[idx] - sigma_log) if sign[idx] != 0 else 0.0
        total += weight * normal_cdf(-snr)
    return total / neurons


def ags_overlap(alpha: float) -> float:
    """Zero-temperature retrieval overlap of the classical network at load ``alpha`` (AGS), or ``nan`` above the
    critical load where the retrieval state no longer exists. Solves ``erf(y)/y - 2/sqrt(pi) e^(-y^2) =
    sqrt(2 alpha)`` for its largest root ``y`` and returns ``m = erf(y)``."""
    if alpha <= 0:
        return 1.0
    target = math.sqrt(2.0 * alpha)
    y_peak, g_peak = _ags_peak()
    if target > g_peak:
        return math.nan
    lo, hi = y_peak, 50.0  # g decreases from its peak towards 0 as y grows
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _ags_g(mid) > target else (lo, mid)
    return math.erf(0.5 * (lo + hi))


def ags_critical_load() -> tuple[float, float]:
    """``(alpha_c, m_c)``: the largest load with a retrieval state and its overlap there (AGS: 0.138, 0.967)."""
    y_peak, g_peak = _ags_peak()
    return g_peak**2 / 2.0, math.erf(y_peak)


def ags_load_at_bit_error(bit_error: float) -> float:
    """The load where AGS's retrieval state has ``(1 - m)/2 = bit_error`` wrong bits: the classical network's
    small-error capacity after the dynamics has settled (``alpha_c`` for rates above the 1.6% there)."""
    alpha_c, m_c = ags_critical_load()
    if bit_error >= (1.0 - m_c) / 2.0:
        return alpha_c
    lo, hi = 1e-6, alpha_c
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if (1.0 - ags_overlap(mid)) / 2.0 < bit_error else (lo, mid)
    return 0.5 * (lo + hi)


def _ags_g(y: float) -> float:
    return math.erf(y) / y - 2.0 / math.sqrt(math.pi) * math.exp(-y * y)


def _ags_peak() -> tuple[float, float]:
    lo, hi = 0.5, 5.0  # golden-section search for the maximum of g
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(200):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        lo, hi = (a, hi) if _ags_g(a) < _ags_g(b) else (lo, b)
    y = 0.5 * (lo + hi)
    return y, _ags_g(y)
