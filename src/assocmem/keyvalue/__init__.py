"""Biological key-value memory: one-shot writing by three-factor plasticity, one-step reading (docs/reference.md §10).

Tyulmankov, Fang, Vadaparty & Yang, "Biological learning in key-value memory networks", NeurIPS 2021,
arXiv:2110.13976. :class:`KeyValueMemory` stores items in the key and value synapses of a hidden layer, each write
gated by a local third factor (which slot) and a global one (whether to store); reading matches the query against
the keys through a separation function (:mod:`~assocmem.keyvalue.readout`) and reads out the values, which is one
step of the library's three-layer network with the hidden layer integrated out (:func:`key_value_network`).
:func:`meta_learn` trains the plasticity rule's parameters through write-then-read episodes; :mod:`tasks` and
:mod:`baselines` hold the paper's tasks and the networks it is compared with.
"""

from assocmem.keyvalue import baselines, tasks
from assocmem.keyvalue.memory import VALUE_RULES, KeyValueMemory
from assocmem.keyvalue.meta import MetaLearning, meta_learn, update_angles
from assocmem.keyvalue.plasticity import COEFFICIENTS, DESIGNED, PlasticityRule
from assocmem.keyvalue.preset import key_value_network
from assocmem.keyvalue.readout import READOUTS, Max, Step, readout_lagrangian
from assocmem.keyvalue.state import MemoryState
from assocmem.keyvalue.third_factor import LOCAL_FACTORS, random_factor, sequential_factor

__all__ = [
    "COEFFICIENTS",
    "DESIGNED",
    "LOCAL_FACTORS",
    "READOUTS",
    "VALUE_RULES",
    "KeyValueMemory",
    "Max",
    "MemoryState",
    "MetaLearning",
    "PlasticityRule",
    "Step",
    "baselines",
    "key_value_network",
    "meta_learn",
    "random_factor",
    "readout_lagrangian",
    "sequential_factor",
    "tasks",
    "update_angles",
]
