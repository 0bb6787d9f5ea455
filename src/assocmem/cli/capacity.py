"""``assocmem capacity``: the capacity laboratory of the binary networks (docs/reference.md §3 and §5).

Stores K random +-1 patterns of N bits for each K asked, recalls each from a cue with a fraction of its bits
flipped, and writes DIR/results.json (per K: fraction of perfect recalls, mean final overlap, mean bit-error
rate, with 95% Wilson intervals and the theory values) and DIR/capacity.png (the measured curves with the theory
curves over them).

With --sweep-neurons N1,N2,... it instead finds, for each N, the largest K whose bit-error rate is at most
--threshold, fits the scaling law (K = c N for the classical network, c N^(n-1) for powers, A exp(c N) for exp)
and reports the fitted constant.

Examples:
  assocmem capacity --model classical --neurons 500 --memories 25,50,70,100 --trials 200 --flip 0.1 --out runs/hop
  assocmem capacity --model power --n 3 --sweep-neurons 40,60,80,120 --trials 100 --flip 0 --out runs/power3
"""

from __future__ import annotations

import argparse
import sys

from assocmem.cli.console import add_quiet, add_threads, progress_bar, say, set_threads
from assocmem.cli.options import (
    COUNT,
    DEGREE,
    FRACTION,
    INT_LIST,
    OPEN_FRACTION,
    OUTPUT_FOLDER,
    POSITIVE,
    SEED,
)
from assocmem.files import write_json
from assocmem.laboratory.capacity import MODELS, ModelSpec, measure_loads, sweep_neurons, theory_curves
from assocmem.provenance import provenance
from assocmem.report import save_figure
from assocmem.report.capacity_figure import capacity_figure, sweep_figure


def _spec(args: argparse.Namespace) -> ModelSpec:
    n = int(args.n) if args.n is not None and float(args.n).is_integer() else args.n
    return ModelSpec(args.model, n, args.beta)


def _check(args: argparse.Namespace) -> None:
    """The options that depend on each other, before any work."""
    if args.sweep_neurons:
        if args.neurons is not None or args.memories is not None:
            raise ValueError(
                "--sweep-neurons finds the largest K for each N by itself: leave out --neurons and --memories"
            )
    elif args.neurons is None or args.memories is None:
        raise ValueError("--neurons and --memories are required (or use --sweep-neurons)")


def run(args: argparse.Namespace) -> int:
    spec = _spec(args)
    _check(args)
    set_threads(args.threads)
    quiet, folder = args.quiet, args.out
    header = {
        "model": {"name": spec.model, "n": spec.n, "beta": spec.beta, "description": spec.describe()},
        "flip": args.flip,
        "mode": args.mode,
        "seed": args.seed,
        "trials": args.trials,
        "max_sweeps": args.max_sweeps,
        "command": "assocmem " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["capacity"] else None,
        "provenance": provenance(),
    }
    if args.sweep_neurons:
        neurons = args.sweep_neurons
        with progress_bar(quiet, desc="capacity sweep", unit="eval") as bar:

            def progress(row: dict) -> None:
                bar.set_postfix(
                    N=row["neurons"], K=row["memories"], ber=f"{row['bit_error_rate']['rate']:.2g}"
                )
                bar.update()

            out = sweep_neurons(
                spec,
                neurons,
                args.trials,
                args.flip,
                args.threshold,
                mode=args.mode,
                seed=args.seed,
                max_steps=args.max_sweeps,
                progress=progress,
            )
        results = {**header, **out}
        say(
            quiet,
            f"{spec.describe()}: largest K with bit-error rate <= {args.threshold:g} ({args.flip:.0%} flipped)",
        )
        for p in results["points"]:
            say(quiet, f"  N = {p['neurons']:>6}  K_max = {p['largest_memories']}")
        fit = results["fit"]
        if fit.get("law"):
            extra = (
                f", free-fit exponent {fit['free_fit_exponent']:.3f}" if "free_fit_exponent" in fit else ""
            )
            say(quiet, f"fit: {fit['law']} with c = {fit['constant']:.4g}{extra}")
            if "one_step_theory_constant" in fit:
                say(quiet, f"one-step signal-to-noise theory: c = {fit['one_step_theory_constant']:.4g}")
            if "demircigil_bound" in fit:
                say(
                    quiet,
                    f"Demircigil et al. 2017 (N -> inf, proven storable): c < {fit['demircigil_bound']:.4g}",
                )
            if "ags_theory_constant" in fit:
                say(
                    quiet,
                    f"AGS retrieval state, N -> inf (after the dynamics): c = {fit['ags_theory_constant']:.4g}",
                )
        fig = sweep_figure(results)
    else:
        memories = args.memories
        with progress_bar(quiet, total=len(memories), desc="capacity", unit="K") as bar:

            def progress(row: dict) -> None:
                bar.set_postfix(K=row["memories"], perfect=f"{row['perfect_recall']['fraction']:.2f}")
                bar.update()

            rows = measure_loads(
                spec,
                args.neurons,
                memories,
                args.trials,
                args.flip,
                mode=args.mode,
                seed=args.seed,
                max_steps=args.max_sweeps,
                progress=progress,
            )
        theory = theory_curves(spec, args.neurons, memories, args.flip)
        results = {**header, "neurons": args.neurons, "results": rows, "theory": theory}
        say(
            quiet,
            f"{spec.describe()}, N = {args.neurons}, {args.flip:.0%} of cue bits flipped, {args.mode} updates",
        )
        say(
            quiet,
            f"{'K':>8} {'load':>9} {'perfect':>20} {'bit errors':>22} {'overlap':>8} {'theory BER':>11}",
        )
        for r in rows:
            p, b = r["perfect_recall"], r["bit_error_rate"]
            say(
                quiet,
                f"{r['memories']:>8} {r['load']:>9.4g} {p['fraction']:>7.3f} [{p['ci95'][0]:.3f},{p['ci95'][1]:.3f}]"
                f" {b['rate']:>8.2e} [{b['ci95'][0]:.1e},{b['ci95'][1]:.1e}]"
                f" {r['mean_final_overlap']['value']:>8.4f} {r['theory']['one_step_bit_error']:>11.2e}",
            )
        fig = capacity_figure(results)
    json_path = write_json(folder / "results.json", results)
    png_path = save_figure(fig, folder / "capacity.png")
    say(quiet, f"wrote {json_path} and {png_path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "capacity",
        help="measure how many random memories a binary network recalls, with theory curves",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, choices=MODELS, help="binary network")
    parser.add_argument(
        "--n",
        type=DEGREE,
        default=None,
        metavar="N_DEGREE",
        help="degree n >= 1 of F for power and rectified",
    )
    parser.add_argument(
        "--beta", type=POSITIVE, default=None, help="inverse temperature of F = exp (default 1)"
    )
    parser.add_argument("--neurons", type=COUNT, default=None, metavar="N", help="neurons N (pattern length)")
    parser.add_argument(
        "--memories",
        type=INT_LIST,
        default=None,
        metavar="K1,K2,...",
        help="comma-separated numbers of stored patterns K1,K2,...",
    )
    parser.add_argument("--trials", type=COUNT, default=100, metavar="T", help="recalls per K (default 100)")
    parser.add_argument(
        "--flip",
        type=FRACTION,
        default=0.1,
        metavar="FRACTION",
        help="fraction of cue bits flipped, in [0, 1] (0.1)",
    )
    parser.add_argument("--mode", default="async", choices=("async", "sync"), help="update order (async)")
    parser.add_argument("--seed", type=SEED, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument("--max-sweeps", type=COUNT, default=100, help="sweeps before giving up (default 100)")
    parser.add_argument(
        "--sweep-neurons", type=INT_LIST, default=None, help="comma-separated N: find the largest K for each"
    )
    parser.add_argument(
        "--threshold", type=OPEN_FRACTION, default=0.01, help="bit-error threshold of the sweep (0.01)"
    )
    parser.add_argument(
        "--out",
        type=OUTPUT_FOLDER,
        required=True,
        metavar="DIR",
        help="output folder for results.json and capacity.png (created if needed)",
    )
    add_threads(parser)
    add_quiet(parser, "no progress bar and no table, only errors (the results are in --out)")
    parser.set_defaults(func=run)
