"""assocmem: large associative memories in the energy formulation of Krotov & Hopfield.

A network is a set of neuron layers (state, Lagrangian, time constant) and synapses between them; its energy
never increases under the dynamics when the Lagrangians are convex, and integrating out a fast layer turns the
two-body network into the classical Hopfield network, the Dense Associative Memory, or the modern Hopfield
network (REFERENCE.md sections 1-2).
"""

from assocmem import lagrangians, models
from assocmem.allocator import retain_freed_memory
from assocmem.dynamics import Trajectory, relax
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
from assocmem.models import DAMClassifier, Retrieval, retrieve
from assocmem.network import ConvSynapse, DenseSynapse, EnergyTerm, Layer, ManyBodyTerm, Network, Synapse

__version__ = "0.1.0"

__all__ = [
    "Abs",
    "Additive",
    "ConvSynapse",
    "DAMClassifier",
    "DenseSynapse",
    "EnergyTerm",
    "Exp",
    "Identity",
    "Lagrangian",
    "Layer",
    "LayerNorm",
    "LogSumExp",
    "ManyBodyTerm",
    "Network",
    "Polynomial",
    "ReLU",
    "RePU",
    "Retrieval",
    "Sigmoid",
    "Softmax",
    "Spherical",
    "Synapse",
    "Tanh",
    "Trajectory",
    "__version__",
    "lagrangians",
    "models",
    "relax",
    "retain_freed_memory",
    "retrieve",
]
