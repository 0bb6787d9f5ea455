"""The capacity laboratory: how many random +-1 memories a binary network recalls (docs/reference.md §3, §5).

:func:`measure_loads` stores ``K`` random patterns for each ``K`` asked, corrupts each cue by flipping exactly
``round(flip N)`` of its pattern's bits, runs :meth:`~assocmem.engines.BinaryDAM.recall`, and counts perfect
recalls and wrong bits, with Wilson confidence intervals and the theory values of
:mod:`assocmem.laboratory.theory` beside them. :func:`sweep_neurons` finds, for several ``N``, the largest ``K``
whose bit-error rate stays below a threshold and fits the scaling law: ``K = c N`` for the classical network
(``n = 2``), ``K = c N^(n-1)`` for (rectified) powers, ``K = A e^(c N)`` for ``F = exp``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from assocmem.checks import is_count, is_fraction
from assocmem.data import flip_bits
from assocmem.engines import BinaryDAM, ClassicalHopfield
from assocmem.engines.binary.dam import BinaryNetwork
from assocmem.laboratory import theory
from assocmem.lagrangians import AdditiveLagrangian, Polynomial
from assocmem.models import interaction

MODELS = ("classical", "power", "rectified", "exp")
#: A recall counts as "retrieved" (near the memory, the retrieval state of AGS) at final overlap >= 0.9.
RETRIEVED = 0.05


@dataclass(frozen=True)
class ModelSpec:
    """A binary network by name: ``"classical"``, or KH16's ``F`` (``"power"``, ``"rectified"`` with a degree
    ``n``; ``"exp"`` with an optional ``beta``)."""

    model: str
    n: float | None = None
    beta: float | None = None

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.model == "classical" and (self.n not in (None, 2) or self.beta is not None):
            raise ValueError(
                "the classical network has n = 2 and no beta; use --model power --n 2 for KH16's form"
            )
        if self.model != "classical":
            interaction(self.model, self.n, self.beta, who=f"--model {self.model}")  # checks n >= 1, beta > 0

    @property
    def lagrangian(self) -> AdditiveLagrangian:
        if self.model == "classical":
            return Polynomial(2)  # the same update (the KH16 n = 2 field is 4 times the local field)
        return interaction(self.model, self.n, self.beta)

    @property
    def degree(self) -> float | None:
        return 2 if self.model == "classical" else self.n

    def build(self, patterns: Tensor) -> BinaryNetwork:
        if self.model == "classical":
            return ClassicalHopfield(patterns)
        return BinaryDAM(patterns, self.model, n=self.n, beta=self.beta)

    def load(self, neurons: int, memories: int) -> float:
        """The natural load: ``K / N^(n-1)`` for polynomials, ``log(K) / N`` for ``exp``."""
        if self.model == "exp":
            return math.log(memories) / neurons
        return memories / neurons ** (self.degree - 1)

    def describe(self) -> str:
        if self.model == "classical":
            return "classical Hopfield (T = xi^T xi, zero diagonal)"
        if self.model == "exp":
            return f"DAM F = exp(beta x)/beta, beta = {self.beta if self.beta is not None else 1.0:g}"
        return f"DAM F = {'x' if self.model == 'power' else 'max(x, 0)'}^{self.n:g}"


def wilson(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval (95% by default) for a binomial proportion ``successes / trials``."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    denom = 1.0 + z * z / trials
    center = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    lo = 0.0 if successes == 0 else max(0.0, center - half)
    return (lo, 1.0 if successes == trials else min(1.0, center + half))


def random_patterns(count: int, neurons: int, generator: torch.Generator) -> Tensor:
    """``count`` random +-1 patterns of ``neurons`` bits (float32)."""
    return torch.randint(0, 2, (count, neurons), generator=generator).float() * 2 - 1


def check_run(
    neurons: int, memories: list[int], trials: int, flip: float, mode: str, max_steps: int = 1
) -> None:
    if not is_count(neurons):
        raise ValueError(f"--neurons must be an integer >= 1, got {neurons!r}")
    if not memories or any(not is_count(k) for k in memories):
        raise ValueError(f"--memories must list integers >= 1 (e.g. 10,20,40), got {memories!r}")
    if not is_count(trials):
        raise ValueError(f"--trials must be an integer >= 1, got {trials!r}")
    if not is_fraction(flip):
        raise ValueError(f"--flip must be a fraction in [0, 1], got {flip!r}")
    if mode not in ("async", "sync"):
        raise ValueError(f"--mode must be async or sync, got {mode!r}")
    if not is_count(max_steps):
        raise ValueError(f"--max-sweeps must be an integer >= 1 (max_steps), got {max_steps!r}")


def measure_load(
    spec: ModelSpec,
    neurons: int,
    memories: int,
    trials: int,
    flip: float,
    generator: torch.Generator,
    *,
    mode: str = "async",
    max_steps: int = 100,
) -> dict:
    """Recall ``trials`` corrupted patterns from networks of ``memories`` random patterns; counts and rates.

    A new pattern set is drawn for every block of ``min(trials, K)`` cues, each cue from a different pattern.
    """
    flipped = round(flip * neurons)
    perfect = wrong = converged = sweeps = retrieved = 0
    done, start = 0, time.perf_counter()
    per_trial = []
    while done < trials:
        block = min(trials - done, memories)
        patterns = random_patterns(memories, neurons, generator)
        res = spec.build(patterns).recall(
            flip_bits(patterns[:block], flip, generator=generator),
            mode=mode,
            max_steps=max_steps,
            generator=generator,
        )
        errors = (res.states != patterns[:block]).sum(dim=1)
        per_trial.append(errors.double() / neurons)
        perfect += int((errors == 0).sum())
        retrieved += int((errors <= RETRIEVED * neurons).sum())
        wrong += int(errors.sum())
        converged += int(res.converged.sum())
        sweeps += int(res.steps.sum())
        done += block
    bits = trials * neurons
    rate = wrong / bits
    lo, hi = wilson(wrong, bits)
    rates = torch.cat(per_trial)
    spread = 1.96 * float(rates.std()) / math.sqrt(trials) if trials > 1 else 1.0
    row = {
        "memories": memories,
        "load": spec.load(neurons, memories),
        "trials": trials,
        "perfect_recall": {
            "fraction": perfect / trials,
            "ci95": list(wilson(perfect, trials)),
            "count": perfect,
        },
        "bit_error_rate": {
            "rate": rate,
            "ci95": [lo, hi],
            "ci95_between_trials": [max(0.0, rate - spread), min(1.0, rate + spread)],
            "wrong_bits": wrong,
            "bits": bits,
        },
        "mean_final_overlap": {"value": 1 - 2 * rate, "ci95": [1 - 2 * hi, 1 - 2 * lo]},
        "retrieved": {
            "fraction": retrieved / trials,
            "ci95": list(wilson(retrieved, trials)),
            "count": retrieved,
        },
        "converged_fraction": converged / trials,
        "mean_sweeps": sweeps / trials,
        "seconds": time.perf_counter() - start,
    }
    one_step = theory.one_step_error(spec.lagrangian, neurons, memories, flipped)
    row["theory"] = {
        "one_step_bit_error": one_step,
        "one_step_perfect_recall": (1.0 - one_step) ** neurons,
    }
    return row


def measure_loads(
    spec: ModelSpec,
    neurons: int,
    memories: list[int],
    trials: int,
    flip: float,
    *,
    mode: str = "async",
    seed: int = 0,
    max_steps: int = 100,
    progress: Callable[[dict], None] | None = None,
) -> list[dict]:
    """:func:`measure_load` for each ``K`` in ``memories`` (one generator seeded with ``seed``)."""
    check_run(neurons, memories, trials, flip, mode, max_steps)
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for k in memories:
        rows.append(measure_load(spec, neurons, k, trials, flip, generator, mode=mode, max_steps=max_steps))
        if progress is not None:
            progress(rows[-1])
    return rows


def theory_curves(spec: ModelSpec, neurons: int, memories: list[int], flip: float, points: int = 60) -> dict:
    """The theory of :func:`measure_load` on a dense grid of ``K`` spanning ``memories`` (for the figure)."""
    lo, hi = min(memories), max(memories)
    grid = sorted({round(lo * (hi / lo) ** (i / (points - 1))) for i in range(points)} | set(memories))
    flipped = round(flip * neurons)
    p = [theory.one_step_error(spec.lagrangian, neurons, k, flipped) for k in grid]
    curves = {
        "memories": grid,
        "one_step_bit_error": p,
        "one_step_perfect_recall": [(1 - q) ** neurons for q in p],
    }
    if spec.degree == 2 and spec.model in ("classical", "power"):
        ags = [theory.ags_overlap(k / neurons) for k in grid]
        curves["ags_overlap"] = [None if math.isnan(a) else a for a in ags]
        curves["critical_load"], curves["overlap_at_critical_load"] = theory.ags_critical_load()
    return curves


def largest_memories(
    evaluate: Callable[[int], float],
    threshold: float,
    *,
    start: int = 16,
    resolution: float = 0.05,
    limit: int = 1 << 20,
) -> tuple[int, list[tuple[int, float]]]:
    """The largest ``K`` with ``evaluate(K) <= threshold``: doubling (or halving) from ``start`` to bracket it,
    then bisection until the bracket is within ``resolution`` of ``K``.

    Returns ``(K, [(K, error), ...])`` (``K = 0`` when even one memory fails; capped at ``limit``).
    """
    seen: list[tuple[int, float]] = []

    def passes(k: int) -> bool:
        err = evaluate(k)
        seen.append((k, err))
        return err <= threshold

    k = max(1, min(start, limit))
    if passes(k):
        lo, hi = k, 2 * k
        while hi <= limit and passes(hi):
            lo, hi = hi, 2 * hi
        if hi > limit:
            return lo, seen
    else:
        hi, lo = k, k // 2
        while lo >= 1 and not passes(lo):
            hi, lo = lo, lo // 2
        if lo == 0:
            return 0, seen
    while hi - lo > max(1, math.ceil(resolution * lo)):
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if passes(mid) else (lo, mid)
    return lo, seen


def fit_scaling(spec: ModelSpec, neurons: list[int], capacities: list[int]) -> dict:
    """Fit the scaling law of ``spec`` to measured ``(N, K_max)``: the constant, and a free-exponent check."""
    pts = [(n, k) for n, k in zip(neurons, capacities, strict=True) if k > 0]
    if len(pts) < 2:
        return {"law": None, "note": "fewer than two sizes with K_max > 0; nothing to fit"}
    n_arr = np.array([p[0] for p in pts], dtype=np.float64)
    k_arr = np.log(np.array([p[1] for p in pts], dtype=np.float64))
    if spec.model == "exp":
        slope, intercept = np.polyfit(n_arr, k_arr, 1)
        return {"law": "K = A exp(c N)", "constant": float(slope), "prefactor": float(math.exp(intercept))}
    power = spec.degree - 1
    constant = float(np.exp(np.mean(k_arr - power * np.log(n_arr))))
    slope, _ = np.polyfit(np.log(n_arr), k_arr, 1)
    law = "K = c N" if power == 1 else f"K = c N^{power:g}"
    return {"law": law, "constant": constant, "exponent": float(power), "free_fit_exponent": float(slope)}


def sweep_neurons(
    spec: ModelSpec,
    neurons: list[int],
    trials: int,
    flip: float,
    threshold: float,
    *,
    mode: str = "async",
    seed: int = 0,
    max_steps: int = 100,
    resolution: float = 0.05,
    limit: int = 1 << 20,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """For each ``N``: the largest ``K`` whose bit-error rate is at most ``threshold``; then the fitted law."""
    check_run(min(neurons) if neurons else 0, [1], trials, flip, mode, max_steps)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"--threshold must be a bit-error rate in (0, 1), got {threshold!r}")
    generator = torch.Generator().manual_seed(seed)
    points = []
    for n in neurons:

        def evaluate(k: int, n: int = n) -> float:
            row = measure_load(spec, n, k, trials, flip, generator, mode=mode, max_steps=max_steps)
            if progress is not None:
                progress({"neurons": n, **row})
            return row["bit_error_rate"]["rate"]

        k_max, seen = largest_memories(evaluate, threshold, resolution=resolution, limit=limit)
        points.append({"neurons": n, "largest_memories": k_max, "evaluations": [list(p) for p in seen]})
    fit = fit_scaling(spec, [p["neurons"] for p in points], [p["largest_memories"] for p in points])
    if spec.model in ("classical", "power") and spec.degree >= 2 and flip == 0:
        fit["one_step_theory_constant"] = theory.small_error_capacity(int(spec.degree), threshold)
        if spec.degree == 2:
            fit["ags_theory_constant"] = theory.ags_load_at_bit_error(threshold)
    if spec.model == "exp" and fit.get("law"):
        fit["one_step_theory_constant"] = theory.exp_snr_exponent(spec.beta or 1.0)
        if spec.beta in (None, 1.0):
            fit["demircigil_bound"] = theory.exp_capacity_exponent(flip)
    return {"threshold": threshold, "points": points, "fit": fit}
