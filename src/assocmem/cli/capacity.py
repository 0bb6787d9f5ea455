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
import math
import sys

from assocmem.files import write_json
from assocmem.laboratory.capacity import MODELS, ModelSpec, measure_loads, sweep_neurons, theory_curves
from assocmem.report import save_figure
from assocmem.report.capacity_figure import capacity_figure, sweep_figure


def int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{option} must be comma-separated integers (e.g. 10,20,40), got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"{option} must list integers >= 1, got {text!r}")
    return values


def _spec(args: argparse.Namespace) -> ModelSpec:
    if args.n is not None and math.isnan(args.n):
        raise ValueError("--n must be a number >= 1, got nan")
    if args.beta is not None and not args.beta > 0:
        raise ValueError(f"--beta must be > 0, got {args.beta}")
    n = int(args.n) if args.n is not None and float(args.n).is_integer() else args.n
    return ModelSpec(args.model, n, args.beta)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    spec = _spec(args)
    header = {
        "model": {"name": spec.model, "n": spec.n, "beta": spec.beta, "description": spec.describe()},
        "flip": args.flip,
        "mode": args.mode,
        "seed": args.seed,
        "trials": args.trials,
        "max_sweeps": args.max_sweeps,
        "command": "assocmem " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["capacity"] else None,
    }
    if args.sweep_neurons:
        neurons = int_list(args.sweep_neurons, "--sweep-neurons")
        with tqdm(desc="capacity sweep", unit="eval", file=sys.stderr) as bar:

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
        print(
            f"{spec.describe()}: largest K with bit-error rate <= {args.threshold:g} ({args.flip:.0%} flipped)"
        )
        for p in results["points"]:
            print(f"  N = {p['neurons']:>6}  K_max = {p['largest_memories']}")
        fit = results["fit"]
        if fit.get("law"):
            extra = (
                f", free-fit exponent {fit['free_fit_exponent']:.3f}" if "free_fit_exponent" in fit else ""
            )
            print(f"fit: {fit['law']} with c = {fit['constant']:.4g}{extra}")
            if "one_step_theory_constant" in fit:
                print(f"one-step signal-to-noise theory: c = {fit['one_step_theory_constant']:.4g}")
            if "demircigil_bound" in fit:
                print(
                    f"Demircigil et al. 2017 (N -> inf, proven storable): c < {fit['demircigil_bound']:.4g}"
                )
            if "ags_theory_constant" in fit:
                print(
                    f"AGS retrieval state, N -> inf (after the dynamics): c = {fit['ags_theory_constant']:.4g}"
                )
        fig = sweep_figure(results)
    else:
        if args.neurons is None or args.memories is None:
            raise ValueError("--neurons and --memories are required (or use --sweep-neurons)")
        memories = int_list(args.memories, "--memories")
        with tqdm(total=len(memories), desc="capacity", unit="K", file=sys.stderr) as bar:

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
        print(
            f"{spec.describe()}, N = {args.neurons}, {args.flip:.0%} of cue bits flipped, {args.mode} updates"
        )
        print(f"{'K':>8} {'load':>9} {'perfect':>20} {'bit errors':>22} {'overlap':>8} {'theory BER':>11}")
        for r in rows:
            p, b = r["perfect_recall"], r["bit_error_rate"]
            print(
                f"{r['memories']:>8} {r['load']:>9.4g} {p['fraction']:>7.3f} [{p['ci95'][0]:.3f},{p['ci95'][1]:.3f}]"
                f" {b['rate']:>8.2e} [{b['ci95'][0]:.1e},{b['ci95'][1]:.1e}]"
                f" {r['mean_final_overlap']['value']:>8.4f} {r['theory']['one_step_bit_error']:>11.2e}"
            )
        fig = capacity_figure(results)
    json_path = write_json(f"{args.out}/results.json", results)
    png_path = save_figure(fig, f"{args.out}/capacity.png")
    print(f"wrote {json_path} and {png_path}")
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
        "--n", type=float, default=None, metavar="N_DEGREE", help="degree n of F for power and rectified"
    )
    parser.add_argument("--beta", type=float, default=None, help="inverse temperature of F = exp (default 1)")
    parser.add_argument("--neurons", type=int, default=None, metavar="N", help="neurons N (pattern length)")
    parser.add_argument(
        "--memories",
        default=None,
        metavar="K1,K2,...",
        help="comma-separated numbers of stored patterns K1,K2,...",
    )
    parser.add_argument("--trials", type=int, default=100, metavar="T", help="recalls per K (default 100)")
    parser.add_argument(
        "--flip",
        type=float,
        default=0.1,
        metavar="FRACTION",
        help="fraction of cue bits flipped, in [0, 1] (0.1)",
    )
    parser.add_argument("--mode", default="async", choices=("async", "sync"), help="update order (async)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument("--max-sweeps", type=int, default=100, help="sweeps before giving up (default 100)")
    parser.add_argument(
        "--sweep-neurons", default=None, help="comma-separated N: find the largest K for each"
    )
    parser.add_argument(
        "--threshold", type=float, default=0.01, help="bit-error threshold of the sweep (0.01)"
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder for results.json and capacity.png"
    )
    parser.set_defaults(func=run)
