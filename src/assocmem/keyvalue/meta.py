"""Meta-learning the plasticity rule by gradient descent through write-then-read episodes.

Tyulmankov et al. 2021, section 3.2 (docs/reference.md §10). An episode stores ``T`` random +-1 patterns (``T``
drawn uniformly from ``lengths``, by default ``N/2`` to ``2N`` as in the paper, so the memory is pushed past its
slots) and reads each back from a cue with 60% of its entries set to 0; the loss is the mean squared error between
the read-outs and the patterns. Adam descends it with respect to the rule's parameters
(:class:`~assocmem.keyvalue.plasticity.PlasticityRule`), the gradient flowing through every write of the episode.
After each step the parameters that act as decays are projected back into ``[0, 1]``: ``lambda~``, and the rates
of the rules whose decay is ``1 - eta`` (the key rule, and the value rule when it is ``"local"``).

The paper's claim to test: started from a rule with no preference, the key synapses become pre-only and the value
synapses Hebbian -- the designed rule. Two distances: :meth:`PlasticityRule.distance`, the angle between the rules'
coefficients, and :func:`update_angles`, the angle between the weight changes the learned rule makes over an
episode and those the designed rule makes from the same activity. The second discounts the parts of a rule the
activity never exercises (the key rule's dependence on the hidden unit's rate, which is near zero in the slot
being overwritten, is barely constrained by training and drifts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from assocmem.checks import is_count, is_fraction, positive_float, require_tensor, where_not_finite
from assocmem.keyvalue.memory import KeyValueMemory
from assocmem.keyvalue.tasks import occlude, random_patterns, sign_accuracy


@dataclass
class MetaLearning:
    """What :func:`meta_learn` returns: the memory (its rule trained in place) and the record of training.

    ``history``: one dict per recorded step with ``step``, ``loss``, ``accuracy`` (of that step's episodes),
    ``key_angle`` and ``value_angle`` (degrees from the designed rules) and every rule parameter
    (:meth:`PlasticityRule.as_dict`).
    """

    memory: KeyValueMemory
    history: list[dict[str, float]] = field(default_factory=list)


def _project(memory: KeyValueMemory) -> None:
    rule = memory.rule
    with torch.no_grad():
        rule.value_decay.clamp_(0.0, 1.0)
        rule.key_rate.clamp_(0.0, 1.0)
        if memory.value_rule == "local":
            rule.value_rate.clamp_(0.0, 1.0)


def meta_learn(
    memory: KeyValueMemory,
    *,
    steps: int = 1000,
    batch: int = 32,
    lengths: tuple[int, int] | None = None,
    lr: float = 1e-2,
    lr_final: float | None = None,
    fraction: float = 0.6,
    record_every: int = 10,
    generator: torch.Generator | None = None,
) -> MetaLearning:
    """Train ``memory.rule`` for ``steps`` Adam steps of ``batch`` episodes each; returns a :class:`MetaLearning`.

    The learning rate is ``lr`` throughout, or anneals from ``lr`` to ``lr_final`` on a cosine when that is given.

    Example::

        mem = KeyValueMemory(16, 16, value_rule="passive", rule=PlasticityRule.uniform(0.01))
        meta_learn(mem, steps=600, lr=1e-2, lr_final=1e-3)
        update_angles(mem, tasks.random_patterns(32, 32, 16))  # a few degrees from the designed rule

    (docs/keyvalue.md records the run at d = N = 40.)
    """
    if not isinstance(memory, KeyValueMemory):
        raise TypeError(f"meta_learn: memory must be a KeyValueMemory, got {type(memory).__name__}")
    for name, v in (("steps", steps), ("batch", batch), ("record_every", record_every)):
        if not is_count(v):
            raise ValueError(f"meta_learn: {name} must be an integer >= 1, got {v!r}")
    n = memory.slots
    pair = lengths if lengths is not None else (max(1, n // 2), 2 * n)
    if not (isinstance(pair, tuple | list) and len(pair) == 2 and all(is_count(v) for v in pair)) or (
        pair[0] > pair[1]
    ):
        raise ValueError(f"meta_learn: lengths must be two integers 1 <= low <= high, got {lengths!r}")
    low, high = pair
    if not is_fraction(fraction):
        raise ValueError(
            f"meta_learn: fraction (of each cue's entries hidden) must be in [0, 1], got {fraction!r}"
        )
    for name, p in memory.rule.named_parameters():
        if p.is_meta:
            raise ValueError(f"meta_learn: memory.rule.{name} is on the meta device (a shape without values)")
        found = where_not_finite(p.detach())
        if found is not None:
            raise ValueError(
                f"meta_learn: memory.rule.{name} holds NaN or Inf ({found}); start from a finite rule"
            )
    if memory.value_size != memory.key_size:
        raise ValueError(
            "meta_learn: the episodes are autoassociative; the memory needs value_size == key_size"
        )
    lr = positive_float(lr, "lr", "meta_learn")
    opt = torch.optim.Adam(memory.rule.parameters(), lr=lr)
    final = lr if lr_final is None else positive_float(lr_final, "lr_final", "meta_learn")
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=final)
    out = MetaLearning(memory)
    dtype = memory.rule.key_rate.dtype
    for step in range(steps + 1):
        count = int(torch.randint(low, high + 1, (1,), generator=generator))
        patterns = random_patterns(batch, count, memory.key_size, generator=generator, dtype=dtype)
        cues = occlude(patterns, fraction, generator=generator)
        recalled = memory(patterns, cues, generator=generator)
        loss = torch.mean((recalled - patterns) ** 2)
        if step % record_every == 0 or step == steps:
            angles = memory.rule.distance()
            out.history.append(
                {
                    "step": step,
                    "loss": float(loss.detach()),
                    "accuracy": sign_accuracy(recalled.detach(), patterns),
                    "key_angle": angles["key"],
                    "value_angle": angles["value"],
                    **memory.rule.as_dict(),
                }
            )
        if step == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        _project(memory)
    return out


def _angle(a: Tensor, b: Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    norm = float(a.norm() * b.norm())
    cos = float(a @ b) / norm if norm > 0 else 0.0
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def update_angles(
    memory: KeyValueMemory, patterns: Tensor, *, generator: torch.Generator | None = None
) -> dict[str, float]:
    """Angles (degrees) between the updates ``memory``'s rule makes while storing ``patterns`` (B, T, d) and the
    designed rule's updates from the same activity: ``x`` (a pre-only key update) for every key row the write
    changes, ``y h'^T`` (a Hebbian value update) where the learned rule writes values. Keys ``"key"``, ``"value"``.
    """
    who = "update_angles"
    if not isinstance(memory, KeyValueMemory):
        raise TypeError(f"{who}: memory must be a KeyValueMemory, got {type(memory).__name__}")
    require_tensor(patterns, "patterns", who)
    if patterns.dim() != 3 or patterns.shape[2] != memory.key_size:
        raise ValueError(
            f"{who}: patterns must have shape (B, T, d) with d = {memory.key_size} (the memory's key_size), "
            f"got {tuple(patterns.shape)}"
        )
    if patterns.shape[0] == 0 or patterns.shape[1] == 0:
        raise ValueError(
            f"{who}: patterns is empty {tuple(patterns.shape)}; an angle needs at least one update"
        )
    found = where_not_finite(patterns)  # a measurement: the scan is small beside the T writes
    if found is not None:
        raise ValueError(f"{who}: patterns holds NaN or Inf ({found}); every value must be finite")
    rule = memory.rule
    learned: dict[str, list[Tensor]] = {"key": [], "value": []}
    designed: dict[str, list[Tensor]] = {"key": [], "value": []}
    with torch.no_grad():
        r = {n: t.to(patterns.dtype) for n, t in rule.named_parameters()}
        state = memory.init_state(patterns.shape[0], dtype=patterns.dtype, device=patterns.device)
        for t in range(patterns.shape[1]):
            x = patterns[:, t]
            h = memory.hidden(state.keys, x.unsqueeze(1)).squeeze(1)
            new = memory.store(state, x.unsqueeze(1), generator=generator)
            written = (new.keys != state.keys).any(dim=2)  # (B, N): the rows the local factor opened
            h_new = memory.hidden(new.keys, x.unsqueeze(1)).squeeze(1)
            key = (r["key_post"][0] * h + r["key_post"][1]).unsqueeze(2) * (
                r["key_pre"][0] * x + r["key_pre"][1]
            ).unsqueeze(1)
            learned["key"].append(key[written])
            designed["key"].append(x.unsqueeze(1).expand_as(key)[written])
            value = (r["value_post"][0] * x + r["value_post"][1]).unsqueeze(2) * (
                r["value_pre"][0] * h_new + r["value_pre"][1]
            ).unsqueeze(1)
            hebb = x.unsqueeze(2) * h_new.unsqueeze(1)
            columns = written.unsqueeze(1).expand_as(value) if memory.value_rule == "local" else slice(None)
            learned["value"].append(value[columns])
            designed["value"].append(hebb[columns])
            state = new
    return {k: _angle(torch.cat(learned[k]), torch.cat(designed[k])) for k in learned}
