"""The k-mer logistic regression on the gapped k-mers the gapped embedding starts from (like with like), on the
recorded grid's data and split, beside the contiguous k-mers of the grid's baseline.

    PYTHONPATH=src OMP_NUM_THREADS=1 python experiments/repertoire_gapped_kmer.py 0.0001 --seed 0

Prints (and appends to ``--log``) per feature set: the chosen ``k`` and ``l2``, the training, validation and test
AUC, and the rank of the motif's own gapped parts among the fitted weights of the chosen fit (refitted on the same
training bags; 1 = the largest weight), a diagnostic the fit never sees.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from assocmem.repertoire.dataset import RepertoireDataset
from assocmem.repertoire.gapped import gapped_patterns, pattern_name
from assocmem.repertoire.kmer import fit_logistic, kmer_baseline, kmer_features
from assocmem.repertoire.motif import Motif


def motif_ranks(dataset: RepertoireDataset, split: dict, k: int, span: int, l2: float, motif: Motif) -> dict:
    """The rank of each gapped part of ``motif`` (every sub-pattern the features hold) among the chosen fit's
    weights, largest first."""
    x = kmer_features(dataset, k=k, span=span).sqrt_()
    train = torch.tensor(split["train"])
    x -= x[train].mean(0)
    x /= x[train].std().clamp_min(1e-12) * x.shape[1] ** 0.5
    w, _ = fit_logistic(x[train], dataset.labels[train], l2)
    order = torch.argsort(w, descending=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(1, len(order) + 1)
    names, base = {}, 0
    codes = dict(zip(motif.offsets, motif.codes.tolist(), strict=True))
    for p in gapped_patterns(span, k):
        for start in range(motif.span):
            at = [start + o for o in p]
            if all(a in codes for a in at):
                index = 0
                for a in at:
                    index = index * 20 + codes[a]
                names[pattern_name(p, "".join(motif.pattern[a] for a in at))] = int(rank[base + index])
        base += 20 ** len(p)
    return names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rate")
    p.add_argument("--root", default="/work/runs/repertoire-grid")
    p.add_argument("--seed", type=int, default=0, help="the grid's data seed (its split)")
    p.add_argument("--span", type=int, default=5)
    p.add_argument("--letters", type=int, default=3)
    p.add_argument("--motif", default="RDW/H")
    p.add_argument("--log", default="/work/runs/i15-gapped/kmer.jsonl")
    args = p.parse_args()
    torch.set_num_threads(1)
    folder = Path(args.root) / "data" / f"rate{args.rate}-seed{args.seed}-bags200-size10000"
    dataset = RepertoireDataset.open(folder)
    split = dataset.split(seed=args.seed)
    for name, kw in (
        ("contiguous k=3,4", {"k": (3, 4)}),
        (f"gapped span={args.span} letters=2..{args.letters}", {"k": args.letters, "span": args.span}),
    ):
        start = time.perf_counter()
        r = kmer_baseline(dataset, split, **kw)
        row = {
            "features": name, "rate": float(args.rate), "data_seed": args.seed, "k": r.k, "span": r.span,
            "l2": r.l2, "train_auc": r.train_auc, "validation_auc": r.validation_auc, "test_auc": r.test_auc,
            "seconds": time.perf_counter() - start,
        }  # fmt: skip
        if r.span is not None:
            row["motif_part_ranks"] = motif_ranks(dataset, split, r.k, r.span, r.l2, Motif.parse(args.motif))
        print(json.dumps(row), flush=True)
        with open(args.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
