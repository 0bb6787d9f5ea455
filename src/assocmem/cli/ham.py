"""``assocmem ham``: train and evaluate hierarchical associative memories that classify (docs/ham.md, "Recipes").

    assocmem ham train recipes/ham/dense-mnist.json --out runs/dense-mnist
    assocmem ham train recipes/ham/dense-mnist.json --out runs/dense-mnist --resume   # after a stop or kill -9
    assocmem ham eval runs/dense-mnist        # accuracy at the fixed point, and the memory checks

A recipe is a JSON or TOML file of HamConfig settings. Accuracies are read at the converged fixed point of every
test input; a network whose relaxation does not settle, or runs away, is an error (exit status 1), never a result.
"""

from __future__ import annotations

import argparse
import sys

import torch

from assocmem.cli.console import add_quiet, add_threads, progress_bar, say, set_threads
from assocmem.cli.options import (
    COUNT,
    OUTPUT_FILE,
    OUTPUT_FOLDER,
    POSITIVE,
    add_data_options,
    input_file,
    run_folder,
)
from assocmem.dynamics import ConvergenceError, DivergenceError
from assocmem.files import write_json
from assocmem.ham.config import HamConfig, load_recipe
from assocmem.ham.data import load_images
from assocmem.ham.evaluation import energy_traces, evaluate
from assocmem.ham.figures import curves_figure, energy_figure
from assocmem.ham.run import CHECKPOINT, CONFIG, METRICS, check_folder, load_checkpoint, train
from assocmem.provenance import provenance

#: The figures ``ham train`` writes into its run folder, next to CHECKPOINT, CONFIG and METRICS.
FIGURES = ("curves.png", "energy.png")


def _why(err: ConvergenceError) -> str:
    return "the network is not a memory: " if isinstance(err, DivergenceError) else "no result: "


def _data(args: argparse.Namespace, config: HamConfig):
    return load_images(
        config.dataset,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        download=not args.no_download,
        train_size=config.train_size,
        test_size=config.test_size,
    )


def _settings(config: HamConfig) -> str:
    c = config
    net = (
        f"784 clamped - {c.hidden} ReLU - 10 softmax"
        if c.architecture == "dense"
        else f"conv {c.channels}x{c.kernel}x{c.kernel}/{c.stride} ReLU - pool {c.pool} ReLU"
        + (f" - {c.hidden} {c.hidden_activation}" if c.hidden else "")
        + " - 10 softmax"
    )
    return (
        f"{c.architecture} HAM on {c.dataset} ({net}); {c.epochs} epochs, batch {c.batch_size}, Adam lr {c.lr:g}; "
        f"gradient {c.gradient}, {c.method} dt {c.dt:g} to tol {c.tol:g}"
    )


def run_train(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    config = load_recipe(args.recipe)
    if args.epochs is not None:
        config.epochs = args.epochs
    if args.t_max is not None:
        config.t_max = args.t_max
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
        t = record["test"]
        text = (
            f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}, test accuracy "
            f"{100 * t['accuracy']:.2f}% at the fixed point ({100 * t['converged']:.0f}% settled, "
            f"{100 * t['energy_non_increasing']:.2f}% energy non-increasing), {record['seconds']:.1f} s"
        )
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
    title = f"{config.architecture} HAM, {config.dataset}"
    curves_figure(run.history, out / FIGURES[0], title)
    energy_figure(
        energy_traces(run.model, data.test_images[:32].to(getattr(torch, config.dtype))),
        out / FIGURES[1],
        title + ": 32 test images",
    )
    say(quiet, f"wrote {out / METRICS}, {out / FIGURES[0]}, {out / FIGURES[1]}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    own = {(args.dir / name).resolve() for name in (CHECKPOINT, CONFIG, METRICS, *FIGURES)}
    if args.json is not None and args.json.resolve() in own:
        raise ValueError(
            f"argument --json: {args.json} is a file of the run folder {args.dir}; name another file"
        )
    run, _ = load_checkpoint(args.dir)
    config = run.config
    if args.test_size is not None:
        config.test_size = args.test_size
    data = _data(args, config)
    try:
        result = evaluate(run.model, data.test_images.to(getattr(torch, config.dtype)), data.test_labels)
    except ConvergenceError as err:
        print(f"assocmem ham eval: error: {_why(err)}{err}", file=sys.stderr)
        return 1
    result |= {"epoch": run.epoch, "bounded_below": str(run.model.certificate())}
    if args.quiet:
        print(result["accuracy"])
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
        help="train and evaluate hierarchical associative memories (dense and convolutional) that classify",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", metavar="action", required=True, help="train or eval")

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
        "--checkpoint-every", type=COUNT, default=100, help="minibatches between checkpoints (100)"
    )
    add_quiet(t, "no progress bar or per-epoch lines and no messages, only errors (the results are in --out)")
    common(t)
    t.set_defaults(func=run_train)

    e = sub.add_parser("eval", help="accuracy at the fixed point of a trained run, and its memory checks")
    e.add_argument("dir", type=run_folder(CHECKPOINT), help="a run folder written by 'ham train'")
    e.add_argument("--test-size", type=COUNT, default=None, help="evaluate on the first N test images")
    e.add_argument(
        "--json",
        type=OUTPUT_FILE,
        default=None,
        help="also write the result here (JSON; not a file of the run)",
    )
    add_quiet(e, "print only the test accuracy as a fraction")
    common(e)
    e.set_defaults(func=run_eval)
