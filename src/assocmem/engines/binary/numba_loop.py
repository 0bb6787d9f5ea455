"""The fused asynchronous spin loop of the binary Dense Associative Memory, compiled with numba (CPU only).

One call runs one asynchronous sweep for each active cue. Per spin the work is the field of
:mod:`assocmem.engines.binary.tables`, ``2 h_i = xi_:,i . S + sigma_i C``: one contiguous dot product of length K
(the stored column, kept transposed as int8, against the per-cue vector ``S``). Only when the spin flips are the
agreements ``k_mu`` (O(K), ``k_mu += xi_mu,i sigma_i``), ``S`` and ``C`` updated. The sweep order comes from the
caller (drawn with torch from the user's generator), so the pure-PyTorch sweep in
:mod:`assocmem.engines.binary.sweeps` makes the same moves in the same order.

**A float32 filter, an exact decision.** ``S`` is kept in float32 (``S32 = fl32(SS[row, k])``, table values below
``2^-100`` in magnitude stored as 0), so the dot product runs on twice the lanes of float64 and without widening
int8 to float64. Its error is bounded: ``|xi . S32 - xi . S| <= gamma_(K+1) sum_mu |S32_mu| + 2 K 2^-100`` in any
summation order (``gamma_n = n u / (1 - n u)``, ``u = 2^-24``; products by +-1 are exact and every conversion errs
by at most ``u`` relative). When ``|xi . S32 + sigma_i C|`` exceeds that bound (with a 1.001 margin for the float64
roundings) its sign is the sign of the exact field; otherwise the spin is decided by the float64 field itself,
``xi . SS[row, k] + sigma_i C``, read from the table. So every move is the move of the float64 field (exact for
exact tables), and the filter only decides when the answer is certain. ``C = sum_mu DD[row, k_mu]`` is summed in
float64 after every flip.

**Threads.** Each cue's sweep is a unit of :func:`~assocmem.engines.binary.threads.run_units`: the calling
thread and pool helpers claim cues from a shared counter, compute each on a private copy and publish it once;
the calling thread finishes any cue a descheduled helper holds, so no thread waits for a descheduled one.

Imported only when the numba back end is used: numba compiles on the first call (seconds, then cached on disk by
``cache=True``).

The preset it equals: the reduced model A, ``model_a(xi, interaction(F), feature=Abs(), reduced=True)``; every
move is the sign of that network's energy difference (tests/test_engines.py).
"""

# ruff: noqa: ANN001, ANN201 - numba compiles these for the NumPy arrays and scalars it is given
from __future__ import annotations

import math
import os

import numba as nb
import numpy as np

from assocmem.engines.binary.tables import TINY
from assocmem.engines.binary.threads import (
    begin_writing,
    copied_before_writing,
    mark_done,
    next_unit,
    unfinished,
)

# The loops here launch no numba parallel region and never start numba's threading layer (engines/binary/threads.py
# keeps its own pool of sleeping threads): numba's default OpenMP threads, once started, slow the PyTorch work that
# follows in the process (benchmarks/demo_threads.py, docs/demo.md). Should anything else start it, the workqueue
# layer's threads sleep. A user's NUMBA_THREADING_LAYER is left alone.
if "NUMBA_THREADING_LAYER" not in os.environ:
    nb.config.THREADING_LAYER = "workqueue"

#: Reassociation (vector lanes, any summation order) and fused multiply-add; no finite-math or other
#: assumptions. The filter's bound holds in any order; exact tables sum exactly in any order.
FASTMATH = {"reassoc", "contract"}
#: float32 unit roundoff.
U32 = 2.0**-24


def filter_bound(n_mem: int) -> tuple[float, float]:
    """``(factor, floor)``: the float32 field ``h32 + sigma_i C32`` has the sign of the float64 field when its
    magnitude exceeds ``factor * A32 + floor``, ``A32 = sum_mu |S32_mu| + |DD32_mu|`` (float32 sums).

    ``factor = 1.001 gamma_K / (1 - gamma_2K)``, ``gamma_n = n u / (1 - n u)``, ``u = 2^-24`` (infinite, so every
    spin is decided in float64, once ``2 K u >= 1/2``); ``floor = 4.004 K 2^-100`` (the flushed entries).
    """
    if 2 * n_mem * U32 >= 0.5:
        return math.inf, math.inf

    def gamma(m: int) -> float:
        return m * U32 / (1.0 - m * U32)

    return 1.001 * gamma(n_mem) / (1.0 - gamma(2 * n_mem)), 4.004 * n_mem * TINY


@nb.njit(cache=True, fastmath=FASTMATH)
def _read_row(k, pair, pd, svec):
    """``pd = pair[k]`` (``SS32 + i DD32``, one 8-byte read each), ``svec`` its real parts; returns the float32
    sums ``C32 = sum DD32`` and ``A32 = sum |SS32| + |DD32|``."""
    ku = k.view(np.uint32)  # agreements are in [0, N]: unsigned indices need no wrap-around test
    for mu in range(ku.shape[0]):
        pd[mu] = pair[ku[mu]]
    c = np.float32(0.0)
    a = np.float32(0.0)
    for mu in range(pd.shape[0]):
        z = pd[mu]
        svec[mu] = z.real
        c += z.imag
        a += abs(z.real) + abs(z.imag)
    return c, a


@nb.njit(cache=True, fastmath=FASTMATH)
def _row_of(k, rowmap, n):
    """The table row of a state: ``rowmap`` at its largest ``|m_mu| = |2 k_mu - n|``."""
    big = 0
    for mu in range(k.shape[0]):
        big = max(big, abs(2 * k[mu] - n))
    return rowmap[big]


@nb.njit(cache=True, fastmath=FASTMATH)
def _dot32(x, svec):
    """``xi_:,i . S32`` in float32 (int8 to float32 is exact; any summation order)."""
    h = np.float32(0.0)
    for mu in range(x.shape[0]):
        h += np.float32(x[mu]) * svec[mu]
    return h


@nb.njit(cache=True, fastmath=FASTMATH)
def _field64(x, k, ss, dd, si):
    """The float64 field ``xi_:,i . SS[k] + sigma_i sum DD[k]`` read from the table row (exact for exact tables)."""
    ku = k.view(np.uint32)
    h = 0.0
    c = 0.0
    for mu in range(x.shape[0]):
        h += x[mu] * ss[ku[mu]]
        c += dd[ku[mu]]
    return h + si * c


@nb.njit(cache=True, fastmath=FASTMATH)
def _sweep_cue(xi_t, pair, ss64, dd64, rowmap, s, k, order, pd, svec, factor, floor):
    """One asynchronous sweep of one cue in ``order``; returns (flips, spins decided in float64)."""
    n = xi_t.shape[0]
    single = pair.shape[0] == 1
    row = 0 if single else _row_of(k, rowmap, n)
    c, a = _read_row(k, pair[row], pd, svec)
    flips = 0
    exact = 0
    for t in range(n):
        i = order[t]
        x = xi_t[i]
        si = s[i]
        h = np.float64(_dot32(x, svec)) + si * np.float64(c)
        if abs(h) <= factor * np.float64(a) + floor:  # not certain in float32: the float64 field decides
            exact += 1
            h = _field64(x, k, ss64[row], dd64[row], si)
        if (si > 0 and h < 0.0) or (si < 0 and h > 0.0):
            si = -si
            s[i] = si
            flips += 1
            for mu in range(x.shape[0]):
                k[mu] += x[mu] * si
            if not single:
                row = _row_of(k, rowmap, n)
            c, a = _read_row(k, pair[row], pd, svec)
    return flips, exact


@nb.njit(nogil=True, cache=True)
def async_sweep(
    xi_t,
    pair,
    ss64,
    dd64,
    rowmap,
    states,
    agree,
    active,
    perms,
    tally,
    factor,
    floor,
    status,
    counter,
    finish,
):
    """One asynchronous sweep, in the order ``perms[c]``, of each cue ``active[c]`` (a unit of
    :func:`~assocmem.engines.binary.threads.run_units`; returns the units others are still copying out).

    ``xi_t`` (N, K) int8: the patterns transposed; ``pair`` (R, N + 1) complex64: ``SS32 + i DD32`` per scaled
    row; ``ss64``, ``dd64`` (R, N + 1) float64: the rows themselves; ``rowmap`` (N + 1,) int64; ``states``
    (B, N) int8 and ``agree`` (B, K) int32 are updated in place; ``tally[c]``: flips and spins decided in
    float64; ``(factor, floor)`` from :func:`filter_bound`.
    """
    n, k = xi_t.shape
    s = np.empty(n, dtype=np.int8)
    agreement = np.empty(k, dtype=np.int32)
    pd = np.empty(k, dtype=np.complex64)
    svec = np.empty(k, dtype=np.float32)
    scan = np.full(1, -1, dtype=np.int64)
    c = next_unit(status, counter, finish, scan)
    while c >= 0:
        b = active[c]
        s[:] = states[b]
        agreement[:] = agree[b]
        if not copied_before_writing(
            status, c
        ):  # published meanwhile: the copy may be torn, and is not needed
            c = next_unit(status, counter, finish, scan)
            continue
        flips, exact = _sweep_cue(
            xi_t, pair, ss64, dd64, rowmap, s, agreement, perms[c], pd, svec, factor, floor
        )
        if begin_writing(status, c):
            states[b] = s
            agree[b] = agreement
            tally[c, 0] = flips
            tally[c, 1] = exact
            mark_done(status, c)
        c = next_unit(status, counter, finish, scan)
    return unfinished(status) if finish else 0


@nb.njit(cache=True)
def _bucket_argsort(key, perm, start, bucket):
    """``perm = argsort(key, stable)`` for keys in ``[0, 1)``: indices placed by bucket ``floor(key n)`` in
    increasing index order, then insertion-sorted with a strict comparison. The bucket is monotone in the key
    (rounding is), so an index never passes one of an earlier bucket and equal keys keep their index order:
    exactly the permutation of a stable sort, in expected O(n)."""
    n = key.shape[0]
    start[:] = 0
    for i in range(n):
        b = min(int(key[i] * n), n - 1)
        bucket[i] = b
        start[b + 1] += 1
    for b in range(n):
        start[b + 1] += start[b]
    for i in range(n):
        perm[start[bucket[i]]] = i
        start[bucket[i]] += 1
    for j in range(1, n):
        v = perm[j]
        kv = key[v]
        m = j
        while m > 0 and key[perm[m - 1]] > kv:
            perm[m] = perm[m - 1]
            m -= 1
        perm[m] = v


@nb.njit(nogil=True, cache=True)
def stable_argsort_rows(keys, out, status, counter, finish):
    """``out[r] = argsort(keys[r], stable)`` for keys in ``[0, 1)`` (:func:`_bucket_argsort`); a row is a unit
    of :func:`~assocmem.engines.binary.threads.run_units`."""
    n = keys.shape[1]
    perm = np.empty(n, dtype=np.int64)
    work = np.empty((2, n + 1), dtype=np.int64)
    scan = np.full(1, -1, dtype=np.int64)
    r = next_unit(status, counter, finish, scan)
    while r >= 0:
        _bucket_argsort(keys[r], perm, work[0], work[1, :n])
        if begin_writing(status, r):
            out[r] = perm
            mark_done(status, r)
        r = next_unit(status, counter, finish, scan)
    return unfinished(status) if finish else 0


@nb.njit(nogil=True, cache=True)
def transposed_int8(xi):
    """The +-1 patterns ``xi`` (K, N) as ``(N, K)`` int8, in tiles of 64 memories (each tile's rows stay in
    cache while its columns are written)."""
    k, n = xi.shape
    out = np.empty((n, k), dtype=np.int8)
    for lo in range(0, k, 64):
        hi = min(lo + 64, k)
        for i in range(n):
            for mu in range(lo, hi):
                out[i, mu] = np.int8(xi[mu, i])
    return out


@nb.njit(nogil=True, cache=True)
def count_agreements(xi_t, states, out, status, counter, finish):
    """``out[b] = (xi . sigma_b + N) / 2`` (int32) for ``xi_t`` (N, K) int8, ``states`` (B, N) int8, N < 2^15 (a
    state is a unit of :func:`~assocmem.engines.binary.threads.run_units`). Exact integer sums: four rows at a
    time in int8 (at most 4 in magnitude), accumulated in int16 (at most N)."""
    n, k = xi_t.shape
    acc = np.empty(k, dtype=np.int16)
    four = np.empty(k, dtype=np.int8)
    scan = np.full(1, -1, dtype=np.int64)
    b = next_unit(status, counter, finish, scan)
    while b >= 0:
        s = states[b]
        acc[:] = 0
        i = 0
        while i + 4 <= n:
            r0, r1, r2, r3 = xi_t[i], xi_t[i + 1], xi_t[i + 2], xi_t[i + 3]
            s0, s1, s2, s3 = s[i], s[i + 1], s[i + 2], s[i + 3]
            for mu in range(k):
                four[mu] = r0[mu] * s0 + r1[mu] * s1 + r2[mu] * s2 + r3[mu] * s3
            for mu in range(k):
                acc[mu] += four[mu]
            i += 4
        while i < n:
            r0, s0 = xi_t[i], s[i]
            for mu in range(k):
                acc[mu] += r0[mu] * s0
            i += 1
        if begin_writing(status, b):
            for mu in range(k):
                out[b, mu] = (np.int32(acc[mu]) + n) >> 1
            mark_done(status, b)
        b = next_unit(status, counter, finish, scan)
    return unfinished(status) if finish else 0


@nb.njit(nogil=True, cache=True)
def to_spins(x, out):
    """``out = x`` as int8 for a 2-D array ``x`` of +-1 (any layout, one pass on the calling thread); returns the
    row-major flat index of the first entry that is neither +1 nor -1 (NaN included), or -1 when there is none."""
    rows, cols = x.shape
    for b in range(rows):
        bad = False
        for i in range(cols):
            v = x[b, i]
            bad |= (v != 1) & (v != -1)
            out[b, i] = np.int8(1) if v > 0 else np.int8(-1)
        if bad:
            for i in range(cols):
                if x[b, i] != 1 and x[b, i] != -1:
                    return b * cols + i
    return -1
