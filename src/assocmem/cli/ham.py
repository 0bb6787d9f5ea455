"""``assocmem ham``: train, evaluate and show hierarchical associative memories (docs/ham.md, "Recipes").

    assocmem ham train recipes/ham/dense-mnist.json --out runs/dense-mnist
    assocmem ham train recipes/ham/dense-mnist.json --out runs/dense-mnist --resume   # after a stop or kill -9
    assocmem ham eval runs/dense-mnist        # accuracy at the fixed point, and the memory checks
    assocmem ham report runs/dense-mnist      # report.html: what the units respond to, energy, completions

A recipe is a JSON or TOML file of settings; its "task" is "classify" (the default), "reconstruct" or "patches".
Accuracies are read at the converged fixed point of every test input; a network whose relaxation does not settle,
or runs away, is an error (exit status 1), never a result.
"""

from __future__ import annotations

import argparse
import sys

import torch

from assocmem.cli.console import add_quiet, add_threads, progress_bar, say, set_threads
from assocmem.cli.options import (
    COUNT,
    NONNEGATIVE,
    OUTPUT_FILE,
    OUTPUT_FOLDER,
    POSITIVE,
    add_data_options,
    input_file,
    run_folder,
)
from assocmem.dynamics import ConvergenceError, DivergenceError
from assocmem.files import write_json
from assocmem.ham.config import load_recipe
from assocmem.ham.data import load_images
from assocmem.ham.figures import curves_figure, energy_figure
from assocmem.ham.run import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    HamRun,
    Recipe,
    check_config_file,
    check_folder,
    load_checkpoint,
    train,
)
from assocmem.provenance import provenance
from assocmem.report.ham_page import REPORT, ham_report

#: The figures ``ham train`` writes into its run folder, next to CHECKPOINT, CONFIG and METRICS.
FIGURES = ("curves.png", "energy.png")


def _why(err: ConvergenceError) -> str:
    return "the network is not a memory: " if isinstance(err, DivergenceError) else "no result: "


def _data(args: argparse.Namespace, config: Recipe):
    return load_images(
        config.dataset,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        download=not args.no_download,
        train_size=config.train_size,
        test_size=config.test_size,
    )


def _settings(config: Recipe) -> str:
    c = config
    if getattr(c, "task", "classify") == "reconstruct":
        return (
            f"reconstruction on {c.dataset} (784 spherical - {c.memories} unit-norm lse memories, beta {c.beta:g}); "
            f"noise {c.noise:g}, {c.steps} step(s) of {c.alpha:g}, init {c.init}; {c.epochs} epochs, batch "
            f"{c.batch_size}, Adam lr {c.lr:g}"
        )
    if getattr(c, "task", "classify") == "patches":
        return (
            f"masked patches on {c.dataset} ({c.patch}x{c.patch} patches, {c.masked} masked; tokens of {c.dim}, "
            f"{c.heads} heads, {c.memories} memories, {c.steps} steps of {c.dt:g}); {c.epochs} epochs, batch "
            f"{c.batch_size}, Adam lr {c.lr:g}"
        )
    net = (
        f"784 clamped - {c.hidden} ReLU - 10 softmax"
        if c.architecture == "dense"
        else f"conv {c.channels}x{c.kernel}x{c.kernel}/{c.stride} ReLU - pool {c.pool} ReLU"
        + (f" - {c.hidden} {c.hidden_activation}" if c.hidden else "")
        + " - 10 softmax"
    )
    return (
        f"{c.architecture} HAM on {c.dataset} ({net}); {c.epochs} epochs, batch {c.batch_size}, Adam lr {c.lr:g}"
        f"{' (' + c.lr_schedule + ')' if c.lr_schedule != 'constant' else ''}; "
        f"gradient {c.gradient}, {c.method} dt {c.dt:g} to tol {c.tol:g}"
    )


def run_train(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    config = load_recipe(args.recipe)
    if args.epochs is not None:
        config.epochs = args.epochs
    if args.t_max is not None:
        config.t_max = args.t_max
    _fixed_point_size(args, config)
    out, quiet = args.out, args.quiet
    check_folder(out, args.resume)  # before the data are read
    data = _data(args, config)
    say(
        quiet, f"assocmem ham train: {_settings(config)}; {torch.get_num_threads()} threads; writing to {out}"
    )
    bar = progress_bar(quiet, unit="batch", desc="epoch")

    def on_batch(b: int, batches: int, loss: float) -> None:
        bar.total = batches
        bar.n = b
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        bar.refresh()

    def on_epoch(record: dict) -> None:
        text = f"epoch {record['epoch']}: {_epoch_line(record)}, {record['seconds']:.1f} s"
        if not quiet:  # above the bar on a terminal, one line per epoch in a log
            bar.write(text, file=sys.stderr)

    try:
        run = train(
            config,
            data,
            out,
            resume=args.resume,
            checkpoint_every=args.checkpoint_every,
            on_batch=on_batch,
            on_epoch=on_epoch,
        )
    except ConvergenceError as err:
        print(f"assocmem ham train: error: {_why(err)}{err}", file=sys.stderr)
        return 1
    finally:
        bar.close()
    title = f"{getattr(config, 'architecture', run.task.name)} HAM, {config.dataset}"
    curves_figure(run.history, out / FIGURES[0], title, run.task.headline)
    try:
        energy_figure(
            run.task.energies(run.model, config, data),
            out / FIGURES[1],
            title + ": 32 test images",
            run.task.energy_end,
        )
    except ConvergenceError as err:
        print(f"assocmem ham train: error: {_why(err)}{err}", file=sys.stderr)
        return 1
    say(quiet, f"wrote {out / METRICS}, {out / FIGURES[0]}, {out / FIGURES[1]}")
    return 0


def _fixed_point_size(args: argparse.Namespace, config: Recipe) -> None:
    """--fixed-point-size: the test images a reconstruction or patch evaluation relaxes to a fixed point."""
    if args.fixed_point_size is None:
        return
    if not hasattr(config, "fixed_point_size"):
        raise ValueError(
            "argument --fixed-point-size: only reconstruct and patches recipes relax test images twice"
        )
    config.fixed_point_size = args.fixed_point_size


def _epoch_line(record: dict) -> str:
    """One epoch's training loss and test measures, as printed after every epoch."""
    t = record["test"]
    if "accuracy" in t:
        return (
            f"train loss {record['train_loss']:.4f}, test accuracy {100 * t['accuracy']:.2f}% at the fixed point "
            f"({100 * t['converged']:.0f}% settled, {100 * t['energy_non_increasing']:.2f}% energy "
            "non-increasing)"
        )
    last = record["last_minibatch_loss"]
    return f"train loss {record['train_loss']:.6g} (last minibatch {last:.6g}); {_test_line(t)}"


def _test_line(t: dict) -> str:
    if "one_step_mse" in t:
        text = f"test one-step MSE {t['one_step_mse']:.6g} on {t['samples']} images"
        if "fixed_point_mse" in t:
            m = t["masked_relaxation"]
            text += (
                f"; at the fixed point {t['fixed_point_mse']:.6g}, lower half masked {t['masked_mse']:.6g} "
                f"({t['relaxed']} images, energy non-increasing: noisy "
                f"{100 * t['noisy_relaxation']['energy_non_increasing']:.1f}%, masked "
                f"{100 * m['energy_non_increasing']:.1f}%)"
            )
        return text
    text = (
        f"test masked-patch MSE {t['block_mse']:.4g} (mean patch {t['mean_patch_mse']:.4g}; energy non-increasing "
        f"{100 * t['energy_non_increasing']:.1f}%)"
    )
    if t["fixed_point_mse"] is not None:
        text += (
            f"; at the fixed point {t['fixed_point_mse']:.4g} ({100 * t['fixed_point_converged']:.1f}% of "
            f"{t['relaxed']} settled)"
        )
    return text


def run_eval(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    own = {(args.dir / name).resolve() for name in (CHECKPOINT, CONFIG, METRICS, REPORT, *FIGURES)}
    if args.json is not None and args.json.resolve() in own:
        raise ValueError(
            f"argument --json: {args.json} is a file of the run folder {args.dir}; name another file"
        )
    run, _ = load_checkpoint(args.dir)
    check_config_file(args.dir, run.config)
    config = run.config
    if args.test_size is not None:
        config.test_size = args.test_size
    _fixed_point_size(args, config)
    data = _data(args, config)
    try:
        result = run.task.evaluate(run.model, config, data)
    except ConvergenceError as err:
        print(f"assocmem ham eval: error: {_why(err)}{err}", file=sys.stderr)
        return 1
    result |= {"epoch": run.epoch, "bounded_below": run.task.certificate(run.model)}
    if args.quiet:
        print(result[run.task.headline])
    elif run.task.name != "classify":
        print(f"{args.dir}: {_test_line(result)} (epoch {run.epoch}); {result['bounded_below']}")
    else:
        print(
            f"{args.dir}: test accuracy {100 * result['accuracy']:.2f}% at the fixed point on {result['samples']} "
            f"images (epoch {run.epoch}); {100 * result['converged']:.0f}% settled, "
            f"{100 * result['energy_non_increasing']:.2f}% with energy never increasing (largest rise "
            f"{result['max_relative_energy_increase']:.2g} relative); {result['bounded_below']}"
        )
    if args.json:
        write_json(args.json, {**result, "provenance": provenance()})
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ham",
        help="train, evaluate and show hierarchical associative memories (classify, reconstruct, patches)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", metavar="action", required=True, help="train, eval or report")

    def common(p: argparse.ArgumentParser) -> None:
        add_data_options(p)
        add_threads(p)

    t = sub.add_parser("train", help="train a recipe, with checkpoints and --resume")
    t.add_argument(
        "recipe",
        type=input_file(".json", ".toml"),
        help="a recipe file (.json or .toml), e.g. recipes/ham/dense-mnist.json",
    )
    t.add_argument(
        "--out",
        type=OUTPUT_FOLDER,
        required=True,
        help="run folder, created if needed (config.json, checkpoint, metrics.json, figures)",
    )
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--epochs", type=COUNT, default=None, help="epochs to train to (default: the recipe's)")
    t.add_argument(
        "--t-max",
        type=POSITIVE,
        default=None,
        help="relaxation time budget (default: the recipe's; may grow on --resume)",
    )
    t.add_argument(
        "--fixed-point-size",
        type=NONNEGATIVE,
        default=None,
        help="reconstruct/patches: test images relaxed to a fixed point after every epoch (default: the recipe's; "
        "may change on --resume)",
    )
    t.add_argument(
        "--checkpoint-every", type=COUNT, default=100, help="minibatches between checkpoints (100)"
    )
    add_quiet(t, "no progress bar or per-epoch lines and no messages, only errors (the results are in --out)")
    common(t)
    t.set_defaults(func=run_train)

    e = sub.add_parser("eval", help="a trained run's test measures at the fixed point, and its memory checks")
    e.add_argument("dir", type=run_folder(CHECKPOINT), help="a run folder written by 'ham train'")
    e.add_argument("--test-size", type=COUNT, default=None, help="evaluate on the first N test images")
    e.add_argument(
        "--fixed-point-size",
        type=NONNEGATIVE,
        default=None,
        help="reconstruct/patches: test images relaxed to a fixed point (default: the run's)",
    )
    e.add_argument(
        "--json",
        type=OUTPUT_FILE,
        default=None,
        help="also write the result here (JSON; not a file of the run)",
    )
    add_quiet(e, "print only the test headline (classify: the accuracy as a fraction; else the task's error)")
    common(e)
    e.set_defaults(func=run_eval)

    r = sub.add_parser(
        "report", help="an HTML page of a trained run: units, energy during inference, completions"
    )
    r.add_argument("dir", type=run_folder(CHECKPOINT), help="a run folder written by 'ham train'")
    r.add_argument(
        "--out",
        type=OUTPUT_FILE,
        default=None,
        help=f"the page (default: DIR/{REPORT}; not another file of the run)",
    )
    r.add_argument("--examples", type=COUNT, default=8, help="test images shown and relaxed on the page (8)")
    add_quiet(r, "no messages, only errors")
    common(r)
    r.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    dest = args.out if args.out is not None else args.dir / REPORT
    own = {(args.dir / name).resolve() for name in (CHECKPOINT, CONFIG, METRICS, *FIGURES)}
    if dest.resolve() in own:
        raise ValueError(f"argument --out: {dest} is a file of the run folder {args.dir}; name another file")
    run: HamRun = load_checkpoint(args.dir)[0]
    check_config_file(args.dir, run.config)
    data = _data(args, run.config)
    try:
        path = ham_report(run, data, dest, examples=args.examples)
    except ConvergenceError as err:
        print(f"assocmem ham report: error: {_why(err)}{err}", file=sys.stderr)
        return 1
    say(args.quiet, f"wrote {path}")
    return 0
