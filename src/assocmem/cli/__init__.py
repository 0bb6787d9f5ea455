"""The ``assocmem`` command line: ``assocmem <command> [options]`` (also ``python -m assocmem``).

Each sub-command lives in its own module with a ``register(subparsers)`` function that adds its parser and
sets ``func`` to the function that runs it; add new commands to ``COMMANDS``. Every option takes a checked type
from :mod:`assocmem.cli.options`, so bad input stops a command while it is parsed.

Exit status: 0 done; 2 bad input (an option, a missing or corrupt file, a run folder in the wrong state), with
a message naming it; 1 a run that failed on its own (training diverged, a compiled kernel failed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from assocmem.allocator import retain_freed_memory
from assocmem.classifier.class_update import CompileError
from assocmem.classifier.training import DivergenceError
from assocmem.cli import bank, capacity, classify, demo, ham, repertoire
from assocmem.version import __version__

COMMANDS = [demo, capacity, classify, ham, bank, repertoire]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assocmem",
        description="Large associative memories in the energy formulation of Krotov & Hopfield: Hopfield networks, "
        "Dense Associative Memories, modern Hopfield networks and their microscopic two-layer theory.",
        epilog="Start with `assocmem demo` (it writes report.html into the current folder; `--out DIR` "
        "chooses another). `assocmem COMMAND --help` describes each command and its options.",
    )
    parser.add_argument("--version", action="version", version=f"assocmem {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="command")
    for module in COMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    retain_freed_memory()  # this process is ours: reuse freed blocks instead of re-mapping them every step
    name = " ".join(filter(None, (args.command, getattr(args, "action", None))))
    try:
        return int(args.func(args) or 0)
    except (DivergenceError, CompileError) as err:
        print(f"assocmem {name}: error: {err}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, KeyError, FileNotFoundError) as err:
        print(f"assocmem {name}: error: {err}", file=sys.stderr)
        return 2
