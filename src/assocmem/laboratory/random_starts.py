"""KH16's appendix experiment: from random initial states, does the network end in a stored memory?

``K`` random +-1 memories of ``N`` bits are stored; each of ``starts`` uniformly random states is relaxed by the
asynchronous update until a sweep changes nothing. A start *recovers a memory* when it ends exactly on a stored
pattern. For even powers ``F(x) = x^n`` the energy is even, ``E(-sigma) = E(sigma)``, so each negated memory
``-xi_mu`` is an equally deep minimum and ending there counts as recovery too; for odd powers ``-xi_mu`` is a
maximum of the energy and for rectified powers it is not a minimum (``F`` vanishes at ``-N``), so only ``+xi_mu``
counts. Published result (N = 100, K = 2000, 10^4 starts): ``n = 2, 3`` fail, ``n = 4`` mostly recovers,
``n >= 5`` always recovers, for both power and rectified ``F``.
"""

from __future__ import annotations

import time

import torch

from assocmem.laboratory.capacity import ModelSpec, random_patterns


def negation_counts(spec: ModelSpec) -> bool:
    """Whether ``-xi`` is a memory too: even ``F(x) = x^n`` (classical included)."""
    return spec.model == "classical" or (spec.model == "power" and int(spec.n) % 2 == 0)


def random_start_recovery(
    spec: ModelSpec,
    neurons: int,
    memories: int,
    starts: int,
    generator: torch.Generator,
    *,
    max_steps: int = 1000,
) -> dict:
    """Relax ``starts`` random states of one network of ``memories`` random patterns; count the endings."""
    begin = time.perf_counter()
    patterns = random_patterns(memories, neurons, generator)
    cues = random_patterns(starts, neurons, generator)
    res = spec.build(patterns).recall(cues, max_steps=max_steps, generator=generator)
    seconds = time.perf_counter() - begin
    overlaps = res.states @ patterns.T  # (starts, K), integers in [-N, N]
    plus = overlaps.amax(dim=1) == neurons
    minus = overlaps.amin(dim=1) == -neurons
    recovered = plus | minus if negation_counts(spec) else plus
    return {
        "model": spec.describe(),
        "neurons": neurons,
        "memories": memories,
        "starts": starts,
        "recovered": int(recovered.sum()),
        "ended_on_memory": int(plus.sum()),
        "ended_on_negated_memory": int(minus.sum()),
        "negation_counts": negation_counts(spec),
        "mean_best_overlap": float(overlaps.abs().amax(dim=1).float().mean() / neurons),
        "converged": int(res.converged.sum()),
        "mean_sweeps": float(res.steps.float().mean()),
        "seconds": seconds,
    }
