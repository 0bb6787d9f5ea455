"""``assocmem demo``: the main job. Pictures stored in six associative memories, recalled from corrupted cues.

The work is in :mod:`assocmem.laboratory.demo` (the models and measurements) and :mod:`assocmem.report.demo_page`
(the page); this module parses the options, shows the progress and prints the table.
"""

from __future__ import annotations

import argparse
import textwrap
import time
from pathlib import Path

from assocmem.cli.console import add_quiet, add_threads, progress_bar, say, set_threads
from assocmem.cli.options import COUNT, EVEN, FRACTION, OUTPUT_FOLDER, SEED
from assocmem.laboratory.capacity_gap import CLASSICAL_LOAD, capacity_gap
from assocmem.laboratory.demo import run_demo
from assocmem.laboratory.demo_models import demo_models
from assocmem.report.demo_page import write_demo_report

DESCRIPTION = """\
Store pictures in six associative memories, corrupt them, and watch each memory recall them.

48 generated sprites (16 x 16 = 256 pixels; nothing is downloaded) are stored in the classical Hopfield network,
the Dense Associative Memory with n = 3 and n = 10, the exponential DAM, the modern Hopfield (softmax) network and
the microscopic two-layer network with memory neurons. Each model gets two cues per sprite: one with 20% of the
pixels flipped, one with the bottom 6 rows hidden. The load K/N = 0.19 is beyond the classical network's 0.138 N
and well within the dense models' capacity. A capacity sweep then stores more and more random patterns.

Prints a table (model, memories stored, corruption, recall accuracy, energy start -> end, time) and writes
report.html into --out (default: the current folder): the stored, corrupted and recalled pictures of each model,
its energy against time, the capacity gap, and each model's energy function. About 15 s on 2 cores; --quick
runs a smaller capacity sweep in about 5 s.
"""

#: The capacity sweep (random patterns of N bits; numbers of stored patterns; cues per point), full and quick.
CAPACITY = {
    False: {"neurons": 100, "memories": [round(5 * 2 ** (i / 2)) for i in range(23)], "cues": 400},
    True: {"neurons": 100, "memories": [5, 10, 14, 20, 40, 80, 160, 320, 640, 1280], "cues": 100},
}
#: The models of the capacity sweep (the microscopic network recalls like the softmax model, only slower).
CAPACITY_MODELS = ("classical", "dam3", "dam10", "exp", "softmax")


def run(args: argparse.Namespace) -> int:
    flip, mask, quiet = args.flip, args.mask, args.quiet
    # The demo's networks are small: with one thread no operation waits for a second thread that a busy machine
    # has descheduled (measured: twice as fast on 2 shared cores; docs/demo.md).
    set_threads(args.threads)
    out = Path(args.out)
    models = demo_models()
    sweep = CAPACITY[args.quick]
    swept = [m for m in models if m.key in CAPACITY_MODELS]
    total = 2 * len(models) + len(swept) * len(sweep["memories"])
    k, n = args.memories, args.size * args.size
    wrap = textwrap.TextWrapper(width=110).fill
    say(
        quiet,
        wrap(
            f"assocmem demo: {k} sprites of {args.size}x{args.size} = {n} pixels stored in {len(models)} models "
            f"(load K/N = {k / n:.3f}; the classical network holds about {CLASSICAL_LOAD} N = "
            f"{CLASSICAL_LOAD * n:.0f}); cues with {flip:.0%} of the pixels flipped and with the bottom "
            f"{round(mask * args.size)} of {args.size} rows hidden."
        ),
    )
    start = time.perf_counter()
    with progress_bar(quiet, total=total, desc="demo", unit="run", leave=False) as bar:

        def progress(label: str) -> None:
            bar.set_postfix_str(label, refresh=False)
            bar.update()

        result = run_demo(
            k, args.size, flip=flip, mask=mask, seed=args.seed, models=models, progress=progress
        )
        gap = capacity_gap(swept, flip=flip, seed=args.seed, progress=progress, **sweep)
        path = write_demo_report(out / "report.html", result, gap, seconds=time.perf_counter() - start)
    say(quiet, f"\n{result.table()}\n\n{wrap(gap.describe())}")
    say(quiet, f"\nwrote {path.resolve()} (open it in a browser); {time.perf_counter() - start:.1f} s in all")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="store pictures in six associative memories, recall them from corrupted cues, write report.html",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out",
        type=OUTPUT_FOLDER,
        default=".",
        metavar="DIR",
        help="folder to write report.html into, created if needed (default: the current folder)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smaller capacity sweep (measured: 4-6 s instead of 12-14 s on 2 cores)",
    )
    parser.add_argument("--memories", type=COUNT, default=48, metavar="K", help="sprites stored (default 48)")
    parser.add_argument(
        "--size", type=EVEN, default=16, metavar="S", help="sprite side in pixels, even; N = S^2 (default 16)"
    )
    parser.add_argument(
        "--flip", type=FRACTION, default=0.2, metavar="F", help="fraction of cue pixels flipped (default 0.2)"
    )
    parser.add_argument(
        "--mask",
        type=FRACTION,
        default=0.375,
        metavar="F",
        help="fraction of rows hidden at the bottom (default 0.375)",
    )
    parser.add_argument(
        "--seed", type=SEED, default=0, help="random seed of the sprites and cues (default 0)"
    )
    add_threads(parser, default=1)  # the networks are small: one thread is fastest on a busy machine
    add_quiet(parser, "no progress bar and no table, only errors (the report is in --out)")
    parser.set_defaults(func=run)
