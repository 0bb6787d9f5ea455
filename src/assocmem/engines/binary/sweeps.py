"""Sweeps of the binary Dense Associative Memory on the tables of :mod:`assocmem.engines.binary.tables`.

Every state is carried as its spins (int8) and its agreements ``k_mu = (xi_mu . sigma + N) / 2`` (int32), kept up
to date incrementally (O(K) per flip). The field of spin ``i`` is ``2 h_i = xi_:,i . S + sigma_i C`` with ``S`` and
``C`` read from the scaled tables at the agreements.

- Asynchronous sweeps: :func:`async_sweep_torch` (pure PyTorch, any device: one spin of every cue per step) and
  the numba kernel :func:`assocmem.engines.binary.numba_loop.async_sweep` (CPU, fused loop, cues in parallel). Both make
  the same moves in the same order, given the orders drawn by :func:`random_orders`.
- Synchronous sweeps: every field from the same state, one matrix product ``S @ xi`` (:func:`sync_sweep`).

The preset it equals: the reduced model A, ``model_a(xi, interaction(F), feature=Abs(), reduced=True)``; every
move is the sign of that network's energy difference (tests/test_engines.py).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from assocmem.engines.binary.tables import ScaledTable

#: Cue chunks of the PyTorch paths hold about this many (cue, memory) entries.
CHUNK = 1 << 21


@functools.cache
def numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - numba is a dependency; kept for stripped-down installs
        return False
    return True


def agreements(xi64: Tensor, states: Tensor) -> Tensor:
    """``k = (xi . sigma + N) / 2`` as int32, exactly.

    At least 16 int8 states on CPU (a recall's) with numba and N < 2^15: integer sums in a numba loop, cues spread
    over ``torch.get_num_threads()`` threads (:mod:`assocmem.engines.binary.threads`), after one O(NK) conversion
    of the patterns to int8 (which fewer states would not repay). Otherwise one matrix product
    per chunk of cues: float32 on CPU (every partial sum is an integer of magnitude at most N < 2^24, exact in
    any order), float64 elsewhere (N < 2^53).
    """
    k, n = xi64.shape
    out = torch.empty(states.shape[0], k, dtype=torch.int32, device=states.device)
    cpu_int8 = states.dtype == torch.int8 and states.device.type == "cpu"
    if cpu_int8 and states.shape[0] >= 16 and n < 2**15 and numba_available():
        from assocmem.engines.binary import numba_loop, threads

        xi_t = numba_loop.transposed_int8(xi64.numpy())
        args = (xi_t, states.numpy(), out.numpy())
        threads.run_units(numba_loop.count_agreements, args, states.shape[0], _threads(states.shape[0]))
        return out
    dtype = torch.float32 if states.device.type == "cpu" and n < 2**24 else torch.float64
    xi = xi64.to(dtype)
    half = torch.full((1,), 0.5 * n, dtype=dtype, device=states.device)
    step = max(1, CHUNK // k)
    for lo in range(0, states.shape[0], step):
        # (m + N) / 2 with m = sigma . xi: exact (m + N is even), so the conversion to int32 is exact.
        out[lo : lo + step] = torch.addmm(half, states[lo : lo + step].to(dtype), xi.T, beta=1.0, alpha=0.5)
    return out


def _threads(work: int) -> int:
    """Threads for the numba loops: ``torch.get_num_threads()``, at most one per unit of work."""
    return max(1, min(torch.get_num_threads(), work))


def random_orders(count: int, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``count`` independent uniform permutations of ``range(n)`` (int64), drawn from ``generator``: the stable
    argsort of ``count x n`` float64 uniforms (on CPU with numba, by buckets in O(n) per row; the same
    permutations)."""
    where = generator.device if generator is not None else device
    keys = torch.rand(count, n, generator=generator, dtype=torch.float64, device=where)
    if keys.device.type == "cpu" and numba_available():
        from assocmem.engines.binary import numba_loop, threads

        out = torch.empty(count, n, dtype=torch.int64)
        args = (keys.numpy(), out.numpy())
        threads.run_units(numba_loop.stable_argsort_rows, args, count, _threads(count))
        return out.to(device)
    return keys.argsort(dim=1, stable=True).to(device)


def state_vectors(table: ScaledTable, k: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For agreements ``k`` (B, K) int64: ``S = SS[row, k]`` (B, K), ``C = sum_mu DD[row, k_mu]`` (B,) and the
    row exponents (B,), the row chosen by each state's largest ``|m_mu|``. A one-column table gives ``C = 0``."""
    n = table.rowmap.shape[0] - 1
    row = table.rowmap[(2 * k - n).abs().amax(dim=1)]
    svec = table.values[row, 0].gather(1, k)
    if table.values.shape[1] == 1:
        return svec, torch.zeros_like(svec[:, 0]), table.exponent[row]
    return svec, table.values[row, 1].gather(1, k).sum(1), table.exponent[row]


def sum_table(table: ScaledTable, agree: Tensor) -> tuple[Tensor, Tensor]:
    """``sum_mu F(m_mu)`` for agreements ``(B, K)`` in the scaled domain: ``(mantissa, exponent)``, both float64
    ``(B,)``, with ``sum = mantissa * 2^exponent``; the mantissa is at most ``K`` in magnitude, so nothing overflows
    whatever the sum (:mod:`assocmem.engines.binary.energy` reads it out)."""
    mantissa = torch.empty(agree.shape[0], dtype=torch.float64, device=agree.device)
    exponent = torch.empty_like(mantissa)
    step = max(1, CHUNK // agree.shape[1])
    for lo in range(0, agree.shape[0], step):
        vals, _, exp = state_vectors(table, agree[lo : lo + step].long())
        mantissa[lo : lo + step], exponent[lo : lo + step] = vals.sum(1), exp
    return mantissa, exponent


def half_fields(table: ScaledTable, xi64: Tensor, states: Tensor, agree: Tensor) -> tuple[Tensor, Tensor]:
    """``2 h`` in the scaled units of each state's row ``(B, N)`` and the row exponents ``(B,)``."""
    svec, cc, exponent = state_vectors(table, agree.long())
    return svec @ xi64 + states.to(torch.float64) * cc[:, None], exponent


def fields(table: ScaledTable, xi64: Tensor, states: Tensor, agree: Tensor) -> Tensor:
    """The fields ``h_i`` in true units (float64; ``+-inf`` only where ``h_i`` itself exceeds float64)."""
    out = torch.empty(states.shape, dtype=torch.float64, device=states.device)
    step = max(1, CHUNK // max(xi64.shape))
    for lo in range(0, states.shape[0], step):
        h2, exponent = half_fields(table, xi64, states[lo : lo + step], agree[lo : lo + step])
        out[lo : lo + step] = torch.ldexp(h2 / 2, exponent[:, None])
    return out


def sync_sweep(table: ScaledTable, xi64: Tensor, states: Tensor, agree: Tensor, active: Tensor) -> Tensor:
    """Every spin of every active cue to the sign of its field at the same state (ties keep); returns changed."""
    changed = torch.empty(active.shape[0], dtype=torch.bool, device=states.device)
    step = max(1, CHUNK // max(xi64.shape))
    for lo in range(0, active.shape[0], step):
        idx = active[lo : lo + step]
        s = states[idx]
        h2, _ = half_fields(table, xi64, s, agree[idx])
        flip = s.to(torch.float64) * h2 < 0
        s = torch.where(flip, -s, s)
        states[idx] = s
        agree[idx] = agreements(xi64, s)
        changed[lo : lo + step] = flip.any(dim=1)
    return changed


def async_sweep_torch(
    table: ScaledTable, xi_t64: Tensor, states: Tensor, agree: Tensor, active: Tensor, perms: Tensor
) -> Tensor:
    """One asynchronous sweep of every active cue in the order ``perms`` (pure PyTorch, any device)."""
    n = xi_t64.shape[0]
    changed = torch.zeros(active.shape[0], dtype=torch.bool, device=states.device)
    step = max(1, CHUNK // xi_t64.shape[1])
    for lo in range(0, active.shape[0], step):
        idx, order = active[lo : lo + step], perms[lo : lo + step]
        s = states[idx].to(torch.float64)
        k = agree[idx].long()
        ar = torch.arange(idx.shape[0], device=states.device)
        svec, cc, _ = state_vectors(table, k)
        moved = torch.zeros(idx.shape[0], dtype=torch.bool, device=states.device)
        for t in range(n):
            i = order[:, t]
            x = xi_t64[i]
            si = s[ar, i]
            flip = si * ((x * svec).sum(1) + si * cc) < 0
            if bool(flip.any()):
                f = flip.nonzero()[:, 0]
                new = -si[f]
                s[f, i[f]] = new
                k[f] += (x[f] * new[:, None]).long()
                svec[f], cc[f], _ = state_vectors(table, k[f])
                moved |= flip
        states[idx] = s.to(states.dtype)
        agree[idx] = k.to(agree.dtype)
        changed[lo : lo + step] = moved
    return changed


#: Totals over every numba sweep of this process: ``checks`` (spins checked), ``flips``, ``float64`` (checks the
#: float32 filter left to the float64 field). Diagnostics for benchmarks/binary_recall.py; reset freely.
numba_tally = {"checks": 0, "flips": 0, "float64": 0}


def async_sweep_numba(
    table: ScaledTable, xi_t8: Tensor, states: Tensor, agree: Tensor, active: Tensor, perms: Tensor
) -> Tensor:
    """The same sweep with the fused numba kernel (CPU tensors; ``states`` and ``agree`` updated in place), the
    cues spread over ``torch.get_num_threads()`` threads (:mod:`assocmem.engines.binary.threads`)."""
    from assocmem.engines.binary import numba_loop, threads

    tally = np.zeros((active.shape[0], 2), dtype=np.int64)
    ss64, dd64 = table.columns
    factor, floor = numba_loop.filter_bound(xi_t8.shape[1])
    args = (
        xi_t8.numpy(),
        table.narrow,
        ss64,
        dd64,
        table.rowmap.numpy(),
        states.numpy(),
        agree.numpy(),
        active.numpy(),
        perms.numpy(),
        tally,
        factor,
        floor,
    )
    threads.run_units(numba_loop.async_sweep, args, active.shape[0], _threads(active.shape[0]))
    numba_tally["checks"] += active.shape[0] * xi_t8.shape[0]
    numba_tally["flips"] += int(tally[:, 0].sum())
    numba_tally["float64"] += int(tally[:, 1].sum())
    return torch.from_numpy(tally[:, 0] > 0)
