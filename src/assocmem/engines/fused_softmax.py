"""The online softmax's elementwise work in compiled loops (numba, CPU): one pass per chunk of scores, and the whole
association in one pass over the memory for a few queries (docs/reference.md §2 and §8).

:mod:`assocmem.engines.online_softmax` defines the arithmetic; the loops here compute the same quantities with
fewer passes over the scores and without PyTorch's fixed cost per operation:

- :func:`weigh_chunk`: a chunk of scores (base 2) of many queries, after its matrix product: the maximum of each
  row, then in one pass the weights ``2^(s - R)`` (``R`` the running maximum), set to exactly 0 below
  ``2^-b`` (:func:`~assocmem.engines.online_softmax.underflow_bits`), written in place, and their sum; PyTorch
  needs five passes and six operations for the same;
- :func:`associate_rows`: a few queries (a matrix-vector product per query, bound by the memory's bandwidth): per
  block of patterns (a few KiB, in the L1 cache), the scores, the running maximum, the weights and the weighted sum
  of the values, so the memory is read once from main memory (the two matrix products read it twice).

**The exponential.** ``2^t`` for ``-b <= t <= 0``: ``t = n + f`` with ``n = round(t)``, ``|f| <= 1/2``,
``2^f`` by a polynomial (float32: degree 6, relative error below ``3e-9``, far below float32's rounding of
``6e-8``; float64: ``math.exp2``), ``2^n`` from a table (exact: ``n >= -200`` is a normal number). The loop
vectorises (libm's ``exp2`` would be a call per element). NaN scores give NaN weights (the result's check then
names the input); ``-inf`` scores weigh 0, as in PyTorch's ``exp2``.

**Threads.** The loops start no thread of their own and release the GIL: the engine's parts
(:func:`~assocmem.engines.online_softmax.in_threads`) run them side by side on their own threads.

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
#: Patterns of a block of :func:`associate_rows` (their bytes at most this, so that the block stays in L1).
BLOCK_BYTES = 16 << 10


def _fraction(f):
    """``2^f`` for ``|f| <= 1/2`` in ``f``'s dtype, by the polynomial of that dtype."""
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
def associate_rows(x, pat, val, lo, hi, floor, res):
    """The association of the queries ``x (rows, d)`` (scaled by ``beta log2(e)``) with patterns ``lo:hi`` of
    ``pat (K, d)`` and ``val (K, d_v)`` into ``res (rows, d_v + 2)``: the weighted sum of the values, the weights'
    sum, both relative to the maximum score (base 2), and that maximum; one pass over the patterns, a block of
    them at a time (read from main memory for the scores, from the L1 cache for the sum)."""
    rows, d = x.shape
    dv = val.shape[1]
    block = max(8, BLOCK_BYTES // (d * pat.itemsize))
    s = np.zeros(block, dtype=x.dtype)
    zero = s[0]  # 0 in the queries' dtype: the dot products in it
    a = np.zeros(dv, dtype=res.dtype)  # this row's sum (local: the compiler sees that nothing else writes it)
    for r in range(rows):
        res[r, :] = 0.0
        res[r, dv + 1] = -np.inf
    for start in range(lo, hi, block):
        stop = min(start + block, hi)
        n = stop - start
        for r in range(rows):
            xr = x[r]
            for j in range(n):
                t = zero
                for k in range(d):
                    t += xr[k] * pat[start + j, k]
                s[j] = t
            top = res[r, dv + 1]
            m = top
            for j in range(n):  # a NaN score is skipped here: its weight is NaN whatever the maximum
                v = s[j]
                m = v if v > m else m
            a[:] = res[r, :dv]
            scale = 1.0
            if m > top:  # the running maximum rises: what was summed so far is rescaled (or dropped)
                shift = top - m
                scale = math.exp2(shift) if shift >= floor else 0.0
                for k in range(dv):
                    a[k] *= scale
                res[r, dv + 1] = m
            total = floor - floor
            for j in range(n):
                w = _weight(s[j], m, floor)
                s[j] = w
                total += w
            res[r, dv] = res[r, dv] * scale + total
            for j in range(
                0, n - 3, 4
            ):  # four patterns at a time (independent sums); weights of 0 too, so that
                i = (
                    start + j
                )  # a NaN or Inf in the values reaches the result (0 * Inf is NaN), as in a product
                w0, w1, w2, w3 = s[j], s[j + 1], s[j + 2], s[j + 3]
                for k in range(dv):
                    a[k] += (w0 * val[i, k] + w1 * val[i + 1, k]) + (w2 * val[i + 2, k] + w3 * val[i + 3, k])
            for j in range(n - n % 4, n):
                w0 = s[j]
                for k in range(dv):
                    a[k] += w0 * val[start + j, k]
            res[r, :dv] = a


def associate(
    x: Tensor, pat: Tensor, val: Tensor, lo: int, hi: int, bits: int
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`associate_rows` on tensors (``x``, ``pat``, ``val`` contiguous, without gradients): patterns ``lo`` to
    ``hi`` for the queries ``x (rows, d)`` (scaled to base 2), ``2^-bits`` the threshold of the weights; returns
    ``(numerator, denominator, maximum)``, ``(rows, d_v)``, ``(rows, 1)``, ``(rows, 1)``, the sums relative to the
    maximum."""
    dv = val.shape[-1]
    res = torch.empty(x.shape[0], dv + 2, dtype=x.dtype)
    associate_rows(x.numpy(), pat.numpy(), val.numpy(), lo, hi, NUMPY_DTYPES[x.dtype](-bits), res.numpy())
    return res[:, :dv], res[:, dv : dv + 1], res[:, dv + 1 :]
