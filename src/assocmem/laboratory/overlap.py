"""Overlap between network states and stored patterns, the order parameter of recall (Amit et al. 1985)."""

from __future__ import annotations

from torch import Tensor

from assocmem.checks import guard, nonfinite_error, require_like, require_tensor


def overlap(states: Tensor, patterns: Tensor) -> Tensor:
    """``m_{b,mu} = (1/N) xi_mu . s_b`` for states ``(batch, N)`` and patterns ``(K, N)``; 1 is perfect recall of +-1
    patterns from a +-1 state. Pass ``torch.sign(v)`` to score the binary read-out of a continuous state.

    Both of one dtype (integer spins too) and device; NaN or Inf in the result is an error naming the argument
    that holds them (docs/bad-input.md)."""
    states = require_tensor(states, "states", "overlap", floating=False)
    patterns = require_tensor(patterns, "patterns", "overlap", floating=False)
    if states.dim() != 2 or patterns.dim() != 2 or states.shape[1] != patterns.shape[1]:
        raise ValueError(
            f"overlap: states must be (batch, N) and patterns (K, N) with the same N; got {tuple(states.shape)} "
            f"and {tuple(patterns.shape)}"
        )
    if patterns.shape[0] == 0 or patterns.shape[1] == 0:
        raise ValueError(
            f"overlap: patterns is empty (shape {tuple(patterns.shape)}); store at least one memory"
        )
    require_like(states, "states", patterns, "patterns", "overlap")
    with guard() as g:
        m = states @ patterns.T / patterns.shape[1]
        if g is not None:
            suspects = [("states", states), ("patterns", patterns)]
            g.result(m, lambda: nonfinite_error("overlap", suspects, "the overlaps overflowed"))
    return m
