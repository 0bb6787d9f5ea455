"""Why the attention model does not learn at low witness rates, and what makes it: quick runs of the attention recipe
with some settings changed, on the recorded grid's data (seed 0's split), one thread.

    PYTHONPATH=src OMP_NUM_THREADS=1 python experiments/repertoire_lowrate.py 0.001 balanced '{"balanced": true}'

Arguments: the witness rate (the grid's data set ``ROOT/data/rate<rate>-seed0-bags200-size10000``), a name, and a
JSON object of settings that override ``--recipe``. Per epoch it prints (and appends to ``--log``) the training
loss, the validation and test AUC, the seconds, and a diagnostic the model never sees: the attention weight that
falls on the witness sequences of the positive validation bags (the head with most, averaged over bags; ``rate`` at
uniform attention). The last line is the epoch chosen on validation AUC and its test AUC (never chosen on
test). ``--fresh``: only the fresh model's witness share; ``--saved RUN``: only that of a run folder's last and
selected weights.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import assocmem.repertoire.run as repertoire_run
from assocmem.repertoire.config import RepertoireConfig
from assocmem.repertoire.run import load_split, train

REPO = Path(__file__).resolve().parents[1]


def witness_share(model: torch.nn.Module, bags: list) -> float:
    """Mean over the bags of the largest head's attention weight on the bag's witnesses."""
    model.eval()
    shares = []
    with torch.no_grad():
        for bag in bags:
            shares.append(float(model(bag).weights[:, bag.witness].sum(1).max()))
    return sum(shares) / len(shares)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rate")
    p.add_argument("name")
    p.add_argument("settings", help="JSON object of recipe settings to change")
    p.add_argument("--root", default="/work/runs/repertoire-grid")
    p.add_argument("--seed", type=int, default=0, help="the grid's data seed (its split and the run's seed)")
    p.add_argument("--recipe", default=str(REPO / "recipes" / "repertoire" / "attention.json"))
    p.add_argument("--log", default="/work/runs/repertoire-lowrate/log.jsonl")
    p.add_argument("--fresh", action="store_true", help="print the fresh model's witness share and stop")
    p.add_argument(
        "--saved", help="print the witness share of this run folder's last and selected weights and stop"
    )
    args = p.parse_args()
    torch.set_num_threads(1)
    settings = json.loads(args.settings)
    data = Path(args.root) / "data" / f"rate{args.rate}-seed{args.seed}-bags200-size10000"
    bags, _ = load_split(data, args.seed)
    recipe = RepertoireConfig.load(args.recipe).to_dict()
    config = RepertoireConfig.from_dict({**recipe, "seed": args.seed, **settings})
    positives = [b for b in bags["validation"] if b.label == 1]
    if args.saved:
        run = repertoire_run.load_run(args.saved)
        last, chosen = witness_share(run.model, positives), witness_share(run.selected(), positives)
        print(f"{args.saved}: witness share {last} at epoch {run.epoch}, {chosen} at epoch {run.best_epoch}")
        return
    if args.fresh:
        print(
            args.name,
            "fresh model: witness share",
            witness_share(repertoire_run.new_run(config).model, positives),
        )
        return
    runs = []
    made = repertoire_run.new_run

    def new_run(c: RepertoireConfig) -> repertoire_run.RepertoireRun:  # keep the model for the diagnostic
        runs.append(made(c))
        return runs[-1]

    repertoire_run.new_run = new_run
    start, log = time.perf_counter(), []

    def on_epoch(r: dict) -> None:
        share = witness_share(runs[-1].model, positives) if config.pooling == "attention" else None
        row = {k: r[k] for k in ("epoch", "loss", "validation_auc", "test_auc", "seconds")}
        row |= {"witness_share": share, "elapsed": time.perf_counter() - start}
        log.append(row)
        print(args.name, json.dumps(row), flush=True)

    train(config, bags, None, on_epoch=on_epoch)
    # the first of equals, as the runs select
    best = max(log, key=lambda r: (r["validation_auc"], -r["epoch"]))
    result = {
        "name": args.name, "rate": float(args.rate), "data_seed": args.seed, "settings": settings,
        "selected_epoch": best["epoch"], "validation_auc": best["validation_auc"], "test_auc": best["test_auc"],
        "seconds": time.perf_counter() - start, "per_epoch": log,
    }  # fmt: skip
    print("RESULT", json.dumps({k: v for k, v in result.items() if k != "per_epoch"}), flush=True)
    with open(args.log, "a", encoding="utf-8") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
