"""``assocmem classify``: train and evaluate the Dense Associative Memory classifier (KH16) on MNIST-like data.

    assocmem classify train --dataset mnist --n 3 --memories 2000 --epochs 300 --out runs/mnist-n3
    assocmem classify train ... --out runs/mnist-n3 --resume     # continue a stopped run exactly
    assocmem classify eval runs/mnist-n3                          # print its test error
    assocmem classify prototypes runs/n2 runs/n3 runs/n20 runs/n30 --out prototypes.png

Options not given take KH16's settings for the regime of n (TrainConfig.for_degree): small n (< 10) ramps the
temperature from 300 down to 100 over 200 epochs with a loss power m = 3; large n keeps T = 540 with m = 30
(docs/reference.md §3).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

import torch

from assocmem.classifier.data import Data, load_data
from assocmem.classifier.prototypes import active, votes
from assocmem.classifier.run import CHECKPOINT, METRICS, load_run, train
from assocmem.classifier.training import TrainConfig
from assocmem.files import write_json


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


def run_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from assocmem.report.memory_grids import memories_figure

    if args.threads:
        torch.set_num_threads(args.threads)
    config = config_from(args)
    data = data_from(args, config.train_size)
    config.pixels = data.train_images.shape[1]
    config.classes = max(2, int(data.train_labels.max()) + 1)
    out = Path(args.out)
    done = 0
    if args.resume and (out / CHECKPOINT).is_file():
        done = load_run(out).epoch
    print(
        f"assocmem classify train: {config.dataset}, {len(data.train_labels)} training and "
        f"{len(data.test_labels)} test images; K={config.memories}, F={config.F}, n={config.n:g}, m={config.m}, "
        f"T {config.temperature:g} -> {config.final_temperature:g} over {config.ramp_epochs} epochs, "
        f"lr {config.lr:g} * {config.lr_decay:g}^epoch, momentum {config.momentum:g}; "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"writing to {out}: config.json, {CHECKPOINT} (every {args.checkpoint_every} epochs), {METRICS}, "
        "memories.png" + (f" (resuming at epoch {done})" if done else "")
    )
    bar = tqdm(total=config.epochs, initial=done, unit="epoch", desc="training", dynamic_ncols=True)

    def progress(record: dict) -> None:
        bar.update(1)
        bar.set_postfix(
            loss=f"{record['loss']:.4g}",
            train=f"{100 * record['train_error']:.2f}%",
            test=f"{100 * record['test_error']:.2f}%",
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
        )
    finally:
        bar.close()
    figure = memories_figure(
        run.model.memories, config.pixels, out / "memories.png", title=f"{config.dataset}, n = {config.n:g}"
    )
    final = json.loads((out / METRICS).read_text())["final"]
    print(
        f"epoch {run.epoch}: test error {100 * final['test_error']:.2f}%, train error "
        f"{100 * final['train_error']:.2f}%, {final['seconds_per_epoch']:.2f} s per epoch; wrote {out / METRICS} "
        f"and {figure}"
    )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    run = load_run(args.dir)
    args.dataset = args.dataset or run.config.dataset
    data = data_from(args, run.config.train_size)
    test_error = run.model.error(data.test_images, data.test_labels)
    line = f"{args.dir}: test error {100 * test_error:.2f}% on {len(data.test_labels)} images (epoch {run.epoch})"
    if args.train:
        line += f"; train error {100 * run.model.error(data.train_images, data.train_labels):.2f}%"
    print(line)
    return 0


def run_prototypes(args: argparse.Namespace) -> int:
    from assocmem.report.memory_grids import prototypes_figure

    panels, summaries, test = [], {}, {}
    print(
        f"{'run':<28} {'n':>5} {'epoch':>6} {'live':>11} {'single-class':>13}  live memories voting for 0, 1, 2, ... "
        "classes"
    )
    for folder in args.dirs:
        run = load_run(folder)
        model = run.model
        dataset = args.dataset or run.config.dataset
        if dataset not in test:
            args.dataset = dataset
            test[dataset] = data_from(args, 0).test_images
        live = active(model, test[dataset])
        summary = votes(model.memories[live, model.pixels :]).summary()
        summary.update(epoch=run.epoch, n=model.n, live=int(live.sum()), total=model.num_memories)
        summaries[str(folder)] = summary
        print(
            f"{folder!s:<28} {model.n:>5g} {run.epoch:>6} {summary['live']:>5}/{model.num_memories:<5} "
            f"{100 * summary['single_class']:>12.1f}%  {summary['votes_histogram']}"
        )
        title = f"n = {model.n:g}: {100 * summary['single_class']:.0f}% single-class"
        panels.append((title, model.memories[live], model.pixels))
    if args.out:
        pixels = {p for _, _, p in panels}
        if len(pixels) > 1:
            raise ValueError(f"prototypes: the runs have different image sizes ({sorted(pixels)} pixels)")
        figure = prototypes_figure([(t, m) for t, m, _ in panels], pixels.pop(), args.out)
        print(f"wrote {figure} (live memories of each run)")
    if args.json:
        print(f"wrote {write_json(args.json, summaries)}")
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
        p.add_argument(
            "--data-dir", default=None, help="a folder holding the four IDX .gz files of the data set"
        )
        p.add_argument(
            "--cache-dir", default=None, help="download cache (default: $ASSOCMEM_DATA or the user cache)"
        )
        p.add_argument(
            "--no-download", action="store_true", help="never download; fail if the files are missing"
        )

    t = sub.add_parser("train", help="train a classifier (KH16's algorithm), with checkpoints and --resume")
    data_options(t, "mnist")
    t.add_argument("--out", required=True, help="run folder (config, checkpoint, metrics.json, memories.png)")
    t.add_argument("--epochs", type=int, required=True, help="epochs to train to (KH16: up to 3000)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--n", type=float, default=3, help="degree of the interaction F (default 3)")
    t.add_argument("--F", default="rectified", choices=["rectified", "power"], help="ReP_n (default) or x^n")
    t.add_argument("--memories", type=int, default=2000, help="number of memories K (default 2000)")
    t.add_argument("--m", type=int, default=None, help="loss power: sum (c - t)^(2m) (3; 30 for n >= 10)")
    t.add_argument("--lr", type=float, default=None, help="initial learning rate eps0 (0.04)")
    t.add_argument("--lr-decay", type=float, default=0.998, help="learning rate factor per epoch (0.998)")
    t.add_argument("--momentum", type=float, default=None, help="momentum p (0.95; 0.6 for n >= 10)")
    t.add_argument("--temperature", type=float, default=None, help="initial T, beta = 1/T^n (300; 540)")
    t.add_argument("--final-temperature", type=float, default=None, help="T after the ramp (100; 540)")
    t.add_argument("--ramp-epochs", type=int, default=None, help="length of the temperature ramp (200; 0)")
    t.add_argument("--batch-size", type=int, default=1000, help="minibatch size (1000 = 100 per class)")
    t.add_argument(
        "--unbalanced", action="store_true", help="random minibatches instead of per-class balanced"
    )
    t.add_argument("--init-mean", type=float, default=-0.3, help="mean of the initial memories (-0.3)")
    t.add_argument("--init-std", type=float, default=0.3, help="their standard deviation (0.3)")
    t.add_argument("--train-size", type=int, default=None, help="use only the first N training images")
    t.add_argument("--seed", type=int, default=0, help="seed of the initial memories and the minibatches (0)")
    t.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="float type (float32)")
    t.add_argument("--checkpoint-every", type=int, default=10, help="epochs between checkpoints (10)")
    t.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    t.add_argument("--device", default=None, help="torch device (default cpu)")
    t.add_argument("--no-compile", action="store_true", help="eager kernels instead of torch.compile")
    t.set_defaults(func=run_train)

    e = sub.add_parser("eval", help="print the test error of a trained run")
    e.add_argument("dir", help="a run folder written by 'classify train'")
    data_options(e, None)
    e.add_argument("--train", action="store_true", help="also print the training error")
    e.set_defaults(func=run_eval)

    p = sub.add_parser(
        "prototypes", help="feature-to-prototype measure of runs, and their memories side by side"
    )
    p.add_argument("dirs", nargs="+", help="run folders (e.g. n = 2, 3, 20, 30)")
    data_options(p, None)
    p.add_argument("--out", default=None, help="write the side-by-side figure here (PNG; default: no figure)")
    p.add_argument("--json", default=None, help="write the measures here (JSON)")
    p.set_defaults(func=run_prototypes)
