"""The association of a few queries in one compiled pass over the memory (numba, CPU): docs/reference.md §2 and §8.

:mod:`assocmem.engines.online_softmax` defines the arithmetic (scores in base 2, a running maximum, weights below
``2^-b`` of it set to exactly 0, partial sums merged); :func:`associate_rows` computes the same for queries that
are each a matrix-vector product, bound by the memory's bandwidth. Per block of patterns (64 KiB: it stays in the
core's cache between its two uses) and per query: the scores, their maximum (the running maximum rises, and what
was summed so far is rescaled, or dropped below ``2^-b``), the weights and their sum, the weighted sum of the
values. The memory is read once from main memory, where the two matrix products read it twice, and the call costs
one compiled function instead of a dozen PyTorch operations (a small memory notices those: 10^4 patterns are a
tenth of a millisecond).

**The exponential.** ``2^t`` for ``-b <= t <= 0``: ``t = n + f`` with ``n = floor(t)``, ``0 <= f < 1``; ``2^f``
by a polynomial (:data:`POLY32`, :data:`POLY64`), ``2^n`` by writing the exponent's bits (exact: ``n >= -b`` is a
normal number). Both vectorise, where libm's ``exp2`` would be one call per element. NaN and ``-inf`` scores: a
NaN weight and a weight of 0, as PyTorch's ``exp2``; every weight multiplies its value, 0 included, so that a NaN
or Inf anywhere in the values reaches the result (and the result's check), as it would through a matrix product.

**Threads.** The loop starts no thread and releases the GIL: the engine's parts
(:func:`~assocmem.engines.online_softmax.in_threads`) run it side by side on their own threads.

**The chunks of many queries.** :func:`weigh_chunk` is the elementwise work of one chunk of scores of the chunked
engine (:mod:`assocmem.engines.online_softmax`): each row's maximum, the running maximum, the weights and their
sum in one call, where PyTorch makes six passes (54 against 74-105 us for a ``64 x 2000`` chunk on one thread). The
row's maximum is taken over integer keys of the scores' bits (:func:`_ordered`): numba does not vectorise a float
maximum (that loop alone took about 40 us).

Imported only on CPU when numba is installed (numba compiles on the first call, seconds, then caches the machine
code on disk by ``cache=True``).
"""

# ruff: noqa: ANN001, ANN201 - numba compiles these for the NumPy arrays and scalars it is given
from __future__ import annotations

import math

import numba as nb
import numpy as np
import torch
from numba.core import types
from numba.extending import intrinsic, overload
from torch import Tensor

#: Reassociation (vector lanes, partial sums and maxima in any order) and fused multiply-add; NaN and Inf keep
#: their meaning.
FASTMATH = {"reassoc", "contract"}
#: ``2^f`` on ``0 <= f < 1``: Chebyshev interpolants in the monomial basis, degree 6 for float32 (relative error
#: 2.6e-9, 8e-8 with float32's roundings: 1.3 units of its last place) and 11 for float64 (2.5e-15);
#: tests/test_fused_softmax.py checks both.
POLY32 = (1.0000000025307454, 0.6931469327588494, 0.24023045441248367, 0.05548063019600287, 0.009684186311643219,
          0.0012391331823096154, 0.00021865784823863317)  # fmt: skip
POLY64 = (0.9999999999999979, 0.6931471805602021, 0.24022650695287723, 0.05550410872301549, 0.009618128860863589,
          0.0013333561892257728, 0.00015403603288177695, 1.5248529659099109e-05, 1.3295133006370932e-06,
          9.398596982161208e-08, 1.0962442805369689e-08, -3.104408582051595e-10)  # fmt: skip
#: The NumPy scalar type of each dtype the loops take.
NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
#: Patterns of a block of :func:`associate_rows` (their bytes at most this: the block stays in the L1/L2 cache).
BLOCK_BYTES = 64 << 10


def _fraction(f):
    """``2^f`` for ``0 <= f < 1`` in ``f``'s dtype, by the polynomial of that dtype."""
    raise NotImplementedError  # pragma: no cover - compiled only (overloaded below)


def _power(n):
    """``2^n`` for an integral ``n`` in ``[-126, 0]`` (float32) or ``[-1022, 0]`` (float64), in ``n``'s dtype."""
    raise NotImplementedError  # pragma: no cover - compiled only (overloaded below)


@overload(_fraction, jit_options={"fastmath": FASTMATH})
def _fraction_for(f):
    if f == types.float32:
        c = tuple(np.float32(v) for v in POLY32)
        return lambda f: c[0] + f * (c[1] + f * (c[2] + f * (c[3] + f * (c[4] + f * (c[5] + f * c[6])))))
    c = POLY64

    def poly64(f):
        return c[0] + f * (c[1] + f * (c[2] + f * (c[3] + f * (c[4] + f * (c[5] + f * (c[6] + f * (c[7] + f * (
            c[8] + f * (c[9] + f * (c[10] + f * c[11]))))))))))  # fmt: skip

    return poly64


@intrinsic
def _bitcast(typingctx, bits, like):
    """The float of ``like``'s type whose bit pattern is the integer ``bits`` (vectorises, unlike a table)."""
    sig = like(bits, like)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(signature.return_type))

    return sig, codegen


@overload(_power, jit_options={"fastmath": FASTMATH})
def _power_for(n):
    if n == types.float32:
        return lambda n: _bitcast(np.int32((np.int64(n) + 127) << 23), n)
    return lambda n: _bitcast((np.int64(n) + 1023) << 52, n)


@nb.njit(fastmath=FASTMATH, cache=True, nogil=True, inline="always")
def _weight(s, m, floor):
    """``2^(s - m)`` for ``s - m >= floor``, else 0, in the dtype of ``s``, ``m`` and the integral ``floor`` (at
    least -126); NaN for NaN."""
    t = s - m
    n = np.floor(t)
    n = n if n >= floor else floor  # NaN and -inf go to the floor: a valid exponent (f stays NaN or -inf)
    w = _fraction(t - n) * _power(n)
    return w if t >= floor or t != t else floor - floor


@nb.njit(fastmath=FASTMATH, cache=True, nogil=True)
def associate_rows(x, pat, val, lo, hi, floor, out, stats, beta2, normalize):
    """The association of the queries ``x (rows, d)`` times ``beta2`` (``beta log2(e)``, or 1 for queries already
    scaled) with patterns ``lo:hi`` of ``pat (K, d)`` and ``val (K, d_v)``: the weighted sum of the values into
    ``out (rows, d_v)``, the weights' sum and the maximum score (base 2) into ``stats (rows, 2)``, the sums relative
    to that maximum;
    one pass over the patterns, a block of them at a time (read from main memory for the scores, from the cache
    for the sum). With ``normalize`` the weighted sum is divided by the weights' sum at the end (the association
    itself: what a call of one part would do next, without another operation)."""
    rows, d = x.shape
    dv = val.shape[1]
    block = max(8, BLOCK_BYTES // (d * pat.itemsize))
    s = np.zeros(block, dtype=x.dtype)
    zero = s[0]  # 0 in the queries' dtype: the dot products in it
    a = np.zeros(dv, dtype=out.dtype)  # this row's sum (local: the compiler sees that nothing else writes it)
    xs = np.empty((rows, d), dtype=x.dtype)  # the scaled queries (the same rounding as PyTorch's x * scale)
    for r in range(rows):
        for k in range(d):
            xs[r, k] = x[r, k] * beta2
        out[r, :] = 0.0
        stats[r, 0] = 0.0
        stats[r, 1] = -np.inf
    for start in range(lo, hi, block):
        stop = min(start + block, hi)
        n = stop - start
        for r in range(rows):
            xr = xs[r]
            top = stats[r, 1]
            m = top
            for j in range(n):
                t = zero
                for k in range(d):
                    t += xr[k] * pat[start + j, k]
                s[j] = t
                m = t if t > m else m  # a NaN score is skipped here: its weight is NaN whatever the maximum
            a[:] = out[r]
            scale = 1.0
            if m > top:  # the running maximum rises: what was summed so far is rescaled (or dropped)
                shift = top - m
                scale = math.exp2(shift) if shift >= floor else 0.0
                for k in range(dv):
                    a[k] *= scale
                stats[r, 1] = m
            total = floor - floor
            for j in range(n):
                w = _weight(s[j], m, floor)
                s[j] = w
                total += w
            stats[r, 0] = stats[r, 0] * scale + total
            # four patterns at a time (independent sums); weights of 0 too, so that a NaN or Inf in the values
            # reaches the result (0 * Inf is NaN), as in a product
            for j in range(0, n - 3, 4):
                i = start + j
                w0, w1, w2, w3 = s[j], s[j + 1], s[j + 2], s[j + 3]
                for k in range(dv):
                    a[k] += (w0 * val[i, k] + w1 * val[i + 1, k]) + (w2 * val[i + 2, k] + w3 * val[i + 3, k])
            for j in range(n - n % 4, n):
                w0 = s[j]
                for k in range(dv):
                    a[k] += w0 * val[start + j, k]
            out[r] = a
    if normalize:
        for r in range(rows):
            den = stats[r, 0]
            for k in range(dv):
                out[r, k] /= den


def _ordered(bits):
    """The integer whose order is the order of the floats whose bit patterns are ``bits`` (int32 for float32, int64
    for float64); its own inverse. A row's maximum by these keys vectorises, a float maximum does not."""
    raise NotImplementedError  # pragma: no cover - compiled only (overloaded below)


@overload(_ordered, jit_options={"fastmath": FASTMATH})
def _ordered_for(bits):
    kind = np.int32 if bits == types.int32 else np.int64
    shift, low = kind(8 * np.dtype(kind).itemsize - 1), kind(np.iinfo(kind).max)
    return lambda bits: kind(bits ^ ((bits >> shift) & low))


def _as_bits(a):
    """The 1-D contiguous float array ``a`` viewed as integers of its width (int32 or int64)."""
    raise NotImplementedError  # pragma: no cover - compiled only (overloaded below)


@overload(_as_bits)
def _as_bits_for(a):
    kind = np.int32 if a.dtype == types.float32 else np.int64
    return lambda a: a.view(kind)


@nb.njit(fastmath=FASTMATH, cache=True, nogil=True)
def weigh_chunk(s, n, running, maxima, sums, slot, floor):
    """A chunk of scores in place: ``s`` holds ``len(running)`` rows of ``n`` scores (base 2), one after the other.
    Per row ``r``: the running maximum ``running[r]`` rises to the row's maximum if that is larger (``maxima[slot,
    r]`` a copy of it), each score ``s_j`` becomes its weight ``2^(s_j - running[r])`` (0 below ``2^floor``:
    :func:`_weight`) and ``sums[slot, r]`` their sum. A NaN score makes a NaN weight (and a NaN sum); a positive NaN
    also a NaN maximum, as PyTorch's ``amax``."""
    keys = _as_bits(s)
    for r in range(running.shape[0]):
        row, bits = s[r * n : r * n + n], keys[r * n : r * n + n]  # slices from 0: the loops vectorise
        k = _ordered(bits[0])
        for j in range(n):
            b = _ordered(bits[j])
            k = b if b > k else k
        top = _bitcast(_ordered(k), row[0])
        m = running[r]
        m = top if top > m or top != top else m
        running[r] = maxima[slot, r] = m
        total = floor - floor
        for j in range(n):
            w = _weight(row[j], m, floor)
            row[j] = w
            total += w
        sums[slot, r] = total


@nb.njit(fastmath=FASTMATH, cache=True, nogil=True)
def merge_slots(maxima, sums, outs, count, merged, first):
    """Merge the partial results of the chunks in slots ``0`` to ``count - 1`` (each relative to its running maximum
    ``maxima[slot, r]``, the last the largest: weighted sums ``outs (slots, rows, d_v)``, sums of weights ``sums``)
    into ``merged (rows, d_v + 2)``: the weighted sum, the sum of weights and the maximum they are relative to (the
    last slot's), side by side; ``first``: nothing merged yet (``merged`` is overwritten). docs/reference.md §8."""
    rows, dv = outs.shape[1], outs.shape[2]
    for r in range(rows):
        last = maxima[count - 1, r]
        acc = merged[r, :dv]
        if first:
            acc[:] = 0.0
            den = sums[0, r] - sums[0, r]
        else:
            scale = math.exp2(merged[r, dv + 1] - last)
            for k in range(dv):
                acc[k] *= scale
            den = merged[r, dv] * scale
        for i in range(count):
            scale = math.exp2(maxima[i, r] - last)
            den += sums[i, r] * scale
            for k in range(dv):
                acc[k] += outs[i, r, k] * scale
        merged[r, dv] = den
        merged[r, dv + 1] = last


def associate(
    x: Tensor,
    pat: Tensor,
    val: Tensor,
    lo: int,
    hi: int,
    bits: int,
    beta2: float = 1.0,
    normalize: bool = False,
) -> tuple[Tensor, Tensor]:
    """:func:`associate_rows` on tensors (``x``, ``pat``, ``val`` contiguous, without gradients): patterns ``lo`` to
    ``hi`` for the queries ``x (rows, d)`` times ``beta2`` (to base 2), ``2^-bits`` the threshold of the weights;
    returns ``(numerator, stats)``, ``(rows, d_v)`` and ``(rows, 2)``: the weighted sum of the values (with
    ``normalize`` divided by the weights' sum: the association), the weights' sum and the maximum score, the sums
    relative to the maximum. Two tensors, no views of them: a small call notices each operation."""
    out = torch.empty(x.shape[0], val.shape[-1], dtype=x.dtype)
    stats = torch.empty(x.shape[0], 2, dtype=x.dtype)
    kind, p = NUMPY_DTYPES[x.dtype], pat.numpy()
    v = p if val is pat else val.numpy()
    associate_rows(x.numpy(), p, v, lo, hi, kind(-bits), out.numpy(), stats.numpy(), kind(beta2), normalize)
    return out, stats
