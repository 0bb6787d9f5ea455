"""assocmem: large associative memories in the energy formulation of Krotov & Hopfield.

A network is a set of neuron layers (state, Lagrangian, time constant) and synapses between them; its energy
never increases under the dynamics when the Lagrangians are convex, and integrating out a fast layer turns the
two-body network into the classical Hopfield network, the Dense Associative Memory, or the modern Hopfield
network (docs/reference.md §1-2).
"""

from assocmem import engines, keyvalue, lagrangians, models, nn
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
from assocmem.engines import BinaryDAM, ClassicalHopfield, MemoryBank, Recall, Retrieval, retrieve
from assocmem.keyvalue import KeyValueMemory, MemoryState, PlasticityRule, key_value_network, meta_learn
from assocmem.laboratory import overlap
from assocmem.lagrangians import (
    Abs,
    Additive,
    Entmax15,
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
    Sparsemax,
    Spherical,
    Tanh,
)
from assocmem.network import (
    AttentionTerm,
    AvgPoolSynapse,
    ConvSynapse,
    DenseSynapse,
    EnergyTerm,
    FunctionTerm,
    HopfieldTerm,
    Layer,
    ManyBodyTerm,
    Network,
    Synapse,
    spectral_norm,
)
from assocmem.version import __version__

__all__ = [
    "Abs",
    "Additive",
    "AttentionTerm",
    "AvgPoolSynapse",
    "BinaryDAM",
    "ClassicalHopfield",
    "ConvSynapse",
    "ConvergenceError",
    "CouplingBound",
    "DAMClassifier",
    "DenseSynapse",
    "DivergenceError",
    "EnergyTerm",
    "Entmax15",
    "Exp",
    "FixedPoint",
    "FunctionTerm",
    "HopfieldTerm",
    "Identity",
    "Implicit",
    "KeyValueMemory",
    "Lagrangian",
    "Layer",
    "LayerNorm",
    "LogSumExp",
    "ManyBodyTerm",
    "MemoryBank",
    "MemoryState",
    "Network",
    "PlasticityRule",
    "Polynomial",
    "ReLU",
    "RePU",
    "Recall",
    "Retrieval",
    "Sigmoid",
    "Softmax",
    "Sparsemax",
    "Spherical",
    "Synapse",
    "Tanh",
    "Trajectory",
    "__version__",
    "bounded_below",
    "engines",
    "key_value_network",
    "keyvalue",
    "lagrangians",
    "meta_learn",
    "models",
    "nn",
    "overlap",
    "relax",
    "retain_freed_memory",
    "retrieve",
    "spectral_norm",
]
