"""Rows of the bad-input table (tests/test_bad_input.py) for the sharded bank and its merge. The sharded bank's
cells run on a process group of one rank (gloo, in this process): the checks are each rank's own."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from assocmem.engines.bank import ShardedBackend, launch, merge, shard_bounds
from tests.bad_input_cases import INF, NAN, Bad, M, Q, Result, is_empty_of, meta, poke

IDS = torch.arange(M.shape[0])
OUTS, LSES = torch.randn(2, 3, 4), torch.randn(2, 3)
NO_TENSOR = "takes no tensor: options only"


def solo() -> ShardedBackend:
    """A bank of ``M`` on a process group of this one process (made the first time)."""
    if not dist.is_initialized():
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    return ShardedBackend.from_rows(IDS, M)


def ask(queries: torch.Tensor, beta: object = 1.0) -> object:
    return solo().associate(queries, beta)


def rows(**kw: object) -> object:
    solo()
    return ShardedBackend.from_rows(**{"ids": IDS, "patterns": M, **kw})


TABLE: dict[str, dict[str, Bad | Result | str]] = {
    "ShardedBackend.associate": {
        "nan": Bad(lambda: ask(poke(Q, NAN)), "queries"),
        "inf": Bad(lambda: ask(poke(Q, INF)), "queries"),
        "last_dim": Bad(lambda: ask(Q[:, :3]), "queries"),
        "rank": Bad(lambda: ask(Q[0]), "queries"),
        "empty": Result(lambda: ask(Q[:0])[0], is_empty_of((0, 4)), "an empty batch: an empty answer"),
        "dtype": Bad(lambda: ask(Q.double()), "queries"),
        "meta": Bad(lambda: ask(meta(Q)), "queries"),
        "option": Bad(lambda: ask(Q, -1.0), "beta"),
    },
    "ShardedBackend.from_rows": {
        "nan": Bad(lambda: rows(patterns=poke(M, NAN)), "patterns"),
        "inf": Bad(lambda: rows(values=poke(M, INF)), "values"),
        "last_dim": Bad(lambda: rows(values=M[:, :0]), "values"),
        "rank": Bad(lambda: rows(patterns=M[0]), "patterns"),
        "empty": Bad(lambda: rows(ids=IDS[:0], patterns=M[:0]), "patterns"),
        "dtype": Bad(lambda: rows(ids=IDS.float()), "ids"),
        "meta": Bad(lambda: rows(patterns=meta(M)), "patterns"),
        "option": Bad(lambda: rows(timeout=-1.0), "timeout"),
    },
    "ShardedBackend.gather": {
        "nan": "passes the queries on: associate checks their values (its nan row)",
        "inf": "passes the queries on: associate checks their values (its inf row)",
        "last_dim": Bad(lambda: solo().gather(Q[:, :3]), "queries"),
        "rank": Bad(lambda: solo().gather(Q[0]), "queries"),
        "empty": Bad(lambda: solo().gather(Q[:0]), "queries"),
        "dtype": Bad(lambda: solo().gather(Q.double()), "queries"),
        "meta": Bad(lambda: solo().gather(meta(Q)), "queries"),
        "option": "no option",
    },
    "ShardedBackend.load": {
        **{
            k: "reads a saved bank: the reader checks what it reads"
            for k in ("nan", "inf", "last_dim", "rank")
        },
        **{k: "reads a saved bank: the reader checks what it reads" for k in ("empty", "dtype", "meta")},
        "option": Bad(lambda: ShardedBackend.load(3), "path"),
    },
    "merge": {
        "nan": Bad(lambda: merge(OUTS, poke(LSES, NAN)), "lses"),
        "inf": Bad(lambda: merge(poke(OUTS, INF), LSES), "outs"),
        "last_dim": Bad(lambda: merge(OUTS[..., :0], LSES), "outs"),
        "rank": Bad(lambda: merge(OUTS[0, 0], LSES), "outs"),
        "empty": Bad(lambda: merge(OUTS[:0], LSES[:0]), "outs"),
        "dtype": Bad(lambda: merge(OUTS, LSES.double()), "lses"),
        "meta": Bad(lambda: merge(meta(OUTS), LSES), "outs"),
        "option": "no option: two tensors",
    },
    "shard_bounds": {
        **{k: NO_TENSOR for k in ("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta")},
        "option": Bad(lambda: shard_bounds(10, 2, 2), "rank"),
    },
    "launch": {
        **{k: NO_TENSOR for k in ("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta")},
        "option": Bad(lambda: launch(shard_bounds, 0), "world"),
    },
}

#: Options beyond each row's one ``option`` cell.
OPTIONS = {
    "ShardedBackend.from_rows-group": Bad(lambda: rows(group="all"), "group"),
    "ShardedBackend.from_rows-group-timeout": Bad(
        lambda: rows(group=dist.group.WORLD, timeout=1.0), "timeout"
    ),
    "shard_bounds-size": Bad(lambda: shard_bounds(0, 1, 0), "size"),
    "shard_bounds-world": Bad(lambda: shard_bounds(3, 4, 0), "rows"),
    "launch-threads": Bad(lambda: launch(shard_bounds, 2, threads=0), "threads"),
    "launch-timeout": Bad(lambda: launch(shard_bounds, 2, timeout=0), "timeout"),
    "merge-hidden": Bad(lambda: merge(OUTS, torch.full_like(LSES, float("-inf"))), "no row"),
}

#: Public names that take no tensor.
NO_TENSOR_INPUT = {
    "Backend": "abstract base (ShardedBackend is a row)",
    "Backend.associate": "abstract",
    "ShardedBackend": "made by ShardedBackend.from_rows or ShardedBackend.load (rows)",
    "ShardError": "an exception: holds a message",
    "LaunchError": "an exception: holds a message",
}
