"""Lagrangians of neuron layers: ``L(x)`` per sample, closed-form activation ``g = dL/dx``, and convexity.

See docs/reference.md §1, §2, §4 and §7 (the sparse separations). Every activation is checked in the tests
against automatic differentiation of its Lagrangian, on single samples and batches.
"""

from assocmem.lagrangians.additive import (
    Abs,
    Additive,
    AdditiveLagrangian,
    Exp,
    Identity,
    Polynomial,
    ReLU,
    RePU,
    Sigmoid,
    Tanh,
)
from assocmem.lagrangians.base import Lagrangian, hessian_vector
from assocmem.lagrangians.layernorm import LayerNorm
from assocmem.lagrangians.softmax import LogSumExp
from assocmem.lagrangians.sparse import Entmax15, Sparsemax
from assocmem.lagrangians.spherical import Spherical

#: The softmax activation's Lagrangian, under the name deep-learning readers look for.
Softmax = LogSumExp

__all__ = [
    "Abs",
    "Additive",
    "AdditiveLagrangian",
    "Entmax15",
    "Exp",
    "Identity",
    "Lagrangian",
    "LayerNorm",
    "LogSumExp",
    "Polynomial",
    "ReLU",
    "RePU",
    "Sigmoid",
    "Softmax",
    "Sparsemax",
    "Spherical",
    "Tanh",
    "hessian_vector",
]
