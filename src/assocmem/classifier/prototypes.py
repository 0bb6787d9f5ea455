"""The feature-to-prototype measure of learned classifier memories (KH16 section 4; docs/reference.md §3).

A memory ``xi_mu`` has a pixel part (what it looks like) and a label part ``xi_mu,a``, one weight per class. When
the memory is active (large ``F'(h_mu)``), flipping class neuron ``a`` to ``+1`` changes the field by about
``2 xi_mu,a F'(h_mu)`` (the dual network's output weight): the memory *votes for* class ``a`` when
``xi_mu,a > 0`` and against it when ``xi_mu,a < 0``, with strength ``|xi_mu,a|``. A feature (a stroke shared by
several digits) votes for several classes; a prototype (a whole digit) for one. KH16 report that at ``n = 30``
more than 40% of the memories vote for a single class, while at ``n = 2, 3`` the memories are features.

With the rectified ``F``, a memory that no image activates (``h_mu + max(0, max_a shift) <= 0`` for every image)
takes no part in any class update: it is *dead*, and since it has no gradient its momentum carries it on to a
saturated picture (often an inverted digit). :func:`active` finds the live memories; the measure is reported
for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from assocmem.checks import guard, nonfinite_error, require_tensor, where_not_finite
from assocmem.classifier.model import EVAL_CHUNK, DAMClassifier


@dataclass
class Votes:
    """Per memory: the class it votes for most (``label``), that label weight (``strength``), its lead over the
    next class (``margin``) and how many classes it votes for (``count``: label weights above the threshold)."""

    label: Tensor
    strength: Tensor
    margin: Tensor
    count: Tensor

    @property
    def single_class(self) -> float:
        """The fraction of memories that vote for exactly one class."""
        return float((self.count == 1).float().mean())

    def histogram(self) -> list[int]:
        """Number of memories voting for 0, 1, ..., C classes."""
        classes = 1 if self.count.numel() == 0 else int(self.count.max()) + 1
        return torch.bincount(self.count, minlength=classes).tolist()

    def summary(self) -> dict:
        return {
            "memories": int(self.count.numel()),
            "single_class": self.single_class,
            "votes_histogram": self.histogram(),
            "mean_strength": float(self.strength.mean()),
            "mean_margin": float(self.margin.mean()),
        }


def votes(label_weights: Tensor, threshold: float = 0.0) -> Votes:
    """The votes of memories with label parts ``label_weights (K, C)`` (``C >= 2``).

    Example: ``votes(model.memories[:, model.pixels:]).single_class``.
    """
    if not isinstance(label_weights, Tensor) or label_weights.dim() != 2 or label_weights.shape[1] < 2:
        raise ValueError(
            f"votes: label_weights must be a (K, C) tensor with C >= 2 classes, got "
            f"{getattr(label_weights, 'shape', type(label_weights).__name__)}"
        )
    require_tensor(label_weights, "label_weights", "votes")
    found = where_not_finite(label_weights.detach())
    if found is not None:
        raise ValueError(f"votes: label_weights holds NaN or Inf ({found}); every value must be finite")
    w = label_weights.detach().float()
    top = w.topk(2, dim=1)
    return Votes(
        label=top.indices[:, 0],
        strength=top.values[:, 0],
        margin=top.values[:, 0] - top.values[:, 1],
        count=(w > threshold).sum(1),
    )


@torch.no_grad()
def active(model: DAMClassifier, images: Tensor) -> Tensor:
    """``(K,)`` booleans: the memories that take part in the class update of at least one of ``images``.

    A term ``F(h_mu + shift) - F(h_mu)`` is nonzero for some image unless ``F = ReP_n`` and the largest argument,
    ``h_mu + max(0, max_a shift_a)``, is <= 0 for every image; the power ``x^n`` keeps every memory live.
    """
    if model.kind != "rectified":
        return torch.ones(model.num_memories, dtype=torch.bool, device=model.memories.device)
    model.scaled_inputs(images[:0])  # the images' checks (type, shape, dtype, device), before any work
    if images.shape[0] == 0:
        raise ValueError(
            "active: images is empty; a memory is live for some image, so at least one is needed"
        )
    top = None
    with guard() as g:
        for i in range(0, images.shape[0], EVAL_CHUNK):
            hs, ds = model.scaled_inputs(images[i : i + EVAL_CHUNK])
            chunk = (hs + ds.amax(0).clamp_min(0.0)).amax(0)
            top = chunk if top is None else torch.maximum(top, chunk)
        if g is not None:
            suspects = [("images", images), ("memories", model.memories)]
            g.result(top, lambda: nonfinite_error("active", suspects, "the memories' fields overflowed"))
    return top > 0
