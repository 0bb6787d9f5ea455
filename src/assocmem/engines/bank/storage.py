"""A bank on disk: safetensors shards and a JSON manifest with their checksums (docs/bank.md, "Storage format").

A bank is a folder::

    manifest.json             format, version, size, dim, value_dim, storage, backend and its options,
                              the shards (file, first and last row, bytes, sha256), the index file, provenance
    rows-00000.safetensors    rows [lo, hi): ids (int64), patterns (the storage type), scale (int8 only),
                              values and values_scale (a bank with values)
    index.safetensors         a candidate backend's partition (centroids, radii, labels) and HNSW graph

Every file is written atomically (:func:`assocmem.files.atomic_path`) into a new folder beside ``path``, which
then takes the place of the old one; loading checks every file it reads against its sha256 and says which one is
damaged. :func:`read_rows` reads rows ``lo`` to ``hi`` only (the shards that hold them), so that each rank of a
sharded bank reads its own rows, whatever the number of ranks it was saved from.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from assocmem.checks import is_count
from assocmem.engines.bank.rows import STORAGE, Rows
from assocmem.files import atomic_path, read_checkpoint, write_json
from assocmem.provenance import provenance

FORMAT, VERSION = "assocmem.bank", 1
MANIFEST = "manifest.json"

#: Rows per shard file when none is given (2^22 rows: 256 MiB of int8 rows at d = 64).
SHARD_ROWS = 1 << 22


def sha256(path: Path) -> str:
    """The sha256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            h.update(block)
    return h.hexdigest()


def _rows_tensors(prefix: str, rows: Rows, lo: int, hi: int) -> dict[str, Tensor]:
    out = {prefix: rows.data[lo:hi].detach().contiguous()}
    if rows.scale is not None:
        out[f"{prefix}_scale"] = rows.scale[lo:hi].contiguous()
    return out


def save_bank(bank: object, path: str | Path, *, shard_rows: int | None = None) -> Path:
    """Write ``bank`` (a :class:`~assocmem.engines.bank.MemoryBank` on a local or candidate backend) to ``path``
    (a sharded bank: :func:`assocmem.engines.bank.sharded_storage.save_sharded`)."""
    who = "MemoryBank.save"
    path = target(who, path, shard_rows)
    local = bank._local(who)
    if path.exists() and not (path.is_dir() and (path / MANIFEST).exists()):
        raise ValueError(f"{who}: path {path} exists and is not a saved bank; choose a new folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        step = shard_rows or SHARD_ROWS
        shards = []
        for n, lo in enumerate(range(0, len(bank), step)):
            hi = min(lo + step, len(bank))
            tensors = {
                "ids": bank.ids[lo:hi].contiguous(),
                **_rows_tensors("patterns", local.patterns, lo, hi),
            }
            if local.values is not None:
                tensors.update(_rows_tensors("values", local.values, lo, hi))
            name = f"rows-{n:05d}.safetensors"
            with atomic_path(tmp / name) as t:
                save_file(tensors, t)
            shards.append({"file": name, "lo": lo, "hi": hi, "bytes": (tmp / name).stat().st_size,
                           "sha256": sha256(tmp / name)})  # fmt: skip
        index, options = None, {}
        b = bank.backend
        if b is not local:
            options = b.options()
            tensors = {}
            if b.partition is not None:
                p = b.partition
                tensors = {"centroids": p.centroids, "radii": p.radii, "labels": p.labels}
            if b.index == "hnsw":
                tensors["graph"] = torch.from_numpy(b.faiss.serialize_index(b.graph).copy())
            if tensors:
                with atomic_path(tmp / "index.safetensors") as t:
                    save_file(tensors, t)
                index = {"file": "index.safetensors", "sha256": sha256(tmp / "index.safetensors")}
        write_json(tmp / MANIFEST, {
            "format": FORMAT, "version": VERSION, "size": len(bank), "dim": bank.dim, "value_dim": bank.value_dim,
            "has_values": bank.has_values, "storage": local.patterns.storage,
            "backend": "local" if b is local else "candidates", "search": options, "shards": shards,
            "index": index, "provenance": provenance(),
        })  # fmt: skip
        replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def target(who: str, path: object, shard_rows: object) -> Path:
    """``path`` as a Path, with ``shard_rows`` checked: the arguments of a save."""
    if shard_rows is not None and not is_count(shard_rows):
        raise ValueError(f"{who}: shard_rows must be an int >= 1 or None, got {shard_rows!r}")
    if not isinstance(path, (str, Path)):
        raise TypeError(f"{who}: path must be a str or pathlib.Path, got {type(path).__name__}")
    return Path(path)


def replace(tmp: Path, path: Path) -> None:
    """Put the folder ``tmp`` at ``path`` (renames: an old bank there is removed only once the new one is in)."""
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        path.rename(old / path.name)
        tmp.rename(path)
        shutil.rmtree(old)
    else:
        tmp.rename(path)


def read_manifest(path: str | Path) -> dict:
    """The manifest of the bank at ``path``, checked for its format; a clear error when it is not a bank."""
    path = Path(path)
    file = path / MANIFEST
    if not file.is_file():
        raise ValueError(f"{path}: not a saved bank (no {MANIFEST})")
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{file}: not valid JSON ({err})") from err
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or manifest.get("version") != VERSION
    ):
        raise ValueError(f"{file}: not a bank manifest of format {FORMAT} version {VERSION}")
    return manifest


def _verified(path: Path, entry: dict) -> Path:
    file = path / entry["file"]
    if not file.is_file():
        raise ValueError(f"{file}: missing (named by {path / MANIFEST})")
    found = sha256(file)
    if found != entry["sha256"]:
        raise ValueError(
            f"{file}: checksum mismatch (sha256 {found}, the manifest says {entry['sha256']}): the file is damaged "
            f"or was changed after the bank was saved"
        )
    return file


def _read(file: Path, keys: list[str], lo: int, hi: int) -> dict[str, Tensor]:
    try:
        with safe_open(file, framework="pt") as f:
            return {k: f.get_slice(k)[lo:hi] for k in keys if k in f.keys()}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{file}: unreadable shard ({err})") from err


def _load_rows(path: Path, manifest: dict, lo: int, hi: int) -> tuple[Tensor, Rows, Rows | None]:
    """Rows ``lo`` to ``hi`` in their storage type (filled in place: no second copy of the bank)."""
    n, dim, storage = hi - lo, manifest["dim"], manifest["storage"]
    vdim = manifest["value_dim"]
    ids = torch.empty(n, dtype=torch.int64)
    data = torch.empty(n, dim, dtype=STORAGE[storage])
    scale = torch.empty(n) if storage == "int8" else None
    has_values = manifest["has_values"]
    vals = torch.empty(n, vdim, dtype=STORAGE[storage]) if has_values else None
    vscale = torch.empty(n) if has_values and storage == "int8" else None
    for s in manifest["shards"]:
        a, b = max(lo, s["lo"]), min(hi, s["hi"])
        if a >= b:
            continue
        got = _read(_verified(path, s), ["ids", "patterns", "patterns_scale", "values", "values_scale"],
                    a - s["lo"], b - s["lo"])  # fmt: skip
        ids[a - lo : b - lo] = got["ids"]
        data[a - lo : b - lo] = got["patterns"]
        for t, key in ((scale, "patterns_scale"), (vals, "values"), (vscale, "values_scale")):
            if t is not None:
                t[a - lo : b - lo] = got[key]
    return ids, Rows(data, scale), None if vals is None else Rows(vals, vscale)


def read_rows(
    path: str | Path, lo: int, hi: int, *, dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Rows ``lo`` to ``hi`` of the bank saved at ``path``: ``(ids, patterns, values or None)``, the patterns and
    values in ``dtype`` (default: their storage type, float32 for int8). Only the shards that hold them are read
    (each checked against its sha256)."""
    manifest = read_manifest(path)
    size = manifest["size"]
    if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo < hi <= size):
        raise ValueError(
            f"read_rows: rows lo, hi must be ints with 0 <= lo < hi <= {size} (the bank's size), got {lo!r}, {hi!r}"
        )
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"read_rows: dtype must be a floating torch.dtype or None, got {dtype!r}")
    ids, p, v = _load_rows(Path(path), manifest, lo, hi)
    want = dtype or (torch.float32 if p.scale is not None else p.data.dtype)
    return ids, p.block(0, hi - lo, want), None if v is None else v.block(0, hi - lo, want)


def load_backend(
    path: str | Path, *, backend: str | None = None, **search: object
) -> tuple[Tensor, object, dict]:
    """The rows saved at ``path`` on their saved backend (or ``backend``: ``"local"`` or ``"candidates"``):
    ``(ids, backend, manifest)``; :meth:`assocmem.engines.bank.MemoryBank.load` makes the bank of them (and
    loads a sharded one with :meth:`assocmem.engines.bank.ShardedBackend.load`)."""
    from assocmem.engines.bank.candidates import CandidateBackend
    from assocmem.engines.bank.local import LocalBackend
    from assocmem.engines.bank.partition import Partition

    manifest = read_manifest(path)
    kind = backend or manifest["backend"]
    if kind not in ("local", "candidates"):
        raise ValueError(f"MemoryBank.load: backend must be 'local', 'candidates' or 'sharded', got {kind!r}")
    path = Path(path)
    ids, p, v = _load_rows(path, manifest, 0, manifest["size"])
    local = LocalBackend(p, v, joint=True)
    if kind == "local":
        return ids, local, manifest
    options = {**(manifest["search"] if manifest["backend"] == "candidates" else {}), **search}
    partition = graph = None
    if manifest["index"] is not None and not search:
        file = _verified(path, manifest["index"])
        got, _ = read_checkpoint(file)
        if "centroids" in got:
            partition = Partition(got["centroids"], got["radii"], got["labels"])
        if "graph" in got:
            import faiss

            graph = faiss.deserialize_index(np.ascontiguousarray(got["graph"].numpy()))
    return ids, CandidateBackend(local, partition=partition, graph=graph, **options), manifest
