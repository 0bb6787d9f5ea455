"""Training a repertoire classifier: one epoch of Adam steps over the training bags, and the scores of a set of bags
(docs/repertoire.md, "Training").

A step averages the binary cross-entropy of ``bags_per_step`` bags (each bag is embedded and pooled whole, its
gradient accumulated before the next bag is read, so memory holds one bag at a time). The bags' order is drawn
afresh every epoch from the run's generator. With ``subsample = m`` a bag larger than ``m`` is replaced, during
training only, by ``m`` of its sequences drawn without replacement from the same generator (DeepRC draws a subset
of each bag too); evaluation always reads every sequence. Subsampling speeds training up but can drop the only
witnesses of a bag at low witness rates (at 0.01% of 10^4 sequences a positive bag has one), so the recorded
grid trains on whole bags.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch.nn import functional as F

from assocmem.repertoire.bag import Repertoire
from assocmem.repertoire.config import RepertoireConfig
from assocmem.repertoire.model import RepertoireClassifier

#: ``on_step(step, steps, loss)`` after every Adam step.
StepCallback = Callable[[int, int, float], None]


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


def subsampled(bag: Repertoire, size: int | None, generator: torch.Generator) -> Repertoire:
    """``bag``, or a random subset of ``size`` of its sequences when it holds more (witness kept aligned)."""
    if size is None or bag.size <= size:
        return bag
    keep = torch.randperm(bag.size, generator=generator)[:size].sort().values
    width = int(bag.lengths[keep].max())
    witness = None if bag.witness is None else bag.witness[keep]
    return Repertoire(
        bag.name, bag.codes[keep, :width], bag.lengths[keep], bag.counts[keep], bag.label, witness
    )


def epoch_order(labels: Sequence[int], balanced: bool, generator: torch.Generator) -> list[int]:
    """The bags' order for one epoch (indices into ``labels``), drawn from ``generator``. ``balanced``: the positive
    and the negative bags each in their own random order, dealt alternately, so a step of an even number of bags
    (``bags_per_step``) holds as many of each class while both last (the rest of the larger class closes the epoch)."""
    if not balanced:
        return torch.randperm(len(labels), generator=generator).tolist()
    classes = [[i for i, y in enumerate(labels) if y == c] for c in (1, 0)]
    shuffled = [[c[j] for j in torch.randperm(len(c), generator=generator).tolist()] for c in classes]
    first = int(torch.randint(2, (), generator=generator))  # which class opens each pair
    pairs = min(map(len, shuffled))
    order = []
    for k in range(pairs):
        order += [shuffled[first][k], shuffled[1 - first][k]]
    return order + shuffled[0][pairs:] + shuffled[1][pairs:]


def train_epoch(
    model: RepertoireClassifier,
    optimizer: torch.optim.Optimizer,
    bags: Sequence[Repertoire],
    config: RepertoireConfig,
    generator: torch.Generator,
    on_step: StepCallback | None = None,
) -> dict:
    """One pass over ``bags`` in an order drawn from ``generator``; returns the epoch's mean loss and seconds."""
    model.train()
    start, cpu = time.perf_counter(), time.process_time()
    per = config.bags_per_step
    order = epoch_order([b.label for b in bags], config.balanced, generator)
    steps = -(-len(order) // per)
    total, sequences = 0.0, 0
    for s in range(steps):
        group = order[s * per : (s + 1) * per]
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for i in group:
            bag = subsampled(bags[i], config.subsample, generator)
            out = model(bag)
            target = torch.tensor(float(bag.label), dtype=out.logit.dtype)
            loss = F.binary_cross_entropy_with_logits(out.logit, target) / len(group)
            loss.backward()
            step_loss += float(loss.detach())
            sequences += bag.size
        if not torch.isfinite(torch.tensor(step_loss)):
            raise DivergenceError(f"the training loss became {step_loss} at step {s + 1} of the epoch")
        optimizer.step()
        total += step_loss * len(group)
        if on_step is not None:
            on_step(s + 1, steps, step_loss)
    seconds = time.perf_counter() - start
    return {
        "loss": total / len(order),
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,
        "sequences_per_second": sequences / seconds,
    }


@torch.no_grad()
def scores(model: RepertoireClassifier, bags: Sequence[Repertoire]) -> torch.Tensor:
    """The logits ``(len(bags),)`` of every bag (evaluation mode, every sequence read)."""
    model.eval()
    return (
        torch.stack([model(bag).logit.detach().to(torch.float64) for bag in bags]) if bags else torch.empty(0)
    )
