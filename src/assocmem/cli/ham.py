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
from pathlib import Path

import torch

from assocmem.dynamics import ConvergenceError, DivergenceError
from assocmem.files import write_json
from assocmem.ham.config import HamConfig, load_recipe
from assocmem.ham.data import load_images
from assocmem.ham.evaluation import energy_traces, evaluate
from assocmem.ham.figures import curves_figure, energy_figure
from assocmem.ham.run import CHECKPOINT, METRICS, load_checkpoint, train


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _why(err: ConvergenceError) -> str:
    return "the network is not a memory: " if isinstance(err, DivergenceError) else "no result: "


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


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
        + (f" - {c.hidden} ReLU" if c.hidden else "")
        + " - 10 softmax"
    )
    return (
        f"{c.architecture} HAM on {c.dataset} ({net}); {c.epochs} epochs, batch {c.batch_size}, Adam lr {c.lr:g}; "
        f"gradient {c.gradient}, {c.method} dt {c.dt:g} to tol {c.tol:g}"
    )


def run_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_recipe(args.recipe)
    if args.epochs is not None:
        config.epochs = args.epochs
    if args.t_max is not None:
        config.t_max = args.t_max
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    data = _data(args, config)
    quiet = args.quiet or not sys.stderr.isatty()
    say = (lambda *a, **k: None) if args.quiet else print
    say(f"assocmem ham train: {_settings(config)}; {torch.get_num_threads()} threads; writing to {out}")
    bar = tqdm(unit="batch", desc="epoch", dynamic_ncols=True, disable=quiet)

    def on_batch(b: int, batches: int, loss: float) -> None:
        bar.total = batches
        bar.n = b
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        bar.refresh()

    def on_epoch(record: dict) -> None:
        t = record["test"]
        say(
            f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}, test accuracy "
            f"{100 * t['accuracy']:.2f}% at the fixed point ({100 * t['converged']:.0f}% settled, "
            f"{100 * t['energy_non_increasing']:.2f}% energy non-increasing), {record['seconds']:.1f} s",
            flush=True,
        )

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
    curves_figure(run.history, out / "curves.png", title)
    energy_figure(
        energy_traces(run.model, data.test_images[:32].to(getattr(torch, config.dtype))),
        out / "energy.png",
        title + ": 32 test images",
    )
    say(f"wrote {out / METRICS}, {out / 'curves.png'}, {out / 'energy.png'}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (Path(args.dir) / CHECKPOINT).is_file():
        raise FileNotFoundError(f"{args.dir}: no HAM run ({CHECKPOINT}); train one with assocmem ham train")
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
    print(
        f"{args.dir}: test accuracy {100 * result['accuracy']:.2f}% at the fixed point on {result['samples']} "
        f"images (epoch {run.epoch}); {100 * result['converged']:.0f}% settled, "
        f"{100 * result['energy_non_increasing']:.2f}% with energy never increasing (largest rise "
        f"{result['max_relative_energy_increase']:.2g} relative); {result['bounded_below']}"
    )
    if args.json:
        write_json(args.json, result)
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
        p.add_argument(
            "--data-dir", default=None, help="a folder holding the four IDX .gz files of the data set"
        )
        p.add_argument(
            "--cache-dir", default=None, help="download cache (default: $ASSOCMEM_DATA or the user cache)"
        )
        p.add_argument(
            "--no-download", action="store_true", help="never download; fail if the files are missing"
        )
        p.add_argument("--threads", type=_count, default=None, help="torch threads (default: torch's choice)")

    t = sub.add_parser("train", help="train a recipe, with checkpoints and --resume")
    t.add_argument("recipe", help="a recipe file (.json or .toml), e.g. recipes/ham/dense-mnist.json")
    t.add_argument("--out", required=True, help="run folder (config.json, checkpoint, metrics.json, figures)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--epochs", type=_count, default=None, help="epochs to train to (default: the recipe's)")
    t.add_argument(
        "--t-max",
        type=_positive,
        default=None,
        help="relaxation time budget (default: the recipe's; may grow on --resume)",
    )
    t.add_argument(
        "--checkpoint-every", type=_count, default=100, help="minibatches between checkpoints (100)"
    )
    t.add_argument("--quiet", action="store_true", help="no progress or per-epoch lines")
    common(t)
    t.set_defaults(func=run_train)

    e = sub.add_parser("eval", help="accuracy at the fixed point of a trained run, and its memory checks")
    e.add_argument("dir", help="a run folder written by 'ham train'")
    e.add_argument("--test-size", type=_count, default=None, help="evaluate on the first N test images")
    e.add_argument("--json", default=None, help="also write the result here (JSON)")
    common(e)
    e.set_defaults(func=run_eval)
