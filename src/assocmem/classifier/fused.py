"""The class update's fused CPU loops, compiled with numba: the fields and the training backward in one pass each.

:mod:`assocmem.classifier.class_update` defines the arithmetic (:func:`~.class_update.fields_reference`,
:func:`~.class_update.backward_weights`, :func:`~.class_update.scaled_backward`); the loops here compute the same
quantities without any ``(B, C, K)`` tensor and with the backward's two reductions (over the classes into
``dhs``, over the batch into ``dds``) made from one evaluation of each term:

- :func:`fields_rows`: ``z_ba = sum_mu F(hs_b,mu + ds_a,mu) - F(hs_b,mu)``, a unit of work per block of rows;
- :func:`gradient_columns`: per block of memories (a unit), the per-memory scale of the backward and then, row by
  row, ``dhs``, ``dds`` and ``sum_b dhs`` from the weighted terms ``g_ba w_b,mu F'(x_b,mu + ds_a,mu inv_b,mu)``.

**The scale without a logarithm per term.** :func:`~.class_update.backward_weights` defines
``scale_mu = max_b [log_g_b + (n-1) log rho_b,mu]`` and ``w = exp(max(bound - scale, -80))``. With
``L = max_b log_g_b``, ``a_b = exp(log_g_b - L)`` and ``q_b,mu = a_b rho_b,mu^(n-1)`` (float64), ``scale_mu = L +
log Q_mu``, ``Q_mu = max_b q_b,mu``, and ``w = max(q / Q, e^-80)``: one exponential per row and one logarithm per
memory instead of one of each per (row, memory). It is exact whenever ``Q_mu`` lies in ``[1e-200, 1e200]`` and
every ``a_b >= 1e-260`` (a ``q`` that underflows is then below ``e^-80 Q``, where ``w`` is ``e^-80`` either way);
otherwise the block is computed with the logarithms themselves (float64).

**Threads.** Each block is a unit of :func:`~assocmem.engines.binary.threads.run_units`: threads claim blocks from a
shared counter, compute them privately and publish them once, and the calling thread finishes any block a
descheduled thread holds, so no thread waits for a descheduled one (a parallel elementwise operation of PyTorch
ends at a barrier that does). Results do not depend on which thread computed a block, nor on the thread count.

Imported only when fused kernels are used (:class:`~.class_update.Kernels`); numba compiles on the first call
(seconds) and caches the machine code on disk (``cache=True``), so a later start loads it.
"""

# ruff: noqa: ANN001, ANN201 - numba compiles these for the NumPy arrays and scalars it is given
from __future__ import annotations

import math

import numba as nb
import numpy as np

from assocmem.engines.binary.threads import begin_writing, mark_done, next_unit, run_units, unfinished

__all__ = ["fields_rows", "gradient_columns", "run_units", "update_rows"]

#: Reassociation (vector lanes, partial sums) and fused multiply-add; NaN and Inf keep their meaning.
FASTMATH = {"reassoc", "contract"}
#: Rows per unit of :func:`fields_rows`; memories per unit of :func:`gradient_columns` (a block's terms stay in L1).
FIELD_ROWS = 8
GRADIENT_COLUMNS = 128
#: The largest exponent of ``base(y)`` the loops compute (class_update.FUSED_MAX_DEGREE, checked equal in the tests;
#: this module does not import class_update, which imports it).
MAX_POWER = 6
#: ``e^-80``: the floor of the backward's weights (class_update._weights).
FLOOR = math.exp(-80.0)
#: The range of ``Q_mu`` (and floor of ``a_b``) in which the scale is computed without a logarithm per term.
Q_LOW, Q_HIGH, A_LOW = 1e-200, 1e200, 1e-260


@nb.njit(fastmath=FASTMATH, cache=True)
def _base(y, rectified):
    """``max(y, 0)`` (NaN stays NaN) for ``ReP_n``, ``y`` for ``x^n``."""
    if rectified:
        return y - y if y <= 0.0 else y  # 0 for finite y (torch.relu(-inf) = 0 is never needed: hs is finite)
    return y


@nb.njit(fastmath=FASTMATH, cache=True)
def _small_power(r, e):
    """``r^e`` for an integer ``1 <= e <= MAX_POWER`` by a chain of selects (vectorisable)."""
    r2 = r * r
    r4 = r2 * r2
    if e == 1:
        return r
    if e == 2:
        return r2
    if e == 3:
        return r2 * r
    if e == 4:
        return r4
    if e == 5:
        return r4 * r
    return r4 * r2


@nb.njit(fastmath=FASTMATH, cache=True)
def _term(y, e, rectified):
    """``base(y)^e``."""
    return _small_power(_base(y, rectified), e)


@nb.njit(fastmath=FASTMATH, cache=True)
def _copy_rows(src, dst, r0, rows):
    """``dst[r0 : r0 + rows] = src[:rows]`` (2-D, equal widths) as plain loops: numba's slice assignment copies
    element by element with an index check each, several times slower than these (vectorised) loops."""
    for r in range(rows):
        s = src[r]
        d = dst[r0 + r]
        for i in range(s.shape[0]):
            d[i] = s[i]


@nb.njit(fastmath=FASTMATH, cache=True)
def _copy_columns(src, dst, k0, m):
    """``dst[:, k0 : k0 + m] = src[:, :m]`` as plain loops (see :func:`_copy_rows`)."""
    for r in range(src.shape[0]):
        s = src[r]
        d = dst[r, k0 : k0 + m]  # indices from 0 up: no wrap-around of negative ones, contiguous stores
        for i in range(m):
            d[i] = s[i]


@nb.njit(nogil=True, fastmath=FASTMATH, cache=True)
def fields_rows(hs, ds, e, rectified, z, status, counter, finish):
    """``z (B, C)``: ``z_ba = sum_mu F(hs_b,mu + ds_a,mu) - F(hs_b,mu)``, ``F(y) = base(y)^e``; units of
    :data:`FIELD_ROWS` rows (:func:`~assocmem.engines.binary.threads.run_units`)."""
    rows, k = hs.shape
    classes = ds.shape[0]
    fh = np.empty(k, dtype=hs.dtype)
    out = np.empty((FIELD_ROWS, classes), dtype=hs.dtype)
    zero = np.zeros(1, dtype=hs.dtype)[0]
    scan = np.full(1, -1, dtype=np.int64)
    unit = next_unit(status, counter, finish, scan)
    while unit >= 0:
        b0 = unit * FIELD_ROWS
        b1 = min(rows, b0 + FIELD_ROWS)
        for b in range(b0, b1):
            h = hs[b]
            for i in range(k):
                fh[i] = _term(h[i], e, rectified)
            for a in range(classes):
                d = ds[a]
                acc = zero
                for i in range(k):
                    acc += _term(h[i] + d[i], e, rectified) - fh[i]
                out[b - b0, a] = acc
        if begin_writing(status, unit):
            _copy_rows(out, z, b0, b1 - b0)
            mark_done(status, unit)
        unit = next_unit(status, counter, finish, scan)
    return unfinished(status) if finish else 0


@nb.njit(fastmath=FASTMATH, cache=True)
def _rho(h, high, low, rectified):
    """The largest ``|argument|`` of ``F'`` among a memory's terms (class_update._rho_bound), by selects."""
    up = h + high
    if rectified:
        return up if up > 0.0 else up - up
    down = h + low
    up = up if up >= 0.0 else -up
    down = down if down >= 0.0 else -down
    return up if up >= down else down


@nb.njit(fastmath=FASTMATH, cache=True)
def _block_scale(hs, log_g, a, high, low, k0, m, e, rectified, big, scale):
    """``scale[:m]`` of the memories ``k0 .. k0 + m``, and ``big[:m] = 1 / Q_mu`` (0 where no term is live);
    False when some ``Q_mu`` leaves the range where that is exact (the caller then uses the logarithms)."""
    for i in range(m):
        big[i] = 0.0
    for b in range(hs.shape[0]):
        h = hs[b, k0 : k0 + m]
        ab = a[b]
        for i in range(m):
            q = ab * _small_power(float(_rho(h[i], high[i], low[i], rectified)), e)
            big[i] = q if q > big[i] else big[i]
    top = -np.inf
    for b in range(hs.shape[0]):
        top = max(top, log_g[b])
    ok = True
    for i in range(m):
        q = big[i]
        if q > 0.0:
            ok = ok and Q_LOW <= q <= Q_HIGH
            scale[i] = top + math.log(q)
            big[i] = 1.0 / q
        else:
            scale[i] = -np.inf
            big[i] = 0.0
    return ok


@nb.njit(fastmath=FASTMATH, cache=True)
def _log_scale(hs, log_g, high, low, k0, m, nm1, rectified, scale):
    """``scale[:m]`` from the logarithms of every term (class_update.backward_weights), float64."""
    for i in range(m):
        scale[i] = -np.inf
    for b in range(hs.shape[0]):
        for i in range(m):
            r = float(_rho(hs[b, k0 + i], high[i], low[i], rectified))
            if r > 0.0:
                scale[i] = max(scale[i], log_g[b] + nm1 * math.log(r))


@nb.njit(nogil=True, fastmath=FASTMATH, cache=True)
def gradient_columns(hs, ds, log_g, g, n, rectified, dhs, dds, total, scale, status, counter, finish):
    """The training backward (class_update.Kernels.gradient) per block of :data:`GRADIENT_COLUMNS` memories.

    ``hs (B, K)``, ``ds (C, K)``, ``log_g (B,)`` float64, ``g (B, C)``; ``F'(y) = n base(y)^(n-1)``, ``n`` an integer
    from 2 to ``MAX_POWER + 1``. Writes ``dhs (B, K)``, ``dds (C, K)``, ``total (K,)`` (``dhs`` summed over the
    rows) and ``scale (K,)`` float64, each memory's part divided by ``e^scale_mu``.
    """
    rows, k = hs.shape
    classes = ds.shape[0]
    cols = GRADIENT_COLUMNS
    dt = hs.dtype
    e = n - 1
    nm1 = float(e)
    top = -np.inf
    for b in range(rows):
        top = max(top, log_g[b])
    a = np.empty(rows, dtype=np.float64)
    exact = True
    for b in range(rows):
        a[b] = math.exp(log_g[b] - top)
        exact = exact and a[b] >= A_LOW
    high = np.empty(cols, dtype=dt)
    low = np.empty(cols, dtype=dt)
    big = np.empty(cols, dtype=np.float64)
    sc = np.empty(cols, dtype=np.float64)
    x = np.empty(cols, dtype=dt)
    inv = np.empty(cols, dtype=dt)
    w = np.empty(cols, dtype=dt)
    dfx = np.empty(cols, dtype=dt)
    acc = np.empty(cols, dtype=dt)
    part = np.empty((rows, cols), dtype=dt)
    dd = np.empty((classes, cols), dtype=dt)
    tot = np.empty(cols, dtype=dt)
    zero = np.zeros(1, dtype=dt)[0]
    scan = np.full(1, -1, dtype=np.int64)
    unit = next_unit(status, counter, finish, scan)
    while unit >= 0:
        k0 = unit * cols
        m = min(cols, k - k0)
        for i in range(m):
            hi = zero
            lo = zero
            for c in range(classes):
                hi = max(hi, ds[c, k0 + i])
                lo = min(lo, ds[c, k0 + i])
            high[i] = hi
            low[i] = lo
            tot[i] = zero
            for c in range(classes):
                dd[c, i] = zero
        fast = exact and _block_scale(hs, log_g, a, high, low, k0, m, e, rectified, big, sc)
        if not fast:
            _log_scale(hs, log_g, high, low, k0, m, nm1, rectified, sc)
        for b in range(rows):
            h = hs[b, k0 : k0 + m]
            ab = a[b]
            lg = log_g[b]
            for i in range(m):
                r = _rho(h[i], high[i], low[i], rectified)
                rr = float(r) if r > 0.0 else 1.0
                wi = ab * _small_power(rr, e) * big[i]
                wi = wi if wi > FLOOR else FLOOR
                ri = 1.0 / rr
                inv[i] = ri
                x[i] = h[i] * ri
                w[i] = wi if r > 0.0 else 0.0
                dfx[i] = _term(h[i] * ri, e, rectified)
                acc[i] = zero
            if not fast:  # the weights from the logarithms themselves (float64)
                for i in range(m):
                    if w[i] > 0.0:
                        rr = float(_rho(h[i], high[i], low[i], rectified))
                        w[i] = math.exp(max(lg + nm1 * math.log(rr) - sc[i], -80.0))
            for c in range(classes):
                gc = g[b, c]
                d = ds[c, k0 : k0 + m]
                for i in range(m):
                    s = _term(x[i] + d[i] * inv[i], e, rectified)
                    gw = gc * w[i]
                    acc[i] += gw * (s - dfx[i])
                    dd[c, i] += gw * s
            for i in range(m):
                part[b, i] = n * acc[i]
                tot[i] += part[b, i]
        if begin_writing(status, unit):
            _copy_columns(part, dhs, k0, m)
            for c in range(classes):
                dd_out = dds[c, k0 : k0 + m]
                for i in range(m):
                    dd_out[i] = n * dd[c, i]
            total_out, scale_out = total[k0 : k0 + m], scale[k0 : k0 + m]
            for i in range(m):
                total_out[i] = tot[i]
                scale_out[i] = sc[i]
            mark_done(status, unit)
        unit = next_unit(status, counter, finish, scan)
    return unfinished(status) if finish else 0


#: Memories per unit of :func:`update_rows`.
UPDATE_ROWS = 32


@nb.njit(fastmath=FASTMATH, cache=True)
def _update_row(xi, velocity, gp, gc, scale, log_scale, log_p, eps, tiny, row, v, out):
    """One memory of :func:`update_rows` into ``v`` and ``out`` (``(P + C,)``); returns its new log scale and
    whether its new values are finite."""
    p = gp.shape[1]
    zero = np.zeros(1, dtype=v.dtype)[0]
    nonzero = 0
    for i in range(p):
        nonzero += gp[row, i] != zero
    for i in range(gc.shape[1]):
        nonzero += gc[row, i] != zero
    moved = nonzero > 0
    grad_scale = scale[row] if moved else -np.inf
    old = log_scale[row]
    new = max(old + log_p, grad_scale)
    live = new > -np.inf
    keep = math.exp(old + log_p - new) if live and old > -np.inf else 0.0
    add = math.exp(grad_scale - new) if live and moved else 0.0
    out[0] = keep  # rounded to the memories' dtype, as the update's other factors (training._update)
    kd = out[0]
    out[0] = add
    ad = out[0]
    for i in range(p):
        v[i] = velocity[row, i] * kd - ad * gp[row, i]
    for i in range(gc.shape[1]):
        v[p + i] = velocity[row, p + i] * kd - ad * gc[row, i]
    top = tiny  # max|V| floored at tiny (a NaN in V makes its memory NaN below, whatever the step)
    for i in range(v.shape[0]):
        a = v[i] if v[i] >= zero else -v[i]
        top = a if a > top else top
    step = eps / top
    bad = 0
    for i in range(v.shape[0]):
        y = xi[row, i] + v[i] * step
        y = -1.0 + zero if y < -1.0 else y  # NaN stays NaN
        y = 1.0 + zero if y > 1.0 else y
        out[i] = y
        bad += (y - y) != zero
    finite = bad == 0
    return (new if live else old), finite


@nb.njit(nogil=True, fastmath=FASTMATH, cache=True)
def update_rows(xi, velocity, gp, gc, scale, log_scale, log_p, eps, tiny, finite, status, counter, finish):
    """The momentum step of training (training.Step) per block of :data:`UPDATE_ROWS` memories, in place.

    ``V <- keep V - add grad`` with ``keep = e^(s + log p - s')``, ``add = e^(g - s')``, ``s' = max(s + log p, g)``
    (``g = scale`` for a memory whose gradient is not all zero, else ``-inf``); ``xi <- clip(xi + eps V /
    max(max|V|, tiny), -1, 1)``. Overwrites ``xi``, ``velocity`` ``(K, P + C)`` and ``log_scale (K,)``, and writes
    ``finite`` per unit (whether its new memories are all finite).

    In place: a unit reads and writes only its own rows, computed into private buffers and published once
    (:func:`begin_writing`). A thread that computes a unit another thread is publishing (the calling thread
    finishing a unit a descheduled helper holds, or that helper waking late) may read rows half overwritten, but
    its own publication is then refused and its results dropped; no unit reads rows of another. Writing over the
    inputs saves two fresh ``(K, P + C)`` outputs per step: their pages and the memory traffic of filling them
    (the update is bound by memory bandwidth)."""
    k, width = xi.shape
    v = np.empty((UPDATE_ROWS, width), dtype=xi.dtype)
    out = np.empty((UPDATE_ROWS, width), dtype=xi.dtype)
    logs = np.empty(UPDATE_ROWS, dtype=np.float64)
    scan = np.full(1, -1, dtype=np.int64)
    unit = next_unit(status, counter, finish, scan)
    while unit >= 0:
        r0 = unit * UPDATE_ROWS
        r1 = min(k, r0 + UPDATE_ROWS)
        ok = True
        for row in range(r0, r1):
            logs[row - r0], good = _update_row(
                xi, velocity, gp, gc, scale, log_scale, log_p, eps, tiny, row, v[row - r0], out[row - r0]
            )
            ok = ok and good
        if begin_writing(status, unit):
            _copy_rows(out, xi, r0, r1 - r0)
            _copy_rows(v, velocity, r0, r1 - r0)
            for r in range(r1 - r0):
                log_scale[r0 + r] = logs[r]
            finite[unit] = ok
            mark_done(status, unit)
        unit = next_unit(status, counter, finish, scan)
    return unfinished(status) if finish else 0
