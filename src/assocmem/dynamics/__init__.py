"""Dynamics: integrate the network's equations of motion until the state settles (docs/reference.md §1)."""

from assocmem.dynamics.fixed_point import FixedPoint
from assocmem.dynamics.relax import relax
from assocmem.dynamics.steppers import METHODS
from assocmem.dynamics.trajectory import Trajectory

__all__ = ["METHODS", "FixedPoint", "Trajectory", "relax"]
