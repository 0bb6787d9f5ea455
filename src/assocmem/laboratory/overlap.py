"""Overlap between network states and stored patterns, the order parameter of recall (Amit et al. 1985)."""

from __future__ import annotations

from torch import Tensor


def overlap(states: Tensor, patterns: Tensor) -> Tensor:
    """``m_{b,mu} = (1/N) xi_mu . s_b`` for states ``(batch, N)`` and patterns ``(K, N)``; 1 is perfect recall of +-1
    patterns from a +-1 state. Pass ``torch.sign(v)`` to score the binary read-out of a continuous state."""
    if states.dim() != 2 or patterns.dim() != 2 or states.shape[1] != patterns.shape[1]:
        raise ValueError(
            f"overlap: states must be (batch, N) and patterns (K, N) with the same N; got {tuple(states.shape)} "
            f"and {tuple(patterns.shape)}"
        )
    return states @ patterns.T / patterns.shape[1]
