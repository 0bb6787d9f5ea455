"""``assocmem classify``: train and evaluate the Dense Associative Memory classifier (KH16) on MNIST-like data.

    assocmem classify train --dataset mnist --n 3 --memories 2000 --epochs 300 --out runs/mnist-n3
    assocmem classify train ... --out runs/mnist-n3 --resume     # continue a stopped run exactly
    assocmem classify eval runs/mnist-n3                          # print its test error
    assocmem classify prototypes runs/n2 runs/n3 runs/n20 runs/n30 --out prototypes.png

Options not given take KH16's settings for the regime of n (TrainConfig.for_degree): small n (< 10) ramps the
temperature from 300 down to 100 over 200 epochs with a loss power m = 3; large n keeps T = 540 with m = 30
(docs/reference.md §3). A run whose loss or memories become non-finite stops at once (exit status 1) and keeps its
last good checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

import torch

from assocmem.classifier.checkpoint import CONFIG, Run
from assocmem.classifier.data import Data, load_data
from assocmem.classifier.prototypes import active, votes
from assocmem.classifier.run import CHECKPOINT, METRICS, check_folder, load_run, train
from assocmem.classifier.training import TrainConfig
from assocmem.cli.console import add_quiet, add_threads, epoch_lines, progress_bar, say, set_threads
from assocmem.cli.options import (
    COUNT,
    DECAY,
    DEGREE,
    DEVICE,
    FINITE,
    MOMENTUM,
    NONNEGATIVE,
    OUTPUT_FIGURE,
    OUTPUT_FILE,
    OUTPUT_FOLDER,
    POSITIVE,
    SEED,
    add_data_options,
    run_folder,
)
from assocmem.files import write_json
from assocmem.provenance import provenance

#: What the per-epoch "minibatch error" is, against the final errors on the whole sets.
MINIBATCH_ERROR = "minibatch error: training images misclassified before each update, as KH16 counts it"


def data_from(args: argparse.Namespace, train_size: int | None) -> Data:
    """The data the options name (``--dataset``, ``--data-dir``, ``--cache-dir``, ``--no-download``)."""
    return load_data(
        args.dataset,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        download=not args.no_download,
        train_size=train_size,
    )


def config_from(args: argparse.Namespace) -> TrainConfig:
    """The run's settings: KH16's for the regime of ``--n`` (:meth:`TrainConfig.for_degree`), then the options."""
    given = {
        f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != "n" and hasattr(args, f.name)
    }
    return TrainConfig.for_degree(args.n, balanced=not args.unbalanced, **given)


def dataset_for(args: argparse.Namespace, run: Run, folder: Path) -> str:
    """The data set to measure ``run`` on: its own, or ``--dataset`` when another one is asked for explicitly."""
    own = run.config.dataset
    if args.dataset is None or args.dataset == own:
        return own
    if not args.other_dataset:
        raise ValueError(
            f"argument --dataset: {folder} was trained on {own}; pass --other-dataset as well to measure it on "
            f"{args.dataset}"
        )
    return args.dataset


def check_pixels(data: Data, run: Run, folder: Path) -> None:
    if data.test_images.shape[1] != run.model.pixels:
        raise ValueError(
            f"{folder} takes images of {run.model.pixels} pixels; the data set has {data.test_images.shape[1]}"
        )


def run_train(args: argparse.Namespace) -> int:
    from assocmem.report.memory_grids import memories_figure

    set_threads(args.threads)
    config = config_from(args)
    out, quiet = args.out, args.quiet
    found = check_folder(out, args.resume)  # before the data are read
    data = data_from(args, config.train_size)
    config.pixels = data.train_images.shape[1]
    config.classes = max(2, int(data.train_labels.max()) + 1)
    lines = epoch_lines(quiet)
    bars = []

    def announce(run: Run) -> None:
        say(
            quiet,
            f"assocmem classify train: {config.dataset}, {len(data.train_labels)} training and "
            f"{len(data.test_labels)} test images; K={config.memories}, F={config.F}, n={config.n:g}, "
            f"m={config.m}, T {config.temperature:g} -> {config.final_temperature:g} over {config.ramp_epochs} "
            f"epochs, lr {config.lr:g} * {config.lr_decay:g}^epoch, momentum {config.momentum:g}; "
            f"{torch.get_num_threads()} threads, {run.model.kernels.kind} kernels",
        )
        where = ""
        if run.epoch:
            where = f" (resuming at epoch {run.epoch})"
        elif found == CONFIG:
            where = " (resuming a run killed before its first checkpoint: from epoch 0)"
        say(
            quiet,
            f"writing to {out}: {CONFIG}, {CHECKPOINT} (every {args.checkpoint_every} epochs), {METRICS}, "
            f"memories.png{where}; {MINIBATCH_ERROR}",
        )
        bars.append(
            progress_bar(quiet, total=config.epochs, initial=run.epoch, unit="epoch", desc="training")
        )

    def progress(record: dict) -> None:
        text = (
            f"loss {record['loss']:.4g}, minibatch error {100 * record['train_error']:.2f}%, test error "
            f"{100 * record['test_error']:.2f}%"
        )
        bars[0].update(1)
        bars[0].set_postfix_str(text)
        if lines:
            print(
                f"epoch {record['epoch']}/{config.epochs}: {text}, {record['seconds']:.2f} s", file=sys.stderr
            )

    try:
        run = train(
            config,
            data,
            out,
            resume=args.resume,
            checkpoint_every=args.checkpoint_every,
            compile=not args.no_compile,
            device=args.device,
            callback=progress,
            on_start=announce,
        )
    finally:
        for bar in bars:
            bar.close()
    figure = memories_figure(
        run.model.memories, config.pixels, out / "memories.png", title=f"{config.dataset}, n = {config.n:g}"
    )
    final = json.loads((out / METRICS).read_text())["final"]
    say(
        quiet,
        f"epoch {run.epoch}: test error {100 * final['test_error']:.2f}% (whole test set), training error "
        f"{100 * final['train_error']:.2f}% (whole training set, final weights), {final['seconds_per_epoch']:.2f} "
        f"s per epoch; wrote {out / METRICS} and {figure}",
    )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    run = load_run(args.dir)
    args.dataset = dataset_for(args, run, args.dir)
    data = data_from(args, run.config.train_size if args.train else 0)
    check_pixels(data, run, args.dir)
    test_error = run.model.error(data.test_images, data.test_labels)
    train_error = run.model.error(data.train_images, data.train_labels) if args.train else None
    if args.quiet:
        print(test_error if train_error is None else f"{test_error} {train_error}")
        return 0
    other = f", trained on {run.config.dataset}" if args.dataset != run.config.dataset else ""
    line = (
        f"{args.dir}: test error {100 * test_error:.2f}% on {len(data.test_labels)} {args.dataset} images "
        f"(epoch {run.epoch}{other})"
    )
    if train_error is not None:
        line += f"; training error {100 * train_error:.2f}% on {len(data.train_labels)} images"
    print(line)
    return 0


def run_prototypes(args: argparse.Namespace) -> int:
    from assocmem.report.memory_grids import prototypes_figure

    set_threads(args.threads)
    if args.out is not None and args.json is not None and args.out.resolve() == args.json.resolve():
        raise ValueError(f"argument --json: {args.json} is also --out; name two files")
    quiet, asked = args.quiet, args.dataset
    runs = {folder: load_run(folder) for folder in args.dirs}  # every run checked before any work
    datasets = {folder: dataset_for(args, run, folder) for folder, run in runs.items()}
    panels, summaries, test = [], {}, {}
    say(
        quiet,
        f"{'run':<28} {'n':>5} {'epoch':>6} {'live':>11} {'single-class':>13}  live memories voting for 0, 1, 2, "
        "... classes",
    )
    for folder, run in runs.items():
        model, dataset = run.model, datasets[folder]
        if dataset not in test:
            args.dataset = dataset
            test[dataset] = data_from(args, 0)
        check_pixels(test[dataset], run, folder)
        live = active(model, test[dataset].test_images)
        summary = votes(model.memories[live, model.pixels :]).summary()
        summary.update(
            epoch=run.epoch, n=model.n, live=int(live.sum()), total=model.num_memories, dataset=dataset
        )
        summaries[str(folder)] = summary
        say(
            quiet,
            f"{folder!s:<28} {model.n:>5g} {run.epoch:>6} {summary['live']:>5}/{model.num_memories:<5} "
            f"{100 * summary['single_class']:>12.1f}%  {summary['votes_histogram']}",
        )
        title = f"n = {model.n:g}: {100 * summary['single_class']:.0f}% single-class"
        panels.append((title, model.memories[live], model.pixels))
    args.dataset = asked
    if args.out:
        pixels = {p for _, _, p in panels}
        if len(pixels) > 1:
            raise ValueError(f"prototypes: the runs have different image sizes ({sorted(pixels)} pixels)")
        figure = prototypes_figure([(t, m) for t, m, _ in panels], pixels.pop(), args.out)
        say(quiet, f"wrote {figure} (live memories of each run)")
    if args.json:
        say(quiet, f"wrote {write_json(args.json, {'runs': summaries, 'provenance': provenance()})}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="train and evaluate the Dense Associative Memory classifier (KH16) on MNIST or Fashion-MNIST",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="action",
        metavar="action",
        required=True,
        help="train (a run folder), eval (its test error) or prototypes (the features-to-prototypes measure)",
    )

    def data_options(p: argparse.ArgumentParser, dataset_default: str | None) -> None:
        p.add_argument(
            "--dataset",
            default=dataset_default,
            choices=["mnist", "fashion-mnist"],
            help=f"data set (default {dataset_default})"
            if dataset_default
            else "data set (default: the run's)",
        )
        add_data_options(p)
        if dataset_default is None:
            p.add_argument(
                "--other-dataset",
                action="store_true",
                help="allow a --dataset other than the one the run was trained on",
            )
        add_threads(p)

    t = sub.add_parser("train", help="train a classifier (KH16's algorithm), with checkpoints and --resume")
    data_options(t, "mnist")
    t.add_argument(
        "--out",
        type=OUTPUT_FOLDER,
        required=True,
        help="run folder, created if needed (config, checkpoint, metrics.json, memories.png)",
    )
    t.add_argument("--epochs", type=COUNT, required=True, help="epochs to train to (KH16: up to 3000)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--n", type=DEGREE, default=3, help="degree of the interaction F, >= 1 (default 3)")
    t.add_argument("--F", default="rectified", choices=["rectified", "power"], help="ReP_n (default) or x^n")
    t.add_argument("--memories", type=COUNT, default=2000, help="number of memories K (default 2000)")
    t.add_argument("--m", type=COUNT, default=None, help="loss power: sum (c - t)^(2m) (3; 30 for n >= 10)")
    t.add_argument("--lr", type=POSITIVE, default=None, help="initial learning rate eps0 (0.04)")
    t.add_argument("--lr-decay", type=DECAY, default=0.998, help="learning rate factor per epoch (0.998)")
    t.add_argument("--momentum", type=MOMENTUM, default=None, help="momentum p (0.95; 0.6 for n >= 10)")
    t.add_argument("--temperature", type=POSITIVE, default=None, help="initial T, beta = 1/T^n (300; 540)")
    t.add_argument("--final-temperature", type=POSITIVE, default=None, help="T after the ramp (100; 540)")
    t.add_argument(
        "--ramp-epochs", type=NONNEGATIVE, default=None, help="length of the temperature ramp (200; 0)"
    )
    t.add_argument("--batch-size", type=COUNT, default=1000, help="minibatch size (1000 = 100 per class)")
    t.add_argument(
        "--unbalanced", action="store_true", help="random minibatches instead of per-class balanced"
    )
    t.add_argument("--init-mean", type=FINITE, default=-0.3, help="mean of the initial memories (-0.3)")
    t.add_argument("--init-std", type=POSITIVE, default=0.3, help="their standard deviation (0.3)")
    t.add_argument("--train-size", type=COUNT, default=None, help="use only the first N training images")
    t.add_argument(
        "--seed", type=SEED, default=0, help="seed of the initial memories and the minibatches (0)"
    )
    t.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="float type (float32)")
    t.add_argument("--checkpoint-every", type=COUNT, default=10, help="epochs between checkpoints (10)")
    t.add_argument(
        "--device", type=DEVICE, default=None, help="torch device: cpu, cuda, cuda:N, mps (default cpu)"
    )
    t.add_argument("--no-compile", action="store_true", help="eager kernels instead of the fused ones")
    add_quiet(t, "no progress bar or per-epoch lines and no messages, only errors (the results are in --out)")
    t.set_defaults(func=run_train)

    e = sub.add_parser("eval", help="print the test error of a trained run")
    e.add_argument("dir", type=run_folder(CHECKPOINT), help="a run folder written by 'classify train'")
    data_options(e, None)
    e.add_argument("--train", action="store_true", help="also print the error on the training set")
    add_quiet(e, "print only the test error as a fraction (and the training error after it with --train)")
    e.set_defaults(func=run_eval)

    p = sub.add_parser(
        "prototypes", help="feature-to-prototype measure of runs, and their memories side by side"
    )
    p.add_argument("dirs", nargs="+", type=run_folder(CHECKPOINT), help="run folders (e.g. n = 2, 3, 20, 30)")
    data_options(p, None)
    p.add_argument(
        "--out", type=OUTPUT_FIGURE, default=None, help="the side-by-side figure (PNG; default: none)"
    )
    p.add_argument("--json", type=OUTPUT_FILE, default=None, help="write the measures here (JSON)")
    add_quiet(p, "no table and no messages, only errors (the results are in --out and --json)")
    p.set_defaults(func=run_prototypes)
