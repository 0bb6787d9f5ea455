"""Atomic, durable file writes and strict JSON: every file the library writes appears whole or not at all.

A write goes to a temporary file in the destination's folder, which is flushed to the disk (``fsync``), given an
ordinary file's mode (``0666`` less the umask, as ``open`` would) and renamed over the destination only when the
write finished; the folder is then flushed too, so the rename itself survives a power cut. On any error the
temporary file is removed and the old destination, if any, is untouched. Checkpoints, results, figures, reports
and downloads all go through :func:`atomic_path`.

JSON is written strictly (:func:`to_json`): JSON has no NaN or infinity, so a non-finite number is written as
``null`` and named, with its value, under ``"non_finite"`` at the top of the document; every strict reader
accepts the file and no value is silently lost.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The key under which :func:`to_json` names the non-finite numbers it wrote as ``null``.
NON_FINITE = "non_finite"


@contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it to ``dest`` when the block ends without an error.

    Example::

        with atomic_path("run/weights.safetensors") as tmp:
            safetensors.torch.save_file(tensors, tmp)
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # the writer may have replaced the file (safetensors does), so the mode and the flush come after it:
        # mkstemp's private 0600 becomes an ordinary file's mode, and the data reach the disk before the rename
        tmp.chmod(0o666 & ~_umask())
        _fsync(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(dest.parent)


def _fsync(path: Path) -> None:
    """Flush a file or a folder to the disk (a folder's entries: the rename)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot flush a folder; the file itself was flushed
        if not path.is_dir():
            raise
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(dest: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``dest`` atomically; returns the destination path."""
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(dest)


def finite_json(obj: object) -> tuple[object, dict[str, str]]:
    """``obj`` with every non-finite float replaced by ``None``, and ``{path: value}`` of those replaced.

    Paths are dotted keys and list indices, e.g. ``"fit.constant"`` or ``"per_epoch.3.loss"``.
    """
    replaced: dict[str, str] = {}

    def walk(value: object, path: str) -> object:
        if isinstance(value, float) and not math.isfinite(value):
            replaced[path or "(top)"] = repr(value)
            return None
        if isinstance(value, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(value)]
        return value

    return walk(obj, ""), replaced


def to_json(obj: object, indent: int | None = 2) -> str:
    """``obj`` as strict JSON (``allow_nan=False``): non-finite numbers become ``null`` and are named.

    A dictionary gets a ``"non_finite"`` entry (a note and ``{path: value}``) when any value was replaced; any other
    document holding a non-finite number is an error, since it has nowhere to say so.
    """
    clean, replaced = finite_json(obj)
    if replaced:
        if not isinstance(clean, dict):
            raise ValueError(
                f"to_json: non-finite numbers at {', '.join(replaced)}; JSON cannot hold them and a "
                f"{type(obj).__name__} has no place to note them (write a dict)"
            )
        clean[NON_FINITE] = {
            "note": "JSON has no NaN or infinity: these values are written as null",
            "values": replaced,
        }
    return json.dumps(clean, indent=indent, allow_nan=False)


def write_json(dest: str | os.PathLike, obj: object) -> Path:
    """Write ``obj`` as indented strict JSON (:func:`to_json`) to ``dest`` atomically; returns the path."""
    return write_text(dest, to_json(obj) + "\n")


def read_checkpoint(path: Path) -> tuple[dict, dict[str, str]]:
    """The tensors and metadata of a safetensors file; a damaged file is a ``ValueError`` that names it."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        tensors = load_file(path)
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(
            f"{path}: corrupt or truncated checkpoint ({err}); delete it to start again"
        ) from err
    return tensors, metadata
