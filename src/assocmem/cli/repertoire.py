"""``assocmem repertoire``: immune repertoire data sets and models (docs/repertoire.md).

    assocmem repertoire simulate --out data/wr0.001 --bags 400 --bag-size 10000 --witness-rate 0.001 --seed 0
    assocmem repertoire kmer data/wr0.001 --out runs/kmer-wr0.001-s0 --k 3,4 --seed 0

``simulate`` writes a simulated data set folder (metadata.tsv, one AIRR TSV per repertoire under repertoires/,
truth.json with the motif and the witness sequences). ``kmer`` fits the k-mer logistic regression baseline on a
data set folder (simulated, or AIRR / DeepRC files with a metadata.tsv) with a stratified split of ``--seed``,
chooses its k-mer length and regularisation on the validation bags and writes metrics.json (test AUC and
scores, with provenance).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from assocmem.cli.console import add_quiet, add_threads, progress_bar, say, set_threads
from assocmem.cli.options import (
    FRACTION,
    INT_LIST,
    OPEN_FRACTION,
    OUTPUT_FOLDER,
    POSITIVE,
    SEED,
    Kind,
    count,
)

if TYPE_CHECKING:
    from assocmem.repertoire.dataset import RepertoireDataset
    from assocmem.repertoire.kmer import KmerResult

#: The metrics file a ``kmer`` run writes into its folder.
METRICS = "metrics.json"


def _motif(text: str) -> str:
    from assocmem.repertoire import Motif

    return Motif.parse(text).pattern


def _column(text: str) -> str:
    if not text.strip() or "\t" in text:
        raise ValueError("")
    return text


def _dataset_folder(text: str) -> Path:
    if not text.strip():
        raise ValueError("an empty path names nothing")
    path = Path(text).expanduser()
    if not path.is_dir():
        raise ValueError(f"{path} is not a folder" if path.exists() else f"{path} does not exist")
    if not (path / "metadata.tsv").is_file():
        raise ValueError(f"{path} holds no metadata.tsv")
    return path


#: A motif pattern: amino-acid letters with ``/`` for a one-position gap, starting and ending with a letter.
MOTIF = Kind("motif", "a motif such as RDW/H (amino-acid letters, / a gap)", _motif)
#: A column name of a metadata file.
COLUMN = Kind("column", "a column name (not empty, no tab)", _column)


def _kmer_lengths(text: str) -> list[int]:
    values = INT_LIST.convert(text)
    if max(values) > 5:
        raise ValueError("")
    return values


#: k-mer lengths, each in 1..5 (``3,4``).
KMER_LENGTHS = Kind("int_list", "comma-separated k-mer lengths in [1, 5] such as 3,4", _kmer_lengths)
#: A data set folder: one holding metadata.tsv.
DATASET = Kind("run_folder", "a data set folder (one holding metadata.tsv)", _dataset_folder)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "repertoire",
        help="immune repertoires: simulate data sets, fit the k-mer baseline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", metavar="action", required=True, help="simulate or kmer")
    register_simulate(sub)
    register_kmer(sub)
    # Registration point: the model's train / eval (cli/repertoire_model.py) and the explanations' explain
    # (cli/repertoire_explain.py) each add their sub-commands here with their own register(sub).
    for module in extensions():
        module.register(sub)


def extensions() -> list:
    """The modules that add ``repertoire`` sub-commands beside simulate and kmer."""
    from assocmem.cli import repertoire_explain, repertoire_model

    return [repertoire_model, repertoire_explain]


def register_simulate(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("simulate", help="write a simulated data set with an implanted motif")
    s.add_argument(
        "--out", type=OUTPUT_FOLDER, required=True, help="the data set folder to write (new or empty)"
    )
    s.add_argument("--bags", type=count(2), default=400, help="repertoires (400), half of them positive")
    s.add_argument("--bag-size", type=count(), default=10000, help="sequences per bag (10000)")
    s.add_argument(
        "--bag-size-max",
        type=count(),
        default=None,
        help="draw sizes uniformly up to this (default: all equal)",
    )
    s.add_argument(
        "--witness-rate",
        type=OPEN_FRACTION,
        default=0.001,
        help="share of a positive bag carrying the motif (0.001)",
    )
    s.add_argument(
        "--motif", type=MOTIF, default="RDW/H", help="the implanted motif, / a gap (default RDW/H)"
    )
    s.add_argument(
        "--substitution", type=FRACTION, default=0.0, help="chance an implanted letter mutates (0)"
    )
    s.add_argument(
        "--positive-fraction", type=OPEN_FRACTION, default=0.5, help="share of positive bags (0.5)"
    )
    s.add_argument(
        "--abundance-alpha", type=POSITIVE, default=1.5, help="tail of the clonal abundances (1.5)"
    )
    s.add_argument("--seed", type=SEED, default=0, help="the seed every draw follows from (0)")
    add_quiet(s)
    s.set_defaults(func=run_simulate)


def register_kmer(sub: argparse._SubParsersAction) -> None:
    k = sub.add_parser("kmer", help="fit the k-mer logistic regression baseline on a data set")
    k.add_argument("data", type=DATASET, help="a data set folder (metadata.tsv and repertoire files)")
    k.add_argument("--out", type=OUTPUT_FOLDER, required=True, help="the run folder: metrics.json goes here")
    k.add_argument(
        "--k",
        type=KMER_LENGTHS,
        default=[3, 4],
        help="k-mer lengths to choose from on validation (default 3,4)",
    )
    k.add_argument(
        "--weighted", action="store_true", help="count each k-mer once per copy (clonal abundance)"
    )
    k.add_argument("--seed", type=SEED, default=0, help="the split's seed (0)")
    k.add_argument("--test", type=OPEN_FRACTION, default=0.2, help="share of test bags per class (0.2)")
    k.add_argument("--validation", type=OPEN_FRACTION, default=0.2, help="share of validation bags (0.2)")
    k.add_argument("--label-column", type=COLUMN, default="label", help="the metadata's label column (label)")
    add_quiet(k)
    add_threads(k, default=1)
    k.set_defaults(func=run_kmer)


def run_simulate(args: argparse.Namespace) -> int:
    from assocmem.repertoire.simulate import simulate

    size = args.bag_size if args.bag_size_max is None else (args.bag_size, args.bag_size_max)
    start = time.perf_counter()
    with progress_bar(args.quiet, total=args.bags, unit="bag", desc="simulate") as bar:
        ds = simulate(
            args.out,
            bags=args.bags,
            bag_size=size,
            witness_rate=args.witness_rate,
            motif=args.motif,
            seed=args.seed,
            positive_fraction=args.positive_fraction,
            substitution=args.substitution,
            abundance_alpha=args.abundance_alpha,
            progress=bar.update,
        )
    chance = ds.truth["chance"]
    say(
        args.quiet,
        f"wrote {len(ds)} repertoires ({int(ds.labels.sum())} positive) to {args.out} in "
        f"{time.perf_counter() - start:.1f} s; motif {ds.truth['motif']}: {chance['found']} chance matches in the "
        f"background ({chance['found_per_sequence']:.2g} per sequence)",
    )
    return 0


def kmer_metrics(ds: RepertoireDataset, split: dict, seed: int, result: KmerResult) -> dict:
    """A k-mer run's metrics.json: the result with its test bags' scores and the split by bag name (what
    ``repertoire explain --compare`` reads), the data, the simulation's settings, provenance."""
    from assocmem.provenance import provenance

    truth = ds.truth or {}
    return {
        "model": "kmer",
        "data": os.fspath(ds.folder),
        "seed": seed,
        "split": {part: [ds.names[i] for i in idx] for part, idx in split.items()},
        "simulation": {"motif": truth.get("motif"), **truth.get("settings", {})} if truth else None,
        **result.to_dict(),
        "provenance": provenance(),
    }


def run_kmer(args: argparse.Namespace) -> int:
    from assocmem.files import write_json
    from assocmem.repertoire.dataset import RepertoireDataset
    from assocmem.repertoire.kmer import kmer_baseline

    if args.test + args.validation >= 1:
        raise ValueError("--test and --validation must leave training bags (their sum is below 1)")
    set_threads(args.threads)
    ds = RepertoireDataset.open(args.data, label_column=args.label_column)
    split = ds.split(seed=args.seed, test=args.test, validation=args.validation)
    with progress_bar(args.quiet, total=len(ds), unit="bag", desc="k-mers") as bar:
        result = kmer_baseline(ds, split, k=args.k, weighted=args.weighted, progress=bar.update)
    path = write_json(Path(args.out) / METRICS, kmer_metrics(ds, split, args.seed, result))
    say(
        args.quiet,
        f"k-mer baseline (k={result.k}): test AUC {result.test_auc:.4f} (validation {result.validation_auc:.4f},"
        f" l2 {result.l2:g}); wrote {path}",
    )
    return 0
