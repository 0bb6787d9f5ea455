"""The general network of Krotov & Hopfield: layers, synapses, energy, forces, and integrating layers out."""

from assocmem.network.conv import ConvSynapse
from assocmem.network.layer import Layer
from assocmem.network.manybody import ManyBodyTerm
from assocmem.network.network import Evaluation, Network, State
from assocmem.network.synapse import DenseSynapse, Synapse
from assocmem.network.term import EnergyTerm, FunctionTerm

__all__ = [
    "ConvSynapse",
    "DenseSynapse",
    "EnergyTerm",
    "Evaluation",
    "FunctionTerm",
    "Layer",
    "ManyBodyTerm",
    "Network",
    "State",
    "Synapse",
]
