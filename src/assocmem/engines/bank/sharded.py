"""A memory bank whose rows are spread over the ranks of a ``torch.distributed`` process group (docs/bank.md,
"Sharded banks").

Every rank holds a contiguous block of rows (:func:`shard_bounds`) and the same queries. One association over the
whole bank (docs/reference.md §2) is each rank's association over its own rows, with its log-partition
(:func:`assocmem.engines.association.associate`), merged exactly (docs/reference.md §8,
:mod:`assocmem.engines.bank.merge`) by two collectives:

1. ``all_gather`` of every rank's log-partitions ``lse_s (B,)`` (with a fingerprint of the queries and ``beta``,
   so that a rank called with other queries is an error on every rank, not a wrong answer on some): every rank
   computes ``lse = log sum_s exp(lse_s)`` and its own share ``w_s = exp(lse_s - lse)``;
2. ``all_reduce`` (sum) of ``w_s out_s (B, d_v)``: every rank holds the same answer, bit for bit, so the next
   step of a retrieval starts from the same queries everywhere.

Gradients flow through both (custom autograd functions): the backward pass all-reduces the gradient of the
answer (the mean over ranks, DistributedDataParallel's convention) and sums each rank's part of the gradient of
the queries and ``beta``. The gradients of the rows stay on their rank (they are not replicated: keep them out of
DistributedDataParallel, docs/bank.md).

A rank that dies makes the others' next collective fail at once (the connection closes); one that stalls makes
them fail after the group's timeout. Either way every other rank raises :class:`ShardError` and none returns a
partial answer. Backends: gloo for CPU tensors (tested), NCCL for CUDA tensors (written for, untested here).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor
from torch.autograd.function import FunctionCtx

from assocmem.checks import is_count, positive_float, require_like, require_tensor
from assocmem.engines.association import associate
from assocmem.engines.bank.backend import Backend
from assocmem.engines.bank.merge import shares
from assocmem.engines.retrieval import _check

#: Seconds a collective of a bank's own process group waits for the other ranks before it fails.
DEFAULT_TIMEOUT = 120.0

#: The dtypes a bank's rows may have, numbered for the agreement check of :meth:`ShardedBackend.from_rows`.
_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
#: Same-width integer views of those dtypes: the queries' fingerprint sums their bits exactly (integer sums wrap).
_BITS = {
    torch.float64: torch.int64,
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}


class ShardError(RuntimeError):
    """A collective of a sharded bank did not complete: another rank died, stalled past the timeout or made a
    different call. No partial answer is returned; the process group cannot be used again (end the process)."""


def shard_bounds(size: int, world: int, rank: int) -> tuple[int, int]:
    """The rows ``[lo, hi)`` of a bank of ``size`` rows that rank ``rank`` of ``world`` holds: contiguous blocks
    in rank order whose sizes differ by at most one (``lo = size * rank // world``)."""
    if not is_count(size):
        raise ValueError(f"shard_bounds: size must be an int >= 1 (rows in the bank), got {size!r}")
    if not is_count(world):
        raise ValueError(f"shard_bounds: world must be an int >= 1 (ranks in the group), got {world!r}")
    if not (is_count(rank, 0) and rank < world):
        raise ValueError(f"shard_bounds: rank must be an int in [0, world) = [0, {world}), got {rank!r}")
    if world > size:
        raise ValueError(f"shard_bounds: {world} ranks for {size} rows: every rank needs at least one row")
    return size * rank // world, size * (rank + 1) // world


class ShardedBackend(Backend):
    """This rank's rows of a bank spread over a process group; :meth:`associate` covers every row of every rank.

    Made by :meth:`from_rows` (this rank's rows) or :meth:`load` (this rank's block of a saved bank), on every
    rank of the group at once. Attributes: ``ids``, ``patterns``, ``values`` (this rank's rows, ``values`` None
    when the bank stores none), ``offset`` (the bank position of this rank's first row), ``size``, ``dim``,
    ``value_dim`` (of the whole bank), ``local_range`` (this rank's ``[lo, hi)``), ``rank``, ``world`` and
    ``group``.
    """

    def __init__(
        self, ids: Tensor, patterns: Tensor, values: Tensor | None, group: object, timeout: float | None
    ) -> None:
        self.ids, self.patterns, self.values, self.group, self.timeout = ids, patterns, values, group, timeout
        self.rank, self.world = dist.get_rank(group), dist.get_world_size(group)
        self.dim = patterns.shape[1]
        self.value_dim = self.dim if values is None else values.shape[1]
        dtype = _DTYPES.index(patterns.dtype)
        meta = torch.tensor(
            [
                patterns.shape[0],
                self.dim,
                self.value_dim,
                values is not None,
                dtype,
                patterns.device.type == "cuda",
            ],
            dtype=torch.int64,
            device=patterns.device,
        )
        every = self._gather(meta, "the agreement on the bank's shape")
        rows = every[:, 0].tolist()
        for name, column in (("dim", 1), ("value_dim", 2), ("values", 3), ("dtype", 4), ("device type", 5)):
            differ = (every[:, column] != every[0, column]).nonzero()
            if len(differ):
                r = int(differ[0])
                raise ValueError(
                    f"ShardedBackend: the ranks' rows disagree on {name}: rank 0 has {every[0].tolist()[1:]} and "
                    f"rank {r} {every[r].tolist()[1:]} ([d, d_v, values, dtype, cuda]); every rank must hold "
                    f"rows of one bank"
                )
        if min(rows) == 0:
            raise ValueError(
                f"ShardedBackend: rank {rows.index(0)} holds no row (rows per rank {rows}); every rank needs one"
            )
        self.size = sum(rows)
        self.offset = sum(rows[: self.rank])

    @classmethod
    def from_rows(
        cls,
        ids: Tensor,
        patterns: Tensor,
        values: Tensor | None = None,
        group: object = None,
        timeout: float | None = None,
    ) -> ShardedBackend:
        """A sharded bank from this rank's rows: ``ids (k,)`` (int64, distinct), ``patterns (k, d)`` and
        ``values (k, d_v)`` (or None). Call it on every rank of ``group`` at once (it is collective).

        ``group``: the process group (None: a new group of every rank of the default one, made with ``timeout``
        seconds, default :data:`DEFAULT_TIMEOUT`, for every collective of the bank; a given group keeps the
        timeout it was made with). The tensors are held, not copied: a ``patterns`` that requires grad
        receives its rows' gradients. Every rank must hold at least one row, of one width, dtype and device type.
        """
        who = "ShardedBackend.from_rows"
        patterns = require_tensor(patterns, "patterns", who)
        if patterns.dim() != 2 or patterns.shape[0] == 0 or patterns.shape[1] == 0:
            raise ValueError(
                f"{who}: patterns must have shape (k, d) with k, d > 0, got {tuple(patterns.shape)}"
            )
        if patterns.dtype not in _DTYPES:
            raise TypeError(
                f"{who}: patterns must be float64, float32, float16 or bfloat16, got {patterns.dtype}"
            )
        ids = require_tensor(ids, "ids", who, floating=False)
        if ids.dtype != torch.int64 or ids.shape != patterns.shape[:1]:
            raise ValueError(
                f"{who}: ids must be an int64 tensor of shape ({patterns.shape[0]},) (one per row), got "
                f"{ids.dtype} {tuple(ids.shape)}"
            )
        if len(torch.unique(ids)) != len(ids):
            raise ValueError(f"{who}: ids holds duplicates; every row needs its own id")
        if values is not None:
            values = require_tensor(values, "values", who)
            if values.dim() != 2 or values.shape[0] != patterns.shape[0] or values.shape[1] == 0:
                raise ValueError(
                    f"{who}: values must have shape ({patterns.shape[0]}, d_v) with d_v > 0, got "
                    f"{tuple(values.shape)}"
                )
            require_like(values, "values", patterns, "patterns", who)
        for name, t in (("patterns", patterns), ("values", values)):
            # a finite sum proves every value finite (no temporary the size of the rows); else look in blocks
            if t is not None and not bool(torch.isfinite(t.detach().sum())):
                if any(not bool(torch.isfinite(b).all()) for b in t.detach().split(1 << 16)):
                    raise ValueError(f"{who}: {name} holds NaN or Inf; every row must be finite")
        return cls(ids, patterns, values, *_group(who, group, timeout))

    @classmethod
    def load(
        cls,
        path: str | Path,
        group: object = None,
        timeout: float | None = None,
        *,
        joint: bool = False,
        dtype: torch.dtype | None = None,
    ) -> ShardedBackend:
        """This rank's block of rows (:func:`shard_bounds`) of a bank saved by
        :meth:`~assocmem.engines.bank.MemoryBank.save`, on every rank of ``group`` at once: each rank reads only
        the shards that hold its rows, so a bank saved from one process (or any number of ranks) loads on any
        number. ``joint``: read out ``[xi | v]`` (a :class:`~assocmem.engines.bank.MemoryBank` with values keeps
        its states and values in one association); ``dtype``: the rows' dtype (default: the stored one, float32
        for int8). ``group`` and ``timeout`` as in :meth:`from_rows`."""
        who = "ShardedBackend.load"
        if not isinstance(path, (str, Path)):
            raise TypeError(f"{who}: path must be a str or pathlib.Path, got {type(path).__name__}")
        from assocmem.engines.bank.storage import read_manifest, read_rows  # safetensors shards + manifest

        size = read_manifest(path)["size"]
        group, seconds = _group(who, group, timeout)
        lo, hi = shard_bounds(size, dist.get_world_size(group), dist.get_rank(group))
        ids, patterns, values = read_rows(path, lo, hi, dtype=dtype)
        if joint and values is not None:
            values = torch.cat([patterns, values], 1)
        return cls(ids, patterns, values, group, seconds)

    def associate(
        self, queries: Tensor, beta: float | Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``softmax(beta q xi^T + mask) V`` over every row of every rank, with its log-partition (natural log):
        ``(out (B, d_v), lse (B,))``, the same on every rank (docs/reference.md §2, merged as §8).

        ``queries (B, d)`` and ``beta`` (a positive float, or a tensor broadcastable to ``(B, 1)``) must be the
        same on every rank (checked: a difference is a ValueError on every rank); ``mask`` covers this rank's
        rows, ``(B, k)`` (boolean, True: the row takes part; or float, added to the scores). A query hidden from
        every row of every rank is an error. Call it on every rank at once; if another rank died or stalled past
        the timeout, this raises :class:`ShardError`. Differentiable in the queries, the rows and ``beta``. An
        empty batch (on every rank) is an empty answer.
        """
        who = "ShardedBackend.associate"
        if not isinstance(queries, Tensor) or queries.dim() != 2:
            got = tuple(queries.shape) if isinstance(queries, Tensor) else type(queries).__name__
            raise ValueError(f"{who}: queries must have shape (B, d) = (B, {self.dim}), got {got}")
        m, b = _check(who, self.patterns, queries, self.values, beta, None, mask)
        if queries.shape[0] == 0:  # an empty batch (on every rank): an empty answer, no collective
            return queries.new_empty((0, self.value_dim)), queries.new_empty((0,))
        values = self.patterns if self.values is None else self.values
        needs = [
            t for t in (queries, b) if isinstance(t, Tensor) and t.requires_grad and torch.is_grad_enabled()
        ]
        train = torch.is_grad_enabled() and any(
            isinstance(t, Tensor) and t.requires_grad for t in (queries, b, self.patterns, self.values)
        )
        stamp = _fingerprint(queries, beta, train)
        if needs:
            replicated = dict(zip([id(t) for t in needs], _Replicated.apply(self, *needs), strict=True))
            queries = replicated.get(id(queries), queries)
            b = replicated.get(id(b), b)
        # a query this rank's mask hides from every row: out_s 0, lse_s -inf (a share of 0), zero gradients
        out_s, lse_s, _ = associate(queries, self.patterns, values, b, m, need_lse=True)
        out, lse = _Merge.apply(out_s, lse_s, stamp, self)
        if torch.isneginf(lse).any():
            row = int(torch.isneginf(lse).nonzero()[0])
            raise ValueError(f"{who}: the masks of every rank hide every row of the bank from query {row}")
        if not bool(torch.isfinite(out.detach()).all()):
            raise ValueError(
                f"{who}: the result holds NaN or Inf: the queries, beta or some rank's rows hold NaN or Inf, or "
                f"the scores beta * xi . q overflowed {queries.dtype} (lower beta or compute in float64)"
            )
        return out, lse

    @property
    def local_range(self) -> tuple[int, int]:
        """The bank positions ``[lo, hi)`` of this rank's rows (the columns of a whole bank's mask it takes)."""
        return self.offset, self.offset + self.patterns.shape[0]

    def gather(self, queries: Tensor) -> tuple[Tensor, slice]:
        """Every rank's ``queries (B_r, d)`` stacked in rank order, ``(sum_r B_r, d)``, and the slice of this
        rank's rows in it: how data-parallel training (each rank its own batch) asks a sharded bank, whose
        :meth:`associate` takes the same queries on every rank. Call it on every rank at once. Differentiable:
        the gradient of a rank's queries is the sum over ranks of the gradient of its rows (a reduce-scatter), so
        that DistributedDataParallel's mean over ranks gives the gradient of the mean loss (docs/bank.md).
        """
        who = "ShardedBackend.gather"
        queries = require_tensor(queries, "queries", who)
        if queries.dim() != 2 or queries.shape[1] != self.dim:
            raise ValueError(
                f"{who}: queries must have shape (B, d) = (B, {self.dim}), got {tuple(queries.shape)}"
            )
        require_like(queries, "queries", self.patterns, "patterns", who)
        counts = self._gather(
            torch.tensor([queries.shape[0]], dtype=torch.int64, device=queries.device),
            "the gathering of batch sizes",
        )[:, 0].tolist()
        if min(counts) == 0:
            raise ValueError(
                f"{who}: queries must hold at least one row on every rank; rank {counts.index(0)} has none "
                f"(queries per rank {counts})"
            )
        start = sum(counts[: self.rank])
        return _Gathered.apply(queries, self, counts), slice(start, start + queries.shape[0])

    def _collective(self, what: str, op: Callable[[], object]) -> None:
        """Run a collective of the bank's group; its failure becomes a :class:`ShardError` saying why."""
        try:
            op()
        except (
            RuntimeError
        ) as e:  # gloo: connection closed or reset by a peer, or timed out; NCCL: DistBackendError
            wait = "the group's timeout" if self.timeout is None else f"the timeout ({self.timeout:g} s)"
            raise ShardError(
                f"ShardedBackend: rank {self.rank} of {self.world} could not complete {what}: another rank died, "
                f"stalled past {wait} or made a different call. No partial answer is returned; the process group "
                f"cannot be used again: end this process (torchrun restarts the job). Cause: {e}"
            ) from e

    def _gather(self, row: Tensor, what: str) -> Tensor:
        """Every rank's ``row`` stacked in rank order, ``(world, *row.shape)``."""
        parts = [torch.empty_like(row) for _ in range(self.world)]
        self._collective(what, lambda: dist.all_gather(parts, row.contiguous(), group=self.group))
        return torch.stack(parts)

    def _sum(self, t: Tensor, what: str) -> Tensor:
        """The sum over ranks of ``t`` (a new tensor)."""
        t = t.contiguous().clone()
        self._collective(what, lambda: dist.all_reduce(t, group=self.group))
        return t

    def __repr__(self) -> str:
        return (
            f"ShardedBackend(size={self.size}, dim={self.dim}, value_dim={self.value_dim}, rank={self.rank}, "
            f"world={self.world}, rows=[{self.offset}, {self.offset + self.patterns.shape[0]}))"
        )


def _group(who: str, group: object, timeout: object) -> tuple[object, float | None]:
    """The process group of a bank and its timeout in seconds (None: a given group's own)."""
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            f"{who}: torch.distributed is not initialized: start the ranks with torchrun (docs/bank.md) and call "
            f"torch.distributed.init_process_group() on each before making a sharded bank"
        )
    if group is not None:
        if timeout is not None:
            raise ValueError(f"{who}: timeout applies to the group the bank makes (group=None); a given group "
                             f"keeps the timeout it was made with")  # fmt: skip
        if not isinstance(group, dist.ProcessGroup):
            raise TypeError(f"{who}: group must be a torch.distributed.ProcessGroup or None, got {group!r}")
        return group, None
    seconds = DEFAULT_TIMEOUT if timeout is None else positive_float(timeout, "timeout (seconds)", who)
    # the rendezvous waits for ranks that arrive late (loading their rows) at least DEFAULT_TIMEOUT; then every
    # collective of the bank waits `seconds` (torch >= 2.4 sets a group's timeout; before, the group keeps the
    # longer one)
    rendezvous = datetime.timedelta(seconds=max(seconds, DEFAULT_TIMEOUT))
    group = dist.new_group(timeout=rendezvous)
    set_timeout = getattr(dist.distributed_c10d, "_set_pg_timeout", None)
    if set_timeout is not None:
        set_timeout(datetime.timedelta(seconds=seconds), group)
    return group, seconds


def _fingerprint(queries: Tensor, beta: float | Tensor, train: bool) -> Tensor:
    """Four int64 numbers that differ between ranks when their queries, ``beta`` or training mode differ: exact
    integer sums (wrapping) of the values' bits, plain and weighted by position."""
    q = queries.detach().contiguous().view(_BITS[queries.dtype]).to(torch.int64).reshape(-1)
    at = torch.arange(1, q.numel() + 1, device=q.device, dtype=torch.int64)
    if isinstance(beta, Tensor):
        bb = beta.detach().contiguous().view(_BITS[beta.dtype]).to(torch.int64).reshape(-1)
        b = (bb * torch.arange(1, bb.numel() + 1, device=q.device)).sum() + bb.numel()
    else:
        b = torch.tensor([float(beta)], dtype=torch.float64).view(torch.int64)[0].to(q.device)
    return torch.stack([q.sum(), (q * at).sum(), b, torch.tensor(int(train), device=q.device)])


class _Merge(torch.autograd.Function):
    """The exact merge over ranks (docs/reference.md §8) as a differentiable function of this rank's partial
    ``(out_s, lse_s)``; its backward all-reduces the gradient of the answer (mean over ranks)."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, out_s: Tensor, lse_s: Tensor, stamp: Tensor, shard: ShardedBackend
    ) -> tuple[Tensor, Tensor]:
        B = lse_s.shape[0]
        row = torch.cat([lse_s.detach().to(torch.float64), stamp.view(torch.float64)])
        parts = shard._gather(row, "the gathering of the partial log-partitions")
        stamps = parts[:, B:].contiguous().view(torch.int64)
        differ = (stamps != stamps[0]).any(1).nonzero()
        if len(differ):
            raise ValueError(
                f"ShardedBackend.associate: rank {int(differ[0])} was called with other queries, beta or gradient "
                f"mode than rank 0; every rank must take the same queries (gather a data-parallel batch first: "
                f"docs/bank.md)"
            )
        lse, weights = shares(parts[:, :B])
        w = weights[shard.rank].to(out_s.dtype)
        out = shard._sum(w.unsqueeze(-1) * out_s.detach(), "the sum of the weighted partial associations")
        ctx.shard = shard
        ctx.save_for_backward(w, out_s.detach(), out)
        return out, lse.to(lse_s.dtype)

    @staticmethod
    def backward(ctx: FunctionCtx, g_out: Tensor, g_lse: Tensor) -> tuple[Tensor, Tensor, None, None]:
        w, out_s, out = ctx.saved_tensors
        shard = ctx.shard
        g = shard._sum(
            torch.cat([g_out, g_lse.unsqueeze(-1)], -1), "the backward sum of the answer's gradient"
        )
        g = g / shard.world
        g_out, g_lse = g[:, :-1], g[:, -1]
        return w.unsqueeze(-1) * g_out, w * (g_lse + (g_out * (out_s - out)).sum(-1)), None, None


class _Replicated(torch.autograd.Function):
    """The identity on tensors every rank holds the same (the queries, ``beta``); its backward sums the ranks'
    parts of their gradient (each rank's rows contribute their own)."""

    @staticmethod
    def forward(ctx: FunctionCtx, shard: ShardedBackend, *tensors: Tensor) -> tuple[Tensor, ...]:
        ctx.shard = shard
        return tuple(t.view_as(t) for t in tensors)

    @staticmethod
    def backward(ctx: FunctionCtx, *grads: Tensor) -> tuple[Tensor | None, ...]:
        flat = ctx.shard._sum(
            torch.cat([g.reshape(-1) for g in grads]), "the backward sum of the queries' gradient"
        )
        return (
            None,
            *(f.view_as(g) for f, g in zip(flat.split([g.numel() for g in grads]), grads, strict=True)),
        )


class _Gathered(torch.autograd.Function):
    """Every rank's rows stacked in rank order (padded to the longest for the collective); its backward sums the
    ranks' gradients of the stack and returns this rank's rows (a reduce-scatter)."""

    @staticmethod
    def forward(ctx: FunctionCtx, rows: Tensor, shard: ShardedBackend, counts: list[int]) -> Tensor:
        top = max(counts)
        padded = rows.detach().new_zeros((top, rows.shape[1]))
        padded[: rows.shape[0]] = rows.detach()
        every = shard._gather(padded, "the gathering of the ranks' queries")
        ctx.shard, ctx.start, ctx.count = shard, sum(counts[: shard.rank]), rows.shape[0]
        return torch.cat([every[r, :n] for r, n in enumerate(counts)])

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor, None, None]:
        total = ctx.shard._sum(grad, "the backward sum of the gathered queries' gradient")
        return total[ctx.start : ctx.start + ctx.count], None, None
