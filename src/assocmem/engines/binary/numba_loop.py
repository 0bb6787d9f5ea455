"""The fused asynchronous spin loop of the binary Dense Associative Memory, compiled with numba (CPU only).

One call runs one asynchronous sweep for each active cue, the cues in parallel (``prange``). Per spin the work is
the field of :mod:`assocmem.engines.binary.tables`, ``2 h_i = xi_:,i . S + sigma_i C``: one contiguous dot product
of length K (the stored column, kept transposed as int8, against the per-cue vector ``S``). Only when the spin
flips are the agreements ``k_mu`` (O(K), ``k_mu += xi_mu,i sigma_i``), the row of the scaled table, ``S`` and ``C``
updated. The sweep order comes from the caller (drawn with torch from the user's generator), so the pure-PyTorch
sweep in :mod:`assocmem.engines.binary.sweeps` makes the same moves in the same order.

Imported only when the numba back end is used: numba compiles on the first call (a few seconds, then cached on
disk by ``cache=True``).

The preset it equals: the reduced model A, ``model_a(xi, interaction(F), feature=Abs(), reduced=True)``; every
move is the sign of that network's energy difference (tests/test_engines.py).
"""

from __future__ import annotations

import os

import numba as nb
import numpy as np

# numba's default OpenMP threads keep spinning after a parallel region and slow every PyTorch operation that
# follows in the process, 11-96x on 2 cores (benchmarks/demo_threads.py, docs/demo.md); its workqueue threads
# sleep. numba reads the layer at its first parallel launch, which comes after this import. A user's
# NUMBA_THREADING_LAYER is left alone.
if "NUMBA_THREADING_LAYER" not in os.environ:
    nb.config.THREADING_LAYER = "workqueue"


@nb.njit(inline="always")
def _refresh(agree, table, rowmap, n, svec):  # noqa: ANN001
    """``S_mu = SS[row, k_mu]`` and ``C = sum_mu DD[row, k_mu]`` for the row of the largest ``|m_mu|``."""
    big = 0
    for mu in range(agree.shape[0]):
        d = abs(2 * agree[mu] - n)
        if d > big:
            big = d
    row = rowmap[big]
    c = 0.0
    for mu in range(agree.shape[0]):
        svec[mu] = table[row, 0, agree[mu]]
        c += table[row, 1, agree[mu]]
    return c


@nb.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
def async_sweep(xi_t, table, rowmap, states, agree, active, perms, changed):  # noqa: ANN001, ANN201
    """One asynchronous sweep, in the order ``perms[c]``, of every cue ``active[c]``; ``changed[c]``: any flip.

    ``xi_t`` (N, K) int8: the patterns transposed; ``table`` (R, 2, N + 1) float64: ``SS`` and ``DD`` per scaled
    row; ``rowmap`` (N + 1,) int64; ``states`` (B, N) int8 and ``agree`` (B, K) int32 are updated in place.
    Summation order does not matter: the tables are exact integers (exact sums) or scaled floats.
    """
    n, n_mem = xi_t.shape
    single = table.shape[0] == 1
    for c in nb.prange(active.shape[0]):
        b = active[c]
        s = states[b]
        k = agree[b]
        svec = np.empty(n_mem, dtype=np.float64)
        cc = _refresh(k, table, rowmap, n, svec)
        moved = False
        for t in range(n):
            i = perms[c, t]
            x = xi_t[i]
            h = 0.0
            for mu in range(n_mem):
                h += x[mu] * svec[mu]
            si = s[i]
            h += si * cc
            if (si > 0 and h < 0.0) or (si < 0 and h > 0.0):
                si = -si
                s[i] = si
                if single:  # one unscaled row: move k and re-read S, C in one pass
                    cc = 0.0
                    for mu in range(n_mem):
                        kk = k[mu] + x[mu] * si
                        k[mu] = kk
                        svec[mu] = table[0, 0, kk]
                        cc += table[0, 1, kk]
                else:  # scaled rows: move k and find the largest |m| (the row), then re-read S, C
                    big = 0
                    for mu in range(n_mem):
                        kk = k[mu] + x[mu] * si
                        k[mu] = kk
                        big = max(big, abs(2 * kk - n))
                    row = rowmap[big]
                    cc = 0.0
                    for mu in range(n_mem):
                        svec[mu] = table[row, 0, k[mu]]
                        cc += table[row, 1, k[mu]]
                moved = True
        changed[c] = moved
