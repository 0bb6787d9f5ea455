"""Atomic file writes: every file the library writes appears whole or not at all (DESIGN.md, conventions).

A write goes to a temporary file in the destination's folder, which is renamed over the destination only when
the write finished; on any error the temporary file is removed and the old destination, if any, is untouched.
Checkpoints, results, figures, reports and downloads all go through :func:`atomic_path`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes the file private (0600); give it an ordinary file's mode
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(dest: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``dest`` atomically; returns the destination path."""
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(dest)


def write_json(dest: str | os.PathLike, obj: object) -> Path:
    """Write ``obj`` as indented JSON to ``dest`` atomically; returns the destination path."""
    return write_text(dest, json.dumps(obj, indent=2, sort_keys=False) + "\n")
