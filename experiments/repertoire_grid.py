"""The recorded grid of issue 15: test AUC of the attention model and the baselines over witness rates and seeds.

    PYTHONPATH=src OMP_NUM_THREADS=1 nohup python experiments/repertoire_grid.py > /work/runs/repertoire-grid/log &
    python experiments/repertoire_grid.py --summary-only      # write the summary of the runs finished so far

For every seed and witness rate a data set is simulated (``--bags`` repertoires of ``--bag-size`` sequences, half
positive, the default motif; seed ``1000 * seed + rate index``) under ``ROOT/data/``; every model (the recipes
``recipes/repertoire/{attention,mean,max}.json`` with the run's seed, and the k-mer logistic regression; ``--models``
may name any recipe of that folder) is trained
on the same stratified 60/20/20 split into ``ROOT/runs/<rate>-seed<seed>-<model>/``. A run whose metrics.json says
it is done is skipped; an unfinished one resumes from its checkpoint (exactly), so the grid can be stopped at any
moment and started again with the same command. The runs go seed by seed (within a seed: the k-mer baseline, then
attention, mean and max pooling, each at every rate), so an unfinished grid holds whole seeds.

The summary (mean and spread of the test AUC of the selected epoch, per rate and model, with the number of runs
finished) goes to ``--results`` (summary.json, summary.txt, command.txt) with the command, the commit and the
provenance.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from assocmem.files import write_json, write_text
from assocmem.provenance import provenance
from assocmem.repertoire.config import RepertoireConfig
from assocmem.repertoire.dataset import RepertoireDataset
from assocmem.repertoire.run import CHECKPOINT, CONFIG, METRICS, PARTS, train
from assocmem.repertoire.simulate import simulate

REPO = Path(__file__).resolve().parents[1]
RATES = (0.01, 0.001, 0.0001)
MODELS = ("kmer", "attention", "mean", "max")
#: Every model the grid can run: the k-mer baseline and each recipe of recipes/repertoire/ by its name.
CHOICES = ("kmer", *sorted(p.stem for p in (REPO / "recipes" / "repertoire").glob("*.json")))


def data_folder(root: Path, rate: float, seed: int, bags: int, size: int) -> Path:
    folder = root / "data" / f"rate{rate:g}-seed{seed}-bags{bags}-size{size}"
    if not (folder / "metadata.tsv").is_file():
        simulate(folder, bags=bags, bag_size=size, witness_rate=rate, seed=1000 * seed + RATES.index(rate))
    return folder


def run_kmer(dataset: RepertoireDataset, split: dict, seed: int, out: Path) -> dict:
    """The k-mer baseline's run: the same metrics.json as ``assocmem repertoire kmer`` (the test bags' scores and the
    split by name, which ``repertoire explain --compare`` reads: 40 numbers and 200 names, a few kB), marked done."""
    from assocmem.cli.repertoire import kmer_metrics
    from assocmem.repertoire.kmer import kmer_baseline

    start = time.perf_counter()
    result = kmer_baseline(dataset, split)
    wall = time.perf_counter() - start
    metrics = {**kmer_metrics(dataset, split, seed, result), "done": True, "wall_seconds": wall}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / METRICS, metrics)
    return metrics


def run_one(root: Path, rate: float, seed: int, model: str, args: argparse.Namespace) -> dict | None:
    out = root / "runs" / f"rate{rate:g}-seed{seed}-{model}"
    if (out / METRICS).is_file():
        done = json.loads((out / METRICS).read_text())
        # a k-mer run written before the grid kept its test scores is redone (seconds)
        if done.get("done") and (model != "kmer" or "test_scores" in done):
            return done
    folder = data_folder(root, rate, seed, args.bags, args.bag_size)
    dataset = RepertoireDataset.open(folder)
    split = dataset.split(seed=seed)
    if model == "kmer":
        return run_kmer(dataset, split, seed, out)
    config = RepertoireConfig.load(REPO / "recipes" / "repertoire" / f"{model}.json")
    config.seed = seed
    if args.epochs is not None:
        config.epochs = args.epochs
    bags = {part: [dataset[i] for i in split[part]] for part in PARTS}
    data = {"folder": str(folder), "witness_rate": rate, "split_seed": seed}

    def on_epoch(r: dict) -> None:
        print(
            f"  {out.name} epoch {r['epoch']}: loss {r['loss']:.4f} val {r['validation_auc']} test {r['test_auc']} "
            f"{r['seconds']:.0f} s",
            flush=True,
        )

    resume = any(
        (out / name).is_file() for name in (CHECKPOINT, CONFIG)
    )  # killed before its first checkpoint too
    run = train(config, bags, out, resume=resume, data=data, on_epoch=on_epoch)
    return json.loads((out / METRICS).read_text()) if run.history else None


def columns(args: argparse.Namespace) -> list[str]:
    """The summary's models: the default ones and those asked for (a grid run for one model keeps the others)."""
    return list(dict.fromkeys([*MODELS, *args.models]))


def summary(root: Path, args: argparse.Namespace) -> dict:
    table: dict = {}
    for rate in args.rates:
        for model in columns(args):
            aucs, epochs = [], []
            for seed in args.seeds:
                path = root / "runs" / f"rate{rate:g}-seed{seed}-{model}" / METRICS
                if path.is_file():
                    m = json.loads(path.read_text())
                    if m.get("done") and m.get("test_auc") is not None:
                        aucs.append(m["test_auc"])
                        epochs.append(m.get("selected_epoch"))
            table.setdefault(f"{rate:g}", {})[model] = {
                "runs": len(aucs),
                "test_auc": aucs,
                "mean": statistics.fmean(aucs) if aucs else None,
                "std": statistics.stdev(aucs) if len(aucs) > 1 else None,
                "selected_epochs": epochs,
            }
    return table


def write_summary(root: Path, args: argparse.Namespace) -> None:
    table = summary(root, args)
    grid = [a for a in sys.argv[1:] if a != "--summary-only"]  # the command that ran the grid
    command = " ".join(["python experiments/repertoire_grid.py", *grid])
    settings = {
        "bags": args.bags,
        "bag_size": args.bag_size,
        "rates": args.rates,
        "seeds": args.seeds,
        "models": args.models,
        "epochs": args.epochs,
        "root": str(root),
    }
    results = Path(args.results)
    write_json(
        results / "summary.json",
        {"command": command, "settings": settings, "table": table, "provenance": provenance()},
    )
    lines = [
        "# Repertoire grid: test AUC per witness rate and model",
        "",
        f"Command: `{command}` (commit {provenance().get('commit')}); {args.bags} bags of {args.bag_size} "
        "sequences per data set, split 60/20/20; mean +- standard deviation over the seeds finished (n).",
        "",
        "| witness rate | " + " | ".join(columns(args)) + " |",
        "|---|" + "---|" * len(columns(args)),
    ]
    for rate, row in table.items():
        cells = []
        for model in columns(args):
            c = row[model]
            if c["mean"] is None:
                cells.append("-")
            else:
                spread = f" +- {c['std']:.3f}" if c["std"] is not None else ""
                cells.append(f"{c['mean']:.3f}{spread} (n={c['runs']})")
        lines.append(f"| {float(rate):.2%} | " + " | ".join(cells) + " |")
    write_text(results / "summary.txt", "\n".join(lines) + "\n")
    write_text(results / "command.txt", command + "\n")
    print("\n".join(lines[4:]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="/work/runs/repertoire-grid")
    p.add_argument("--results", default=str(REPO / "docs" / "results" / "repertoire-grid"))
    p.add_argument("--bags", type=int, default=200)
    p.add_argument("--bag-size", type=int, default=10_000)
    p.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=CHOICES)
    p.add_argument("--epochs", type=int, default=None, help="override the recipes' epochs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--summary-only", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.root)
    if not args.summary_only:
        for seed in args.seeds:
            for model in args.models:
                for rate in args.rates:
                    print(f"rate {rate:g} seed {seed} {model}", flush=True)
                    m = run_one(root, rate, seed, model, args)
                    print(f"  -> test AUC {None if m is None else m.get('test_auc')}", flush=True)
                    write_summary(root, args)
    write_summary(root, args)


if __name__ == "__main__":
    main()
