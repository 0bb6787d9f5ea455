"""The result of :func:`assocmem.relax`: the common fixed-point result plus the integrator's own record."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from assocmem.dynamics.fixed_point import FixedPoint
from assocmem.network import State


@dataclass(frozen=True)
class Trajectory(FixedPoint):
    """A relaxation run (a :class:`~assocmem.dynamics.fixed_point.FixedPoint`).

    ``states`` is the final state, layer name to tensor. ``energies[i]`` is the energy of every sample at
    ``times[i]`` (shape ``(T, batch)``); with ``record=False`` only the first and last rows are kept. ``steps``
    is the number of integrator steps (the same for every sample: the samples are integrated together);
    ``converged[b]`` is True when sample ``b`` ended with ``max |dx/dt| <= tol`` (``speed`` holds that maximum).
    ``clock`` holds the integration time of every row of ``energies`` (read it as ``times``); ``rejected``
    counts the rejected adaptive steps and ``evaluations`` the evaluations of the forces.
    """

    states: State
    clock: Tensor
    speed: Tensor
    method: str
    rejected: int
    evaluations: int

    @property
    def times(self) -> Tensor:
        """The integration time of every row of ``energies``, ``(T,)``, starting at 0."""
        return self.clock

    def __repr__(self) -> str:
        steps = int(self.steps.max()) if self.steps.numel() else 0
        return (
            f"Trajectory(method={self.method!r}, t={float(self.clock[-1]):.4g}, steps={steps}, "
            f"rejected={self.rejected}, evaluations={self.evaluations}, "
            f"converged={int(self.converged.sum())}/{self.converged.numel()})"
        )
