"""Saving a sharded bank: every rank writes its own rows, rank 0 the manifest (docs/bank-sharded.md, "Saving").

The format is the one of :mod:`assocmem.engines.bank.storage` (safetensors shards, a JSON manifest with their
sha256), so a bank saved on ``n`` ranks loads on any number (:meth:`ShardedBackend.load`) or in one process
(``MemoryBank.load(path, backend="local")``). The save is collective, in three steps, each closed by an
``all_gather_object`` of every rank's error (None when it succeeded), so that every rank raises when any failed:

1. rank 0 makes a temporary folder beside ``path`` and tells the others its name;
2. every rank writes its rows ``[offset, offset + k)`` into it (shards of ``shard_rows``), with their checksums;
3. rank 0 writes the manifest (every rank's shards) and puts the folder in place of ``path`` (renames).

On any failure rank 0 removes the temporary folder: ``path`` holds the old bank (if any) or nothing, never a
half-written one. The ranks must see one file system (the folder of ``path`` on every rank is the same).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from assocmem.engines.bank.rows import STORAGE
from assocmem.engines.bank.sharded import ShardedBackend
from assocmem.engines.bank.storage import (
    FORMAT,
    MANIFEST,
    SHARD_ROWS,
    VERSION,
    read_manifest,
    replace,
    sha256,
    target,
)
from assocmem.files import atomic_path, write_json
from assocmem.provenance import provenance


def save_sharded(bank: object, path: str | Path, shard_rows: int | None = None) -> Path:
    """Write the sharded ``bank`` (every rank's rows) to ``path``; call it on every rank of its group at once."""
    who = "MemoryBank.save"
    path = target(who, path, shard_rows)
    b = bank.backend
    if b.patterns.dtype not in STORAGE.values():
        raise ValueError(
            f"{who}: a sharded bank of {b.patterns.dtype} rows cannot be saved; the storage types are "
            f"{tuple(STORAGE)} (make the bank of float32 rows)"
        )

    def everyone(mine: object, what: str) -> list:
        out: list = [None] * b.world
        b._collective(what, lambda: dist.all_gather_object(out, mine, group=b.group))
        return out

    def agree(errors: list, what: str, tmp: Path | None) -> None:
        bad = [(r, e) for r, e in enumerate(errors) if e is not None]
        if bad:
            if b.rank == 0 and tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            r, e = bad[0]
            raise ValueError(
                f"{who}: rank {r} of {b.world} could not {what} ({e}); nothing was written at {path} (an old "
                f"bank there is kept)"
            )

    # 1. the temporary folder, made by rank 0
    made: tuple[str | None, str | None] = (None, None)
    if b.rank == 0:
        try:
            if path.exists() and not (path.is_dir() and (path / MANIFEST).exists()):
                raise ValueError(f"path {path} exists and is not a saved bank; choose a new folder")
            path.parent.mkdir(parents=True, exist_ok=True)
            made = (tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent), None)
        except (OSError, ValueError) as e:
            made = (None, str(e))
    name, error = everyone(made, "the agreement on a temporary folder")[0]
    agree([error], "make a temporary folder", None)
    tmp = Path(name)
    # 2. every rank its own rows
    shards: list[dict] = []
    error = None
    try:
        shards = _write_rows(bank, tmp, shard_rows or SHARD_ROWS)
    except Exception as e:  # reported to every rank: all of them raise
        error = f"{type(e).__name__}: {e}"
    written = everyone((shards, error), "the gathering of the written shards")
    agree([e for _, e in written], "write its rows", tmp)
    # 3. the manifest and the rename, by rank 0
    error = None
    if b.rank == 0:
        try:
            write_json(tmp / MANIFEST, {
                "format": FORMAT, "version": VERSION, "size": len(bank), "dim": bank.dim,
                "value_dim": bank.value_dim, "has_values": bank.has_values, "storage": _storage(b.patterns),
                "backend": "sharded", "search": {}, "ranks": b.world,
                "shards": [s for rows, _ in written for s in rows], "index": None, "provenance": provenance(),
            })  # fmt: skip
            replace(tmp, path)
        except Exception as e:  # reported to every rank: all of them raise
            error = f"{type(e).__name__}: {e}"
    agree(everyone(error, "the agreement on the manifest"), "write the manifest", tmp)
    return path


def load_sharded(cls: type, path: str | Path, search: dict) -> object:
    """This rank's block of rows of the bank saved at ``path``, as a bank of class ``cls`` (a
    :class:`~assocmem.engines.bank.MemoryBank`); ``search``: ``group`` and ``timeout``. Collective."""
    unknown = sorted(set(search) - {"group", "timeout"})
    if unknown:
        raise ValueError(
            f"MemoryBank.load: a sharded bank takes the options group and timeout, got {unknown}"
        )
    manifest = read_manifest(path)
    backend = ShardedBackend.load(path, joint=True, **search)
    bank = cls.on(backend, backend.ids, manifest["has_values"])
    bank.storage, bank.kind, bank.search = manifest["storage"], "sharded", dict(search)
    return bank


def _storage(t: torch.Tensor) -> str:
    return next(k for k, v in STORAGE.items() if v == t.dtype)


def _write_rows(bank: object, tmp: Path, step: int) -> list[dict]:
    """This rank's rows as shard files in ``tmp`` (named by their first row in the whole bank)."""
    b = bank.backend
    k = b.patterns.shape[0]
    values = None
    if bank.has_values:  # the backend reads out [xi | v]: the values are its last columns
        values = b.values[:, b.dim :]
    shards = []
    for lo in range(0, k, step):
        hi = min(lo + step, k)
        tensors = {"ids": bank.ids[lo:hi], "patterns": b.patterns[lo:hi]}
        if values is not None:
            tensors["values"] = values[lo:hi]
        tensors = {key: t.detach().cpu().contiguous() for key, t in tensors.items()}
        name = f"rows-{b.offset + lo:012d}.safetensors"
        with atomic_path(tmp / name) as t:
            save_file(tensors, t)
        shards.append({"file": name, "lo": b.offset + lo, "hi": b.offset + hi,
                       "bytes": (tmp / name).stat().st_size, "sha256": sha256(tmp / name)})  # fmt: skip
    return shards
