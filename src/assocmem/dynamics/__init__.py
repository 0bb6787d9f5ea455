"""Dynamics: integrate the network's equations of motion until the state settles, and train through them
(docs/reference.md §1 and §4)."""

from assocmem.dynamics.boundedness import Boundedness, CouplingBound, bounded_below
from assocmem.dynamics.divergence import ConvergenceError, DivergenceError
from assocmem.dynamics.fixed_point import FixedPoint
from assocmem.dynamics.implicit import Implicit
from assocmem.dynamics.relax import relax
from assocmem.dynamics.steppers import METHODS
from assocmem.dynamics.trajectory import Trajectory

__all__ = [
    "METHODS",
    "Boundedness",
    "ConvergenceError",
    "CouplingBound",
    "DivergenceError",
    "FixedPoint",
    "Implicit",
    "Trajectory",
    "bounded_below",
    "relax",
]
