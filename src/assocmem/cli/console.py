"""What the commands print while they work: progress bars on a terminal, nothing in logs, nothing with --quiet.

Every command has ``--quiet`` (:func:`add_quiet`): no progress bar and no messages, only errors and warnings
(the results are in the files written; ``classify eval --quiet`` prints only its numbers). Progress bars show
only on a terminal (tqdm's ``disable=None``), so redirected output holds no bar updates; ``classify train``
prints one plain line per epoch there instead (:func:`epoch_lines`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from assocmem.cli.options import THREADS


def add_quiet(
    parser: argparse.ArgumentParser, what: str = "no progress bar and no messages, only errors"
) -> None:
    """The ``--quiet`` flag every command has."""
    parser.add_argument("--quiet", action="store_true", help=f"quiet: {what}")


def add_threads(parser: argparse.ArgumentParser, default: int | None = None) -> None:
    """The ``--threads`` option (torch's CPU threads), checked to be an integer >= 1 while parsing."""
    shown = "torch's choice" if default is None else str(default)
    parser.add_argument(
        "--threads",
        type=THREADS,
        default=default,
        metavar="T",
        help=f"CPU threads of torch (default {shown})",
    )


def set_threads(threads: int | None) -> None:
    """Apply ``--threads`` (already checked); ``None`` keeps torch's choice."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def progress_bar(quiet: bool, **options: Any) -> Any:
    """A tqdm bar on stderr: hidden with ``--quiet`` and when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(disable=True if quiet else None, file=sys.stderr, dynamic_ncols=True, **options)


def epoch_lines(quiet: bool) -> bool:
    """Whether to print a plain line per epoch: not quiet and stderr is not a terminal (a log)."""
    return not quiet and not sys.stderr.isatty()


def say(quiet: bool, *text: object) -> None:
    """``print`` unless ``--quiet``."""
    if not quiet:
        print(*text)
