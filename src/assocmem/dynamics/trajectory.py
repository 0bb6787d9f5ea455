"""The result of :func:`assocmem.relax`: final state, energy history and convergence flags."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from assocmem.network import State


@dataclass(frozen=True)
class Trajectory:
    """A relaxation run.

    ``energies[i]`` is the energy of every sample at ``times[i]`` (shape ``(T, batch)``); with ``record=False``
    only the first and last rows are kept. ``converged[b]`` is True when sample ``b`` ended with
    ``max |dx/dt| <= tol`` (``speed`` holds that maximum).
    """

    state: State
    times: Tensor
    energies: Tensor
    converged: Tensor
    speed: Tensor
    method: str
    steps: int
    rejected: int
    evaluations: int

    @property
    def energy(self) -> Tensor:
        """Final energy per sample, shape ``(batch,)``."""
        return self.energies[-1]

    def __repr__(self) -> str:
        return (
            f"Trajectory(method={self.method!r}, t={float(self.times[-1]):.4g}, steps={self.steps}, "
            f"rejected={self.rejected}, evaluations={self.evaluations}, "
            f"converged={int(self.converged.sum())}/{self.converged.numel()})"
        )
