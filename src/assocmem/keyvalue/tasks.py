"""The memory tasks of Tyulmankov et al. 2021 (appendix A; docs/reference.md §10), batched over episodes.

- Autoassociative recall (A.1): ``T`` random +-1 patterns are stored (``q = 1``), then each is queried with a
  random 60% of its entries set to 0 (``fill="zero"``, the paper's cue) or to random signs (``fill="random"``, the
  cue a binary network can take); accuracy is the fraction of entries whose sign comes back right.
- Continual recall (A.2): an endless stream in which each step is either a new pattern or, with probability
  ``p_query``, a query for the pattern shown ``R`` steps before (never a query of a query; the first ``R`` steps are
  new). A new pattern is stored (``q = 1``) only if it is queried later, so the items in between are skipped with
  ``q = 0``. Accuracy is measured at the query steps, as a function of ``R``.
- Heteroassociative recall (A.3): as autoassociative, with values drawn independently of the keys.
- Sequence recall (A.3): the pairs ``(x_t, x_{t+1})`` of a sequence are stored; from a prompt ``x_s`` the memory
  is run in a loop, each read-out's sign being the next query, and the rest of the sequence is compared.
"""

from __future__ import annotations

import torch
from torch import Tensor

from assocmem.checks import is_count, is_fraction
from assocmem.keyvalue.memory import KeyValueMemory

FILLS = ("zero", "random")


def _device(generator: torch.Generator | None, device: object) -> object:
    return generator.device if generator is not None else device


def random_patterns(
    batch: int,
    count: int,
    size: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """``batch`` episodes of ``count`` independent, uniformly random +-1 patterns of ``size`` entries, (B, T, n)."""
    for name, v in (("batch", batch), ("count", count), ("size", size)):
        if not is_count(v):
            raise ValueError(f"random_patterns: {name} must be an integer >= 1, got {v!r}")
    bits = torch.randint(0, 2, (batch, count, size), generator=generator, device=_device(generator, device))
    return (2.0 * bits - 1.0).to(dtype=dtype or torch.get_default_dtype(), device=device)


def occlude(
    patterns: Tensor, fraction: float = 0.6, *, fill: str = "zero", generator: torch.Generator | None = None
) -> Tensor:
    """Hide each entry independently with probability ``fraction``: set it to 0 (``fill="zero"``) or to a random
    sign (``fill="random"``). Returns a new tensor of the patterns' shape."""
    if not isinstance(patterns, Tensor) or not patterns.is_floating_point():
        raise TypeError("occlude: patterns must be a floating-point tensor")
    if not is_fraction(fraction):
        raise ValueError(f"occlude: fraction must be a number in [0, 1], got {fraction!r}")
    if fill not in FILLS:
        raise ValueError(f"occlude: fill must be one of {FILLS}, got {fill!r}")
    dev = _device(generator, patterns.device)
    hidden = (torch.rand(patterns.shape, generator=generator, device=dev) < fraction).to(patterns.device)
    if fill == "zero":
        return patterns.masked_fill(hidden, 0.0)
    signs = 2.0 * torch.randint(0, 2, patterns.shape, generator=generator, device=dev).to(patterns) - 1.0
    return torch.where(hidden, signs, patterns)


def sign_accuracy(outputs: Tensor, targets: Tensor, mask: Tensor | None = None) -> float:
    """The fraction of entries with ``sign(outputs) == targets`` (a zero output counts as wrong); with ``mask``
    (broadcastable to the leading dimensions), only over the items it marks."""
    if outputs.shape != targets.shape:
        raise ValueError(
            f"sign_accuracy: outputs {tuple(outputs.shape)} and targets {tuple(targets.shape)} differ"
        )
    right = (torch.sign(outputs) == targets).to(torch.float64).mean(dim=-1)
    if mask is None:
        return float(right.mean())
    m = mask.to(torch.float64).expand_as(right)
    return float((right * m).sum() / m.sum().clamp_min(1.0))


def autoassociative_recall(
    memory: KeyValueMemory, patterns: Tensor, cues: Tensor, *, generator: torch.Generator | None = None
) -> Tensor:
    """Store ``patterns`` (B, T, d) into empty memories, then read the ``cues`` (B, L, d): the read-outs (B, L, d)."""
    with torch.no_grad():
        state = memory.store(
            memory.init_state(patterns.shape[0], dtype=patterns.dtype, device=patterns.device),
            patterns,
            generator=generator,
        )
        return memory.read(state, cues)


def continual_schedule(
    batch: int, length: int, delay: int, *, p_query: float = 0.5, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Which steps of a continual stream are queries, and the global factor of every step.

    Returns ``is_query`` (B, L) bool -- step ``t`` queries the pattern shown at ``t - delay`` -- and ``gates``
    (B, L) in {0, 1}: ``q_t = 1`` exactly for the new patterns that are queried later.
    """
    for name, v in (("batch", batch), ("length", length), ("delay", delay)):
        if not is_count(v):
            raise ValueError(f"continual_schedule: {name} must be an integer >= 1, got {v!r}")
    if not is_fraction(p_query):
        raise ValueError(f"continual_schedule: p_query must be in [0, 1], got {p_query!r}")
    coin = torch.rand((batch, length), generator=generator, device=_device(generator, None)) < p_query
    is_query = torch.zeros((batch, length), dtype=torch.bool)
    for t in range(delay, length):
        is_query[:, t] = coin[:, t].cpu() & ~is_query[:, t - delay]
    gates = torch.zeros((batch, length))
    gates[:, : length - delay] = is_query[:, delay:].float()
    return is_query, gates


def continual_recall(
    memory: KeyValueMemory,
    delay: int,
    *,
    batch: int,
    length: int | None = None,
    p_query: float = 0.5,
    fraction: float = 0.6,
    fill: str = "zero",
    generator: torch.Generator | None = None,
) -> float:
    """Accuracy at the query steps of ``batch`` continual streams with delay ``R = delay`` (default length
    ``max(1000, 20 R)``, the paper's). Every step is a write (``q = 0`` at queries and skipped items)."""
    length = max(1000, 20 * delay) if length is None else length
    is_query, gates = continual_schedule(batch, length, delay, p_query=p_query, generator=generator)
    d = memory.key_size
    shown = random_patterns(batch, length, d, generator=generator)
    right, count = 0.0, 0
    with torch.no_grad():
        state = memory.init_state(batch)
        for t in range(length):
            x = shown[:, t]
            ask = is_query[:, t]
            if t >= delay and bool(ask.any()):
                target = shown[:, t - delay]
                cue = occlude(target, fraction, fill=fill, generator=generator)
                x = torch.where(ask.unsqueeze(1), cue, x)
                out = memory.read(state, cue)
                ok = (torch.sign(out) == target).to(torch.float64).mean(dim=1)
                right += float(ok[ask].sum())
                count += int(ask.sum())
            state = memory.write(state, x, gate=gates[:, t], generator=generator)
    return right / max(count, 1)


def sequence_recall(
    memory: KeyValueMemory, sequence: Tensor, prompt: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """Store the transitions of ``sequence`` (B, T, d) (key ``x_t``, value ``x_{t+1}``), then from ``x_prompt``
    run the memory in a loop, ``x <- sign(read(x))``: the recalled ``x_{prompt+1} .. x_T``, (B, T - prompt - 1, d).
    ``generator`` drives a random local factor."""
    b, length, d = sequence.shape
    if not (isinstance(prompt, int) and 0 <= prompt < length - 1):
        raise ValueError(f"sequence_recall: prompt must be an index in [0, {length - 2}], got {prompt!r}")
    if memory.value_size != d:
        raise ValueError(f"sequence_recall: the memory's value_size ({memory.value_size}) must equal d = {d}")
    with torch.no_grad():
        state = memory.store(
            memory.init_state(b, dtype=sequence.dtype, device=sequence.device),
            sequence[:, :-1],
            sequence[:, 1:],
            generator=generator,
        )
        x, out = sequence[:, prompt], []
        for _ in range(length - prompt - 1):
            x = torch.sign(memory.read(state, x))
            out.append(x)
    return torch.stack(out, dim=1)
