"""assocmem: large associative memories in the energy formulation of Krotov & Hopfield.

A network is a set of neuron layers (state, Lagrangian, time constant) and synapses between them; its energy
never increases under the dynamics when the Lagrangians are convex, and integrating out a fast layer turns the
two-body network into the classical Hopfield network, the Dense Associative Memory, or the modern Hopfield
network (docs/reference.md §1-2).
"""

from assocmem import engines, lagrangians, models, nn
from assocmem.allocator import retain_freed_memory
from assocmem.classifier import DAMClassifier
from assocmem.dynamics import (
    ConvergenceError,
    CouplingBound,
    DivergenceError,
    FixedPoint,
    Implicit,
    Trajectory,
    bounded_below,
    relax,
)
from assocmem.engines import BinaryDAM, ClassicalHopfield, Recall, Retrieval, retrieve
from assocmem.laboratory import overlap
from assocmem.lagrangians import (
    Abs,
    Additive,
    Exp,
    Identity,
    Lagrangian,
    LayerNorm,
    LogSumExp,
    Polynomial,
    ReLU,
    RePU,
    Sigmoid,
    Softmax,
    Spherical,
    Tanh,
)
from assocmem.network import (
    ConvSynapse,
    DenseSynapse,
    EnergyTerm,
    FunctionTerm,
    Layer,
    ManyBodyTerm,
    Network,
    Synapse,
)
from assocmem.version import __version__

__all__ = [
    "Abs",
    "Additive",
    "BinaryDAM",
    "ClassicalHopfield",
    "ConvSynapse",
    "ConvergenceError",
    "CouplingBound",
    "DAMClassifier",
    "DenseSynapse",
    "DivergenceError",
    "EnergyTerm",
    "Exp",
    "FixedPoint",
    "FunctionTerm",
    "Identity",
    "Implicit",
    "Lagrangian",
    "Layer",
    "LayerNorm",
    "LogSumExp",
    "ManyBodyTerm",
    "Network",
    "Polynomial",
    "ReLU",
    "RePU",
    "Recall",
    "Retrieval",
    "Sigmoid",
    "Softmax",
    "Spherical",
    "Synapse",
    "Tanh",
    "Trajectory",
    "__version__",
    "bounded_below",
    "engines",
    "lagrangians",
    "models",
    "nn",
    "overlap",
    "relax",
    "retain_freed_memory",
    "retrieve",
]
