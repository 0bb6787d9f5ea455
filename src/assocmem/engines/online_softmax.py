"""The association ``softmax(beta x xi^T + M) V`` streamed over cache-sized chunks of patterns (an online softmax).

This is how :func:`assocmem.engines.association.associate` computes Model B's update on the CPU
(docs/reference.md §2; the merge of the chunks' partial sums, with the running maximum and the dropped weights,
is docs/reference.md §8):

- the patterns are read in chunks of ``c`` rows, sized so that one chunk of scores stays in the cache
  (:func:`chunk_rows`): the score matrix is never written out in full, and every elementwise pass over a chunk
  (the maximum, the exponential, the sum) reads the cache, not the main memory; the second product
  ``weights @ V`` of a chunk reads the chunk of values the first product has just brought in when ``V`` is the
  patterns;
- the scores are computed in base 2 (``beta log2(e)`` folded into the queries, the mask added times ``log2(e)``),
  so that the exponential is ``exp2``, which PyTorch's CPU kernels compute at full speed whatever the argument;
  ``torch.exp`` takes a slow path (10 to 70 ns per element instead of under 1) for results that underflow,
  which is most of the scores at large ``beta``;
- weights below ``2^-UNDERFLOW_BITS`` of the running maximum are set to exactly 0 before the exponential
  (:data:`UNDERFLOW_BITS`): no result is subnormal (subnormal weights slow the next matrix product 30-fold),
  hidden patterns keep a weight of exactly 0, and the answer changes by less than rounding (see below);
- without gradients every pass is in place in buffers made once per call, and the partial results of up to
  :data:`GROUP` chunks are merged at once, so that the number of small operations per chunk stays at one; with
  numba, a chunk's maximum, weights and sum are one compiled call and so is each merge
  (:func:`_compiled_chunks`): two matrix products and one call per chunk;
- with several PyTorch threads, the memory is split into contiguous parts (:data:`SPLIT_CHUNKS` chunks each at
  least), one per thread, each part's operations run on its own thread, and the parts are merged once at the end
  (:func:`in_threads`, on the process's sleeping helper threads, :mod:`assocmem.pool`): PyTorch's own threads
  would meet at a barrier after every operation on every chunk, and on a loaded machine each barrier waits
  milliseconds for a descheduled thread. A memory too small for that runs on the calling thread alone (a split
  of the query rows instead, each part against the whole memory, was tried and removed: two halves of the rows
  cost 1.31-1.39 times the whole in CPU time, each reading the whole memory for half the products, so two threads
  could not reach the two-thread floor; docs/benchmarks.md, "The chunks' elementwise work compiled");
- one query against one contiguous memory (no mask, no gradients, a float ``beta``, the chunks left to the engine)
  is one compiled pass over the memory (:mod:`assocmem.engines.fused_softmax`, when numba is installed): the same
  arithmetic per block of patterns, the memory read once instead of by two matrix-vector products; with several
  threads the memory is split into parts of :data:`SPLIT_BYTES` at least, one pass each (a smaller memory is one
  pass on the calling thread). A call of one pass makes two tensors and one compiled call: the queries are scaled
  and the sum normalised inside the loop (each PyTorch operation costs a small call a microsecond or more);
- a pattern matrix shared by many queries (a 2-D memory, or per-head patterns shared by the batch) is one
  matrix product per chunk for all of them: the dimensions along which the patterns are shared are folded into
  the rows of the queries (:class:`Fold`), so nothing is copied or expanded per batch item or per head.

Why dropping the small weights is exact to rounding. Write ``w_j = 2^(s_j - R)`` with ``R`` the running maximum
when the chunk of ``j`` is read (``R`` never exceeds the final maximum ``M``). A dropped weight is below
``2^-b`` of the running maximum, hence of the final one; the term of the maximum itself (1 after the final
rescaling) is never dropped, so the denominator is at least 1. Dropping every weight below the threshold
changes the denominator by less than ``K 2^-b`` (relative) and the numerator by less than ``K 2^-b max|v|``,
so the output by less than ``2 K 2^-b max_j |v_j|``. With ``b = 80`` (float32) that is below float32's rounding
(``2^-24`` relative) for any ``K < 2^55``; with ``b = 200`` (float64) below float64's (``2^-53``) for
``K < 2^146``. For ``K = 10^7`` the bound is ``1.7e-17 max|v|`` in float32 and ``1e-53 max|v|`` in float64.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable
from types import ModuleType
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from assocmem.engines.binary.sweeps import numba_available
from assocmem.pool import run_claimed

T = TypeVar("T")

#: log2(e): scores in base 2 are ``log2(e)`` times the natural ones.
LOG2E = 1.0 / math.log(2.0)

#: Scores of one chunk up to this many bytes (they stay in the cache while the chunk is processed).
CHUNK_BYTES = 1 << 19

#: A chunk reads at most this many bytes of patterns (one matrix-vector product per chunk at batch 1: the chunk
#: of patterns, not of scores, is what has to stay in the cache for the second product).
PATTERN_CHUNK_BYTES = 4 << 20

#: A memory up to this many bytes stays in the last-level cache between the two products of an update: it is not
#: split for the sake of the second one (only its scores are).
CACHED_BYTES = 32 << 20

#: The fewest patterns in a chunk chosen automatically (many queries: the chunk of scores grows instead).
MIN_CHUNK = 256

#: With several PyTorch threads, the fewest chunks a thread's part of the memory has (fewer: one thread for all).
SPLIT_CHUNKS = 4

#: With several PyTorch threads, the fewest bytes of patterns a thread's part of a one-pass memory has (fewer: one
#: thread for all; measured, docs/benchmarks.md).
SPLIT_BYTES = 16 << 20

#: A part a helper thread holds when this thread has done its own is waited for at most this fraction of the time
#: this thread took, then computed here (:func:`assocmem.pool.run_claimed`): a descheduled helper costs one part.
PATIENCE = 0.5

#: Partial results merged at once (their buffers, ``GROUP x queries x d_v``, at most the size of a chunk of scores).
GROUP = 32


#: The dtypes of the compiled kernels (:mod:`assocmem.engines.fused_softmax`).
FUSED_DTYPES = (torch.float32, torch.float64)

#: Up to this many query rows against one memory (measured: 1), an association is one compiled pass over the memory
#: (:func:`assocmem.engines.fused_softmax.associate_rows`) instead of two matrix-vector products.
FUSED_ROWS = 1

#: Whether the compiled kernels are used when they can be (tests turn them off to compare the two paths).
use_fused = True


def fused_kernels() -> ModuleType | None:
    """:mod:`assocmem.engines.fused_softmax` when numba is installed and :data:`use_fused`, else ``None``."""
    if not use_fused or not numba_available():
        return None
    from assocmem.engines import fused_softmax

    return fused_softmax


def underflow_bits(dtype: torch.dtype) -> int:
    """``b``: weights below ``2^-b`` of the running maximum are set to 0 (200 in float64, else 80)."""
    return 200 if dtype == torch.float64 else 80


def chunk_rows(rows: int, k: int, width: int, itemsize: int) -> int:
    """Patterns per chunk for ``rows`` query rows, ``k`` patterns of ``width`` features: a chunk of scores within
    :data:`CHUNK_BYTES` (at least :data:`MIN_CHUNK` patterns) and, for a memory larger than :data:`CACHED_BYTES`,
    of patterns within :data:`PATTERN_CHUNK_BYTES`; the chunks of equal size."""
    c = max(MIN_CHUNK, CHUNK_BYTES // max(1, rows * itemsize))
    if k * width * itemsize > CACHED_BYTES:
        c = min(c, max(MIN_CHUNK, PATTERN_CHUNK_BYTES // max(1, width * itemsize)))
    c = min(c, k)
    n = -(-k // c)
    return -(-k // n)


class Fold:
    """Queries ``(*a, L, d)`` against patterns ``(*p, K, d)`` and values ``(*p, K, d_v)`` whose leading dimensions
    broadcast to ``a``: the dimensions where the patterns and values have size 1 (shared) are moved into the rows
    of the queries, so that each product is one (batched) matrix product over the remaining ("own") dimensions and
    the patterns are read in place, never expanded.

    ``queries``: the folded queries ``(*own, rows, d)``; ``patterns``, ``values``: ``(*own, K, .)`` views;
    :meth:`unfold` turns a folded ``(*own, rows, w)`` result back into ``(*lead, L, w)`` (a view).
    """

    def __init__(self, queries: Tensor, patterns: Tensor, values: Tensor) -> None:
        self.trivial = True
        self.patterns, self.values = patterns, values
        if queries.dim() == 2 and patterns.dim() == 2 and values.dim() == 2:  # (rows, d) against one memory
            self.lead = self.own = self.shared = ()
            self.rows = self.length = queries.shape[0]
            self.queries = (
                queries  # as it is: a small call notices every view made (about a microsecond each)
            )
            return
        lq, lp, lv = tuple(queries.shape[:-2]), tuple(patterns.shape[:-2]), tuple(values.shape[:-2])
        self.length = queries.shape[-2]
        if not lp and not lv:  # one memory for every query (the usual case): the queries are the rows
            self.lead, self.own, self.shared = lq, (), lq
            self.rows = math.prod(lq) * self.length
            self.queries = queries.reshape(self.rows, queries.shape[-1])
            return
        if lq == lp == lv:  # one memory per item
            self.lead, self.own, self.shared, self.rows, self.queries = lq, lq, (), self.length, queries
            return
        n = max(len(lq), len(lp), len(lv))
        q, p, v = ((1,) * (n - len(t)) + t for t in (lq, lp, lv))
        self.lead = tuple(max(a, b, c) for a, b, c in zip(q, p, v, strict=True))
        shared = [i for i in range(n) if p[i] == 1 and v[i] == 1]
        own = [i for i in range(n) if not (p[i] == 1 and v[i] == 1)]
        self.own = tuple(self.lead[i] for i in own)
        self.shared = tuple(self.lead[i] for i in shared)
        self.perm = [*own, *shared, n, n + 1]
        self.inverse = [self.perm.index(i) for i in range(n + 2)]
        self.trivial = self.perm == sorted(self.perm)
        self.rows = math.prod(self.shared) * self.length
        x = queries.expand(*self.lead, *queries.shape[-2:])
        self.queries = (x if self.trivial else x.permute(self.perm)).reshape(
            *self.own, self.rows, x.shape[-1]
        )

        def mine(t: Tensor, lead: tuple[int, ...]) -> Tensor:
            t = t.reshape(*lead, *t.shape[-2:])  # a view: leading ones added
            t = t.squeeze(tuple(shared)) if shared else t
            return t.expand(*self.own, *t.shape[-2:])

        self.patterns, self.values = mine(patterns, p), mine(values, v)

    def unfold(self, t: Tensor) -> Tensor:
        """A folded ``(*own, rows, w)`` tensor as ``(*lead, L, w)`` (a view)."""
        if not self.lead:  # (L, w) is (rows, w)
            return t
        t = t.view(*self.own, *self.shared, self.length, t.shape[-1])
        return t if self.trivial else t.permute(self.inverse)

    def fold(self, t: Tensor) -> Tensor:
        """A tensor broadcastable to ``(*lead, L, w)`` as a folded ``(*own, rows, w)`` one (a copy if need be)."""
        t = t.expand(*self.lead, self.length, t.shape[-1])
        return (t if self.trivial else t.permute(self.perm)).reshape(*self.own, self.rows, t.shape[-1])


def _fits_one_pass(
    x: Tensor,
    pat: Tensor,
    val: Tensor,
    beta: float | Tensor,
    mask: Tensor | None,
    chunk: int | None,
    weights: bool,
) -> bool:
    """Whether queries ``(..., rows, d)`` against one memory can be one compiled pass: no mask, no weights asked
    for, the chunks left to the engine, a float ``beta``, up to :data:`FUSED_ROWS` rows, a dtype of the kernels on
    the CPU, and the memory contiguous (read in place, never copied). The caller checks the rest: one memory, no
    gradients, the kernels installed."""
    return (
        chunk is None and mask is None and not weights and not isinstance(beta, Tensor) and x.shape[-2] <= FUSED_ROWS
        and x.device.type == "cpu" and x.dtype in FUSED_DTYPES and pat.is_contiguous() and val.is_contiguous()
    )  # fmt: skip


def stream(
    queries: Tensor,
    patterns: Tensor,
    values: Tensor,
    beta: float | Tensor,
    mask: Tensor | None,
    chunk: int | None,
    *,
    need_lse: bool,
    need_weights: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``softmax(beta x xi^T + mask) V`` with its log-partition, over chunks of ``chunk`` patterns (``None``:
    :func:`chunk_rows`; ``need_weights`` takes the whole score matrix as one chunk). Shapes and returns as
    :func:`assocmem.engines.association.associate`. A row that ``mask`` hides entirely is an empty part
    (docs/reference.md §8): ``out = 0``, ``lse = -inf``, weights 0 and zero gradients, never NaN."""
    if (  # a few queries against one memory, in one part: one compiled pass, nothing else to plan
        queries.dim() == 2 and patterns.dim() == 2 and values.dim() == 2
        and _fits_one_pass(queries, patterns, values, beta, mask, chunk, need_weights)
        and (torch.get_num_threads() == 1 or patterns.numel() * patterns.element_size() < 2 * SPLIT_BYTES)
        and not (torch.is_grad_enabled() and (queries.requires_grad or patterns.requires_grad or values.requires_grad))
    ):  # fmt: skip
        kernels = fused_kernels()
        if kernels is not None:
            return _one_pass(kernels, queries, patterns, values, float(beta), need_lse)
    tensor_beta, given = isinstance(beta, Tensor), chunk
    fold = Fold(queries * beta if tensor_beta else queries, patterns, values)
    x, pat, val = fold.queries, fold.patterns, fold.values
    k = pat.shape[-2]
    rows = math.prod(fold.own) * fold.rows if fold.own else fold.rows
    if need_weights:
        chunk = k
    elif chunk is None:
        chunk = chunk_rows(rows, k, pat.shape[-1], x.element_size())
    inplace = not torch.is_grad_enabled() or not any(
        isinstance(t, Tensor) and t.requires_grad for t in (queries, patterns, values, beta, mask)
    )
    device = x.device
    kernels = fused_kernels() if inplace and device.type == "cpu" and x.dtype in FUSED_DTYPES else None
    one_pass = (
        kernels is not None and math.prod(fold.own) == 1
        and _fits_one_pass(x, pat, val, beta, mask, given, need_weights)
    )  # fmt: skip
    threads = torch.get_num_threads() if inplace and device.type == "cpu" else 1
    if chunk >= k and not one_pass:
        scaled = x if tensor_beta or beta == 1 else x * float(beta)
        return _whole(fold, scaled, pat, val, mask, inplace, need_lse, need_weights)
    x = x * (LOG2E if tensor_beta else float(beta) * LOG2E)
    if one_pass:  # one memory (leading dimensions of size 1 dropped: a static layer's memory for one query)
        x, pat, val = (t.detach().reshape(-1, t.shape[-1]).contiguous() for t in (x, pat, val))
        split = max(1, min(threads, pat.numel() * pat.element_size() // SPLIT_BYTES))  # SPLIT_BYTES a part
        bounds = [k * i // split for i in range(split + 1)]
        bits = underflow_bits(x.dtype)
        work = [
            lambda lo=lo, hi=hi: _split_stats(*kernels.associate(x, pat, val, lo, hi, bits))
            for lo, hi in itertools.pairwise(bounds)
        ]
    else:
        starts = list(range(0, k, chunk))
        split = max(
            1, min(threads, len(starts) // SPLIT_CHUNKS)
        )  # contiguous parts, SPLIT_CHUNKS chunks each
        bounds = [starts[len(starts) * i // split] for i in range(split)] + [k]
        work = [
            lambda lo=lo, hi=hi: _chunks(fold, x, pat, val, mask, chunk, lo, hi, inplace, kernels)
            for lo, hi in itertools.pairwise(bounds)
        ]
    parts = work[0]() if threads == 1 else in_threads(work, torch_ops=not one_pass)  # one part each
    acc, den, running = parts if isinstance(parts, tuple) else _combine(parts)
    if one_pass and fold.own:
        acc, den, running = (t.view(*fold.own, *t.shape) for t in (acc, den, running))
    empty = None
    if mask is not None:  # a row the mask hides entirely: den = 0 (and acc = 0), out 0, lse -inf
        empty = den == 0
        den = den.masked_fill(empty, 1.0)
    out = fold.unfold(acc / den)
    lse = None
    if need_lse:
        lse = (running + torch.log2(den)) * math.log(2.0)
        lse = fold.unfold(lse if empty is None else lse.masked_fill(empty, -math.inf)).squeeze(-1)
    return out, lse, None


def _one_pass(
    kernels: ModuleType, queries: Tensor, patterns: Tensor, values: Tensor, beta: float, need_lse: bool
) -> tuple[Tensor, Tensor | None, None]:
    """:func:`stream` for queries ``(rows, d)`` against one memory in one compiled pass on this thread."""
    x = queries.detach() if queries.requires_grad else queries  # (a tensor that wants gradients, in no_grad)
    pat = patterns.detach() if patterns.requires_grad else patterns
    val = pat if values is patterns else values.detach() if values.requires_grad else values
    bits = underflow_bits(x.dtype)
    out, stats = kernels.associate(x, pat, val, 0, pat.shape[0], bits, beta * LOG2E, True)
    return out, (stats[:, 1] + torch.log2(stats[:, 0])).mul_(math.log(2.0)) if need_lse else None, None


def _split_stats(acc: Tensor, stats: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """A compiled part's ``(numerator, stats)`` as ``(numerator, denominator, maximum)``."""
    return acc, stats[:, :1], stats[:, 1:]


def _chunks(
    fold: Fold,
    x: Tensor,
    pat: Tensor,
    val: Tensor,
    mask: Tensor | None,
    chunk: int,
    lo: int,
    hi: int,
    inplace: bool,
    kernels: ModuleType | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The chunks of patterns ``lo`` to ``hi``: ``(numerator, denominator, running maximum)`` (base 2); in place
    with ``kernels`` (:mod:`assocmem.engines.fused_softmax`), :func:`_compiled_chunks`."""
    if inplace and kernels is not None:
        return _compiled_chunks(kernels, (chunk, lo, hi), fold, x, pat, val, mask)
    dtype, device = x.dtype, x.device
    rows = math.prod(x.shape[:-1])  # x: (*own, rows, d), or a part of its rows or items
    floor = -float(underflow_bits(dtype))
    stat = (*x.shape[:-1], 1)
    starts = range(lo, hi, chunk)
    group = min(GROUP, len(starts), max(1, chunk // val.shape[-1]))  # partial results: no larger than a chunk
    if (
        inplace
    ):  # buffers for the whole call (no allocation, nor page faults, per chunk), their views made once
        scores = torch.empty(rows * chunk, dtype=dtype, device=device)
        full = scores.view(*stat[:-1], chunk)
        top = torch.empty(stat, dtype=dtype, device=device)
        maxima = torch.empty(group, *stat, dtype=dtype, device=device)
        sums = torch.empty(group, *stat, dtype=dtype, device=device)
        outs = torch.empty(group, *stat[:-1], val.shape[-1], dtype=dtype, device=device)
        each = list(zip(maxima.unbind(0), sums.unbind(0), outs.unbind(0), strict=True))
    running = torch.full(stat, torch.finfo(dtype).min, dtype=dtype, device=device)
    merged: tuple[Tensor, Tensor, Tensor] | None = None
    parts: list[tuple[Tensor, Tensor, Tensor]] = []
    pat_t = pat.transpose(-1, -2)
    for i, start in enumerate(starts):
        stop = min(start + chunk, hi)
        g = i % group
        if inplace:
            s = (
                full
                if stop - start == chunk
                else scores[: rows * (stop - start)].view(*stat[:-1], stop - start)
            )
            torch.matmul(x, pat_t[..., start:stop], out=s)
        else:
            s = x @ pat_t[..., start:stop]
        if mask is not None:
            m = mask[..., start:stop] if mask.shape[-1] != 1 else mask
            if inplace:
                fold.unfold(s).add_(m, alpha=LOG2E)
            else:
                s = s + fold.fold(m * LOG2E)
        if inplace:
            r, sm, o = each[g]
            torch.amax(s, -1, keepdim=True, out=top)
            running = torch.maximum(running, top, out=r)
            F.threshold_(s.sub_(running), floor, -math.inf).exp2_()
            torch.sum(s, -1, keepdim=True, out=sm)
            torch.matmul(s, val[..., start:stop, :], out=o)
        else:  # the same operations, out of place, for autograd (the maximum is a constant shift: detached)
            running = torch.maximum(running, s.detach().amax(-1, keepdim=True))
            s = torch.exp2(F.threshold(s - running, floor, -math.inf))
            parts.append((running, s.sum(-1, keepdim=True), s @ val[..., start:stop, :]))
        if g == group - 1 or stop == hi:
            if inplace:
                merged = _merge(merged, maxima[: g + 1], sums[: g + 1], outs[: g + 1])
            else:
                merged = _merge(merged, *(torch.stack(t) for t in zip(*parts, strict=True)))
                parts = []
    assert merged is not None
    return merged


def _compiled_chunks(
    kernels: ModuleType,
    span: tuple[int, ...],
    fold: Fold,
    x: Tensor,
    pat: Tensor,
    val: Tensor,
    mask: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`_chunks` in place with the compiled kernels, ``span = (chunk, lo, hi)``: per chunk the two products
    and one compiled call for the maximum, the weights and their sum
    (:func:`~assocmem.engines.fused_softmax.weigh_chunk`), and one compiled call per :data:`GROUP` chunks to merge
    them (:func:`~assocmem.engines.fused_softmax.merge_slots`): about three calls per chunk where PyTorch's
    operations make eight, and few buffers (a small call notices each)."""
    (chunk, lo, hi), dtype, stat, dv = span, x.dtype, (*x.shape[:-1], 1), val.shape[-1]
    rows = math.prod(stat)
    starts = range(lo, hi, chunk)
    group = min(GROUP, len(starts), max(1, chunk // dv))  # partial results: no larger than a chunk
    scores = torch.empty(rows * chunk, dtype=dtype)
    outs = torch.empty(group, *stat[:-1], dv, dtype=dtype)
    merged = torch.empty(*stat[:-1], dv + 2, dtype=dtype)  # the numerator, the denominator, the maximum
    flat, slots, kind = scores.numpy(), outs.unbind(0), kernels.NUMPY_DTYPES[dtype]
    outs_np, merged_np = outs.numpy().reshape(group, rows, dv), merged.numpy().reshape(rows, dv + 2)
    running = np.full(rows, torch.finfo(dtype).min, dtype=kind)
    maxima, sums = np.empty((group, rows), dtype=kind), np.empty((group, rows), dtype=kind)
    bits, first = kind(-underflow_bits(dtype)), True
    pat_t = pat.transpose(-1, -2)
    for i, start in enumerate(starts):
        stop = min(start + chunk, hi)
        g = i % group
        n = stop - start
        s = scores[: rows * n].view(*stat[:-1], n)
        torch.matmul(x, pat_t[..., start:stop], out=s)
        if mask is not None:
            fold.unfold(s).add_(mask[..., start:stop] if mask.shape[-1] != 1 else mask, alpha=LOG2E)
        kernels.weigh_chunk(flat, n, running, maxima, sums, g, bits)
        torch.matmul(s, val[..., start:stop, :], out=slots[g])
        if g == group - 1 or stop == hi:
            kernels.merge_slots(maxima, sums, outs_np, g + 1, merged_np, first)
            first = False
    return merged[..., :dv], merged[..., dv : dv + 1], merged[..., dv + 1 :]


#: Held while a call runs its parts on threads of its own (one call at a time; another runs as it is).
_SPLIT = threading.Lock()


def in_threads(work: list[Callable[[], T]], *, torch_ops: bool = True) -> list[T]:
    """Run the parts on this thread and helpers (:func:`assocmem.pool.run_claimed`: each part claimed by one thread,
    this one computing whatever nobody has claimed, and a part a helper still holds :data:`PATIENCE` after this
    thread is done), each part's operations on that one thread; ``torch_ops=False``: the parts are compiled loops
    (PyTorch's thread count left as it is). Each part returns new tensors (nothing shared that a late helper
    could write into).

    With PyTorch's threads every operation on a chunk is a parallel region that ends at a barrier; on a loaded
    machine each barrier waits for a thread the machine has descheduled (milliseconds, for microseconds of work:
    ``benchmarks/timing.py``'s probe). Contiguous parts of the memory on threads of their own meet once, at the
    end; a memory too small to split (one part) runs on this thread alone, with no barrier at all. PyTorch's thread
    count is process-wide: it is 1 for the call's duration and restored after (a call made meanwhile from another
    thread runs its parts one after the other, as it is)."""
    if len(work) == 1 and not torch_ops:
        return [work[0]()]
    # one part on this thread alone: PyTorch's threads would meet at a barrier per operation
    if len(work) == 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return [work[0]()]
        finally:
            torch.set_num_threads(threads)
    if not _SPLIT.acquire(blocking=False):
        return [w() for w in work]
    threads, inference = torch.get_num_threads(), torch.is_inference_mode_enabled()
    results: list[T | None] = [None] * len(work)

    def compute(i: int) -> None:
        results[i] = work[i]()

    gate, call = threading.Lock(), [True]  # whether the call is still running (a helper may start late)

    def helper(i: int) -> None:  # grad mode and PyTorch's thread count are the helper thread's own
        with gate:
            if not call[0]:  # the caller computed this part itself and went on: nothing to do
                return
            if torch_ops and torch.get_num_threads() != 1:
                torch.set_num_threads(1)  # (process-wide, 1 for the call's duration anyway)
        with torch.inference_mode(inference), torch.no_grad():
            results[i] = work[i]()

    try:
        if torch_ops:
            torch.set_num_threads(1)
        run_claimed(len(work), compute, helper, min(threads, len(work)), patience=PATIENCE)
    finally:
        with gate:
            call[0] = False
            if torch_ops:
                torch.set_num_threads(threads)
        _SPLIT.release()
    return list(results)  # type: ignore[arg-type]  (a copy: a late helper writes only into its own list)


def _combine(parts: list[tuple[Tensor, Tensor, Tensor]]) -> tuple[Tensor, Tensor, Tensor]:
    """Merge whole parts, each ``(numerator, denominator, maximum)`` relative to its own maximum."""
    if len(parts) == 1:
        return parts[0]
    top = parts[0][2]
    for _, _, r in parts[1:]:
        top = torch.maximum(top, r)
    acc = den = None
    for a, d, r in parts:
        scale = torch.exp2(r - top)
        acc = a * scale if acc is None else acc + a * scale
        den = d * scale if den is None else den + d * scale
    assert acc is not None and den is not None
    return acc, den, top


def _whole(
    fold: Fold,
    x: Tensor,
    pat: Tensor,
    val: Tensor,
    mask: Tensor | None,
    inplace: bool,
    need_lse: bool,
    need_weights: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """:func:`stream` in one chunk (``x`` scaled by ``beta``): the fewest operations, for small memories and the
    whole association matrix. Without the log-partition or the weights it is ``torch.softmax`` (one fused kernel,
    as fast as ``exp2`` whatever the scores) with the weights below ``2^-b`` set to 0; the bound of the chunks
    holds (a dropped weight is below ``2^-b`` of the sum, hence of the largest weight times ``K``). A row that the
    mask hides entirely gets ``out = 0``, ``lse = -inf`` and weights 0, with zero gradients (an empty part)."""
    s = (
        F.linear(x, pat) if pat.dim() == 2 else x @ pat.transpose(-1, -2)
    )  # linear: no transposed view to make
    empty = None
    if mask is not None:
        if inplace:
            fold.unfold(s).add_(mask)
        else:
            s = s + fold.fold(mask)
    floor = -float(underflow_bits(s.dtype))
    if not (need_lse or need_weights) and (inplace or mask is None):
        if (
            mask is not None
        ):  # softmax makes NaN of a row hidden entirely (the only -inf maxima of finite input)
            empty = torch.isneginf(torch.amax(s, -1, keepdim=True))
        if inplace:
            torch.softmax(s, -1, out=s)
            out = torch.matmul(F.threshold_(s, 2.0**floor, 0.0), val)
            return fold.unfold(out if empty is None else out.masked_fill_(empty, 0.0)), None, None
        w = F.threshold(torch.softmax(s, -1), 2.0**floor, 0.0)
        return fold.unfold(w @ val), None, None
    top = s.detach().amax(-1, keepdim=True)
    if mask is not None:  # exp2(-inf - 0) = 0 over a hidden row, then den = 1 stands in for its 0
        empty = torch.isneginf(top)
        top.masked_fill_(empty, 0.0)
    if inplace:
        F.threshold_(s.sub_(top).mul_(LOG2E), floor, -math.inf).exp2_()
    else:
        s = torch.exp2(F.threshold((s - top) * LOG2E, floor, -math.inf))
    den = s.sum(-1, keepdim=True)
    if empty is not None:
        den = den.masked_fill_(empty, 1.0) if inplace else den.masked_fill(empty, 1.0)
    out = fold.unfold(torch.matmul(s, val).div_(den) if inplace else (s @ val) / den)
    lse = None
    if need_lse:
        lse = top + torch.log(den)
        lse = fold.unfold(lse if empty is None else lse.masked_fill(empty, -math.inf)).squeeze(-1)
    weights = fold.unfold(s.div_(den) if inplace else s / den) if need_weights else None
    return out, lse, weights


def _merge(
    merged: tuple[Tensor, Tensor, Tensor] | None, maxima: Tensor, sums: Tensor, outs: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Merge ``g`` partial results, each relative to its running maximum ``maxima[i]`` (the last is the largest),
    into ``merged = (numerator, denominator, maximum)``, relative to the last maximum. The sums are of values of
    at most 1 times a power of 2 <= 1: nothing overflows."""
    last = maxima[-1]
    if maxima.shape[0] == 1:  # copies: the buffers are reused by the next chunks
        acc, den = outs[0].clone(), sums[0].clone()
    else:
        scale = torch.exp2(maxima - last)
        acc, den = (outs * scale).sum(0), (sums * scale).sum(0)
    if merged is not None:
        scale = torch.exp2(merged[2] - last)
        acc, den = acc + merged[0] * scale, den + merged[1] * scale
    return acc, den, last.clone()
