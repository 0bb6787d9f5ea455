"""The encoded cache of a data set: each repertoire file's codes, lengths and counts as safetensors, so epochs after
the first read bytes instead of parsing text.

An entry records its source file's size, modification time and SHA-256. It is fresh when the size matches and
either the modification time or the hash does (a copied or touched file with the same bytes stays fresh); anything
else re-reads the source. Entries are written atomically (:func:`assocmem.files.atomic_path`); a folder that cannot
be written (a read-only data set) just means no cache.
"""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from assocmem.data.idx import sha256
from assocmem.files import atomic_path
from assocmem.repertoire.airr import Bag, read_repertoire_file

#: The version of the entries' layout; another version is stale.
FORMAT = "1"


def load(source: Path, entry: Path) -> Bag | None:
    """The cached contents of ``source`` when ``entry`` is fresh, else None."""
    try:
        with safe_open(entry, framework="pt") as f:
            meta = f.metadata() or {}
            stat = source.stat()
            if meta.get("format") != FORMAT or meta.get("size") != str(stat.st_size):
                return None
            if meta.get("mtime_ns") != str(stat.st_mtime_ns) and meta.get("sha256") != sha256(source):
                return None
            return Bag(f.get_tensor("codes"), f.get_tensor("lengths"), f.get_tensor("counts"), meta["sha256"])
    except (OSError, SafetensorError, KeyError):
        return None


def store(source: Path, entry: Path, bag: Bag, mtime_ns: int, size: int) -> None:
    """Write ``bag`` as the entry of ``source`` (as it was when read: ``mtime_ns``, ``size``); no-op when the
    cache folder cannot be written."""
    meta = {"format": FORMAT, "size": str(size), "mtime_ns": str(mtime_ns), "sha256": bag.sha256}
    tensors = {"codes": bag.codes.contiguous(), "lengths": bag.lengths, "counts": bag.counts}
    try:
        with atomic_path(entry) as tmp:
            save_file(tensors, tmp, metadata=meta)
    except OSError:
        return


def read_cached(source: Path, entry: Path | None) -> Bag:
    """The contents of ``source``: from ``entry`` when fresh, else parsed (and cached when ``entry`` is given)."""
    if entry is not None and (bag := load(source, entry)) is not None:
        return bag
    stat = source.stat()
    bag = read_repertoire_file(source)
    if entry is not None:
        store(source, entry, bag, stat.st_mtime_ns, stat.st_size)
    return bag
