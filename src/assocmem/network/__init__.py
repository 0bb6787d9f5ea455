"""The general network of Krotov & Hopfield: layers, synapses, energy, forces, and integrating layers out."""

from assocmem.network.attention import AttentionTerm
from assocmem.network.conv import ConvSynapse
from assocmem.network.hopfield import HopfieldTerm
from assocmem.network.layer import Layer
from assocmem.network.manybody import ManyBodyTerm
from assocmem.network.network import Evaluation, Network, State
from assocmem.network.plan import Plan
from assocmem.network.pooling import AvgPoolSynapse
from assocmem.network.spectral import spectral_norm
from assocmem.network.synapse import DenseSynapse, Synapse
from assocmem.network.term import EnergyTerm, FunctionTerm

__all__ = [
    "AttentionTerm",
    "AvgPoolSynapse",
    "ConvSynapse",
    "DenseSynapse",
    "EnergyTerm",
    "Evaluation",
    "FunctionTerm",
    "HopfieldTerm",
    "Layer",
    "ManyBodyTerm",
    "Network",
    "Plan",
    "State",
    "Synapse",
    "spectral_norm",
]
