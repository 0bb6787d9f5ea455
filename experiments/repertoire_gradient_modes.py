"""How much of a training bag's gradient is the same for every bag of its class (the common mode) at the start of
training: the measurement behind the attention recipe's balanced steps (docs/repertoire.md, "Low witness rates").

    PYTHONPATH=src OMP_NUM_THREADS=1 python experiments/repertoire_gradient_modes.py 0.001

For the attention recipe's fresh model and ``--bags`` positive and as many negative training bags of the grid's data
set at the given witness rate (seed 0's split), the gradient ``G_b`` of each bag's cross-entropy is split, per group
of parameters, into the class means ``mu+`` and ``mu-`` and each bag's deviation from its class mean. A fresh model
pools nearly the same vector from every bag (the bags differ by ``1/sqrt(n)`` sampling noise and the witness rate),
so ``G_b ~ (p_b - y_b) J``: ``|mu+ - mu-| / 2`` is the common mode, whose net weight in a step is the step's excess
of one class over the other, and the deviations (witness signal plus each bag's own sampling noise) are what can be
learned from. A step of randomly drawn bags carries the common mode with a weight of about one bag; a balanced step
cancels it up to ``(mean p - 1/2)``, which ``|mu+ + mu-| / 2`` measures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.nn import functional as F

from assocmem.repertoire.config import RepertoireConfig
from assocmem.repertoire.run import load_split, new_run

REPO = Path(__file__).resolve().parents[1]
GROUPS = {"convolution": "embedding.", "queries": "pool.", "output network": "output."}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rate")
    p.add_argument("--bags", type=int, default=10, help="positive bags (and as many negative ones)")
    p.add_argument("--root", default="/work/runs/repertoire-grid")
    p.add_argument("--recipe", default=str(REPO / "recipes" / "repertoire" / "attention.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    bags, _ = load_split(Path(args.root) / "data" / f"rate{args.rate}-seed0-bags200-size10000", 0)
    model = new_run(RepertoireConfig.load(args.recipe)).model
    chosen = {c: [b for b in bags["train"] if b.label == c][: args.bags] for c in (1, 0)}
    grads: dict[int, list[dict[str, torch.Tensor]]] = {1: [], 0: []}
    for c, group in chosen.items():
        for bag in group:
            model.zero_grad()
            logit = model(bag).logit
            F.binary_cross_entropy_with_logits(logit, torch.tensor(float(c))).backward()
            grads[c].append({n: q.grad.reshape(-1).clone() for n, q in model.named_parameters()})
            print(f"bag {bag.name} label {c}: p = {float(torch.sigmoid(logit.detach())):.4f}")
    print(
        "| parameters | common mode abs(mu+ - mu-)/2 | abs(mu+ + mu-)/2 | per-bag deviation (rms) | ratio |"
    )
    print("|---|---|---|---|---|")
    for label, prefix in GROUPS.items():
        stack = {
            c: torch.stack([torch.cat([g[n] for n in g if n.startswith(prefix)]) for g in grads[c]])
            for c in (1, 0)
        }
        mp, mn = stack[1].mean(0), stack[0].mean(0)
        common, offset = float((mp - mn).norm()) / 2, float((mp + mn).norm()) / 2
        deviation = float(torch.cat([stack[1] - mp, stack[0] - mn]).pow(2).sum(1).mean().sqrt())
        print(f"| {label} | {common:.3g} | {offset:.3g} | {deviation:.3g} | {common / deviation:.0f} |")


if __name__ == "__main__":
    main()
