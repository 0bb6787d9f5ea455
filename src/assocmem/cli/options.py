"""The command line's option types: every value is checked while the command line is parsed, before any work.

Each option of every command takes one of these as its argparse ``type`` (or ``choices``, or is a flag), so a bad
value stops the command at once with argparse's usage message, ``assocmem CMD: error: argument --OPT: expected
..., got ...``, and exit status 2, before anything is computed, announced or written. ``tests/
test_cli_bad_input.py`` enumerates every option of every command from the parser and checks it against a table
of bad values by its :attr:`Kind.name`, so a new option cannot skip the checks.

Output paths: a folder must be a folder (an existing one, or one that can be created: its nearest existing
ancestor is a writable folder) and never the empty path; a file must not be a folder and its folder must be
writable. Files are written only inside the folder (or to the file) the user named.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

from assocmem.checks import is_count


class Kind:
    """An argparse ``type``: ``convert(text)`` returns the value or raises ``ValueError`` with the reason.

    ``name`` says which bad values apply (the table of ``tests/test_cli_bad_input.py``); ``expected`` is the
    phrase after "expected" in the error message.
    """

    def __init__(self, name: str, expected: str, convert: Callable[[str], object]) -> None:
        self.name, self.expected, self.convert = name, expected, convert
        self.__name__ = name  # argparse names a type by it in its own messages

    def __call__(self, text: str) -> object:
        try:
            return self.convert(text)
        except (ValueError, TypeError, OverflowError) as err:
            reason = f" ({err})" if str(err) else ""
            raise argparse.ArgumentTypeError(f"expected {self.expected}, got {text!r}{reason}") from None

    def __repr__(self) -> str:
        return f"Kind({self.name!r})"


def _int(text: str) -> int:
    return int(text.strip())


def _real(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("")
    return value


def count(least: int = 1, name: str = "count") -> Kind:
    """An integer ``>= least``."""

    def convert(text: str) -> int:
        value = _int(text)
        if not is_count(value, least):
            raise ValueError("")
        return value

    return Kind(name, f"an integer >= {least}", convert)


def real(name: str, expected: str, test: Callable[[float], bool]) -> Kind:
    """A finite number for which ``test`` holds."""

    def convert(text: str) -> float:
        value = _real(text)
        if not test(value):
            raise ValueError("")
        return value

    return Kind(name, expected, convert)


def _seed(value: int) -> int:
    if not 0 <= value < 2**63:
        raise ValueError("")
    return value


def _int_list(text: str) -> list[int]:
    items = text.split(",")
    if any(not item.strip() for item in items):
        raise ValueError("an empty item")
    values = [int(item) for item in items]
    if min(values) < 1:
        raise ValueError("")
    return values


#: Comma-separated integers >= 1 (``5,10,20``); an empty item (``5,,10``) is an error, not skipped.
INT_LIST = Kind("int_list", "comma-separated integers >= 1 such as 10,20,40", _int_list)
COUNT = count()
NONNEGATIVE = count(0, "nonnegative")
THREADS = count(1, "threads")
SEED = Kind("seed", "an integer in [0, 2**63)", lambda text: _seed(_int(text)))
FRACTION = real("fraction", "a fraction in [0, 1]", lambda v: 0.0 <= v <= 1.0)
OPEN_FRACTION = real("open_fraction", "a number in (0, 1)", lambda v: 0.0 < v < 1.0)
POSITIVE = real("positive", "a positive finite number", lambda v: v > 0)
FINITE = real("finite", "a finite number", lambda v: True)
DEGREE = real("degree", "a number >= 1", lambda v: v >= 1)
DECAY = real("decay", "a factor in (0, 1]", lambda v: 0 < v <= 1)
MOMENTUM = real("momentum", "a momentum in [0, 1)", lambda v: 0 <= v < 1)


def _device(text: str) -> str:
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ValueError("not a device name") from None
    kind = device.type
    if kind == "cpu":
        return str(device)
    if kind == "cuda":
        if not torch.cuda.is_available():
            built = (
                "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            )
            raise ValueError(f"{built} (torch {torch.__version__})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"there are {torch.cuda.device_count()} CUDA devices")
        return str(device)
    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError("MPS is not available here")
        return str(device)
    raise ValueError(f"{kind} devices are not supported")


DEVICE = Kind("device", "cpu, cuda, cuda:N (an available one) or mps", _device)


def folder_problem(path: Path) -> str | None:
    """Why files cannot be written into the folder ``path`` (creating it if needed), or None."""
    if path.exists():
        if not path.is_dir():
            return f"{path} is a file, not a folder"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"the folder {path} is not writable"
        return None
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{path} cannot be created: {ancestor} is a file"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{path} cannot be created: {ancestor} is not writable"
    return None


def _nonempty(text: str) -> Path:
    if not text.strip():
        raise ValueError("an empty path names nothing; use . for the current folder")
    return Path(text).expanduser()


def _output_folder(text: str) -> Path:
    path = _nonempty(text)
    if (problem := folder_problem(path)) is not None:
        raise ValueError(problem)
    return path


def _output_file(text: str) -> Path:
    path = _nonempty(text)
    if path.is_dir() or text.endswith(("/", os.sep)):
        raise ValueError(f"{path} is a folder; name a file in it")
    if (problem := folder_problem(path.parent)) is not None:
        raise ValueError(problem)
    return path


#: The figure formats an output figure's suffix may name (no suffix: PNG).
FIGURE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg")


def _output_figure(text: str) -> Path:
    path = _output_file(text)
    if path.suffix.lstrip(".").lower() not in ("", *FIGURE_FORMATS):
        raise ValueError(f"{path.suffix} is not a figure format ({', '.join(FIGURE_FORMATS)})")
    return path


def _input_folder(text: str) -> Path:
    path = _nonempty(text)
    if not path.is_dir():
        raise ValueError(f"{path} is not a folder" if path.exists() else f"{path} does not exist")
    return path


#: A folder the command writes into: existing and writable, or creatable.
OUTPUT_FOLDER = Kind("output_folder", "a writable folder (or one that can be created)", _output_folder)
#: A file the command writes: not a folder, in a writable (or creatable) folder.
OUTPUT_FILE = Kind("output_file", "a file path in a writable folder", _output_file)
#: A figure the command draws: an output file named .png (or no suffix), .pdf, .svg, .jpg.
OUTPUT_FIGURE = Kind(
    "output_figure", f"a figure file ({', '.join(FIGURE_FORMATS)}) in a writable folder", _output_figure
)
#: A folder the command reads.
INPUT_FOLDER = Kind("input_folder", "an existing folder", _input_folder)


def input_file(*suffixes: str) -> Kind:
    """An existing, readable file whose name ends in one of ``suffixes`` (``.json``, ``.toml``)."""
    names = " or ".join(suffixes)

    def convert(text: str) -> Path:
        path = _nonempty(text)
        if not path.is_file():
            raise ValueError(f"{path} is a folder" if path.is_dir() else f"{path} does not exist")
        if path.suffix.lower() not in suffixes:
            raise ValueError(f"{path.suffix or 'no suffix'} is not {names}")
        if not os.access(path, os.R_OK):
            raise ValueError(f"{path} is not readable")
        return path

    return Kind("input_file", f"an existing readable {names} file", convert)


def run_folder(marker: str) -> Kind:
    """A folder holding ``marker`` (a classifier run's checkpoint)."""

    def convert(text: str) -> Path:
        path = _input_folder(text)
        if not (path / marker).is_file():
            raise ValueError(f"{path} holds no {marker}")
        return path

    return Kind("run_folder", f"a run folder (one holding {marker})", convert)


def _even(text: str) -> int:
    value = _int(text)
    if value < 2 or value % 2:
        raise ValueError("")
    return value


#: An even integer >= 2 (the demo's sprites are mirror images).
EVEN = Kind("even", "an even integer >= 2", _even)


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """``--data-dir``, ``--cache-dir`` and ``--no-download``: where a command finds its IDX data set."""
    parser.add_argument(
        "--data-dir",
        type=INPUT_FOLDER,
        default=None,
        help="a folder holding the four IDX .gz files of the data set",
    )
    parser.add_argument(
        "--cache-dir",
        type=OUTPUT_FOLDER,
        default=None,
        help="download cache (default: $ASSOCMEM_DATA or the user cache)",
    )
    parser.add_argument(
        "--no-download", action="store_true", help="never download; fail if the files are missing"
    )
