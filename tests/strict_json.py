"""A strict JSON reader: NaN, Infinity and -Infinity (which Python's json module reads by default) are errors."""

import json
from pathlib import Path


def strict(constant: str) -> None:
    """``parse_constant`` for :func:`json.loads`: refuse JSON's non-standard constants."""
    raise ValueError(f"not strict JSON: {constant}")


def load(path: str | Path) -> object:
    """The JSON document in ``path``, read strictly."""
    return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=strict)
