"""``assocmem repertoire train`` and ``eval``: train a repertoire classifier on a data set folder, and score one
(docs/repertoire.md, "Training").

    assocmem repertoire train recipes/repertoire/attention.json --data sim/ --out runs/attention
    assocmem repertoire train recipes/repertoire/attention.json --data sim/ --out runs/attention --resume
    assocmem repertoire eval runs/attention --data sim/      # AUC of the selected epoch on the split's test bags

The data set is split into training, validation and test bags (stratified, from the recipe's seed); the model of
the epoch with the best validation AUC is the one evaluated. A run killed at any moment resumes exactly with
``--resume``.
"""

from __future__ import annotations

import argparse
import sys

import torch

from assocmem.cli.console import add_quiet, add_threads, progress_bar, say, set_threads
from assocmem.cli.options import COUNT, INPUT_FOLDER, OUTPUT_FILE, OUTPUT_FOLDER, input_file, run_folder
from assocmem.files import write_json
from assocmem.provenance import provenance
from assocmem.repertoire.config import RepertoireConfig
from assocmem.repertoire.run import CHECKPOINT, METRICS, auc, check_folder, load_run, load_split, train
from assocmem.repertoire.training import scores


def _epoch_line(r: dict) -> str:
    v, t = r["validation_auc"], r["test_auc"]
    show = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    return f"loss {r['loss']:.4f}, validation AUC {show(v)}, test AUC {show(t)}, {r['sequences_per_second']:.0f} seq/s"


def run_train(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    config = RepertoireConfig.load(args.recipe)
    if args.epochs is not None:
        config.epochs = args.epochs
    check_folder(args.out, args.resume)  # before the data are read
    bags, data = load_split(args.data, config.seed)
    say(
        args.quiet,
        f"assocmem repertoire train: {config.pooling} pooling, {len(bags['train'])} training bags, "
        f"{len(bags['validation'])} validation, {len(bags['test'])} test; {torch.get_num_threads()} threads; "
        f"writing to {args.out}",
    )
    bar = progress_bar(args.quiet, unit="step", desc="epoch")

    def on_step(s: int, steps: int, loss: float) -> None:
        bar.total, bar.n = steps, s
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        bar.refresh()

    def on_epoch(record: dict) -> None:
        if not args.quiet:
            bar.write(
                f"epoch {record['epoch']}: {_epoch_line(record)}, {record['seconds']:.1f} s", file=sys.stderr
            )

    try:
        run = train(config, bags, args.out, resume=args.resume, data=data, on_step=on_step, on_epoch=on_epoch)
    finally:
        bar.close()
    say(args.quiet, f"selected epoch {run.best_epoch}; wrote {args.out / METRICS}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    run = load_run(args.run)
    bags, data = load_split(args.data, run.config.seed)
    model = run.selected()
    out = {"selected_epoch": run.best_epoch, "data": data}
    for part in ("validation", "test"):
        out[f"{part}_auc"] = auc(scores(model, bags[part]), bags[part])
    out["provenance"] = provenance()
    if args.out is not None:
        write_json(args.out, out)
    if args.quiet:
        print(f"{out['test_auc']}")
    else:
        print(
            f"{args.run}: epoch {run.best_epoch}, validation AUC {out['validation_auc']}, test AUC {out['test_auc']}"
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``eval`` to the ``assocmem repertoire`` group's sub-commands."""
    p = subparsers.add_parser(
        "train",
        help="train a repertoire classifier (attention, mean or max pooling) on a data set folder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "recipe", type=input_file(".json"), help="recipe file (JSON), e.g. recipes/repertoire/attention.json"
    )
    p.add_argument(
        "--data", type=INPUT_FOLDER, required=True, help="data set folder (metadata.tsv and one TSV per bag)"
    )
    p.add_argument(
        "--out", type=OUTPUT_FOLDER, required=True, help="run folder (checkpoint, config.json, metrics.json)"
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--epochs", type=COUNT, default=None, help="override the recipe's epochs")
    add_threads(p)
    add_quiet(p)
    p.set_defaults(func=run_train)
    e = subparsers.add_parser(
        "eval",
        help="AUC of a trained run's selected model on its split's validation and test bags",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument(
        "run", type=run_folder(CHECKPOINT), help="run folder written by `assocmem repertoire train`"
    )
    e.add_argument(
        "--data", type=INPUT_FOLDER, required=True, help="the data set folder the run was trained on"
    )
    e.add_argument("--out", type=OUTPUT_FILE, default=None, help="write the AUCs to this JSON file")
    add_threads(e)
    add_quiet(e, "print only the test AUC")
    e.set_defaults(func=run_eval)
