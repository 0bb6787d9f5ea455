"""Rows of the bad-input table (tests/test_bad_input.py) for the memory banks (assocmem.engines.bank)."""

from __future__ import annotations

import torch

from assocmem.engines.bank import MemoryBank, read_rows
from tests.bad_input_cases import INF, NAN, Bad, M, Q, Result, is_empty_of, meta, poke

V = torch.randn(12, 3)
IDS = torch.arange(12)
NO_TENSOR = "takes a path and options, no tensor"


def bank(**kw) -> MemoryBank:
    return MemoryBank(M, **kw)


def with_values() -> MemoryBank:
    return MemoryBank(M, V)


def unchanged_size(out: object) -> bool:
    return out is None


TABLE = {
    "MemoryBank": {
        "nan": Bad(lambda: MemoryBank(poke(M, NAN)), "patterns"),
        "inf": Bad(lambda: MemoryBank(M, poke(V, INF)), "values"),
        "last_dim": Bad(lambda: MemoryBank(M, V[:, :0]), "values"),
        "rank": Bad(lambda: MemoryBank(M[0]), "patterns"),
        "empty": Bad(lambda: MemoryBank(M[:0]), "patterns"),
        "dtype": Bad(lambda: MemoryBank(M, V.double()), "values"),
        "meta": Bad(lambda: MemoryBank(meta(M)), "patterns"),
        "option": Bad(lambda: MemoryBank(M, backend="remote"), "backend"),
    },
    "MemoryBank.retrieve": {
        "nan": Bad(lambda: bank().retrieve(poke(Q, NAN)), "queries"),
        "inf": Bad(lambda: bank().retrieve(Q, beta=INF), "beta"),
        "last_dim": Bad(lambda: bank().retrieve(Q[:, :3]), "queries"),
        "rank": Bad(lambda: bank().retrieve(Q[0]), "queries"),
        "empty": Result(
            lambda: bank().retrieve(Q[:0]), is_empty_of((0, 4)), "an empty batch: an empty answer"
        ),
        "dtype": Bad(lambda: bank().retrieve(Q.double()), "queries"),
        "meta": Bad(lambda: bank().retrieve(meta(Q)), "queries"),
        "option": Bad(lambda: bank().retrieve(Q, steps=0), "steps"),
    },
    "MemoryBank.energy": {
        "nan": Bad(lambda: bank().energy(poke(Q, NAN)), "states"),
        "inf": Bad(lambda: bank().energy(Q, beta=-1.0), "beta"),
        "last_dim": Bad(lambda: bank().energy(Q[:, :3]), "states"),
        "rank": Bad(lambda: bank().energy(Q[None]), "states"),
        "empty": Result(lambda: bank().energy(Q[:0]), is_empty_of((0,)), "an empty batch: no energies"),
        "dtype": Bad(lambda: bank().energy(Q.double()), "states"),
        "meta": Bad(lambda: bank().energy(meta(Q)), "states"),
        "option": Bad(lambda: bank().energy(Q, mask=torch.ones(3, 5, dtype=torch.bool)), "mask"),
    },
    "MemoryBank.add": {
        "nan": Bad(lambda: bank().add(poke(Q, NAN)), "patterns"),
        "inf": Bad(lambda: with_values().add(Q, poke(V[:3], INF)), "values"),
        "last_dim": Bad(lambda: bank().add(Q[:, :3]), "patterns"),
        "rank": Bad(lambda: bank().add(Q[0]), "patterns"),
        "empty": Bad(lambda: bank().add(Q[:0]), "patterns"),
        "dtype": Bad(lambda: with_values().add(Q, V[:3].double()), "values"),
        "meta": Bad(lambda: bank().add(meta(Q)), "patterns"),
        "option": Bad(lambda: bank().add(Q, ids=torch.tensor([0, 1, 2])), "ids"),
    },
    "MemoryBank.remove": {
        "nan": "ids are integers: they hold no NaN (a float tensor is the dtype cell)",
        "inf": "ids are integers: they hold no Inf",
        "last_dim": Bad(lambda: bank().remove(IDS[:4, None]), "ids"),
        "rank": Bad(lambda: bank().remove(IDS[0]), "ids"),
        "empty": Result(lambda: bank().remove(IDS[:0]), unchanged_size, "no ids: nothing removed"),
        "dtype": Bad(lambda: bank().remove(IDS.float()), "ids"),
        "meta": Bad(lambda: bank().remove(meta(IDS)), "ids"),
        "option": Bad(lambda: bank().remove(torch.tensor([99])), "ids"),
    },
    "MemoryBank.on": {
        "nan": "ids are integers; the backend's rows were checked when it was made",
        "inf": "ids are integers; the backend's rows were checked when it was made",
        "last_dim": Bad(lambda: MemoryBank.on(bank().backend, IDS[:, None]), "ids"),
        "rank": Bad(lambda: MemoryBank.on(bank().backend, IDS[0]), "ids"),
        "empty": Bad(lambda: MemoryBank.on(bank().backend, IDS[:0]), "ids"),
        "dtype": Bad(lambda: MemoryBank.on(bank().backend, IDS.float()), "ids"),
        "meta": Bad(lambda: MemoryBank.on(bank().backend, meta(IDS)), "ids"),
        "option": Bad(lambda: MemoryBank.on("local", IDS), "backend"),
    },
    "MemoryBank.save": {
        **{k: NO_TENSOR for k in ("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta")},
        "option": Bad(lambda: bank().save("/nonexistent-assocmem/bank", shard_rows=0), "shard_rows"),
    },
    "MemoryBank.load": {
        **{k: NO_TENSOR for k in ("nan", "inf", "last_dim", "rank", "empty", "dtype", "meta")},
        "option": Bad(lambda: MemoryBank.load("/nonexistent-assocmem/bank"), "not a saved bank"),
    },
    "read_rows": {
        **{k: NO_TENSOR for k in ("nan", "inf", "last_dim", "rank", "empty", "meta")},
        "dtype": Bad(
            lambda: read_rows("/nonexistent-assocmem/bank", 0, 1, dtype=torch.int8), "not a saved bank"
        ),
        "option": Bad(lambda: read_rows("/nonexistent-assocmem/bank", 0, 1), "not a saved bank"),
    },
}

#: Results and the abstract contract: they take no tensor of their own.
NO_TENSOR_INPUT = {
    "BankRetrieval": "a result: holds tensors, takes none",
    "Certificate": "a result: holds tensors, takes none",
    "Backend": "abstract base (the local, candidate and sharded backends implement it)",
    "Backend.associate": "abstract",
}
